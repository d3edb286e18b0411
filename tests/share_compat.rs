//! The original share app's page against pixpress (SPEC section 3.1),
//! message by message, on a real server: presence, the shared text pad,
//! every member (the uploader included) seeing every image under a name
//! that matches its bytes, unknown message types, and the `/{uuid}` room
//! address that takes nothing else.

mod common;
mod rooms_support;

use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::ImageFormat;
use pixpress::config::Settings;
use rooms_support::{decoded, jpeg, Client};
use serde_json::{json, Value};

/// A UUID v4, as the original page makes its rooms.
const ROOM: &str = "3b9f5c1e-8a7d-4f2b-9c3e-1a2b3c4d5e6f";

/// The original page's chunk size, in base64 characters.
const PAGE_CHUNK: usize = 32 * 1024;

fn settings() -> Settings {
    let mut s = common::test_settings();
    s.share.max_dimension = 800;
    s
}

async fn start(s: Settings) -> (pixpress::app::RunningServer, SocketAddr) {
    let server = common::start(s).await;
    let addr = server.http_addr;
    (server, addr)
}

/// Connects as the original page does: `ws://HOST/{roomId}`, no name.
async fn open_page(addr: SocketAddr, room: &str) -> Client {
    Client::connect(addr, &format!("/{room}")).await
}

fn users(list: &Value) -> Vec<String> {
    assert_eq!(list["type"], "userList", "{list}");
    list["users"]
        .as_array()
        .expect("users is a list")
        .iter()
        .map(|u| u.as_str().expect("each user is a string").to_owned())
        .collect()
}

/// Sends a file as the original page does: start, then base64 chunks of
/// 32768 characters in order, without `uploadId`.
async fn page_upload(c: &mut Client, filename: &str, mime: &str, file: &[u8]) -> usize {
    c.send_json(
        json!({"type":"imageUploadStart","filename":filename,"mimeType":mime,"size":file.len()}),
    )
    .await;
    let b64 = STANDARD.encode(file);
    let chunks: Vec<&str> = b64
        .as_bytes()
        .chunks(PAGE_CHUNK)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    for (i, data) in chunks.iter().enumerate() {
        c.send_json(
            json!({"type":"imageUploadChunk","filename":filename,"chunkIndex":i,
            "totalChunks":chunks.len(),"data":data}),
        )
        .await;
    }
    chunks.len()
}

/// What the original page makes of the image messages: it keys a transfer
/// by the `filename` of the last `imageUploadStart`, keeps chunks and the
/// complete only when they carry that name, and shows the complete's
/// `data` (or the kept chunks) as `data:{mimeType};base64,...`.
#[derive(Default, Debug)]
struct PageView {
    incoming: String,
    chunks: Vec<String>,
    progress: Vec<u64>,
    /// The names of every `imageUploadStart`, in order.
    starts: Vec<String>,
    /// Messages about another transfer, which the page drops.
    dropped: usize,
}

/// An image the page shows.
struct Shown {
    filename: String,
    mime: String,
    bytes: Vec<u8>,
    complete: Value,
}

impl PageView {
    /// Reads until the page would show an image.
    async fn read_image(&mut self, c: &mut Client) -> Shown {
        loop {
            let m = c.json().await;
            let name = m["filename"].as_str().unwrap_or_default().to_owned();
            match m["type"].as_str().unwrap() {
                "imageUploadStart" => {
                    self.incoming = name.clone();
                    self.chunks.clear();
                    self.starts.push(name);
                }
                "imageUploadChunk" if name == self.incoming => {
                    let i = m["chunkIndex"].as_u64().unwrap() as usize;
                    let total = m["totalChunks"].as_u64().unwrap() as usize;
                    self.chunks.resize(total, String::new());
                    self.chunks[i] = m["data"].as_str().unwrap().to_owned();
                }
                "imageUploadProgress" if name == self.incoming => {
                    self.progress.push(m["progress"].as_u64().unwrap());
                }
                "imageUploadComplete" if name == self.incoming => {
                    let from_chunks = self.chunks.concat();
                    let data = m["data"].as_str().map(str::to_owned);
                    if let Some(data) = &data {
                        assert_eq!(data, &from_chunks, "data and chunks are one image");
                    }
                    let bytes = STANDARD
                        .decode(data.unwrap_or(from_chunks))
                        .expect("the image is base64");
                    self.incoming.clear();
                    return Shown {
                        filename: name,
                        mime: m["mimeType"].as_str().unwrap().to_owned(),
                        bytes,
                        complete: m,
                    };
                }
                "imageUploadChunk" | "imageUploadProgress" | "imageUploadComplete" => {
                    self.dropped += 1
                }
                other => panic!("unexpected {other} during an image: {m}"),
            }
        }
    }
}

