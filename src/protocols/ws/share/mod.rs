//! Share rooms (SPEC section 3): `GET /ws/share/{room}?name=NAME`, and the
//! same rooms at `GET /{uuid-v4}` (the address the original share page
//! opens). Members share text, a shared text pad and images; images are
//! reassembled from base64 chunks, processed in memory through the worker
//! pool (webp, resized to fit `share.max_dimension`, under
//! `share.max_image_bytes`) and streamed re-chunked to every member. Never
//! writes an image to disk.
//!
//! This module owns the protocol's dispatch; reassembly lives in `upload`,
//! text-pad bounds in `pad`, late-joiner history and the pad's text in
//! `rooms::history`, who is present in `rooms::presence`, fan-out in the
//! room hub, image work in the job service's checked admission.

pub mod messages;
mod pad;
mod upload;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::WebSocket;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;

use self::messages::{ChunkIn, Out, StartIn, TextIn, TextUpdateIn};
use self::pad::{PadBucket, PadLimits};
use self::upload::{Added, UploadError, UploadKey, UploadLimits, Uploads};
use super::limiter::InFlight;
use super::socket::{self, Session};
use super::wire::{self, json, Frame, JoinQuery};
use crate::auth;
use crate::backend::HistoryBounds;
use crate::config::{AuthSettings, Settings, ShareSettings};
use crate::error::{ApiError, Code};
use crate::jobs::WorkerPool;
use crate::pipeline::{Options, Preset};
use crate::rooms::{
    ArriveError, Bus, History, HubLimits, MemberHandle, Membership, Presence, RoomHub, RoomRepos,
};

/// The name of a member who gives none (auth off).
const ANONYMOUS: &str = "anonymous";

/// JSON envelope allowance on top of a chunk's or a text's characters.
const ENVELOPE_BYTES: usize = 4096;

/// The history state kind that holds a room's shared text pad.
const PAD_STATE: &str = "textUpdate";

/// What an upload announces as its type when it names none we can echo.
const UNKNOWN_MIME: &str = "application/octet-stream";

/// The share rooms of one server.
#[derive(Clone)]
pub struct ShareRooms {
    inner: Arc<Inner>,
}

struct Inner {
    hub: RoomHub,
    history: History,
    presence: Presence,
    pool: WorkerPool,
    settings: ShareSettings,
    auth: AuthSettings,
    upload_limits: UploadLimits,
    pad_limits: PadLimits,
    options: Options,
}

