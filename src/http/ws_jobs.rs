//! `GET /ws`: the job API over a WebSocket. Each request (base64 in a text
//! frame, or a text frame followed by one binary frame) is submitted to the
//! same `JobStore` as `POST /upload` and answered with queued, processing,
//! done (or error) frames. Several requests may be in flight per socket,
//! up to `ws.max_in_flight`; errors are messages and the socket stays open.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use super::error::ApiError;
use super::jobs_api::{check_header, VariantView};
use super::AppState;
use crate::jobs::{JobError, UploadOptions, VariantSpec, VariantState};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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

/// Frames for the send task; a `done` with a binary result is two frames
/// that must stay together.
type Outbound = Vec<Message>;

pub async fn handler(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let max = usize::try_from(state.settings.ws.max_message_bytes).unwrap_or(usize::MAX);
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(socket, state))
}

async fn serve(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(64);
    let send_task = tokio::spawn(async move {
        while let Some(frames) = rx.recv().await {
            for frame in frames {
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(state.settings.ws.max_in_flight.max(1)));
    let mut pending_binary: Option<WsRequest> = None;

    while let Some(Ok(message)) = stream.next().await {
        let (request, bytes, binary) = match message {
            Message::Text(text) => match serde_json::from_str::<WsRequest>(&text) {
                Err(e) => {
                    send_error(
                        &tx,
                        None,
                        "bad_request",
                        &format!("not a valid request: {e}"),
                    )
                    .await;
                    continue;
                }
                Ok(req) => match req.data.as_deref() {
                    None => {
                        pending_binary = Some(req);
                        continue;
                    }
                    Some(data) => match B64.decode(data.trim()) {
                        Ok(bytes) => (req, Bytes::from(bytes), false),
                        Err(e) => {
                            let id = req.id.clone();
                            send_error(
                                &tx,
                                id,
                                "bad_request",
                                &format!("data is not valid base64: {e}"),
                            )
                            .await;
                            continue;
                        }
                    },
                },
            },
            Message::Binary(bytes) => match pending_binary.take() {
                Some(req) => (req, bytes, true),
                None => {
                    send_error(
                        &tx,
                        None,
                        "bad_request",
                        "a binary frame must follow a request frame without data",
                    )
                    .await;
                    continue;
                }
            },
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            send_error(
                &tx,
                request.id,
                "too_many_requests",
                "too many requests in flight on this socket; wait for an answer first",
            )
            .await;
            continue;
        };
        match start_job(&state, &request, bytes).await {
            Err(e) => send_error(&tx, request.id, e.code, &e.message).await,
            Ok((spec, variant, task)) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    follow(tx, request, spec, task, variant, binary).await;
                });
            }
        }
    }
    drop(tx);
    let _ = send_task.await;
}

async fn start_job(
    state: &AppState,
    request: &WsRequest,
    bytes: Bytes,
) -> Result<
    (
        VariantSpec,
        Arc<crate::jobs::Variant>,
        Arc<crate::jobs::Task>,
    ),
    ApiError,
> {
    let limit = state.settings.upload.max_upload_size;
    if bytes.len() as u64 > limit {
        return Err(ApiError::too_large(limit));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("data: the image is empty"));
    }
    let spec = request
        .options
        .to_spec(state.settings.limits.max_dimension)
        .map_err(|e| ApiError::bad_request(e.0))?;
    check_header(&bytes, state)?;
    let submitted = state.store.submit(bytes, spec).await?;
    Ok((spec, submitted.variant, submitted.task))
}

/// Sends queued, processing and the final frame for one request.
async fn follow(
    tx: mpsc::Sender<Outbound>,
    request: WsRequest,
    spec: VariantSpec,
    task: Arc<crate::jobs::Task>,
    variant: Arc<crate::jobs::Variant>,
    binary: bool,
) {
    let base = |status: &str| {
        let mut v = json!({
            "status": status,
            "md5": task.key.as_str(),
            "format": spec.format.name(),
            "quality": spec.quality,
        });
        if let Some(id) = &request.id {
            v["id"] = id.clone();
        }
        if let Some(name) = &request.filename {
            v["filename"] = json!(name);
        }
        v
    };
    if tx.send(vec![text(base("queued"))]).await.is_err() {
        return;
    }
    let mut rx = variant.subscribe();
    let settled = rx
        .wait_for(|s| !matches!(s, VariantState::Queued))
        .await
        .map(|s| s.clone());
    if tx.send(vec![text(base("processing"))]).await.is_err() {
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
            v["size"] = json!(done.bytes.len());
            v["width"] = json!(view.width);
            v["height"] = json!(view.height);
            v["original_size"] = json!(task.original_size);
            if binary {
                vec![text(v), Message::Binary(done.bytes.clone())]
            } else {
                v["file"] = json!(B64.encode(&done.bytes));
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
    let _ = tx.send(frames).await;
}

async fn send_error(tx: &mpsc::Sender<Outbound>, id: Option<Value>, code: &str, detail: &str) {
    let mut v = json!({ "status": "error", "message": code, "detail": detail });
    if let Some(id) = id {
        v["id"] = id;
    }
    let _ = tx.send(vec![text(v)]).await;
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}