/// The extension a file name must have for bytes of `format`.
fn extension_of(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::WebP => "webp",
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
        other => panic!("unexpected format {other:?}"),
    }
}

#[tokio::test]
async fn the_original_pages_flow_works_message_by_message() {
    let (server, addr) = start(settings()).await;

    // Presence: the first page counts one user (upload stays disabled).
    let mut ann = open_page(addr, ROOM).await;
    assert_eq!(users(&ann.json().await), ["anonymous"]);
    // The second page gets both; the first hears of the second.
    let mut bob = open_page(addr, ROOM).await;
    assert_eq!(users(&bob.json().await), ["anonymous", "anonymous"]);
    let joined = ann.expect("userConnected").await;
    assert_eq!(joined["ip"], "anonymous");

    // The text pad goes to the other member only.
    ann.send_json(json!({"type":"textUpdate","text":"hello"}))
        .await;
    let update = bob.expect("textUpdate").await;
    assert_eq!(update["text"], "hello");
    bob.send_json(json!({"type":"textUpdate","text":"hello\nworld"}))
        .await;
    assert_eq!(ann.expect("textUpdate").await["text"], "hello\nworld");

    // An invite message the original also has: an error to its sender
    // alone, and the connection stays open (the first thing ann reads is
    // that error, so no echo of its own text update came before it).
    ann.send_json(json!({"type":"generateInvite"})).await;
    let refused = ann.expect("error").await;
    assert_eq!(refused["code"], "unknown_type");
    bob.send_json(json!({"type":"respondInvite","requestId":"x","accept":true}))
        .await;
    assert_eq!(bob.expect("error").await["code"], "unknown_type");

    // An upload in chunks, as the page sends it.
    let file = jpeg(1600, 1200);
    let sent_chunks = page_upload(&mut ann, "example.jpg", "image/jpeg", &file).await;
    assert!(sent_chunks >= 2, "the test needs several chunks");

    let mut views = Vec::new();
    for page in [&mut ann, &mut bob] {
        let mut view = PageView::default();
        let shown = view.read_image(page).await;
        // The upload's start, then the processed image's start.
        assert_eq!(view.starts, ["example.jpg", "example.webp"], "{view:?}");
        assert_eq!(view.dropped, 0, "every message was about the transfer");
        assert!(!view.progress.is_empty(), "progress reached every member");
        assert_eq!(view.progress.last(), Some(&100));
        assert_eq!(shown.filename, "example.webp");
        assert_eq!(shown.mime, "image/webp");
        let (format, width, height) = decoded(&shown.bytes);
        assert_eq!((format, width, height), (ImageFormat::WebP, 800, 600));
        assert_eq!(extension_of(format), "webp", "name and bytes agree");
        assert_eq!(shown.complete["width"], 800);
        assert_eq!(shown.complete["height"], 600);
        assert_eq!(shown.complete["size"], shown.bytes.len());
        assert_eq!(shown.complete["originalFilename"], "example.jpg");
        views.push(shown.bytes);
    }
    assert_eq!(
        views[0], views[1],
        "the uploader sees the image the other sees"
    );

    // A late joiner (with a name, on the other address of the same room)
    // gets the member list, the current text first, then the history with
    // the delivered name.
    let mut carol = Client::connect(addr, &format!("/ws/share/{ROOM}?name=carol")).await;
    assert_eq!(
        users(&carol.json().await),
        ["anonymous", "anonymous", "carol"]
    );
    assert_eq!(carol.expect("textUpdate").await["text"], "hello\nworld");
    let mut late = PageView::default();
    let shown = late.read_image(&mut carol).await;
    assert_eq!(
        late.starts,
        ["example.webp"],
        "history has the processed image"
    );
    assert!(late.progress.is_empty(), "progress is not history");
    assert_eq!(shown.filename, "example.webp");
    assert_eq!(shown.mime, "image/webp");
    assert_eq!(shown.bytes, views[0]);
    for page in [&mut ann, &mut bob] {
        let news = page.expect("userConnected").await;
        assert_eq!(news["ip"], "carol");
        assert_eq!(news["name"], "carol");
    }

    // A member who leaves is announced to the others.
    bob.close().await;
    for page in [&mut ann, &mut carol] {
        let news = page.expect("userDisconnected").await;
        assert_eq!(news["ip"], "anonymous");
    }
    ann.send_json(json!({"type":"textUpdate","text":"after"}))
        .await;
    assert_eq!(carol.expect("textUpdate").await["text"], "after");
    server.shutdown().await;
}

