//! `GET /ws`: the job API over a WebSocket. Each request (base64 in a text
//! frame, or a text frame followed by one binary frame) is submitted to the
//! same job service as `POST /upload` and answered with queued, processing,
//! done (or error) frames. Several requests may be in flight per socket, up
//! to `ws.max_in_flight` (the shared limiter); errors are messages and the
//! socket stays open. The socket runs on the shared loop, as a member of a
//! room of its own.

use std::sync::Arc;

use axum::extract::ws::WebSocket;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::limiter::{InFlight, InFlightPermit};
use super::socket::{self, Session};
use crate::auth::Caller;
use crate::error::{ApiError, Code};
use crate::jobs::{JobError, OptionRules, Task, UploadOptions, Variant, VariantSpec, VariantState};
use crate::links::DownloadLinks;
use crate::protocols::http::AppState;
use crate::protocols::job_view::{QualityValue, VariantView};
use crate::rooms::{Frame, MemberHandle, Membership};

/// One request frame. The upload options are flattened in.
#[derive(Debug, Deserialize)]
struct WsRequest {
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(flatten)]
    options: UploadOptions,
}

/// Frames queued per socket beyond those of the requests in flight.
const QUEUE_SLACK: usize = 64;

pub async fn handler(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ws: socket::Upgrade,
) -> Response {
    let max = usize::try_from(state.settings.ws.max_message_bytes).unwrap_or(usize::MAX);
    socket::accept(ws, max, move |ws| serve(ws, state, caller))
}

async fn serve(socket: WebSocket, state: AppState, caller: Caller) {
    let max_in_flight = state.settings.ws.max_in_flight;
    // Each request in flight queues at most three batches.
    let (member, outbound) = crate::rooms::hub::solo(max_in_flight * 4 + QUEUE_SLACK);
    let session = JobSession {
        state,
        caller: Arc::new(caller),
        member,
        in_flight: InFlight::new(max_in_flight),
        pending_binary: None,
    };
    socket::serve(socket, outbound, Vec::new(), session).await;
}

struct JobSession {
    state: AppState,
    /// Who opened the socket: the owner of what it uploads.
    caller: Arc<Caller>,
    member: Membership,
    in_flight: InFlight,
    /// A request frame without data, waiting for its binary frame.
    pending_binary: Option<WsRequest>,
}

impl Session for JobSession {
    fn on_text(&mut self, text: &str) {
        let request = match serde_json::from_str::<WsRequest>(text) {
            Ok(request) => request,
            Err(e) => {
                return send_error(
                    &self.member,
                    None,
                    Code::BadRequest,
                    &format!("not a valid request: {e}"),
                )
            }
        };
        let Some(data) = request.data.as_deref() else {
            self.pending_binary = Some(request);
            return;
        };
        match crate::encoding::decode(data) {
            Ok(bytes) => self.submit(request, Bytes::from(bytes), false),
            Err(e) => send_error(
                &self.member,
                request.id,
                Code::BadRequest,
                &format!("data is not valid base64: {e}"),
            ),
        }
    }

    fn on_binary(&mut self, data: Bytes) {
        match self.pending_binary.take() {
            Some(request) => self.submit(request, data, true),
            None => send_error(
                &self.member,
                None,
                Code::BadRequest,
                "a binary frame must follow a request frame without data",
            ),
        }
    }

    fn on_too_large(&mut self) {
        let limit = self.state.settings.ws.max_message_bytes;
        send_error(
            &self.member,
            None,
            Code::MessageTooLarge,
            &format!("message over ws.max_message_bytes ({limit} bytes); the socket closes"),
        );
    }
}

impl JobSession {
    fn submit(&mut self, request: WsRequest, bytes: Bytes, binary: bool) {
        let permit = match self.in_flight.try_take() {
            Ok(permit) => permit,
            Err(e) => return send_error(&self.member, request.id, e.code(), &e.to_string()),
        };
        let state = self.state.clone();
        let caller = self.caller.clone();
        let member = self.member.handle();
        tokio::spawn(async move {
            match start_job(&state, &caller, &request, bytes).await {
                Err(e) => send_error(&member, request.id, e.code, &e.message),
                Ok(job) => {
                    follow(&member, request, job, binary, permit, &state.links).await;
                }
            }
        });
    }
}

