//! The one socket loop every WebSocket protocol runs on: a send task that
//! writes the member's queue to the socket, and a receive loop that hands
//! frames to the protocol's [`Session`], joined by `select!`.
//!
//! Owns the socket's life: when the client goes away the session is dropped
//! (leaving its room); when the member is dropped from its room as too slow
//! the socket is closed. It never interprets message contents.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};

use super::wire;
use crate::error::ApiError;
use crate::rooms::{Frame, Outbound};

/// How long queued messages may take to reach a departing client.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Queued messages written before one flush.
const MAX_BATCH: usize = 64;

/// WebSocket close code for a message over the size limit (RFC 6455).
pub const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code for "try again later" (e.g. a full room).
pub const CLOSE_TRY_AGAIN: u16 = 1013;

/// One protocol's handling of one connected member. The session owns the
/// member's `Membership`, so dropping it leaves the room.
pub trait Session: Send {
    /// A text frame arrived.
    fn on_text(&mut self, text: &str);
    /// A binary frame arrived.
    fn on_binary(&mut self, data: Bytes);
    /// The next instant at which [`Session::on_deadline`] must run, if any
    /// (pending metadata or an idle upload expiring).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Called once the instant given by [`Session::deadline`] has passed.
    fn on_deadline(&mut self) {}
    /// A frame over the size limit arrived; the connection ends after this
    /// (queue a clear error for the client here).
    fn on_too_large(&mut self) {}
}

/// Runs a member's connection to its end. `preface` is written before
/// anything from the queue (a late joiner's history, a welcome).
pub async fn serve(
    socket: WebSocket,
    outbound: Outbound,
    preface: Vec<Frame>,
    session: impl Session,
) {
    let (mut sink, mut stream) = socket.split();
    let mut send_task = tokio::spawn(async move {
        let mut outbound = outbound;
        let kick = outbound.kick_signal();
        // A client that stops reading blocks these writes; once it has been
        // dropped as too slow, give up on it.
        let history = async {
            for frame in preface {
                sink.feed(wire::message(frame)).await?;
            }
            sink.flush().await
        };
        tokio::select! {
            sent = history => if sent.is_err() { return },
            () = kick.kicked() => return,
        }
        loop {
            let next = tokio::select! {
                msg = outbound.recv() => msg,
                () = kick.kicked() => return,
            };
            let Some(first) = next else { break };
            tokio::select! {
                sent = write_batch(&mut sink, first, &mut outbound) => if sent.is_err() { return },
                () = kick.kicked() => return,
            }
        }
        // The member left: close politely.
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
    });

    let mut session = session;
    let receive = async {
        loop {
            let deadline = session.deadline();
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = sleep_until(deadline) => {
                    session.on_deadline();
                    continue;
                }
            };
            match frame {
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()),
                Some(Ok(Message::Binary(data))) => session.on_binary(data),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(err)) => {
                    if is_too_large(&err) {
                        session.on_too_large();
                    } else {
                        tracing::debug!(%err, "room socket read failed");
                    }
                    break;
                }
            }
        }
    };

    let send_finished = tokio::select! {
        _ = &mut send_task => true,
        () = receive => false,
    };
    // Leaving the room closes the queue once spawned work lets go of it.
    drop(session);
    if !send_finished
        && tokio::time::timeout(CLOSE_GRACE, &mut send_task)
            .await
            .is_err()
    {
        send_task.abort();
    }
}

/// Accepts an upgrade with every message and frame bounded by `limit`
/// bytes, and runs `on_socket` on the socket.
pub fn accept<F, Fut>(ws: WebSocketUpgrade, limit: usize, on_socket: F) -> Response
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(on_socket)
}

/// A protocol whose sockets join named rooms (share rooms, img2img).
pub trait RoomProtocol: Send + 'static {
    /// Largest message a member may send.
    fn max_message_bytes(&self) -> usize;
    /// Runs one member's connection to its end.
    fn serve(
        self,
        socket: WebSocket,
        room: String,
        name: String,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// Accepts a room protocol's upgrade: refuses a bad room name (checked
/// first) or a refused `member` name with a JSON error, else serves the
/// member.
pub fn accept_room<P: RoomProtocol>(
    ws: WebSocketUpgrade,
    protocol: P,
    room: String,
    member: Result<String, ApiError>,
) -> Response {
    if let Err(e) = crate::auth::check_room(&room) {
        return ApiError::bad_request(e).into_response();
    }
    match member {
        Ok(name) => {
            let limit = protocol.max_message_bytes();
            accept(ws, limit, move |socket| protocol.serve(socket, room, name))
        }
        Err(e) => e.into_response(),
    }
}

/// Sends `first` (an error for the client), then a close frame, on a socket
/// that never joined a room.
pub async fn refuse(mut socket: WebSocket, first: Frame, code: u16, reason: &str) {
    let _ = socket.send(wire::message(first)).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.to_owned()),
        })))
        .await;
}

/// Writes `first` and whatever else is already queued (up to
/// `MAX_BATCH`), then flushes once: a result's metadata and its binary frame
/// leave in one write instead of waiting on each other's acknowledgement.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    first: Frame,
    outbound: &mut Outbound,
) -> Result<(), axum::Error> {
    sink.feed(wire::message(first)).await?;
    for _ in 1..MAX_BATCH {
        match outbound.try_recv() {
            Some(frame) => sink.feed(wire::message(frame)).await?,
            None => break,
        }
    }
    sink.flush().await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The WebSocket layer reports an oversized message as a "capacity" error
/// ("Space limit exceeded: Message too long"); it offers no typed check.
fn is_too_large(err: &axum::Error) -> bool {
    let text = err.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("too big")
}