#[tokio::test]
async fn too_large_or_too_frequent_text_updates_are_refused_to_their_sender_alone() {
    let mut s = settings();
    s.share.text_pad_max_bytes = 16;
    s.share.text_pad_burst = 2;
    s.share.text_pad_refill = std::time::Duration::from_secs(3600);
    let (server, addr) = start(s).await;
    let mut ann = open_page(addr, ROOM).await;
    ann.expect("userList").await;
    let mut bob = open_page(addr, ROOM).await;
    bob.expect("userList").await;
    ann.expect("userConnected").await;

    // Too large: refused, and no token is used.
    ann.send_json(json!({"type":"textUpdate","text":"x".repeat(17)}))
        .await;
    let err = ann.expect("textUpdateError").await;
    assert_eq!(err["code"], "message_too_long");
    assert!(
        err["error"].as_str().unwrap().contains("limit of 16"),
        "{err}"
    );
    // Two updates pass, the third is too frequent.
    for text in ["one", "two", "three"] {
        ann.send_json(json!({"type":"textUpdate","text":text}))
            .await;
    }
    let err = ann.expect("textUpdateError").await;
    assert_eq!(err["code"], "too_frequent");
    // A malformed update names what is wrong.
    ann.send_json(json!({"type":"textUpdate","text":5})).await;
    assert_eq!(
        ann.expect("textUpdateError").await["code"],
        "invalid_message"
    );

    // Bob got exactly the accepted updates, then Ann's chat line; the
    // room's text is the last accepted one.
    ann.send_json(json!({"type":"text","text":"still here"}))
        .await;
    assert_eq!(bob.expect("textUpdate").await["text"], "one");
    assert_eq!(bob.expect("textUpdate").await["text"], "two");
    assert_eq!(bob.expect("text").await["text"], "still here");
    assert_eq!(ann.expect("text").await["text"], "still here");
    let mut late = open_page(addr, ROOM).await;
    late.expect("userList").await;
    assert_eq!(late.expect("textUpdate").await["text"], "two");
    server.shutdown().await;
}

#[tokio::test]
async fn a_small_image_travels_whole_in_its_complete_and_a_large_one_in_chunks_only() {
    let mut s = settings();
    s.share.complete_data_max_bytes = 2000;
    let (server, addr) = start(s).await;
    let mut ann = open_page(addr, ROOM).await;
    ann.expect("userList").await;
    let mut view = PageView::default();

    page_upload(&mut ann, "tiny.png", "image/png", &small_png()).await;
    let small = view.read_image(&mut ann).await;
    assert!(small.bytes.len() <= 2000);
    assert_eq!(small.filename, "tiny.webp");
    assert_eq!(small.complete["data"], STANDARD.encode(&small.bytes));

    page_upload(&mut ann, "big.jpeg", "image/jpeg", &jpeg(600, 400)).await;
    let big = view.read_image(&mut ann).await;
    assert!(big.bytes.len() > 2000, "{} bytes", big.bytes.len());
    assert_eq!(big.filename, "big.webp");
    assert!(big.complete.get("data").is_none(), "{}", big.complete);
    assert_eq!(decoded(&big.bytes), (ImageFormat::WebP, 600, 400));
    server.shutdown().await;
}

