//! Share rooms (SPEC section 3) with real WebSocket clients: chunked
//! uploads, progress, re-chunked streaming, text, history, isolation, bad
//! input and slow members. Presence and the text pad (section 3.1) are
//! tested in `share_compat.rs`; here a member's arrival list is checked
//! and presence news is passed over.

mod rooms_support;

use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::ImageFormat;
use pixpress::config::Settings;
use rooms_support::{decoded, encode, jpeg, noise, serve, Client, Read};
use serde_json::{json, Value};

fn settings() -> Settings {
    let mut s = Settings::default();
    s.share.max_dimension = 800;
    s.share.chunk_size = 8192;
    s.share.max_chunks = 64;
    s.share.max_upload_bytes = 2 * 1024 * 1024;
    s
}

/// Presence news about other members, which these tests pass over.
const PRESENCE: &[&str] = &["userConnected", "userDisconnected"];

/// Joins `room` as `name` and reads the arrival's member list, which ends
/// with `name`.
async fn join(addr: SocketAddr, room: &str, name: &str) -> Client {
    let mut c = Client::connect(addr, &format!("/ws/share/{room}?name={name}")).await;
    let list = c.expect("userList").await;
    let users = list["users"].as_array().expect("a list of users");
    assert_eq!(users.last(), Some(&json!(name)), "{list}");
    c.ignoring(PRESENCE)
}

/// An `imageUploadStart` that announces an upload (not the processed
/// image's start).
fn is_announcement(m: &Value) -> bool {
    m["type"] == "imageUploadStart" && m["processed"] == false
}

/// The next message that is neither progress nor an upload's announcement.
async fn next_skipping_progress(c: &mut Client) -> Value {
    loop {
        let m = c.json().await;
        if m["type"] != "imageUploadProgress" && !is_announcement(&m) {
            return m;
        }
    }
}

/// Sends `file` as start plus base64 chunks of `chunk_chars`, in `order`
/// (indices into the chunk list, repeats allowed).
async fn upload(
    c: &mut Client,
    filename: &str,
    file: &[u8],
    chunk_chars: usize,
    order: Option<Vec<usize>>,
) {
    let b64 = STANDARD.encode(file);
    let chunks: Vec<&str> = b64
        .as_bytes()
        .chunks(chunk_chars)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    c.send_json(json!({"type":"imageUploadStart","filename":filename,"mimeType":"image/jpeg","size":file.len()}))
        .await;
    let order = order.unwrap_or_else(|| (0..chunks.len()).collect());
    for i in order {
        c.send_json(
            json!({"type":"imageUploadChunk","filename":filename,"chunkIndex":i,
            "totalChunks":chunks.len(),"data":chunks[i]}),
        )
        .await;
    }
}

/// What one member saw of one shared image.
#[derive(Default)]
struct Seen {
    /// The upload's announcement, when it began.
    announced: Option<Value>,
    progress: Vec<u64>,
    /// The processed image's start.
    start: Option<Value>,
    chunks: Vec<String>,
    complete: Value,
}

impl Seen {
    fn bytes(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|c| STANDARD.decode(c).expect("each chunk decodes alone"))
            .collect()
    }
}

/// Reads until `imageUploadComplete`, checking chunk order and count.
async fn read_image(c: &mut Client) -> Seen {
    let mut seen = Seen::default();
    loop {
        let m = c.json().await;
        match m["type"].as_str().unwrap() {
            "imageUploadProgress" => seen.progress.push(m["progress"].as_u64().unwrap()),
            "imageUploadStart" if is_announcement(&m) => seen.announced = Some(m),
            "imageUploadStart" => seen.start = Some(m),
            "imageUploadChunk" => {
                assert_eq!(
                    m["chunkIndex"].as_u64().unwrap() as usize,
                    seen.chunks.len()
                );
                seen.chunks.push(m["data"].as_str().unwrap().to_owned());
                assert!(m["totalChunks"].as_u64().unwrap() as usize >= seen.chunks.len());
            }
            "imageUploadComplete" => {
                seen.complete = m;
                return seen;
            }
            other => panic!("unexpected {other}: {m}"),
        }
    }
}

