//! Share rooms (SPEC section 3): `GET /ws/share/{room}?name=NAME`. Members
//! share text and images; images are reassembled from base64 chunks,
//! processed in memory through the worker pool (webp, resized to fit
//! `share.max_dimension`, under `share.max_image_bytes`) and streamed
//! re-chunked to the others. Never writes an image to disk.
//!
//! This module owns the protocol's dispatch; reassembly lives in `upload`,
//! late-joiner history in `rooms::history`, fan-out in the room hub, image
//! work in the job service's checked admission.

pub mod messages;
mod upload;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;

use self::messages::{ChunkIn, Out, StartIn, TextIn};
use self::upload::{Added, UploadError, UploadKey, UploadLimits, Uploads};
use super::limiter::InFlight;
use super::socket::{self, Session};
use super::wire::{self, json, Frame, JoinQuery};
use crate::auth;
use crate::config::{AuthSettings, Settings, ShareSettings};
use crate::error::{ApiError, Code};
use crate::jobs::WorkerPool;
use crate::pipeline::{Options, Preset};
use crate::rooms::{History, HubLimits, MemberHandle, Membership, RoomHub};

/// The name of a member who gives none (auth off).
const ANONYMOUS: &str = "anonymous";

/// JSON envelope allowance on top of a chunk's or a text's characters.
const ENVELOPE_BYTES: usize = 4096;

/// The share rooms of one server.
#[derive(Clone)]
pub struct ShareRooms {
    inner: Arc<Inner>,
}

struct Inner {
    hub: RoomHub,
    history: History,
    pool: WorkerPool,
    settings: ShareSettings,
    auth: AuthSettings,
    upload_limits: UploadLimits,
    options: Options,
}

impl ShareRooms {
    pub fn new(pool: WorkerPool, settings: &Settings) -> Self {
        let share = settings.share.clone();
        let limits = settings.pipeline_limits_within(share.max_upload_bytes);
        let options = Options::from_preset(
            Preset::Share {
                max_dimension: share.max_dimension,
                max_bytes: share.max_image_bytes,
            },
            limits,
        );
        let hub = RoomHub::new(HubLimits {
            max_members: share.max_members,
            member_queue: share.member_queue.max(2 + max_chunks_out(&share)),
        });
        Self {
            inner: Arc::new(Inner {
                hub,
                history: History::new(share.history, share.history_ttl, share.history_max_bytes),
                pool,
                upload_limits: UploadLimits::from_settings(&share),
                options,
                settings: share,
                auth: settings.auth.clone(),
            }),
        }
    }

    /// The hub behind these rooms (for inspection in tests and metrics).
    pub fn hub(&self) -> &RoomHub {
        &self.inner.hub
    }

    /// Largest frame a member may send: a full chunk or text plus envelope.
    fn max_frame_bytes(&self) -> usize {
        let s = &self.inner.settings;
        s.chunk_size.max(s.max_text_bytes) + ENVELOPE_BYTES
    }
}

impl socket::RoomProtocol for ShareRooms {
    fn max_message_bytes(&self) -> usize {
        self.max_frame_bytes()
    }

    async fn serve(self, socket: WebSocket, room: String, name: String) {
        let joined = match self.inner.history.join(&self.inner.hub, &room, &name) {
            Ok(joined) => joined,
            Err(e) => {
                let msg = json(&Out::Error {
                    error: &e.to_string(),
                    code: Code::RoomFull,
                });
                return socket::refuse(socket, msg, socket::CLOSE_TRY_AGAIN, "room is full").await;
            }
        };
        let processing = InFlight::new(self.inner.settings.max_uploads_per_member);
        let session = ShareSession {
            rooms: self,
            name,
            member: joined.membership,
            uploads: Uploads::default(),
            processing,
        };
        socket::serve(socket, joined.outbound, joined.preface, session).await;
    }
}

/// Chunks of the largest processed image, re-chunked for sending.
fn max_chunks_out(s: &ShareSettings) -> usize {
    let b64 = usize::try_from(s.max_image_bytes)
        .unwrap_or(usize::MAX / 2)
        .div_ceil(3)
        * 4;
    b64.div_ceil(chunk_chars(s))
}

/// Base64 characters per outgoing chunk: a multiple of 4, so each chunk
/// decodes on its own.
fn chunk_chars(s: &ShareSettings) -> usize {
    (s.chunk_size / 4 * 4).max(4)
}