fn small_png() -> Vec<u8> {
    rooms_support::encode(&rooms_support::photo(16, 16), ImageFormat::Png)
}

#[tokio::test]
async fn the_uuid_address_takes_uuid_v4_upgrades_and_nothing_else() {
    let (server, addr) = start(settings()).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    // A UUID v4 in either case is a room; the page's connection works.
    let mut upper = open_page(addr, &ROOM.to_uppercase()).await;
    assert_eq!(users(&upper.json().await), ["anonymous"]);

    // Not a UUID v4 (a word, a v1 UUID, a bad variant, a longer path): no
    // upgrade, the server's ordinary 404.
    let fallback = http
        .get(format!("{base}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 404);
    let fallback: Value = fallback.json().await.unwrap();
    for path in [
        "/not-a-room",
        "/3b9f5c1e-8a7d-1f2b-9c3e-1a2b3c4d5e6f",
        "/3b9f5c1e-8a7d-4f2b-7c3e-1a2b3c4d5e6f",
        "/3b9f5c1e-8a7d-4f2b-9c3e-1a2b3c4d5e6f0",
    ] {
        let refused = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("404"), "{path}: {refused}");
        let plain = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(plain.status(), 404, "{path}");
        assert_eq!(plain.json::<Value>().await.unwrap(), fallback, "{path}");
    }
    // Other methods on a room's address are not taken either.
    let post = http.post(format!("{base}/{ROOM}")).send().await.unwrap();
    assert_eq!(post.status(), 404);
    assert_eq!(post.json::<Value>().await.unwrap(), fallback);
    // A plain GET of a room's address says where the room is.
    let page = http.get(format!("{base}/{ROOM}")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["error"], "not_found");
    assert!(
        page["message"].as_str().unwrap().contains("WebSocket"),
        "{page}"
    );

    // The server's own routes are not shadowed.
    for (path, status) in [
        ("/healthz", 200),
        ("/app/", 200),
        ("/files", 200),
        ("/", 200),
    ] {
        let got = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(got.status(), status, "{path}");
    }
    let status = http
        .get(format!("{base}/status/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap();
    let status_body: Value = status.json().await.unwrap();
    assert_ne!(status_body, fallback, "/status/{{md5}} is its own route");
    let upload = http.post(format!("{base}/upload")).send().await.unwrap();
    assert_ne!(upload.status(), 404, "/upload is its own route");
    let ws_jobs = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await;
    assert!(ws_jobs.is_ok(), "/ws is its own route");
    upper.close().await;
    server.shutdown().await;
}

/// Nothing of one room reaches another, whichever address each is joined at.
#[tokio::test]
async fn rooms_at_uuid_addresses_are_isolated() {
    let (server, addr) = start(settings()).await;
    let other = "0f1e2d3c-4b5a-4978-a6b5-c4d3e2f1a0b9";
    let mut ann = open_page(addr, ROOM).await;
    ann.expect("userList").await;
    let mut eve = open_page(addr, other).await;
    assert_eq!(users(&eve.json().await), ["anonymous"], "alone in its room");
    ann.send_json(json!({"type":"textUpdate","text":"for my room"}))
        .await;
    ann.send_json(json!({"type":"text","text":"done"})).await;
    // Ann's own chat line comes back after its text update was handled.
    assert_eq!(ann.expect("text").await["text"], "done");
    eve.send_json(json!({"type":"text","text":"mine"})).await;
    assert_eq!(eve.expect("text").await["text"], "mine", "nothing leaked");
    server.shutdown().await;
}
