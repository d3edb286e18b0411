//! The one socket loop every WebSocket protocol runs on: a send task that
//! writes the member's queue to the socket, and a receive loop that hands
//! frames to the protocol's [`Session`], joined by `select!`.
//!
//! Owns the socket's life: when the client goes away the session is dropped
//! (leaving its room); when the member is dropped from its room as too slow
//! the socket is closed. A message over the size limit ends the socket with
//! the protocol's error and a close frame 1009; a server going away ends it,
//! after what is queued, with a close frame 1001. It never interprets
//! message contents.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::wire;
use crate::error::ApiError;
use crate::rooms::{Frame, Outbound};

/// How long queued messages may take to reach a departing client.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Bytes read from a socket at a time. The WebSocket layer's default (128
/// KiB) is allocated up front for every socket, which made an idle socket
/// cost about 137 KiB; a large message still grows the buffer as it comes.
const READ_BUFFER: usize = 8 * 1024;

/// Queued messages written before one flush.
const MAX_BATCH: usize = 64;

/// WebSocket close code for a message over the size limit (RFC 6455).
pub const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code for "try again later" (e.g. a full room).
pub const CLOSE_TRY_AGAIN: u16 = 1013;
/// WebSocket close code for a normal closure (an idle socket).
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code for a server that is shutting down (RFC 6455).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// How long a socket ended for an oversized message stays open after its
/// close frame, so that a client still sending the rest of that message
/// reads the close frame before the connection is reset. The server stops
/// reading at the frame's header, so the client's unsent bytes would
/// otherwise turn the close into a reset that drops the close frame.
const TOO_BIG_LINGER: Duration = Duration::from_secs(2);

/// The server's WebSockets: the rules every socket follows (idle timeout,
/// pings) and the means to end them all when the server shuts down (every
/// socket then sends what is queued for it and closes with 1001). One per
/// server, put on every request by `protocols::router`.
#[derive(Clone, Default)]
pub struct Sockets {
    token: CancellationToken,
    sockets: TaskTracker,
    rules: Rules,
}

/// What every WebSocket protocol's sockets follow alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules {
    /// A socket from which no message (nor pong) arrives for this long is
    /// closed (1000, "idle timeout"); zero: never. This also bounds how long
    /// one message may take to arrive whole.
    pub idle_timeout: Duration,
    /// The server pings each socket this often, so a live but quiet client
    /// (a browser answers pings by itself) is not idle; zero: never.
    pub ping_interval: Duration,
}

/// The socket-level context a connection runs in.
#[derive(Clone, Default)]
struct Context {
    token: CancellationToken,
    rules: Rules,
}

impl Sockets {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// Closes every socket (what is queued, then a close frame 1001) and
    /// waits up to `within` for them to end; says whether all did.
    pub async fn close_all(&self, within: Duration) -> bool {
        self.token.cancel();
        self.sockets.close();
        tokio::time::timeout(within, self.sockets.wait())
            .await
            .is_ok()
    }

    /// WebSockets open now.
    pub fn open_sockets(&self) -> usize {
        self.sockets.len()
    }
}

tokio::task_local! {
    /// The server's [`Sockets`] token, for the socket a task serves: set by
    /// [`accept`] around the protocol's whole connection future, so the
    /// protocols need not carry it.
    static GOING_AWAY: Context;
}

/// A WebSocket upgrade request together with its server's [`Sockets`]
/// token: what every WebSocket route takes instead of axum's upgrade.
pub struct Upgrade {
    ws: WebSocketUpgrade,
    away: Sockets,
}

