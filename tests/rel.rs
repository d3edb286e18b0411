//! Reliability: how sockets end (an oversized message, a server shutting
//! down), against real servers with real clients.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::spawned::{spawn_server, wait_line};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Bound on any one wait for the server; a hang fails the test instead.
const BOUND: Duration = Duration::from_secs(60);

async fn connect(url: String) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects")
        .0
}

/// What a client sees until its socket ends: the text frames, then the
/// close code (None when the connection ended without a close frame).
async fn until_closed(
    mut read: futures_util::stream::SplitStream<Ws>,
) -> (Vec<String>, Option<CloseCode>) {
    let mut texts = Vec::new();
    loop {
        let frame = tokio::time::timeout(BOUND, read.next())
            .await
            .expect("the socket ends within the bound");
        match frame {
            Some(Ok(Message::Text(t))) => texts.push(t.to_string()),
            Some(Ok(Message::Close(frame))) => return (texts, frame.map(|f| f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (texts, None),
        }
    }
}

/// Sends one message far over the limit while reading, as a client that
/// writes and reads at once (the message is larger than the socket buffers,
/// so the write is still going on when the server refuses it).
async fn send_too_big(ws: Ws, message: Message) -> (Vec<String>, Option<CloseCode>) {
    let (mut write, read) = ws.split();
    let writer = tokio::spawn(async move {
        // The server stops reading this message: the write may fail.
        let _ = write.send(message).await;
        write
    });
    let seen = until_closed(read).await;
    writer.abort();
    seen
}

#[tokio::test]
async fn an_oversized_message_ends_every_websocket_protocol_with_close_1009() {
    let mut s = test_settings();
    s.ws.max_message_bytes = 64 * 1024;
    s.img2img.max_message_bytes = 64 * 1024;
    s.chat.max_frame_bytes = 64 * 1024;
    s.share.chunk_size = 4096;
    s.share.max_text_bytes = 4096;
    s.share.text_pad_max_bytes = 4096;
    let server = start(s).await;
    let addr = server.http_addr;
    // 16 MB, as in the report: far over every limit and every socket buffer.
    let huge = "A".repeat(16 * 1024 * 1024);
    let cases = [
        (
            format!("ws://{addr}/ws"),
            Message::text(json!({"format": "jpg", "data": huge}).to_string()),
            Some("message_too_large"),
        ),
        (
            format!("ws://{addr}/ws/share/room1?name=ann"),
            Message::text(json!({"type": "text", "text": huge}).to_string()),
            Some("message_too_large"),
        ),
        (
            format!("ws://{addr}/ws/img2img"),
            Message::binary(huge.clone().into_bytes()),
            Some("message_too_large"),
        ),
        (
            format!("ws://{addr}/ws/chat?user=ann"),
            Message::text(
                json!({"type": "new", "payload": {"chatId": "bob", "message": huge}}).to_string(),
            ),
            Some("frame_too_large"),
        ),
    ];
    for (url, message, error) in cases {
        let ws = connect(url.clone()).await;
        let (texts, code) = send_too_big(ws, message).await;
        assert_eq!(code, Some(CloseCode::Size), "{url}: {texts:?}");
        if let Some(error) = error {
            assert!(
                texts.iter().any(|t| t.contains(error)),
                "{url}: no {error} before the close: {texts:?}"
            );
        }
    }
    // The server is unharmed: a new socket is served.
    let mut ws = connect(format!("ws://{addr}/ws")).await;
    ws.send(Message::text(json!({"data": "!"}).to_string()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
    assert!(matches!(answer, Some(Ok(Message::Text(_)))), "{answer:?}");
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill (procps) is installed: apt-get install procps");
    assert!(status.success());
}

/// A log field `name=value` of a tracing text line, as a number.
fn log_field(line: &str, name: &str) -> u64 {
    let plain: String = strip_ansi(line);
    plain
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {plain}"))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn sigterm_finishes_accepted_jobs_refuses_new_ones_and_closes_sockets_with_1001() {
    let mut server = spawn_server(
        "server: {host: 127.0.0.1, port: 0, shutdown_grace: 120s}\n\
         tcp: {port: 0}\n\
         upload: {max_concurrent_tasks: 1, rate_limit_per_minute: 0}\n",
    );
    let base = format!("http://{}", server.http);

    // Jobs over /ws: one runs, the rest queue behind it (one worker).
    let mut jobs_ws = connect(format!("ws://{}/ws", server.http)).await;
    let mut ws_md5s = Vec::new();
    for i in 0..4u32 {
        let image = jpeg(1600 + i, 1600);
        ws_md5s.push(common::http::md5_hex(&image));
        // A request frame without data, then the image as a binary frame.
        jobs_ws
            .send(Message::text(
                json!({"format": "webp", "quality": 60}).to_string(),
            ))
            .await
            .unwrap();
        jobs_ws.send(Message::binary(image)).await.unwrap();
    }
    // Jobs over HTTP, each with a status request waiting for its end.
    let mut waits = Vec::new();
    for i in 0..2u32 {
        let image = jpeg(1200, 1201 + i);
        let md5 = common::http::md5_hex(&image);
        let (status, body) =
            common::http::upload(&base, &image, &[("format", "webp"), ("quality", "60")]).await;
        assert!(status == 200 || status == 202, "{status} {body}");
        let url = format!("{base}/status/{md5}?wait=120");
        waits.push(tokio::spawn(async move {
            let r = reqwest::get(url).await.expect("status answered");
            r.json::<Value>().await.expect("json status")
        }));
    }
    // An idle share-room member.
    let room = connect(format!("ws://{}/ws/share/r1?name=ann", server.http)).await;

    sigterm(&server.child);
    wait_line(&server.log, "new work refused");

    // New work is refused with 503 while the accepted jobs finish.
    let (status, body) = common::http::upload(&base, jpeg(64, 64), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "shutting_down", "{body}");
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("a new /ws connection was not refused: {:?}", other.is_ok()),
    }

    // Every /ws job ends done, then the socket closes with 1001.
    let (texts, code) = until_closed(jobs_ws.split().1).await;
    for md5 in &ws_md5s {
        let done = texts.iter().any(|t| {
            let v: Value = serde_json::from_str(t).unwrap();
            v["md5"] == *md5.as_str() && v["status"] == "done"
        });
        assert!(done, "job {md5} did not finish: {texts:?}");
    }
    assert_eq!(code, Some(CloseCode::Away), "{texts:?}");
    // Every HTTP job ends done, its waiting status request answered.
    for wait in waits {
        let statuses = wait.await.unwrap();
        assert_eq!(statuses[0]["status"], "done", "{statuses}");
    }
    // The idle room member is closed with 1001 too.
    let (_, code) = until_closed(room.split().1).await;
    assert_eq!(code, Some(CloseCode::Away));

    let report = wait_line(&server.log, "shut down");
    assert_eq!(log_field(&report, "sockets_closed"), 2, "{report}");
    assert!(
        strip_ansi(&report).contains("jobs_finished=true"),
        "{report}"
    );
    println!("{}", strip_ansi(&report));
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// alice (a plain key), bob (a named key) and root (an admin key).
fn keyed_settings() -> pixpress::config::Settings {
    let mut s = test_settings();
    s.auth.api_keys = vec![
        "alice-key".into(),
        pixpress::config::ApiKey {
            key: "bob-key".into(),
            name: Some("bob".into()),
            admin: false,
        },
        pixpress::config::ApiKey {
            key: "root-key".into(),
            name: Some("ops".into()),
            admin: true,
        },
    ];
    s
}

/// The status of `GET base/{route}/{md5}` with `key`.
async fn get_with(base: &str, route: &str, md5: &str, key: Option<&str>) -> u16 {
    let mut r = reqwest::Client::new().get(format!("{base}/{route}/{md5}"));
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    r.send().await.unwrap().status().as_u16()
}

async fn upload_with(base: &str, key: &str, image: &[u8]) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .bearer_auth(key)
        .multipart(common::http::form(image, &[("format", "png")]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    v["md5"].as_str().unwrap().to_owned()
}

/// What each key sees of `md5`: the status of status, download and queue.
async fn seen_by(base: &str, md5: &str, key: &str) -> [u16; 2] {
    let status = get_with(base, "status", md5, Some(key)).await;
    let download = get_with(base, "download", md5, Some(key)).await;
    [status, download]
}

async fn wait_done(base: &str, md5: &str, key: &str) {
    let r = reqwest::Client::new()
        .get(format!("{base}/status/{md5}?wait=30"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["status"], "done", "{v}");
}

#[tokio::test]
async fn with_api_keys_a_task_is_seen_only_by_its_uploaders_and_admin_keys() {
    let server = start(keyed_settings()).await;
    let base = base_url(&server);
    let image = jpeg(48, 32);
    let md5 = upload_with(&base, "alice-key", &image).await;
    wait_done(&base, &md5, "alice-key").await;

    assert_eq!(seen_by(&base, &md5, "alice-key").await, [200, 200]);
    assert_eq!(seen_by(&base, &md5, "root-key").await, [200, 200]);
    // Another key is told the task does not exist, as for an unknown md5.
    assert_eq!(seen_by(&base, &md5, "bob-key").await, [404, 404]);
    assert_eq!(get_with(&base, "queue", &md5, Some("bob-key")).await, 404);
    assert_eq!(get_with(&base, "status", &md5, None).await, 401);

    // bob uploading the same bytes makes him an owner too.
    upload_with(&base, "bob-key", &image).await;
    assert_eq!(seen_by(&base, &md5, "bob-key").await, [200, 200]);

    // A task uploaded over /ws belongs to the socket's key.
    let mut ws = connect(format!("ws://{}/ws?access_token=bob-key", server.http_addr)).await;
    let other = jpeg(40, 40);
    let other_md5 = common::http::md5_hex(&other);
    ws.send(Message::text(json!({"format": "png"}).to_string()))
        .await
        .unwrap();
    ws.send(Message::binary(other)).await.unwrap();
    loop {
        let m = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
        let Some(Ok(Message::Text(t))) = m else {
            panic!("{m:?}")
        };
        if serde_json::from_str::<Value>(&t).unwrap()["status"] == "done" {
            break;
        }
    }
    assert_eq!(seen_by(&base, &other_md5, "bob-key").await, [200, 200]);
    assert_eq!(seen_by(&base, &other_md5, "alice-key").await, [404, 404]);
    server.shutdown().await;
}

#[tokio::test]
async fn task_owners_are_kept_in_redis_for_every_instance() {
    let url = std::env::var("PIXPRESS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut s = keyed_settings();
    s.backend.kind = pixpress::config::BackendKind::Redis;
    s.backend.redis_url = url;
    s.backend.key_prefix = format!("pixpress-test:owners:{}:{nanos}:", std::process::id());
    let a = pixpress::app::start(s.clone()).await.unwrap_or_else(|e| {
        panic!("this test needs a Redis at {} ({e}): apt-get install redis-server, or set PIXPRESS_TEST_REDIS_URL", s.backend.redis_url)
    });
    let b = start(s).await;
    let (base_a, base_b) = (base_url(&a), base_url(&b));
    let md5 = upload_with(&base_a, "alice-key", &jpeg(36, 20)).await;
    wait_done(&base_a, &md5, "alice-key").await;
    // Instance b never saw the upload: it learns the owner from Redis.
    assert_eq!(seen_by(&base_b, &md5, "alice-key").await, [200, 200]);
    assert_eq!(seen_by(&base_b, &md5, "bob-key").await, [404, 404]);
    assert_eq!(seen_by(&base_b, &md5, "root-key").await, [200, 200]);
    a.shutdown().await;
    b.shutdown().await;
}

/// Reads until the server closes the connection (end of stream or reset);
/// the bound turns a server that never closes into a failure.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("the server closes the connection within the bound")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let mut s = test_settings();
    s.server.header_read_timeout = Duration::from_millis(500);
    let server = start(s).await;
    let mut slow = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = closed_by_server(&mut slow).await;
    // Closed without a response to the unfinished request (or with 408).
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // A prompt client is served as before.
    let r = reqwest::get(format!("{}/healthz", base_url(&server)))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_idle_socket_of_every_websocket_protocol_is_closed_and_a_pinged_one_is_not() {
    let mut s = test_settings();
    s.ws.idle_timeout = Duration::from_millis(600);
    s.ws.ping_interval = Duration::ZERO;
    let server = start(s).await;
    let addr = server.http_addr;
    for path in [
        "/ws",
        "/ws/share/idle?name=ann",
        "/ws/img2img",
        "/ws/chat?user=ann",
    ] {
        // The client sends nothing; the server closes with 1000.
        let ws = connect(format!("ws://{addr}{path}")).await;
        let (_, code) = until_closed(ws.split().1).await;
        assert_eq!(code, Some(CloseCode::Normal), "{path}");
    }

    let mut s = test_settings();
    s.ws.idle_timeout = Duration::from_millis(600);
    s.ws.ping_interval = Duration::from_millis(100);
    let server = start(s).await;
    // A client that answers pings (tungstenite does, while read) outlives
    // many idle timeouts' worth of pings.
    let mut ws = connect(format!("ws://{}/ws", server.http_addr)).await;
    let mut pings = 0;
    while pings < 20 {
        match tokio::time::timeout(BOUND, ws.next()).await.unwrap() {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Text(_))) => {}
            other => panic!("the pinged socket ended after {pings} pings: {other:?}"),
        }
    }
}

#[tokio::test]
async fn connections_past_the_per_address_bound_are_refused_clearly_on_every_listener() {
    use tokio::io::AsyncReadExt;
    let mut s = test_settings();
    s.server.max_connections_per_client = 2;
    let server = start(s).await;
    // Two WebSockets hold the address's two places.
    let _a = connect(format!("ws://{}/ws", server.http_addr)).await;
    let _b = connect(format!("ws://{}/ws/img2img", server.http_addr)).await;

    // HTTP: a JSON 503.
    let r = reqwest::get(format!("{}/healthz", base_url(&server)))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "too_many_connections", "{v}");
    // WebSocket: the same refusal of the upgrade.
    match tokio_tungstenite::connect_async(format!("ws://{}/ws/chat?user=x", server.http_addr))
        .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("a third socket was not refused: {:?}", other.is_ok()),
    }
    // TCP: an error reply naming the code, then the end.
    let mut tcp = tokio::net::TcpStream::connect(server.tcp_addr)
        .await
        .unwrap();
    let mut len = [0u8; 4];
    tcp.read_exact(&mut len).await.unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    tcp.read_exact(&mut reply).await.unwrap();
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("too_many_connections"), "{text}");
    assert!(text.contains("ERROR"), "{text}");
}
