//! img2img (SPEC section 4): `GET /ws/img2img` (room `default`) and
//! `GET /ws/img2img/{room}`. A client sends an image with a prompt, either
//! base64 inside JSON (`img2img`) or as JSON metadata followed by one binary
//! frame (`img2img_binary`); the prompt is an edit recipe run by the shared
//! pipeline through the worker pool. The result goes to the sender and to
//! every `consumer` of the same room.
//!
//! This module owns the protocol's dispatch and its one job path; fan-out
//! is the room hub's, image work the job service's checked admission (with
//! `img2img.processing_timeout` as the job's deadline).

pub mod messages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;

use self::messages::{BinaryMetaIn, Img2ImgIn, Out, RegisterIn, ResultMeta};
use super::limiter::{InFlight, InFlightPermit, TooManyInFlight};
use super::socket::{self, Session};
use super::wire::{self, json, Frame, JoinQuery};
use crate::auth;
use crate::backend::HistoryBounds;
use crate::config::{Img2ImgSettings, Settings};
use crate::error::{ApiError, Code};
use crate::jobs::{JobError, WorkerPool};
use crate::pipeline::{recipe, Format, Limits, Options, Output, RecipeDefaults};
use crate::rooms::{
    ArriveError, Bus, HubLimits, MemberHandle, Membership, Presence, RoomHub, RoomRepos,
};

/// The room of `GET /ws/img2img`.
pub const DEFAULT_ROOM: &str = "default";

/// The role of members who receive every result of their room.
const CONSUMER: &str = "consumer";
const PRODUCER: &str = "producer";