impl Upgrade {
    /// Reads an upgrade from a request's parts (for a route that decides
    /// itself whether the request is an upgrade).
    pub async fn from_parts<S: Send + Sync>(parts: &mut Parts, state: &S) -> Option<Self> {
        Self::from_request_parts(parts, state).await.ok()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = <WebSocketUpgrade as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let away = parts
            .extensions
            .get::<Sockets>()
            .cloned()
            .unwrap_or_default();
        let ws = WebSocketUpgrade::from_request_parts(parts, state).await?;
        Ok(Self { ws, away })
    }
}

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
    let Context { token: away, rules } = GOING_AWAY.try_with(Context::clone).unwrap_or_default();
    let (sink, mut stream) = socket.split();
    // The receive side asks the send side to close with a code (1009).
    let (close_tx, close_rx) = oneshot::channel::<CloseFrame>();
    let mut send_task = tokio::spawn(send_loop(
        sink,
        outbound,
        preface,
        close_rx,
        away,
        rules.ping_interval,
    ));

    let mut close_tx = Some(close_tx);
    let mut session = session;
    let mut too_big = false;
    let receive = async {
        let idle_after = (!rules.idle_timeout.is_zero()).then_some(rules.idle_timeout);
        let mut idle_at = idle_after.map(|d| Instant::now() + d);
        loop {
            let deadline = session.deadline();
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = sleep_until(deadline) => {
                    session.on_deadline();
                    continue;
                }
                () = sleep_until(idle_at) => {
                    if let Some(tx) = close_tx.take() {
                        let _ = tx.send(close_frame(CLOSE_NORMAL, "idle timeout"));
                    }
                    break;
                }
            };
            if let Some(d) = idle_after {
                idle_at = Some(Instant::now() + d);
            }
            match frame {
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()),
                Some(Ok(Message::Binary(data))) => session.on_binary(data),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(err)) => {
                    if is_too_large(&err) {
                        session.on_too_large();
                        too_big = true;
                        if let Some(tx) = close_tx.take() {
                            let _ = tx.send(close_frame(CLOSE_TOO_BIG, "message too big"));
                        }
                    } else {
                        tracing::debug!(%err, "room socket read failed");
                    }
                    break;
                }
            }
        }
    };

    let send_finished = tokio::select! {
        closed = &mut send_task => Some(closed.unwrap_or(false)),
        () = receive => None,
    };
    // Leaving the room closes the queue once spawned work lets go of it.
    drop(session);
    if let Some(closed) = send_finished {
        if !closed {
            return;
        }
        // The server closed (going away, or the member was dropped): read
        // until the client answers the close, for a bounded time.
        let _ = tokio::time::timeout(CLOSE_GRACE, drain(&mut stream)).await;
    } else if tokio::time::timeout(CLOSE_GRACE, &mut send_task)
        .await
        .is_err()
    {
        send_task.abort();
    } else if too_big {
        // Held open, unread, so the client reads the close frame first.
        tokio::time::sleep(TOO_BIG_LINGER).await;
    }
}

/// Writes the preface, then the member's queue, until the queue ends, the
/// member is dropped as too slow, the receive side asks for a close with a
/// code, or the server goes away. True when a close frame was sent.
async fn send_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: Outbound,
    preface: Vec<Frame>,
    mut close_rx: oneshot::Receiver<CloseFrame>,
    away: CancellationToken,
    ping_interval: Duration,
) -> bool {
    let mut ping = (!ping_interval.is_zero()).then(|| {
        let mut every =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    });
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
        sent = history => if sent.is_err() { return false },
        () = kick.kicked() => return false,
    }
    let close = loop {
        let next = tokio::select! {
            biased;
            frame = &mut close_rx => break frame.ok(),
            () = kick.kicked() => return false,
            msg = outbound.recv() => msg,
            () = away.cancelled() => break Some(close_frame(CLOSE_GOING_AWAY, "server shutting down")),
            _ = tick(&mut ping) => {
                tokio::select! {
                    sent = sink.send(Message::Ping(Bytes::new())) => if sent.is_err() { return false },
                    () = kick.kicked() => return false,
                }
                continue;
            }
        };
        let Some(first) = next else {
            // The member left: close politely (with the receive side's
            // code, if it asked for one).
            break close_rx.try_recv().ok();
        };
        tokio::select! {
            sent = write_batch(&mut sink, first, &mut outbound) => if sent.is_err() { return false },
            () = kick.kicked() => return false,
        }
    };
    let closing = async {
        // What is already queued (an error about the oversized message, the
        // results of finished jobs) goes out before the close frame.
        while let Some(frame) = outbound.try_recv() {
            sink.feed(wire::message(frame)).await?;
        }
        match close {
            Some(frame) => sink.send(Message::Close(Some(frame))).await,
            None => sink.close().await,
        }
    };
    matches!(tokio::time::timeout(CLOSE_GRACE, closing).await, Ok(Ok(())))
}

/// Reads and drops frames until the client's close (or the connection's end).
async fn drain(stream: &mut SplitStream<WebSocket>) {
    while let Some(Ok(frame)) = stream.next().await {
        if matches!(frame, Message::Close(_)) {
            break;
        }
    }
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

/// Accepts an upgrade with every message and frame bounded by `limit`
/// bytes, and runs `on_socket` on the socket.
pub fn accept<F, Fut>(upgrade: Upgrade, limit: usize, on_socket: F) -> Response
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Upgrade { ws, away } = upgrade;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| {
            let context = Context {
                token: away.token.clone(),
                rules: away.rules,
            };
            away.sockets
                .track_future(GOING_AWAY.scope(context, on_socket(socket)))
        })
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
    ws: Upgrade,
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

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
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