fn assert_rising_to_100(progress: &[u64]) {
    assert!(!progress.is_empty());
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "{progress:?} rises"
    );
    assert_eq!(progress.last(), Some(&100), "{progress:?} ends at 100");
}

/// Reads messages until a `text` arrives, skipping progress and uploads'
/// announcements; anything else means an upload leaked to this member.
async fn next_text_skipping_progress(c: &mut Client) -> Value {
    let m = next_skipping_progress(c).await;
    assert_eq!(m["type"], "text", "this member should not receive {m}");
    m
}

#[tokio::test]
async fn a_shared_image_reaches_the_others_rechunked_and_decodes() {
    let addr = serve(settings()).await;
    let mut alice = join(addr, "a", "alice").await;
    let mut bob = join(addr, "a", "bob").await;
    let mut carol = join(addr, "a", "carol").await;
    let mut dave = join(addr, "b", "dave").await;

    let file = jpeg(1200, 900);
    let chunks = STANDARD.encode(&file).len().div_ceil(4000);
    assert!(chunks >= 4, "the test needs several chunks");
    // Out of order, with a duplicate.
    let mut order: Vec<usize> = (0..chunks).rev().collect();
    order.insert(2, chunks - 1);
    upload(&mut alice, "photo.jpg", &file, 4000, Some(order)).await;

    let mine = read_image(&mut alice).await;
    assert_rising_to_100(&mine.progress);
    let mine_bytes = mine.bytes();
    for other in [&mut bob, &mut carol] {
        let seen = read_image(other).await;
        assert_rising_to_100(&seen.progress);
        let announced = seen.announced.as_ref().expect("the upload's start");
        assert_eq!(announced["filename"], "photo.jpg");
        assert_eq!(announced["size"], file.len());
        let start = seen.start.as_ref().expect("a start message");
        assert_eq!(start["from"], "alice");
        assert_eq!(start["mimeType"], "image/webp");
        assert_eq!(start["filename"], "photo.webp");
        assert_eq!(start["originalFilename"], "photo.jpg");
        assert_eq!(seen.chunks, mine.chunks, "the uploader gets the same image");
        let bytes = seen.bytes();
        assert_eq!(bytes.len() as u64, start["size"].as_u64().unwrap());
        assert_eq!(seen.complete, mine.complete);
        assert_eq!(seen.complete["size"], start["size"]);
        assert_eq!(seen.complete["from"], "alice");
        assert!(
            seen.chunks.iter().all(|c| c.len() <= 8192),
            "chunks within share.chunk_size"
        );
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(
            decoded(&bytes),
            (ImageFormat::WebP, 800, 600),
            "resized inside 800"
        );
        assert_eq!(seen.complete["width"], 800);
        assert_eq!(seen.complete["height"], 600);
        assert_eq!(seen.complete["filename"], "photo.webp");
        assert_eq!(seen.complete["data"], STANDARD.encode(&mine_bytes));
    }

    // Room b heard nothing of it: its first message is its own text.
    dave.send_json(json!({"type":"text","text":"only b"})).await;
    assert_eq!(dave.expect("text").await["text"], "only b");
}

#[tokio::test]
async fn text_reaches_everyone_with_sender_and_time() {
    let addr = serve(settings()).await;
    let mut alice = join(addr, "t", "alice").await;
    let mut bob = join(addr, "t", "bob").await;
    let mut eve = join(addr, "elsewhere", "eve").await;
    alice.send_json(json!({"type":"text","text":"hello"})).await;
    for c in [&mut alice, &mut bob] {
        let m = c.expect("text").await;
        assert_eq!(m["text"], "hello");
        assert_eq!(m["from"], "alice");
        assert!(m["ts"].as_u64().unwrap() > 1_600_000_000);
    }
    eve.send_json(json!({"type":"text","text":"mine"})).await;
    assert_eq!(
        eve.expect("text").await["text"],
        "mine",
        "rooms are isolated"
    );
}