/// A request that could not be run; each maps to a stable code.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("{0}")]
    Frame(#[from] wire::FrameError),
    #[error("client_type must be \"producer\" or \"consumer\", got {0:?}")]
    ClientType(String),
    #[error("image is not valid base64: {0}")]
    Base64(String),
    #[error(transparent)]
    InFlight(#[from] TooManyInFlight),
    #[error("no image arrived within {0:?} of its img2img_binary metadata")]
    MetadataTimeout(Duration),
    #[error("message over the limit of {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Job(#[from] JobError),
}

impl RequestError {
    fn code(&self) -> Code {
        match self {
            Self::Frame(e) => e.code(),
            Self::ClientType(_) => Code::InvalidClientType,
            Self::Base64(_) => Code::InvalidBase64,
            Self::InFlight(e) => e.code(),
            Self::MetadataTimeout(_) => Code::MetadataTimeout,
            Self::TooLarge(_) => Code::MessageTooLarge,
            Self::Job(e) => e.code(),
        }
    }
}

/// The img2img rooms of one server.
#[derive(Clone)]
pub struct Img2ImgRooms {
    inner: Arc<Inner>,
}

struct Inner {
    hub: RoomHub,
    /// Who is in each room (counted across instances with Redis).
    roster: Presence,
    pool: WorkerPool,
    settings: Img2ImgSettings,
    limits: Limits,
}

impl Img2ImgRooms {
    /// The img2img rooms, spanning every instance on `bus` (topic
    /// `img2img`), their members counted in `repos`.
    pub fn new(
        pool: WorkerPool,
        settings: &Settings,
        bus: Arc<dyn Bus>,
        repos: &dyn RoomRepos,
    ) -> Self {
        let limits = settings.pipeline_limits_within(settings.img2img.max_message_bytes);
        let img2img = settings.img2img.clone();
        let no_history = HistoryBounds {
            keep: 0,
            ttl: Duration::from_secs(1),
            max_bytes: 0,
        };
        let roster = Presence::on(
            repos.open("img2img", no_history),
            settings.backend.bus_queue,
            img2img.max_members,
        );
        Self {
            inner: Arc::new(Inner {
                hub: RoomHub::on_bus(
                    HubLimits {
                        max_members: img2img.max_members,
                        member_queue: img2img.member_queue.max(2),
                    },
                    bus,
                    "img2img",
                    settings.backend.bus_queue,
                ),
                roster,
                pool,
                limits,
                settings: img2img,
            }),
        }
    }

    /// The hub behind these rooms (for inspection in tests and metrics).
    pub fn hub(&self) -> &RoomHub {
        &self.inner.hub
    }

    fn max_message_bytes(&self) -> usize {
        usize::try_from(self.inner.settings.max_message_bytes).unwrap_or(usize::MAX)
    }
}

impl socket::RoomProtocol for Img2ImgRooms {
    fn max_message_bytes(&self) -> usize {
        Img2ImgRooms::max_message_bytes(self)
    }

    async fn serve(self, socket: WebSocket, room: String, name: String) {
        let welcome = json(&Out::Welcome {
            message: "Connected to img2img WebSocket server",
            timestamp: wire::unix_seconds_f64(),
        });
        let (member, outbound) = match self.inner.hub.join(&room, &name) {
            Ok(joined) => joined,
            Err(e) => return refuse(socket, ArriveError::Full(e)).await,
        };
        if let Err(e) = self.inner.roster.enter_quietly(&member, &name).await {
            return refuse(socket, e).await;
        }
        let in_flight = InFlight::new(self.inner.settings.max_in_flight);
        let session = Img2ImgSession {
            rooms: self,
            member,
            pending: None,
            in_flight,
        };
        socket::serve(socket, outbound, vec![welcome], session).await;
    }
}

/// Turns a client away (room full, or its member count unavailable) with
/// an error and close code 1013, try again later.
async fn refuse(socket: WebSocket, e: ArriveError) {
    let (code, reason) = e.refusal();
    let msg = json(&Out::Error {
        message: code.as_str(),
        detail: &e.to_string(),
        timestamp: &now(),
    });
    socket::refuse(socket, msg, socket::CLOSE_TRY_AGAIN, reason).await
}

fn now() -> Value {
    Value::from(wire::unix_seconds_f64())
}

/// `GET /ws/img2img` and `GET /ws/img2img/{room}`, with these rooms as
/// their state.
pub fn routes(
    pool: WorkerPool,
    settings: &Settings,
    bus: Arc<dyn Bus>,
    repos: &dyn RoomRepos,
) -> Router {
    let rooms = Img2ImgRooms::new(pool, settings, bus, repos);
    Router::new()
        .route("/ws/img2img", get(upgrade_default))
        .route("/ws/img2img/{room}", get(upgrade))
        .with_state(rooms)
}

/// `GET /ws/img2img`
pub async fn upgrade_default(
    State(rooms): State<Img2ImgRooms>,
    Query(query): Query<JoinQuery>,
    ws: socket::Upgrade,
) -> Response {
    upgrade_room(rooms, DEFAULT_ROOM.to_owned(), query, ws)
}

/// `GET /ws/img2img/{room}`
pub async fn upgrade(
    State(rooms): State<Img2ImgRooms>,
    Path(room): Path<String>,
    Query(query): Query<JoinQuery>,
    ws: socket::Upgrade,
) -> Response {
    upgrade_room(rooms, room, query, ws)
}

fn upgrade_room(
    rooms: Img2ImgRooms,
    room: String,
    query: JoinQuery,
    ws: socket::Upgrade,
) -> Response {
    let name =
        auth::check_member_name(query.name.as_deref(), "client").map_err(ApiError::bad_request);
    socket::accept_room(ws, rooms, room, name)
}

/// `img2img_binary` metadata waiting for its binary frame.
struct Pending {
    meta: BinaryMetaIn,
    expires: Instant,
}

/// How a result is sent back.
#[derive(Clone, Copy)]
enum Reply {
    Base64,
    Binary,
}

/// One request, whichever protocol it came by.
struct Request {
    image: Bytes,
    prompt: String,
    timestamp: Value,
    reply: Reply,
}

struct Img2ImgSession {
    rooms: Img2ImgRooms,
    member: Membership,
    pending: Option<Pending>,
    in_flight: InFlight,
}

impl Drop for Img2ImgSession {
    /// The member no longer counts towards its room's bound.
    fn drop(&mut self) {
        self.rooms.inner.roster.leave_quietly(&self.member);
    }
}

impl Session for Img2ImgSession {
    fn on_text(&mut self, text: &str) {
        if let Err((e, timestamp)) = self.dispatch(text) {
            send_error(&self.member, &e, &timestamp);
        }
    }

    fn on_binary(&mut self, data: Bytes) {
        let Some(pending) = self.pending.take() else {
            tracing::debug!(
                bytes = data.len(),
                "binary frame without img2img_binary metadata ignored"
            );
            return;
        };
        if pending.expires <= Instant::now() {
            self.expire(pending);
            return;
        }
        let meta = pending.meta;
        let timestamp = meta.timestamp.unwrap_or_else(now);
        self.submit(Request {
            image: data,
            prompt: meta.prompt,
            timestamp,
            reply: Reply::Binary,
        });
    }

    fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.expires)
    }

    fn on_deadline(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.expire(pending);
        }
    }

    fn on_too_large(&mut self) {
        let e = RequestError::TooLarge(self.rooms.max_message_bytes());
        send_error(&self.member, &e, &now());
    }
}