/// `GET /ws/share/{room}`, with these rooms as its state.
pub fn routes(pool: WorkerPool, settings: &Settings) -> Router {
    Router::new()
        .route("/ws/share/{room}", get(upgrade))
        .with_state(ShareRooms::new(pool, settings))
}

/// `GET /ws/share/{room}?name=NAME`. With `auth.jwt_secret` set, the name
/// is the `sub` of a signed token instead.
pub async fn upgrade(
    State(rooms): State<ShareRooms>,
    Path(room): Path<String>,
    Query(query): Query<JoinQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let claimed = query
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(ANONYMOUS);
    let token = wire::bearer_token(&headers, query.token.as_deref());
    let name =
        auth::identify(&rooms.inner.auth, token.as_deref(), Some(claimed)).map_err(ApiError::from);
    socket::accept_room(ws, rooms, room, name)
}

/// One member's connection.
struct ShareSession {
    rooms: ShareRooms,
    name: String,
    member: Membership,
    uploads: Uploads,
    /// This member's uploads reassembled and still processing.
    processing: InFlight,
}

impl Session for ShareSession {
    fn on_text(&mut self, text: &str) {
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err(e) => return self.error(e.code(), &e.to_string()),
        };
        match frame.kind.as_str() {
            "imageUploadStart" => self.on_start(&frame),
            "imageUploadChunk" => self.on_chunk(&frame),
            "text" => match frame.read::<TextIn>() {
                Ok(t) => self.on_text_message(&t.text),
                Err(e) => self.error(e.code(), &e.to_string()),
            },
            _ => {
                let e = frame.unknown();
                self.error(e.code(), &e.to_string())
            }
        }
    }

    fn on_binary(&mut self, _data: Bytes) {
        self.error(
            Code::BinaryNotSupported,
            "binary frames are not part of this protocol: send images as imageUploadChunk messages",
        );
    }

    fn deadline(&self) -> Option<Instant> {
        self.uploads.next_expiry(&self.rooms.inner.upload_limits)
    }

    fn on_deadline(&mut self) {
        let limits = self.rooms.inner.upload_limits;
        for key in self.uploads.expire(Instant::now(), &limits) {
            self.upload_failed(&key, &UploadError::TimedOut(limits.idle_timeout));
        }
    }

    fn on_too_large(&mut self) {
        let limit = self.rooms.max_frame_bytes();
        self.error(Code::MessageTooLarge, &format!(
            "message over the limit of {limit} bytes: send images in chunks of at most {} base64 characters",
            self.rooms.inner.settings.chunk_size
        ));
    }
}

impl ShareSession {
    fn error(&self, code: Code, error: &str) {
        self.member.send_self(json(&Out::Error { error, code }));
    }

    fn upload_error(&self, key: &UploadKey, code: Code, error: &str) {
        self.member.send_self(upload_error(key, code, error));
    }

    fn upload_failed(&self, key: &UploadKey, e: &UploadError) {
        self.upload_error(key, e.code(), &e.to_string());
    }

    /// A malformed upload message: an `imageUploadError` when it names its
    /// file (and that upload is dropped), a plain error otherwise.
    fn malformed_upload(&mut self, frame: &Frame, e: &wire::FrameError) {
        let reason = &e.to_string();
        match frame.str_field("filename") {
            Some(filename) => {
                let key = UploadKey {
                    filename: filename.to_owned(),
                    upload_id: frame.str_field("uploadId").map(str::to_owned),
                };
                self.uploads.abandon(&key);
                self.upload_error(&key, e.code(), reason);
            }
            None => self.error(e.code(), reason),
        }
    }

    fn on_start(&mut self, frame: &Frame) {
        let start: StartIn = match frame.read() {
            Ok(s) => s,
            Err(e) => return self.malformed_upload(frame, &e),
        };
        let key = UploadKey {
            filename: start.filename,
            upload_id: start.upload_id,
        };
        let busy = self.processing.in_use();
        let limits = self.rooms.inner.upload_limits;
        if let Err(e) = self.uploads.start(key.clone(), start.size, busy, &limits) {
            self.upload_failed(&key, &e);
        }
    }