#[tokio::test]
async fn a_late_joiner_first_gets_the_history_in_order() {
    let mut s = settings();
    s.share.history = 3;
    let addr = serve(s).await;
    let mut alice = join(addr, "h", "alice").await;
    for t in ["zero", "one"] {
        alice.send_json(json!({"type":"text","text":t})).await;
        alice.expect("text").await;
    }
    upload(&mut alice, "pic.jpg", &jpeg(300, 200), 8192, None).await;
    let mine = read_image(&mut alice).await;
    alice.send_json(json!({"type":"text","text":"two"})).await;
    alice.expect("text").await;

    // History keeps 3 items: "one", the image, "two".
    let mut late = join(addr, "h", "late").await;
    assert_eq!(late.expect("text").await["text"], "one");
    let seen = read_image(&mut late).await;
    assert!(seen.progress.is_empty(), "progress is not history");
    assert_eq!(seen.start.as_ref().unwrap()["from"], "alice");
    assert_eq!(seen.complete, mine.complete);
    assert_eq!(decoded(&seen.bytes()), (ImageFormat::WebP, 300, 200));
    assert_eq!(late.expect("text").await["text"], "two");
    // Then live messages.
    alice.send_json(json!({"type":"text","text":"live"})).await;
    assert_eq!(late.expect("text").await["text"], "live");
}

#[tokio::test]
async fn two_uploads_of_one_file_name_are_told_apart_by_upload_id() {
    let addr = serve(settings()).await;
    let mut alice = join(addr, "u", "alice").await;
    let mut bob = join(addr, "u", "bob").await;
    let (one, two) = (jpeg(200, 100), jpeg(100, 200));
    let (b1, b2) = (STANDARD.encode(&one), STANDARD.encode(&two));
    for (id, file) in [("1", &one), ("2", &two)] {
        alice
            .send_json(json!({"type":"imageUploadStart","filename":"same.jpg","size":file.len(),"uploadId":id}))
            .await;
    }
    // Interleaved chunks of both; each is a single chunk here.
    for (id, b64) in [("2", &b2), ("1", &b1)] {
        alice
            .send_json(
                json!({"type":"imageUploadChunk","filename":"same.jpg","chunkIndex":0,
                "totalChunks":1,"data":b64,"uploadId":id}),
            )
            .await;
    }
    let mut sizes = std::collections::HashMap::new();
    for _ in 0..2 {
        let seen = read_image(&mut bob).await;
        let id = seen.complete["uploadId"].as_str().unwrap().to_owned();
        sizes.insert(id, decoded(&seen.bytes()));
    }
    assert_eq!(sizes["1"], (ImageFormat::WebP, 200, 100));
    assert_eq!(sizes["2"], (ImageFormat::WebP, 100, 200));
}