impl ShareRooms {
    /// The share rooms, spanning every instance on `bus` (topic `share`),
    /// their history, text pad and members kept in `repos`.
    pub fn new(
        pool: WorkerPool,
        settings: &Settings,
        bus: Arc<dyn Bus>,
        repos: &dyn RoomRepos,
    ) -> Self {
        let share = settings.share.clone();
        let limits = settings.pipeline_limits_within(share.max_upload_bytes);
        let options = Options::from_preset(
            Preset::Share {
                max_dimension: share.max_dimension,
                max_bytes: share.max_image_bytes,
            },
            limits,
        );
        let hub = RoomHub::on_bus(
            HubLimits {
                max_members: share.max_members,
                member_queue: share.member_queue.max(2 + max_chunks_out(&share)),
            },
            bus,
            "share",
            settings.backend.bus_queue,
        );
        let repo = repos.open(
            "share",
            HistoryBounds {
                keep: share.history,
                ttl: share.history_ttl,
                max_bytes: share.history_max_bytes,
            },
        );
        let queue = settings.backend.bus_queue;
        Self {
            inner: Arc::new(Inner {
                hub,
                history: History::on(repo.clone(), queue),
                presence: Presence::on(repo, queue, share.max_members),
                pool,
                upload_limits: UploadLimits::from_settings(&share),
                pad_limits: PadLimits::from_settings(&share),
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

    /// Largest frame a member may send: a full chunk, text or text pad plus
    /// envelope. The pad's text counts twice, for its JSON escapes (a line
    /// break is two characters on the wire), so a pad just over its limit
    /// gets a `textUpdateError` rather than a closed connection.
    fn max_frame_bytes(&self) -> usize {
        let s = &self.inner.settings;
        s.chunk_size
            .max(s.max_text_bytes)
            .max(s.text_pad_max_bytes.saturating_mul(2))
            + ENVELOPE_BYTES
    }
}

impl socket::RoomProtocol for ShareRooms {
    fn max_message_bytes(&self) -> usize {
        self.max_frame_bytes()
    }

    async fn serve(self, socket: WebSocket, room: String, name: String) {
        let joined = match self.inner.history.join(&self.inner.hub, &room, &name).await {
            Ok(joined) => joined,
            Err(e) => return refuse(socket, ArriveError::Full(e)).await,
        };
        // Presence first: the arrival's list, then the pad's text and the
        // history, then everything live.
        let arrived = self
            .inner
            .presence
            .arrive(
                &joined.membership,
                &name,
                |users| json(&Out::UserList { users }),
                json(&Out::UserConnected {
                    ip: &name,
                    name: &name,
                }),
            )
            .await;
        let user_list = match arrived {
            Ok(list) => list,
            Err(e) => return refuse(socket, e).await,
        };
        let mut preface = Vec::with_capacity(joined.preface.len() + 1);
        preface.push(user_list);
        preface.extend(joined.preface);
        let processing = InFlight::new(self.inner.settings.max_uploads_per_member);
        let pad = PadBucket::new(&self.inner.pad_limits);
        let session = ShareSession {
            rooms: self,
            name,
            member: joined.membership,
            uploads: Uploads::default(),
            processing,
            pad,
        };
        socket::serve(socket, joined.outbound, preface, session).await;
    }
}

/// Turns a joiner away (room full, or its member list unavailable) with an
/// error and close code 1013, try again later.
async fn refuse(socket: WebSocket, e: ArriveError) {
    let (code, reason) = e.refusal();
    let msg = json(&Out::Error {
        error: &e.to_string(),
        code,
    });
    socket::refuse(socket, msg, socket::CLOSE_TRY_AGAIN, reason).await
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

/// `GET /ws/share/{room}` and `GET /{uuid-v4}`, with these rooms as their
/// state.
pub fn routes(
    pool: WorkerPool,
    settings: &Settings,
    bus: Arc<dyn Bus>,
    repos: &dyn RoomRepos,
) -> Router {
    Router::new()
        .route("/ws/share/{room}", get(upgrade))
        .route("/{room}", any(upgrade_at_root))
        .with_state(ShareRooms::new(pool, settings, bus, repos))
}

/// `GET /ws/share/{room}?name=NAME`. With `auth.jwt_secret` set, the name
/// is the `sub` of a signed token instead.
pub async fn upgrade(
    State(rooms): State<ShareRooms>,
    Path(room): Path<String>,
    Query(query): Query<JoinQuery>,
    headers: HeaderMap,
    ws: socket::Upgrade,
) -> Response {
    join_room(rooms, room, &query, &headers, ws)
}

/// `GET /{uuid-v4}`: the same rooms at the address the original share page
/// opens. Only a WebSocket upgrade on a UUID v4 path is taken: any other
/// single-segment path, and any other method, gets the server's ordinary
/// 404, as if this route did not exist; a plain `GET` of a UUID v4 path
/// gets a 404 that says where the room and the web app are.
pub async fn upgrade_at_root(State(rooms): State<ShareRooms>, request: Request) -> Response {
    // Read from the path as sent: a UUID needs no decoding, and no other
    // path may get an answer of this route's own (such as a bad encoding).
    let room = request.uri().path().trim_start_matches('/').to_owned();
    if request.method() != Method::GET || !is_uuid_v4(&room) {
        return ApiError::not_found("no such route").into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let Some(ws) = socket::Upgrade::from_parts(&mut parts, &rooms).await else {
        return ApiError::not_found(format!(
            "/{room} is share room {room}: open it with a WebSocket, or join it in the web app at /app/"
        ))
        .into_response();
    };
    let query = Query::<JoinQuery>::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    join_room(rooms, room, &query, &parts.headers, ws)
}

/// A UUID in its 36-character text form, version 4 (random), RFC 4122
/// variant, in either case: what the original page makes its rooms of.
fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
}

/// Joins `room` with the name the query (or a signed token) gives.
fn join_room(
    rooms: ShareRooms,
    room: String,
    query: &JoinQuery,
    headers: &HeaderMap,
    ws: socket::Upgrade,
) -> Response {
    let claimed = query
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(ANONYMOUS);
    let token = wire::bearer_token(headers, query.token.as_deref());
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
    /// This member's allowance of text-pad updates.
    pad: PadBucket,
}

impl Drop for ShareSession {
    /// The others hear of the departure before the member leaves the room.
    fn drop(&mut self) {
        self.rooms.inner.presence.depart(
            &self.member,
            json(&Out::UserDisconnected {
                ip: &self.name,
                name: &self.name,
            }),
        );
    }
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
            "textUpdate" => match frame.read::<TextUpdateIn>() {
                Ok(t) => self.on_text_update(&t.text),
                Err(e) => self.text_update_error(e.code(), &e.to_string()),
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
            return self.upload_failed(&key, &e);
        }
        // Everyone, the uploader included, hears that the upload began.
        let mime_type = frame
            .str_field("mimeType")
            .filter(|m| is_mime_like(m))
            .unwrap_or(UNKNOWN_MIME);
        self.member.broadcast(json(&Out::ImageUploadStart {
            filename: &key.filename,
            mime_type,
            size: start.size,
            from: &self.name,
            processed: false,
            original_filename: None,
            upload_id: key.upload_id.as_deref(),
        }));
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

    fn text_update_error(&self, code: Code, error: &str) {
        self.member
            .send_self(json(&Out::TextUpdateError { error, code }));
    }

    /// A new text for the room's pad: kept for joiners, sent to the others.
    fn on_text_update(&mut self, text: &str) {
        let limits = self.rooms.inner.pad_limits;
        if let Err(e) = self.pad.check(text, &limits) {
            return self.text_update_error(e.code(), &e.to_string());
        }
        let msg = json(&Out::TextUpdate {
            text,
            from: &self.name,
        });
        self.rooms
            .inner
            .history
            .set_state(&self.member, PAD_STATE, msg);
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
        self.rooms.inner.history.publish(&self.member, vec![msg]);
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
fn upload_error(key: &UploadKey, code: Code, error: &str) -> crate::rooms::Frame {
    json(&Out::ImageUploadError {
        filename: &key.filename,
        error,
        code,
        upload_id: key.upload_id.as_deref(),
    })
}

/// A type the upload announced, fit to be echoed: `type/subtype`, short,
/// of the characters media types are made of.
fn is_mime_like(m: &str) -> bool {
    m.len() <= 127
        && m.split_once('/')
            .is_some_and(|(t, sub)| !t.is_empty() && !sub.is_empty())
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+-.".contains(&b))
}

/// The name an image is delivered under: the upload's name with its
/// extension (if it has one) replaced by the output format's, so the name,
/// the `mimeType` and the bytes agree (`photo.jpg` shared as WebP is
/// `photo.webp`).
fn delivered_name(uploaded: &str, extension: &str) -> String {
    let stem = match uploaded.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            stem
        }
        _ => uploaded,
    };
    format!("{stem}.{extension}")
}

impl ShareRooms {
    /// Streams a processed image, start, chunks and complete, to every
    /// member (the uploader included) and to the history.
    fn share_image(
        &self,
        member: &MemberHandle,
        from: &str,
        key: &UploadKey,
        output: crate::pipeline::Output,
    ) {
        let delivered = delivered_name(&key.filename, output.format.extension());
        let filename = delivered.as_str();
        let original_filename = key.filename.as_str();
        let upload_id = key.upload_id.as_deref();
        let size = output.size as u64;
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
            size,
            from,
            processed: true,
            original_filename: Some(original_filename),
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
        let inline = size <= self.inner.settings.complete_data_max_bytes;
        stream.push(json(&Out::ImageUploadComplete {
            filename,
            mime_type: output.mime,
            width: output.width,
            height: output.height,
            size,
            from,
            original_filename,
            data: inline.then_some(encoded.as_str()),
            upload_id,
        }));
        self.inner.history.publish(member, stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_v4_text_is_a_room_address() {
        for yes in [
            "3b9f5c1e-8a7d-4f2b-9c3e-1a2b3c4d5e6f",
            "3B9F5C1E-8A7D-4F2B-AC3E-1A2B3C4D5E6F",
            "00000000-0000-4000-8000-000000000000",
        ] {
            assert!(is_uuid_v4(yes), "{yes}");
        }
        for no in [
            "",
            "upload",
            "3b9f5c1e-8a7d-1f2b-9c3e-1a2b3c4d5e6f", // version 1
            "3b9f5c1e-8a7d-4f2b-cc3e-1a2b3c4d5e6f", // another variant
            "3b9f5c1e8a7d4f2b9c3e1a2b3c4d5e6f",     // no dashes
            "3b9f5c1e-8a7d-4f2b-9c3e-1a2b3c4d5e6f0",
            "3b9f5c1e-8a7d-4f2b-9c3e-1a2b3c4d5e6g",
            "{3b9f5c1e-8a7d-4f2b-9c3e-1a2b3c4d5e6}",
        ] {
            assert!(!is_uuid_v4(no), "{no}");
        }
    }

    #[test]
    fn the_delivered_name_has_the_output_extension() {
        for (uploaded, want) in [
            ("example.jpg", "example.webp"),
            ("Holiday.JPEG", "Holiday.webp"),
            ("a.b.png", "a.b.webp"),
            ("photo", "photo.webp"),
            (".hidden", ".hidden.webp"),
            ("notes.final version", "notes.final version.webp"),
            ("x.webp", "x.webp"),
        ] {
            assert_eq!(delivered_name(uploaded, "webp"), want, "{uploaded}");
        }
    }

    #[test]
    fn only_media_types_are_echoed() {
        assert!(is_mime_like("image/jpeg"));
        assert!(is_mime_like("image/svg+xml"));
        for no in ["", "image", "/jpeg", "image/", "text/html; x=<b>", "a/b c"] {
            assert!(!is_mime_like(no), "{no:?}");
        }
    }
}
