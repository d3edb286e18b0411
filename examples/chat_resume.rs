//! Measures chat resume: a client that missed `N` events subscribes with
//! its `lastEventId` and reads them all. Memory mode resumes on the one
//! instance that has the log; Redis mode (`backend.kind: redis`) on
//! another instance than the one the events were made on. Prints the
//! median of several runs for each N.
//!
//!     cargo run --release --example chat_resume -- [redis://127.0.0.1:6379] [runs]
//!
//! The Redis keys are below a prefix of their own (`bench-chat:{pid}:`),
//! kept for `chat.retention` (here 10 minutes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use pixpress::chat::{ImageRef, UploadedImages};
use pixpress::config::{BackendKind, Settings};
use pixpress::jobs::WorkerPool;
use pixpress::protocols::ws::chat::routes_with;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

struct NoUploads;

impl UploadedImages for NoUploads {
    fn find<'a>(&'a self, _md5: &'a str) -> BoxFuture<'a, Option<ImageRef>> {
        Box::pin(std::future::ready(None))
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn instance(settings: &Settings) -> SocketAddr {
    let repo = pixpress::chat::connect_repo(settings)
        .await
        .expect("the chat store answers");
    let pool = WorkerPool::new(1, 4, Duration::from_secs(60));
    let app = routes_with(pool, Arc::new(settings.clone()), Arc::new(NoUploads), repo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn connect(addr: SocketAddr, user: &str) -> Socket {
    let url = format!("ws://{addr}/ws/chat?user={user}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn request(ws: &mut Socket, id: usize, kind: &str, payload: Value) {
    let frame = json!({"type":"request","id":id,"payloadType":kind,"payload":payload});
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

async fn next(ws: &mut Socket) -> Value {
    loop {
        match ws.next().await.expect("open").expect("readable") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Alice sends `n` messages to `bob` on `addr`, 32 requests in flight
/// (within `chat.max_pending_requests`).
async fn send_messages(addr: SocketAddr, bob: &str, n: usize) {
    let mut alice = connect(addr, "alice").await;
    let mut sent = 0;
    while sent < n {
        let window = (n - sent).min(32);
        for i in sent..sent + window {
            let payload = json!({"chatId": bob, "message": format!("m{i}")});
            request(&mut alice, i, "new", payload).await;
        }
        let mut answered = 0;
        while answered < window {
            let frame = next(&mut alice).await;
            if frame["type"] == "response" {
                assert!(frame["payload"]["messageId"].is_u64(), "{frame}");
                answered += 1;
            }
        }
        sent += window;
    }
}

/// Connects as `bob` on `addr`, subscribes from 0 and reads the `n`
/// events: the time from connecting to the last event.
async fn resume(addr: SocketAddr, bob: &str, n: usize) -> Duration {
    let started = Instant::now();
    let mut ws = connect(addr, bob).await;
    request(&mut ws, 0, "subscribe", json!({"lastEventId": 0})).await;
    let answer = next(&mut ws).await;
    assert_eq!(answer["payload"]["count"], n, "{answer}");
    for i in 1..=n {
        let e = next(&mut ws).await;
        assert_eq!(e["id"], i, "{e}");
    }
    let took = started.elapsed();
    let _ = ws.close(None).await;
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(9);
    println!("chat resume: connect, subscribe from 0, read N events; median of {runs} runs");
    println!(
        "{:>6} {:>14} {:>20} {:>8}",
        "N", "memory", "redis (other inst.)", "ratio"
    );
    for n in [10, 100, 1000] {
        let mut memory = Settings::default();
        memory.chat.retention = Duration::from_secs(600);
        let mut redis = memory.clone();
        redis.backend.kind = BackendKind::Redis;
        redis.backend.redis_url = url.clone();
        redis.backend.key_prefix = format!("bench-chat:{}:{n}:", std::process::id());

        let one = instance(&memory).await;
        send_messages(one, "bob", n).await;
        let mut m = Vec::new();
        for _ in 0..runs {
            m.push(resume(one, "bob", n).await);
        }

        let (a, b) = (instance(&redis).await, instance(&redis).await);
        send_messages(a, "bob", n).await;
        let mut r = Vec::new();
        for _ in 0..runs {
            r.push(resume(b, "bob", n).await);
        }
        let (m, r) = (median(m), median(r));
        println!(
            "{n:>6} {:>11.2} ms {:>17.2} ms {:>7.1}x",
            m.as_secs_f64() * 1e3,
            r.as_secs_f64() * 1e3,
            r.as_secs_f64() / m.as_secs_f64()
        );
    }
}
