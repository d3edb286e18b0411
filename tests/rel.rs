//! Reliability: how sockets end (an oversized message, a server shutting
//! down), against real servers with real clients.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
            Message::text(json!({"type": "new", "payload": {"chatId": "bob", "message": huge}}).to_string()),
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

/// The server binary, started with `config` (YAML), and its addresses
/// read from its log.
struct Spawned {
    child: Child,
    http: String,
    log: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // A failed test leaves no server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(config: &str) -> Spawned {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pixpress"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = wait_line(&log, "listening http=");
    let http = line
        .split("http=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("http address in the log")
        .to_owned();
    Spawned {
        child,
        http,
        log,
        _dir: dir,
    }
}

/// The next log line containing `needle` (lines before it are dropped).
fn wait_line(log: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = log
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
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
            .send(Message::text(json!({"format": "webp", "quality": 60}).to_string()))
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
    assert!(strip_ansi(&report).contains("jobs_finished=true"), "{report}");
    println!("{}", strip_ansi(&report));
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}