    fn on_chunk(&mut self, frame: &Frame) {
        let chunk: ChunkIn = match frame.read() {
            Ok(c) => c,
            Err(e) => return self.malformed_upload(frame, &e),
        };
        let key = UploadKey {
            filename: chunk.filename,
            upload_id: chunk.upload_id,
        };
        let limits = self.rooms.inner.upload_limits;
        let added = self.uploads.add(
            &key,
            chunk.chunk_index,
            chunk.total_chunks,
            &chunk.data,
            &limits,
        );
        match added {
            Err(e) => self.upload_failed(&key, &e),
            Ok(Added::Duplicate | Added::Stored(None)) => {}
            Ok(Added::Stored(Some(percent))) => self.progress(&key, percent),
            Ok(Added::Complete(file)) => {
                self.progress(&key, 100);
                self.process(key, file);
            }
        }
    }

    fn progress(&self, key: &UploadKey, progress: u8) {
        self.member.broadcast(json(&Out::ImageUploadProgress {
            filename: &key.filename,
            progress,
            upload_id: key.upload_id.as_deref(),
        }));
    }

    fn on_text_message(&self, text: &str) {
        let max = self.rooms.inner.settings.max_text_bytes;
        if text.is_empty() {
            return self.error(Code::InvalidMessage, "empty text message");
        }
        if text.len() > max {
            return self.error(
                Code::MessageTooLong,
                &format!(
                    "text message of {} bytes exceeds the limit of {max} bytes",
                    text.len()
                ),
            );
        }
        let msg = json(&Out::Text {
            text,
            from: &self.name,
            ts: wire::unix_seconds(),
        });
        let member = &self.member;
        let room = member.room_name();
        self.rooms
            .inner
            .history
            .publish(room, vec![msg.clone()], || {
                member.broadcast(msg);
            });
    }

    /// Runs a reassembled file through the checked admission, then shares
    /// the result.
    fn process(&self, key: UploadKey, file: Vec<u8>) {
        let inner = &self.rooms.inner;
        let busy = match self.processing.try_take() {
            Ok(permit) => permit,
            Err(_) => {
                let e = UploadError::TooManyUploads {
                    max: self.processing.max(),
                };
                return self.upload_failed(&key, &e);
            }
        };
        let admission = match inner.pool.admit(&file, &inner.options.limits) {
            Ok(a) => a,
            Err(e) => return self.upload_error(&key, e.code(), &e.to_string()),
        };
        let rooms = self.rooms.clone();
        let member = self.member.handle();
        let from = self.name.clone();
        let options = inner.options.clone();
        tokio::spawn(async move {
            let result = admission.run(Bytes::from(file), options, || {}).await;
            drop(busy);
            match result {
                Ok(output) => rooms.share_image(&member, &from, &key, output),
                Err(e) => {
                    member.send_self(upload_error(&key, e.code(), &e.to_string()));
                }
            }
        });
    }
}

/// An `imageUploadError` for `key`.
fn upload_error(key: &UploadKey, code: Code, error: &str) -> axum::extract::ws::Message {
    json(&Out::ImageUploadError {
        filename: &key.filename,
        error,
        code,
        upload_id: key.upload_id.as_deref(),
    })
}

impl ShareRooms {
    /// Streams a processed image: start, chunks and complete to the others
    /// (and to the history), complete alone to the uploader.
    fn share_image(
        &self,
        member: &MemberHandle,
        from: &str,
        key: &UploadKey,
        output: crate::pipeline::Output,
    ) {
        let filename = key.filename.as_str();
        let upload_id = key.upload_id.as_deref();
        let encoded = crate::encoding::encode(&output.bytes);
        let pieces: Vec<&str> = encoded
            .as_bytes()
            .chunks(chunk_chars(&self.inner.settings))
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        let mut stream = Vec::with_capacity(pieces.len() + 2);
        stream.push(json(&Out::ImageUploadStart {
            filename,
            mime_type: output.mime,
            size: output.size,
            from,
            upload_id,
        }));
        for (chunk_index, data) in pieces.iter().enumerate() {
            stream.push(json(&Out::ImageUploadChunk {
                filename,
                chunk_index,
                total_chunks: pieces.len(),
                data,
                upload_id,
            }));
        }
        let complete = json(&Out::ImageUploadComplete {
            filename,
            mime_type: output.mime,
            width: output.width,
            height: output.height,
            size: output.size,
            from,
            upload_id,
        });
        stream.push(complete.clone());
        self.inner
            .history
            .publish(member.room_name(), stream.clone(), || {
                member.broadcast_others(stream);
                member.send_self(complete);
            });
    }
}