async fn start_job(
    state: &AppState,
    caller: &Caller,
    request: &WsRequest,
    bytes: Bytes,
) -> Result<(VariantSpec, Arc<Task>, Arc<Variant>), ApiError> {
    if state.shutting_down() {
        return Err(ApiError::shutting_down());
    }
    let limit = state.settings.upload.max_upload_size;
    if bytes.len() as u64 > limit {
        return Err(ApiError::too_large(limit));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("data: the image is empty"));
    }
    let spec = request
        .options
        .to_spec(&OptionRules::from(&*state.settings))
        .map_err(|e| ApiError::bad_request(e.0))?;
    let submitted = state.store.submit(bytes, spec).await?;
    state.store.add_owner(&submitted.task, caller).await;
    if let Some(name) = &request.filename {
        submitted.task.name_once(name);
    }
    Ok((spec, submitted.task, submitted.variant))
}

/// Sends queued, processing and the final frame for one request, then
/// frees its place.
async fn follow(
    member: &MemberHandle,
    request: WsRequest,
    (spec, task, variant): (VariantSpec, Arc<Task>, Arc<Variant>),
    binary: bool,
    _place: InFlightPermit,
    links: &DownloadLinks,
) {
    let base = |status: &str| {
        let mut v = json!({
            "status": status,
            "md5": task.key.as_str(),
            "format": spec.format.name(),
            "quality": QualityValue::requested(spec.quality),
        });
        if let Some(target) = spec.quality.target() {
            v["target"] = json!(target);
        }
        if let Some(id) = &request.id {
            v["id"] = id.clone();
        }
        if let Some(name) = &request.filename {
            v["filename"] = json!(name);
        }
        v
    };
    if !member.send_self(text(base("queued"))) {
        return;
    }
    let mut rx = variant.subscribe();
    let settled = rx
        .wait_for(|s| !matches!(s, VariantState::Queued))
        .await
        .map(|s| s.clone());
    if !member.send_self(text(base("processing"))) {
        return;
    }
    let final_state = match settled {
        Ok(s) if s.is_settled() => s,
        _ => rx
            .wait_for(VariantState::is_settled)
            .await
            .map(|s| s.clone())
            .unwrap_or(VariantState::Failed(JobError::ShuttingDown)),
    };
    let frames = match final_state {
        VariantState::Done(done) => {
            let view = VariantView::of(&task, &variant);
            let mut v = base("done");
            // An auto variant answers what it chose.
            v["format"] = json!(view.format);
            v["quality"] = json!(view.quality);
            for (name, value) in view.auto_fields() {
                v[name] = value;
            }
            v["size"] = json!(done.bytes.len());
            v["width"] = json!(view.width);
            v["height"] = json!(view.height);
            v["original_size"] = json!(task.original_size);
            v["url"] = json!(links.url(task.key.as_str(), &spec));
            if binary {
                vec![text(v), Frame::binary(done.bytes.clone())]
            } else {
                v["file"] = json!(crate::encoding::encode(&done.bytes));
                vec![text(v)]
            }
        }
        VariantState::Failed(e) => {
            let mut v = base("error");
            v["message"] = json!(e.code());
            v["detail"] = json!(e.to_string());
            vec![text(v)]
        }
        _ => return,
    };
    member.send_self(frames);
}

fn send_error(member: &MemberHandle, id: Option<Value>, code: Code, detail: &str) {
    let mut v = json!({ "status": "error", "message": code, "detail": detail });
    if let Some(id) = id {
        v["id"] = id;
    }
    member.send_self(text(v));
}

fn text(v: Value) -> Frame {
    Frame::text(v.to_string())
}
