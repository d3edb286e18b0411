//! Share rooms (SPEC section 3): `GET /ws/share/{room}?name=NAME`. Members
//! share text and images; images are reassembled from base64 chunks,
//! processed in memory through the worker pool (webp, resized to fit
//! `share.max_dimension`, under `share.max_image_bytes`) and streamed
//! re-chunked to the others. Never writes an image to disk.
//!
//! This module owns the protocol's dispatch; reassembly lives in `upload`,
//! late-joiner history in `history`, fan-out in the room hub.

mod history;
mod messages;
mod upload;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;

use self::history::History;
use self::messages::{ChunkIn, Out, StartIn, TextIn};
use self::upload::{Added, UploadError, UploadKey, UploadLimits, Uploads};
use super::hub::{HubLimits, MemberHandle, Membership, RoomHub};
use super::socket::{self, Session};
use super::wire::{self, json, Frame};
use crate::config::{AuthSettings, Settings, ShareSettings};
use crate::http::identity::{self, IdentityError};
use crate::jobs::WorkerPool;
use crate::pipeline::{Fit, Format, Options, Step};

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

#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    name: Option<String>,
    /// A signed token, for browsers that cannot set `Authorization`.
    token: Option<String>,
}

impl ShareRooms {
    pub fn new(pool: WorkerPool, settings: &Settings) -> Self {
        let share = settings.share.clone();
        let mut limits = settings.pipeline_limits();
        limits.max_input_bytes = usize::try_from(share.max_upload_bytes).unwrap_or(usize::MAX);
        let options = Options {
            format: Format::Webp,
            steps: vec![Step::Resize {
                width: Some(share.max_dimension),
                height: Some(share.max_dimension),
                fit: Fit::Inside,
            }],
            max_bytes: Some(share.max_image_bytes),
            limits,
            ..Options::default()
        };
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

    async fn serve(self, socket: WebSocket, room: String, name: String) {
        let joined = match self.inner.history.join(&self.inner.hub, &room, &name) {
            Ok(joined) => joined,
            Err(e) => {
                let msg = json(&Out::Error {
                    error: &e.to_string(),
                });
                return socket::refuse(socket, msg, socket::CLOSE_TRY_AGAIN, "room is full").await;
            }
        };
        let session = ShareSession {
            rooms: self,
            name,
            member: joined.membership,
            uploads: Uploads::default(),
            processing: Arc::new(AtomicUsize::new(0)),
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

/// `GET /ws/share/{room}?name=NAME`. With `auth.jwt_secret` set, the name
/// is the `sub` of a signed token instead.
pub async fn upgrade(
    State(rooms): State<ShareRooms>,
    Path(room): Path<String>,
    Query(query): Query<JoinQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = wire::check_room(&room) {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    let claimed = query
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(ANONYMOUS);
    let name = identity::identify(
        &rooms.inner.auth,
        &headers,
        query.token.as_deref(),
        Some(claimed),
    );
    let name = match name {
        Ok(name) => name,
        Err(e @ IdentityError::MissingToken | e @ IdentityError::BadToken(_)) => {
            return (StatusCode::UNAUTHORIZED, e.to_string()).into_response()
        }
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let limit = rooms.max_frame_bytes();
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| rooms.serve(socket, room, name))
}

/// One member's connection.
struct ShareSession {
    rooms: ShareRooms,
    name: String,
    member: Membership,
    uploads: Uploads,
    /// This member's uploads reassembled and still processing.
    processing: Arc<AtomicUsize>,
}

impl Session for ShareSession {
    fn on_text(&mut self, text: &str) {
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err(e) => return self.error(&e.to_string()),
        };
        match frame.kind.as_str() {
            "imageUploadStart" => self.on_start(&frame),
            "imageUploadChunk" => self.on_chunk(&frame),
            "text" => match frame.read::<TextIn>() {
                Ok(t) => self.on_text_message(&t.text),
                Err(e) => self.error(&e.to_string()),
            },
            _ => self.error(&frame.unknown().to_string()),
        }
    }

    fn on_binary(&mut self, _data: Bytes) {
        self.error(
            "binary frames are not part of this protocol: send images as imageUploadChunk messages",
        );
    }

    fn deadline(&self) -> Option<Instant> {
        self.uploads.next_expiry(&self.rooms.inner.upload_limits)
    }

    fn on_deadline(&mut self) {
        let limits = self.rooms.inner.upload_limits;
        for key in self.uploads.expire(Instant::now(), &limits) {
            self.upload_error(
                &key,
                &UploadError::TimedOut(limits.idle_timeout).to_string(),
            );
        }
    }

    fn on_too_large(&mut self) {
        let limit = self.rooms.max_frame_bytes();
        self.error(&format!(
            "message over the limit of {limit} bytes: send images in chunks of at most {} base64 characters",
            self.rooms.inner.settings.chunk_size
        ));
    }
}

impl ShareSession {
    fn error(&self, error: &str) {
        self.member.send_self(json(&Out::Error { error }));
    }

    fn upload_error(&self, key: &UploadKey, error: &str) {
        self.member.send_self(json(&Out::ImageUploadError {
            filename: &key.filename,
            error,
            upload_id: key.upload_id.as_deref(),
        }));
    }

    /// A malformed upload message: an `imageUploadError` when it names its
    /// file (and that upload is dropped), a plain error otherwise.
    fn malformed_upload(&mut self, frame: &Frame, reason: &str) {
        match frame.str_field("filename") {
            Some(filename) => {
                let key = UploadKey {
                    filename: filename.to_owned(),
                    upload_id: frame.str_field("uploadId").map(str::to_owned),
                };
                self.uploads.abandon(&key);
                self.upload_error(&key, reason);
            }
            None => self.error(reason),
        }
    }

    fn on_start(&mut self, frame: &Frame) {
        let start: StartIn = match frame.read() {
            Ok(s) => s,
            Err(e) => return self.malformed_upload(frame, &e.to_string()),
        };
        let key = UploadKey {
            filename: start.filename,
            upload_id: start.upload_id,
        };
        let busy = self.processing.load(Ordering::Acquire);
        let limits = self.rooms.inner.upload_limits;
        if let Err(e) = self.uploads.start(key.clone(), start.size, busy, &limits) {
            self.upload_error(&key, &e.to_string());
        }
    }

    fn on_chunk(&mut self, frame: &Frame) {
        let chunk: ChunkIn = match frame.read() {
            Ok(c) => c,
            Err(e) => return self.malformed_upload(frame, &e.to_string()),
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
            Err(e) => self.upload_error(&key, &e.to_string()),
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
            return self.error("empty text message");
        }
        if text.len() > max {
            return self.error(&format!(
                "text message of {} bytes exceeds the limit of {max} bytes",
                text.len()
            ));
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

    /// Runs a reassembled file through the pool, then shares the result.
    fn process(&self, key: UploadKey, file: Vec<u8>) {
        let inner = &self.rooms.inner;
        let admission = match inner.pool.try_admit() {
            Ok(a) => a,
            Err(e) => return self.upload_error(&key, &e.to_string()),
        };
        let busy = ProcessingGuard::new(self.processing.clone());
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
                    member.send_self(json(&Out::ImageUploadError {
                        filename: &key.filename,
                        error: &e.to_string(),
                        upload_id: key.upload_id.as_deref(),
                    }));
                }
            }
        });
    }
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
        let encoded = base64::engine::general_purpose::STANDARD.encode(&output.bytes);
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

/// Counts an upload as processing for as long as it lives.
struct ProcessingGuard(Arc<AtomicUsize>);

impl ProcessingGuard {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for ProcessingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
