//! Every configured limit a client can cross, crossed through its protocol
//! against the whole server (`app::start`) with a small setting, and the
//! documented answer seen (docs/reliability.md, "Every limit, its error,
//! its test"). Waits are on conditions (an answer, a close, a state),
//! each bounded so that a limit that never acts fails the test.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use common::http::{md5_hex, upload, wait_status};
use futures_util::{SinkExt, StreamExt};
use pixpress::app::RunningServer;
use pixpress::config::Settings;
use reqwest::StatusCode;
use serde_json::{json, Value};
use serde_pickle::{HashableValue, Value as Pickle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound on any one wait; reaching it fails the test.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it gives a value (a bounded wait on a condition).
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited too long for {what}"))
}

async fn get(url: String) -> (StatusCode, Value) {
    let r = reqwest::get(url).await.expect("answered");
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A distinct photo for each `n` (distinct bytes, so distinct tasks).
fn photo(n: u32, side: u32) -> Vec<u8> {
    common::jpeg(side + n, side)
}

// ---------------------------------------------------------------------------
// The job service over HTTP.

/// `cache.ttl`: a result and its status are gone (404) once the time has
/// passed since their last write.
#[tokio::test]
async fn a_result_past_cache_ttl_is_404_on_status_and_download() {
    let mut s = common::test_settings();
    s.cache.ttl = Duration::from_secs(1);
    let server = common::start(s).await;
    let base = common::base_url(&server);
    let image = photo(0, 64);
    let md5 = md5_hex(&image);
    upload(&base, &image, &[]).await;
    assert_eq!(wait_status(&base, &md5).await[0]["status"], "done");
    // Fetched at once (well within a second of its last write) it is there.
    let (status, _) = get(format!("{base}/download/{md5}")).await;
    assert_eq!(status, StatusCode::OK);
    let (base_ref, md5_ref) = (&base, &md5);
    for route in ["status", "download"] {
        let (status, body) = until("the result to expire", || async move {
            let (status, body) = get(format!("{base_ref}/{route}/{md5_ref}")).await;
            (status == StatusCode::NOT_FOUND).then_some((status, body))
        })
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found", "{body}");
    }
    server.shutdown().await;
}

/// `cache.max_bytes`: results past the bound are dropped (404), and the
/// bytes held come back within it.
#[tokio::test]
async fn results_over_cache_max_bytes_are_dropped() {
    let max_bytes = 64 * 1024;
    let mut s = common::test_settings();
    s.cache.max_bytes = max_bytes;
    let server = common::start(s).await;
    let base = common::base_url(&server);
    // Each PNG result of a 160 px photo is some tens of kB: twelve of them
    // are several times the bound.
    let mut tasks = Vec::new();
    for n in 0..12 {
        let image = photo(n, 160);
        let md5 = md5_hex(&image);
        let (status, _) = upload(&base, &image, &[("format", "png")]).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(wait_status(&base, &md5).await[0]["status"], "done");
        tasks.push(md5);
    }
    let store = server.state.store.clone();
    let gone = until("results to be dropped down to the bound", || {
        let (base, tasks, store) = (base.clone(), tasks.clone(), store.clone());
        async move {
            let mut gone = Vec::new();
            for md5 in &tasks {
                let (status, body) = get(format!("{base}/download/{md5}")).await;
                if status == StatusCode::NOT_FOUND {
                    assert_eq!(body["error"], "not_found", "{body}");
                    gone.push(md5.clone());
                }
            }
            let (_, bytes) = store.cache_usage();
            (!gone.is_empty() && bytes <= max_bytes).then_some(gone)
        }
    })
    .await;
    assert!(gone.len() < tasks.len() || tasks.is_empty());
    server.shutdown().await;
}

/// `upload.max_queued_bytes`: past the bytes the waiting jobs may hold
/// together, an upload is answered 503 `queue_full` with `Retry-After`,
/// though the queue's length bound is far away.
#[tokio::test]
async fn uploads_past_max_queued_bytes_get_503_queue_full() {
    let mut s = common::test_settings();
    s.upload.max_concurrent_tasks = 1;
    s.upload.max_queue = 1000;
    let image_bytes = photo(0, 700).len() as u64;
    s.upload.max_queued_bytes = image_bytes * 3 / 2;
    let server = common::start(s).await;
    let base = common::base_url(&server);
    // A slow job for the one worker: AVIF-or-PNG at automatic quality of a
    // large photo, so the uploads after it wait.
    let slow = common::jpeg(1800, 1800);
    let (status, _) = upload(&base, &slow, &[("format", "png"), ("quality", "auto")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut answers = Vec::new();
    for n in 0..4 {
        let r = reqwest::Client::new()
            .post(format!("{base}/upload"))
            .multipart(common::http::form(photo(n, 700), &[]))
            .send()
            .await
            .unwrap();
        let retry = r.headers().get("retry-after").cloned();
        answers.push((r.status(), retry, r.json::<Value>().await.unwrap()));
    }
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!refused.is_empty(), "{answers:?}");
    for (_, retry, body) in &refused {
        assert_eq!(body["error"], "queue_full", "{body}");
        assert!(retry.is_some(), "503 carries Retry-After");
    }
    // One waiting job fits the bound, so the first after the slow one waits.
    assert_eq!(answers[0].0, StatusCode::ACCEPTED, "{answers:?}");
    server.shutdown().await;
}

/// Sends one upload of `photo(n, 200)`; its status, `Retry-After` and body.
async fn upload_answer(base: &str, n: u32) -> (StatusCode, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .multipart(common::http::form(photo(n, 200), &[]))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status(), retry, r.json().await.unwrap())
}

/// `upload.max_queued_bytes` counts the bodies still being received too: a
/// body that arrives slowly holds its declared length, so an upload past
/// the bound is refused at once (503 `queue_full`), and one is accepted
/// again once the slow body has gone.
#[tokio::test]
async fn a_body_being_received_counts_against_max_queued_bytes() {
    let mut s = common::test_settings();
    s.upload.max_queued_bytes = 200_000;
    let server = common::start(s).await;
    let base = common::base_url(&server);
    // Declares 199,000 bytes and sends only the start of its form.
    let mut slow = TcpStream::connect(server.http_addr).await.unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: pixpress\r\n\
        Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 199000\r\n\r\n\
        --b\r\nContent-Disposition: form-data; name=\"picture\"; filename=\"a.jpg\"\r\n\r\n";
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut n = 0;
    let (retry, body) = until("the slow body to hold its bytes", || {
        n += 1;
        let base = base.clone();
        async move {
            let (status, retry, body) = upload_answer(&base, n).await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some((retry, body))
        }
    })
    .await;
    assert_eq!(body["error"], "queue_full", "{body}");
    assert_eq!(retry.as_deref(), Some("1"));

    drop(slow);
    let accepted = until("the slow body's bytes to be given back", || {
        n += 1;
        let base = base.clone();
        async move {
            let (status, _, body) = upload_answer(&base, n).await;
            (status == StatusCode::ACCEPTED).then_some(body)
        }
    })
    .await;
    assert_eq!(accepted["message"], "Your image is queued for processing");
    server.shutdown().await;
}

/// `upload.job_timeout`: a job past its deadline fails with
/// `processing_timeout` in its status.
#[tokio::test]
async fn a_job_past_job_timeout_fails_with_processing_timeout() {
    let mut s = common::test_settings();
    s.upload.job_timeout = Duration::from_millis(1);
    let server = common::start(s).await;
    let base = common::base_url(&server);
    let image = common::jpeg(1600, 1600);
    let md5 = md5_hex(&image);
    let (status, _) = upload(&base, &image, &[("format", "png"), ("quality", "auto")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let entry = &wait_status(&base, &md5).await[0];
    assert_eq!(entry["status"], "error", "{entry}");
    assert_eq!(entry["code"], "processing_timeout", "{entry}");
    let (status, body) = get(format!("{base}/download/{md5}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "processing_timeout");
    server.shutdown().await;
}

/// `server.shutdown_grace`: jobs still queued or running when it ends are
/// given up, and the shutdown says so.
#[tokio::test]
async fn jobs_left_at_the_end_of_shutdown_grace_are_reported_unfinished() {
    let mut s = common::test_settings();
    s.upload.max_concurrent_tasks = 1;
    s.server.shutdown_grace = Duration::from_millis(1);
    let server = common::start(s).await;
    let base = common::base_url(&server);
    for n in 0..3 {
        let image = photo(n, 1600);
        let (status, _) = upload(&base, &image, &[("format", "png"), ("quality", "auto")]).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let report = server.shutdown().await;
    assert!(!report.jobs_finished, "{report:?}");
}

// ---------------------------------------------------------------------------
// WebSockets.

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn ws(addr: SocketAddr, path: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("connects in time")
    .expect("connects");
    ws
}

/// The next JSON text frame, or `None` once the socket is closed.
async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        match m {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return None,
        }
    }
}

/// Reads until the server closes; the JSON frames before and the close code.
async fn until_closed(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
    let mut frames = Vec::new();
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the socket ends in time");
        match m {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return (frames, frame.map(|f: CloseFrame| u16::from(f.code)))
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return (frames, None),
        }
    }
}

/// `img2img.max_members`: one member too many gets `room_full`, then a
/// close 1013; the members inside are unaffected.
#[tokio::test]
async fn an_img2img_room_past_max_members_refuses_with_room_full_and_1013() {
    let mut s = common::test_settings();
    s.img2img.max_members = 2;
    let server = common::start(s).await;
    let addr = server.http_addr;
    let mut inside = Vec::new();
    for _ in 0..2 {
        let mut c = ws(addr, "/ws/img2img/full").await;
        assert_eq!(next_json(&mut c).await.unwrap()["type"], "welcome");
        inside.push(c);
    }
    let mut extra = ws(addr, "/ws/img2img/full").await;
    let (frames, code) = until_closed(&mut extra).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["message"], "room_full");
    assert_eq!(code, Some(1013));
    inside[0]
        .send(Message::text(json!({"type": "ping"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut inside[0]).await.unwrap()["type"], "pong");
    server.shutdown().await;
}

/// `img2img.member_queue`: a consumer that stops reading is dropped once
/// its queue is full, while the producer goes on getting its results.
#[tokio::test]
async fn an_img2img_consumer_that_stops_reading_is_dropped_past_member_queue() {
    let mut s = common::test_settings();
    s.img2img.member_queue = 2;
    let server = common::start(s).await;
    let addr = server.http_addr;
    let mut producer = ws(addr, "/ws/img2img/slow").await;
    next_json(&mut producer).await;
    // A consumer with a small receive buffer that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut stuck, _) = tokio_tungstenite::client_async(
        format!("ws://{addr}/ws/img2img/slow"),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("connects");
    next_json(&mut stuck).await;
    stuck
        .send(Message::text(
            json!({"type": "register", "client_type": "consumer"}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut stuck).await.unwrap()["type"], "registered");
    // Noise: each result is a JPEG of some hundred kilobytes, so the
    // results together are far more than the socket buffers hold.
    let image = png(512, 512, 11);
    let rounds = 60;
    for i in 0..rounds {
        let meta = json!({"type": "img2img_binary", "prompt": "", "format": "png", "timestamp": i});
        producer
            .send(Message::text(meta.to_string()))
            .await
            .unwrap();
        producer.send(Message::binary(image.clone())).await.unwrap();
        let result = next_json(&mut producer).await.expect("a result");
        assert_eq!(result["type"], "img2img_result_binary", "{result}");
        assert_eq!(result["timestamp"], i);
    }
    // Every result is a text frame and a binary frame.
    let sent = 2 * rounds;
    let mut got = 0;
    while got < sent {
        match tokio::time::timeout(WAIT, stuck.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => got += 1,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => break,
        }
    }
    assert!(
        got < sent,
        "the stuck consumer was dropped after {got} of {sent} messages"
    );
    server.shutdown().await;
}

/// `share.history_max_bytes`: room history over the bound is dropped, so
/// a late joiner gets less of it; the room itself goes on.
#[tokio::test]
async fn share_history_over_history_max_bytes_is_dropped() {
    let mut s = common::test_settings();
    s.share.history = 20;
    s.share.history_max_bytes = 4096;
    let server = common::start(s).await;
    let addr = server.http_addr;
    let mut alice = ws(addr, "/ws/share/h?name=alice").await;
    next_json(&mut alice).await; // the member list
    let body = "x".repeat(1000);
    let count = 10;
    for i in 0..count {
        let text = format!("{i}:{body}");
        alice
            .send(Message::text(
                json!({"type": "text", "text": text}).to_string(),
            ))
            .await
            .unwrap();
        loop {
            let m = next_json(&mut alice).await.unwrap();
            if m["type"] == "text" {
                break;
            }
        }
    }
    // About 10 kB of history against a bound of 4 kB: a late joiner gets
    // less than all of it (the cache drops it as it settles).
    let mut n = 0;
    let held = until("the history to be bounded", || {
        n += 1;
        let path = format!("/ws/share/h?name=late{n}");
        let probe = format!("probe {n}");
        let body = body.clone();
        async move {
            let mut late = ws(addr, &path).await;
            // The history comes first; the joiner's own text, echoed
            // back, marks its end.
            late.send(Message::text(
                json!({"type": "text", "text": probe}).to_string(),
            ))
            .await
            .unwrap();
            let mut texts = 0;
            loop {
                let m = next_json(&mut late).await.expect("the socket is open");
                if m["type"] == "text" {
                    if m["text"] == probe.as_str() {
                        break;
                    }
                    if m["text"].as_str().is_some_and(|t| t.ends_with(&body)) {
                        texts += 1;
                    }
                }
            }
            (texts < count).then_some(texts)
        }
    })
    .await;
    assert!(held < count);
    // The room still works.
    alice
        .send(Message::text(
            json!({"type": "text", "text": "still"}).to_string(),
        ))
        .await
        .unwrap();
    // (The late joiners' probes reach alice first.)
    loop {
        let m = next_json(&mut alice).await.unwrap();
        if m["type"] == "text" && m["text"] == "still" {
            break;
        }
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Chat.

struct Chat {
    ws: Ws,
    next: u64,
}

impl Chat {
    async fn open(addr: SocketAddr, user: &str) -> Self {
        Self {
            ws: ws(addr, &format!("/ws/chat?user={user}")).await,
            next: 0,
        }
    }

    async fn send(&mut self, kind: &str, payload: Value) -> String {
        self.next += 1;
        let id = format!("r{}", self.next);
        let frame = json!({"type": "request", "timestamp": 1, "id": id,
            "payloadType": kind, "payload": payload});
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
        id
    }

    /// The response to `id`, passing over events.
    async fn response(&mut self, id: &str) -> Value {
        loop {
            let m = next_json(&mut self.ws).await.expect("the socket is open");
            if m["type"] == "response" && m["id"] == id {
                return m["payload"].clone();
            }
        }
    }

    async fn call(&mut self, kind: &str, payload: Value) -> Value {
        let id = self.send(kind, payload).await;
        self.response(&id).await
    }

    async fn say(&mut self, to: &str, text: &str) -> Value {
        self.call("new", json!({"chatId": to, "message": text}))
            .await
    }

    async fn history(&mut self, with: &str, limit: u64) -> Vec<String> {
        let page = self
            .call("history", json!({"chatId": with, "limit": limit}))
            .await;
        page["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("a page: {page}"))
            .iter()
            .map(|m| m["message"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn chat_server(configure: impl FnOnce(&mut Settings)) -> RunningServer {
    let mut s = common::test_settings();
    configure(&mut s);
    common::start(s).await
}

/// `chat.max_user_id_len`: a longer `?user=` is refused with 400 before
/// the upgrade.
#[tokio::test]
async fn a_chat_user_id_over_max_user_id_len_is_400() {
    let server = chat_server(|s| s.chat.max_user_id_len = 8).await;
    let url = format!("ws://{}/ws/chat?user=abcdefghi", server.http_addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!("expected 400, got {:?}", other.map(|(_, r)| r.status())),
    }
    Chat::open(server.http_addr, "abcdefgh").await;
    server.shutdown().await;
}

/// `chat.max_sockets_per_user`: one socket too many gets an error, then a
/// close 1013.
#[tokio::test]
async fn a_chat_socket_past_max_sockets_per_user_is_refused_with_1013() {
    let server = chat_server(|s| s.chat.max_sockets_per_user = 2).await;
    let addr = server.http_addr;
    let _a = Chat::open(addr, "ann").await;
    let mut b = Chat::open(addr, "ann").await;
    let mut c = Chat::open(addr, "ann").await;
    let (frames, code) = until_closed(&mut c.ws).await;
    assert_eq!(code, Some(1013));
    assert_eq!(
        frames[0]["payload"]["error"], "too_many_sockets",
        "{frames:?}"
    );
    // The sockets inside still work.
    let page = b.call("subscribe", json!({"lastEventId": 0})).await;
    assert!(page["lastEventId"].is_u64(), "{page}");
    server.shutdown().await;
}

/// `chat.max_users`: past the users tracked, an unknown user is refused
/// (`too_many_users`, close 1013).
#[tokio::test]
async fn a_chat_user_past_max_users_is_refused() {
    let server = chat_server(|s| s.chat.max_users = 2).await;
    let addr = server.http_addr;
    let mut ann = Chat::open(addr, "ann").await;
    let _bob = Chat::open(addr, "bob").await;
    ann.say("bob", "hi").await;
    let mut carol = Chat::open(addr, "carol").await;
    let (frames, code) = until_closed(&mut carol.ws).await;
    assert_eq!(code, Some(1013));
    assert_eq!(
        frames[0]["payload"]["error"], "too_many_users",
        "{frames:?}"
    );
    server.shutdown().await;
}

/// `chat.max_messages_per_chat` and `chat.max_messages`: the oldest
/// messages are dropped, per chat and over all chats.
#[tokio::test]
async fn chat_messages_past_their_bounds_drop_the_oldest() {
    let server = chat_server(|s| {
        s.chat.max_messages_per_chat = 3;
        s.chat.max_messages = 5;
    })
    .await;
    let addr = server.http_addr;
    let mut ann = Chat::open(addr, "ann").await;
    let mut bob = Chat::open(addr, "bob").await;
    for i in 0..5 {
        ann.say("bob", &format!("a{i}")).await;
    }
    assert_eq!(ann.history("bob", 50).await, ["a2", "a3", "a4"]);
    // Three messages in another chat: six in all, one over max_messages,
    // and the oldest overall (ann's "a2") goes.
    for i in 0..3 {
        bob.say("carl", &format!("b{i}")).await;
    }
    assert_eq!(ann.history("bob", 50).await, ["a3", "a4"]);
    assert_eq!(bob.history("carl", 50).await, ["b0", "b1", "b2"]);
    server.shutdown().await;
}

/// `chat.max_history_limit`: a larger `limit` is clamped to it.
#[tokio::test]
async fn a_chat_history_limit_over_max_history_limit_is_clamped() {
    let server = chat_server(|s| s.chat.max_history_limit = 2).await;
    let mut ann = Chat::open(server.http_addr, "ann").await;
    for i in 0..4 {
        ann.say("bob", &format!("m{i}")).await;
    }
    assert_eq!(ann.history("bob", 500).await, ["m2", "m3"]);
    server.shutdown().await;
}

/// `chat.max_events_per_user`: a replay from the start gets at most the
/// events kept, flagged `truncated`.
#[tokio::test]
async fn chat_events_past_max_events_per_user_are_dropped_and_flagged() {
    let server = chat_server(|s| s.chat.max_events_per_user = 3).await;
    let addr = server.http_addr;
    let mut ann = Chat::open(addr, "ann").await;
    for i in 0..6 {
        ann.say("bob", &format!("m{i}")).await;
    }
    let mut bob = Chat::open(addr, "bob").await;
    let answer = bob.call("subscribe", json!({"lastEventId": 0})).await;
    assert_eq!(answer["truncated"], true, "{answer}");
    assert!(answer["count"].as_u64().unwrap() <= 3, "{answer}");
    server.shutdown().await;
}

/// `chat.max_pending_requests`: requests past the bound wait for no place
/// and are answered `too_many_requests`; the socket goes on.
#[tokio::test]
async fn chat_requests_past_max_pending_requests_are_too_many_requests() {
    let server = chat_server(|s| s.chat.max_pending_requests = 1).await;
    let mut ann = Chat::open(server.http_addr, "ann").await;
    // A message with a large image holds its place while it is processed.
    let image = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        common::jpeg(1600, 1600),
    );
    let slow = ann
        .send(
            "new",
            json!({"chatId": "bob", "message": "pic", "image": image}),
        )
        .await;
    let quick = ann.send("history", json!({"chatId": "bob"})).await;
    let refused = ann.response(&quick).await;
    assert_eq!(refused["error"], "too_many_requests", "{refused}");
    let done = ann.response(&slow).await;
    assert!(done["messageId"].is_u64(), "{done}");
    assert_eq!(ann.history("bob", 10).await, ["pic"]);
    server.shutdown().await;
}

/// `chat.socket_queue`: a socket that stops reading is dropped as too
/// slow; the sender and the user's other sockets go on.
#[tokio::test]
async fn a_chat_socket_that_stops_reading_is_dropped_past_socket_queue() {
    let server = chat_server(|s| {
        s.chat.socket_queue = 4;
        s.chat.max_events_per_user = 4;
        s.chat.max_message_len = 64 * 1024;
    })
    .await;
    let addr = server.http_addr;
    let mut ann = Chat::open(addr, "ann").await;
    let mut stuck = Chat::open(addr, "bob").await;
    stuck.call("subscribe", json!({"lastEventId": 0})).await;
    let body = "x".repeat(60 * 1024);
    let count = 400;
    for i in 0..count {
        let answer = ann.say("bob", &format!("{i}:{body}")).await;
        assert!(answer["messageId"].is_u64(), "{answer}");
    }
    let mut got = 0;
    while next_json(&mut stuck.ws).await.is_some() {
        got += 1;
    }
    assert!(got < count, "the stuck socket was dropped after {got}");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// TCP.

fn request(command: &str, name: Option<&str>, data: Option<Vec<u8>>) -> Vec<u8> {
    let mut m = BTreeMap::new();
    let k = |s: &str| HashableValue::String(s.into());
    m.insert(k("COMMAND"), Pickle::String(command.into()));
    m.insert(k("STATUS"), Pickle::String("REQUEST".into()));
    m.insert(
        k("FILENAME"),
        name.map_or(Pickle::None, |n| Pickle::String(n.into())),
    );
    m.insert(k("FILE_DATA"), data.map_or(Pickle::None, Pickle::Bytes));
    let body =
        serde_pickle::value_to_vec(&Pickle::Dict(m), serde_pickle::SerOptions::new()).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// One reply's STATUS and DETAILS; `None` when the connection closed.
async fn reply(s: &mut TcpStream) -> Option<(String, String)> {
    let mut len = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut len))
        .await
        .expect("in time")
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    tokio::time::timeout(WAIT, s.read_exact(&mut body))
        .await
        .expect("in time")
        .ok()?;
    let Pickle::Dict(map) =
        serde_pickle::value_from_slice(&body, serde_pickle::DeOptions::new()).unwrap()
    else {
        panic!("a dict")
    };
    let text = |key: &str| match map.get(&HashableValue::String(key.into())) {
        Some(Pickle::String(s)) => s.clone(),
        other => format!("{other:?}"),
    };
    Some((text("STATUS"), text("DETAILS")))
}

async fn tcp_call(addr: SocketAddr, frame: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(frame).await.unwrap();
    reply(&mut s).await.expect("a reply")
}

fn png(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        // Noise: PNG keeps it at about its raw size.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// `storage.max_files` and `storage.max_total_bytes`: a PUT past either is
/// an ERROR reply saying the store is full, and nothing is stored.
#[tokio::test]
async fn tcp_puts_past_the_storage_bounds_are_refused() {
    let mut s = common::test_settings();
    s.storage.max_files = 2;
    s.storage.max_total_bytes = 100_000;
    let server = common::start(s).await;
    let addr = server.tcp_addr;
    for (n, name) in ["a.png", "b.png"].into_iter().enumerate() {
        let (status, details) = tcp_call(
            addr,
            &request("PUT", Some(name), Some(png(20, 20, n as u32))),
        )
        .await;
        assert_eq!(status, "OK", "{details}");
    }
    let (status, details) =
        tcp_call(addr, &request("PUT", Some("c.png"), Some(png(20, 20, 3)))).await;
    assert_eq!(status, "ERROR");
    assert!(details.contains("full"), "{details}");
    let (status, _) = tcp_call(addr, &request("GET", Some("c.png"), None)).await;
    assert_eq!(status, "ERROR", "a refused PUT stores nothing");
    server.shutdown().await;

    let mut s = common::test_settings();
    s.storage.max_total_bytes = 100_000;
    let server = common::start(s).await;
    let addr = server.tcp_addr;
    let big = png(120, 120, 1); // about 43 kB of noise
    assert!(big.len() > 40_000 && big.len() < 50_000, "{}", big.len());
    for name in ["a.png", "b.png"] {
        let (status, details) =
            tcp_call(addr, &request("PUT", Some(name), Some(big.clone()))).await;
        assert_eq!(status, "OK", "{details}");
    }
    let (status, details) = tcp_call(addr, &request("PUT", Some("c.png"), Some(big))).await;
    assert_eq!(status, "ERROR");
    assert!(details.contains("full"), "{details}");
    server.shutdown().await;
}

/// Waits until the one TCP place (`tcp.max_connections: 1`) is free
/// again: a new connection is served instead of told the server is busy.
async fn until_tcp_place_free(addr: SocketAddr) {
    until("the held connection to be dropped", || async move {
        let (status, details) = tcp_call(addr, &request("LIST", None, None)).await;
        (!details.contains("busy")).then_some(status)
    })
    .await;
}

/// `tcp.frame_timeout_secs`: a frame that does not arrive whole within it
/// closes the connection, though bytes of it came and the read and idle
/// timeouts are far away.
#[tokio::test]
async fn a_tcp_frame_slower_than_frame_timeout_closes_the_connection() {
    let mut s = common::test_settings();
    s.tcp.max_connections = 1;
    s.tcp.frame_timeout_secs = 1;
    s.tcp.read_timeout_secs = 3600;
    s.tcp.idle_timeout_secs = 3600;
    let server = common::start(s).await;
    let addr = server.tcp_addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let frame = request("LIST", None, None);
    slow.write_all(&frame[..frame.len() - 2]).await.unwrap();
    // Only the frame timeout can end it: the connection is closed with no
    // reply, and its place is free again.
    assert_eq!(reply(&mut slow).await, None);
    until_tcp_place_free(addr).await;
    server.shutdown().await;
}

/// `tcp.write_timeout_secs`: a client that does not read its reply is
/// dropped once writing the reply has taken that long.
#[tokio::test]
async fn a_tcp_reply_the_client_does_not_read_is_dropped_after_write_timeout() {
    let mut s = common::test_settings();
    s.tcp.max_connections = 1;
    s.tcp.write_timeout_secs = 1;
    s.storage.max_total_bytes = 64 * 1024 * 1024;
    let server = common::start(s).await;
    let addr = server.tcp_addr;
    // 24 MB of noise: more than the socket buffers on both sides hold.
    let big = png(2900, 2900, 7);
    let size = big.len();
    let (status, details) = tcp_call(addr, &request("PUT", Some("big.png"), Some(big))).await;
    assert_eq!(status, "OK", "{details}");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    stalled
        .write_all(&request("GET", Some("big.png"), None))
        .await
        .unwrap();
    // Not reading: the server's write stalls, then gives up and frees the
    // one place.
    until_tcp_place_free(addr).await;
    // What reaches the stalled client is less than the whole reply.
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(WAIT, stalled.read(&mut buf))
            .await
            .expect("in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < size, "got {received} of a {size}-byte file");
    server.shutdown().await;
}