#[tokio::test]
async fn bad_uploads_get_an_error_for_the_uploader_alone_and_the_room_keeps_working() {
    let addr = serve(settings()).await;
    let mut alice = join(addr, "bad", "alice").await;
    let mut bob = join(addr, "bad", "bob").await;

    let start =
        |name: &str, size: usize| json!({"type":"imageUploadStart","filename":name,"size":size});
    let chunk = |name: &str, i: u64, n: u64, data: &str| json!({"type":"imageUploadChunk","filename":name,"chunkIndex":i,"totalChunks":n,"data":data});
    let not_image = b"this is plain text, not an image".to_vec();
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        (
            "text.jpg",
            vec![
                start("text.jpg", not_image.len()),
                chunk("text.jpg", 0, 1, &STANDARD.encode(&not_image)),
            ],
            "unsupported format",
        ),
        (
            "many.jpg",
            vec![start("many.jpg", 10), chunk("many.jpg", 0, 65, "AAAA")],
            "totalChunks must be between 1 and 64",
        ),
        (
            "range.jpg",
            vec![start("range.jpg", 10), chunk("range.jpg", 7, 3, "AAAA")],
            "out of range",
        ),
        (
            "b64.jpg",
            vec![
                start("b64.jpg", 10),
                chunk("b64.jpg", 0, 2, "@@not base64@@"),
            ],
            "not valid base64",
        ),
        (
            "huge.jpg",
            vec![start("huge.jpg", 3 * 1024 * 1024)],
            "exceeds the limit",
        ),
        (
            "nostart.jpg",
            vec![chunk("nostart.jpg", 0, 1, "AAAA")],
            "imageUploadStart first",
        ),
        (
            "wide.jpg",
            vec![
                start("wide.jpg", 10),
                chunk("wide.jpg", 0, 1, &"A".repeat(8196)),
            ],
            "over the limit of 8192",
        ),
        (
            "fields.jpg",
            vec![json!({"type":"imageUploadChunk","filename":"fields.jpg"})],
            "missing field",
        ),
    ];
    for (filename, messages, expected) in cases {
        for m in messages {
            alice.send_json(m).await;
        }
        let err = next_skipping_progress(&mut alice).await;
        assert_eq!(err["type"], "imageUploadError", "{filename}: {err}");
        assert_eq!(err["filename"], filename);
        let text = err["error"].as_str().unwrap();
        assert!(
            text.contains(expected),
            "{filename}: {text:?} should say {expected:?}"
        );
    }
    // Bad text frames get a plain error.
    for (frame, expected) in [
        ("not json", "not a JSON object"),
        (r#"{"type":"dance"}"#, "unknown message type"),
        (r#"{"type":"text"}"#, "missing field `text`"),
        (r#"{"type":"text","text":""}"#, "empty text"),
    ] {
        alice.send_text(frame).await;
        let err = alice.expect("error").await;
        assert!(err["error"].as_str().unwrap().contains(expected), "{err}");
    }

    // Bob saw none of the errors, and the room still works both ways.
    alice
        .send_json(json!({"type":"text","text":"still here"}))
        .await;
    assert_eq!(
        next_text_skipping_progress(&mut bob).await["text"],
        "still here"
    );
    assert_eq!(alice.expect("text").await["text"], "still here");
    upload(&mut alice, "good.jpg", &jpeg(64, 48), 8192, None).await;
    let seen = read_image(&mut bob).await;
    assert_eq!(decoded(&seen.bytes()), (ImageFormat::WebP, 64, 48));
}

#[tokio::test]
async fn an_image_over_the_byte_budget_is_refused_with_the_budget_in_words() {
    let mut s = settings();
    s.share.max_image_bytes = 20; // below any WebP file
    let addr = serve(s).await;
    let mut alice = join(addr, "budget", "alice").await;
    let mut bob = join(addr, "budget", "bob").await;
    upload(
        &mut alice,
        "noise.png",
        &encode(&noise(256, 256), ImageFormat::Png),
        8192,
        None,
    )
    .await;
    let err = next_skipping_progress(&mut alice).await;
    assert_eq!(err["type"], "imageUploadError");
    assert_eq!(err["error"], "Image could not be compressed below 20B.");
    alice.send_json(json!({"type":"text","text":"after"})).await;
    assert_eq!(next_text_skipping_progress(&mut bob).await["text"], "after");
}

#[tokio::test]
async fn an_abandoned_upload_is_dropped_after_the_timeout() {
    let mut s = settings();
    s.share.upload_timeout = std::time::Duration::from_millis(200);
    s.share.max_uploads_per_member = 1;
    let addr = serve(s).await;
    let mut alice = join(addr, "idle", "alice").await;
    let b64 = STANDARD.encode(jpeg(64, 64));
    alice
        .send_json(json!({"type":"imageUploadStart","filename":"half.jpg","size":b64.len()}))
        .await;
    alice
        .send_json(json!({"type":"imageUploadChunk","filename":"half.jpg","chunkIndex":0,"totalChunks":2,"data":"AAAA"}))
        .await;
    assert!(is_announcement(&alice.expect("imageUploadStart").await));
    assert_eq!(alice.expect("imageUploadProgress").await["progress"], 50);
    let err = alice.expect("imageUploadError").await;
    assert_eq!(err["filename"], "half.jpg");
    assert!(
        err["error"].as_str().unwrap().contains("upload abandoned"),
        "{err}"
    );
    // Its place is free again: a new upload with a limit of one succeeds.
    let file = jpeg(64, 64);
    upload(&mut alice, "whole.jpg", &file, 8192, None).await;
    let seen = read_image(&mut alice).await;
    assert_eq!(seen.complete["filename"], "whole.webp");
}

#[tokio::test]
async fn a_full_room_refuses_a_member_with_a_message() {
    let mut s = settings();
    s.share.max_members = 2;
    let addr = serve(s).await;
    let _a = join(addr, "full", "a").await;
    let _b = join(addr, "full", "b").await;
    let mut c = Client::connect(addr, "/ws/share/full?name=c").await;
    let err = c.expect("error").await;
    assert!(err["error"].as_str().unwrap().contains("is full"), "{err}");
    assert!(matches!(c.read().await, Read::Closed));
}

#[tokio::test]
async fn a_member_that_stops_reading_is_dropped_without_blocking_the_others() {
    let mut s = settings();
    s.share.member_queue = 4;
    s.share.max_image_bytes = 4000; // one outgoing chunk: the queue stays at 4
    s.share.max_text_bytes = 64 * 1024;
    s.share.chunk_size = 8192;
    let addr = serve(s).await;
    let mut alice = join(addr, "slow", "alice").await;
    let mut bob = join(addr, "slow", "bob").await;
    let mut stuck = join(addr, "slow", "stuck").await;

    // Far more than the socket buffers and the queue can hold.
    let count = 600;
    let body = "x".repeat(60 * 1024);
    for i in 0..count {
        alice
            .send_json(json!({"type":"text","text":format!("{i}:{body}")}))
            .await;
        for c in [&mut alice, &mut bob] {
            let m = c.expect("text").await;
            assert!(m["text"].as_str().unwrap().starts_with(&format!("{i}:")));
        }
    }
    // The stuck member got a part, then its connection ended.
    let mut got = 0;
    while let Read::Json(_) = stuck.read().await {
        got += 1;
    }
    assert!(
        got < count,
        "the stuck member was dropped after {got} messages"
    );
}

/// The command-line client of the docs shares a file into a live room.
#[tokio::test]
async fn the_share_script_puts_a_file_into_the_room() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .output();
    if !matches!(&probe, Ok(out) if out.status.success()) {
        println!(
            "SKIPPED: python3 with websockets is needed \
             (pip install -r scripts/clients/requirements.txt)"
        );
        return;
    }
    let addr = serve(settings()).await;
    let mut bob = join(addr, "docs", "bob").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("holiday.jpg");
    std::fs::write(&file, jpeg(1000, 500)).unwrap();
    let mut command = std::process::Command::new("python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/share_room.py"
        ))
        .args([
            "--server",
            &format!("ws://{addr}"),
            "--room",
            "docs",
            "--name",
            "ann",
        ])
        .args(["--chunk-chars", "8192"])
        .arg(&file);
    // The server runs on this runtime, so the client waits on another thread.
    let run = tokio::task::spawn_blocking(move || command.output());
    let out = tokio::time::timeout(rooms_support::WAIT, run)
        .await
        .expect("the script finishes")
        .unwrap()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("image/webp 800x400"), "{stdout}");
    let seen = read_image(&mut bob).await;
    assert_eq!(seen.start.as_ref().unwrap()["from"], "ann");
    assert_eq!(seen.complete["filename"], "holiday.webp");
    assert_eq!(seen.complete["originalFilename"], "holiday.jpg");
    assert_eq!(decoded(&seen.bytes()), (ImageFormat::WebP, 800, 400));
}

#[tokio::test]
async fn with_a_jwt_secret_the_name_is_the_tokens_subject() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let mut s = settings();
    s.auth.jwt_secret = Some("room-secret".into());
    let addr = serve(s).await;

    let url = format!("ws://{addr}/ws/share/jwt?name=mallory");
    let refused = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");

    let token = encode(
        &Header::default(),
        &json!({"sub":"ann","exp":4_000_000_000u64}),
        &EncodingKey::from_secret(b"room-secret"),
    )
    .unwrap();
    let mut ann = Client::connect(addr, &format!("/ws/share/jwt?name=mallory&token={token}")).await;
    assert_eq!(ann.expect("userList").await["users"], json!(["ann"]));
    ann.send_json(json!({"type":"text","text":"signed"})).await;
    assert_eq!(ann.expect("text").await["from"], "ann");
}