impl Img2ImgSession {
    /// Handles one text frame; an error comes back with the request's
    /// timestamp (or the server's time).
    fn dispatch(&mut self, text: &str) -> Result<(), (RequestError, Value)> {
        let frame = Frame::parse(text).map_err(|e| (e.into(), now()))?;
        let timestamp = frame.body.get("timestamp").cloned().unwrap_or_else(now);
        let fail = |e: RequestError| (e, timestamp.clone());
        match frame.kind.as_str() {
            "ping" => {
                self.member.send_self(json(&Out::Pong {
                    timestamp: wire::unix_seconds_f64(),
                }));
            }
            "register" => {
                let reg: RegisterIn = frame.read().map_err(|e| fail(e.into()))?;
                let role = match reg.client_type.as_str() {
                    PRODUCER => PRODUCER,
                    CONSUMER => CONSUMER,
                    _ => return Err(fail(RequestError::ClientType(reg.client_type))),
                };
                self.member.set_role(role);
                self.member.send_self(json(&Out::Registered {
                    client_type: role,
                    timestamp: wire::unix_seconds_f64(),
                }));
            }
            "img2img" => {
                let req: Img2ImgIn = frame.read().map_err(|e| fail(e.into()))?;
                let image = decode_base64(&req.image).map_err(fail)?;
                self.submit(Request {
                    image,
                    prompt: req.prompt,
                    timestamp: timestamp.clone(),
                    reply: Reply::Base64,
                });
            }
            "img2img_binary" => {
                let meta: BinaryMetaIn = frame.read().map_err(|e| fail(e.into()))?;
                // Newer metadata replaces metadata still waiting.
                self.pending = Some(Pending {
                    meta,
                    expires: Instant::now() + self.rooms.inner.settings.metadata_timeout,
                });
            }
            // The original server ignores what it does not know.
            _ => frame.ignore("img2img"),
        }
        Ok(())
    }

    fn expire(&self, pending: Pending) {
        let timeout = self.rooms.inner.settings.metadata_timeout;
        let timestamp = pending.meta.timestamp.unwrap_or_else(now);
        send_error(
            &self.member,
            &RequestError::MetadataTimeout(timeout),
            &timestamp,
        );
    }

    /// The one job path of both protocols: take a place on the socket, go
    /// through the checked admission with the processing timeout, deliver
    /// to the sender and the room's consumers.
    fn submit(&self, request: Request) {
        let settings = &self.rooms.inner.settings;
        let permit = match self.in_flight.try_take() {
            Ok(permit) => permit,
            Err(e) => return send_error(&self.member, &e.into(), &request.timestamp),
        };
        let (options, ignored) = self.options_for(&request);
        let admission = match self.rooms.inner.pool.admit(&request.image, &options.limits) {
            Ok(a) => a.within(settings.processing_timeout),
            Err(e) => return send_error(&self.member, &e.into(), &request.timestamp),
        };
        let member = self.member.handle();
        tokio::spawn(async move {
            let image = request.image.clone();
            let result = admission
                .run(image, options, || {})
                .await
                .map_err(RequestError::from);
            // Free the place before answering: a client may send its next
            // request as soon as it has the answer.
            drop::<InFlightPermit>(permit);
            match result {
                Ok(output) => deliver(&member, &request, &ignored, output),
                Err(e) => send_error(&member, &e, &request.timestamp),
            }
        });
    }

    /// Pipeline options from the prompt's recipe on top of the default
    /// answer (`img2img.default_size`, JPEG, quality 85). The request's own
    /// `format` field names the format of the image it sends, as the
    /// original clients use it; the bytes are sniffed anyway.
    fn options_for(&self, request: &Request) -> (Options, Vec<String>) {
        let recipe = recipe::parse(&request.prompt);
        let size = self.rooms.inner.settings.default_size;
        let defaults = RecipeDefaults::jpeg_inside(size.width, size.height);
        let options = Options::from_recipe(&recipe, defaults, self.rooms.inner.limits);
        (options, recipe.ignored)
    }
}

/// Accepts plain base64 or a `data:image/...;base64,` URL.
fn decode_base64(text: &str) -> Result<Bytes, RequestError> {
    crate::encoding::decode(text)
        .map(Bytes::from)
        .map_err(|e| RequestError::Base64(e.to_string()))
}

/// The name img2img clients use for a format (`jpeg` rather than `jpg`).
fn wire_format(format: Format) -> &'static str {
    match format {
        Format::Jpeg => "jpeg",
        other => other.name(),
    }
}

fn deliver(member: &MemberHandle, request: &Request, ignored: &[String], output: Output) {
    let meta = ResultMeta {
        prompt: &request.prompt,
        format: wire_format(output.format),
        timestamp: &request.timestamp,
        ignored,
        width: output.width,
        height: output.height,
        size: output.size,
    };
    let batch = match request.reply {
        Reply::Base64 => {
            let image = crate::encoding::encode(&output.bytes);
            vec![json(&Out::Result {
                image: &image,
                meta,
            })]
        }
        Reply::Binary => {
            let head = json(&Out::ResultBinary { meta });
            vec![head, crate::rooms::Frame::binary(Bytes::from(output.bytes))]
        }
    };
    member.send_with_role(CONSUMER, batch);
}

fn send_error(member: &MemberHandle, error: &RequestError, timestamp: &Value) {
    member.send_self(json(&Out::Error {
        message: error.code().as_str(),
        detail: &error.to_string(),
        timestamp,
    }));
}
