//! Shared by the room protocol tests: the rooms router served in-process on
//! a free port, real WebSocket clients, and images made on the spot.
#![allow(dead_code)]

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use image::{ImageFormat, Rgb, RgbImage};
use pixpress::config::Settings;
use pixpress::jobs::WorkerPool;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound on waiting for one message; hitting it fails the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// Serves `pixpress::protocols::ws::room_routes` on 127.0.0.1 and returns its address.
pub async fn serve(settings: Settings) -> SocketAddr {
    let pool = WorkerPool::new(
        settings.upload.max_concurrent_tasks,
        settings.upload.max_queue,
        settings.upload.job_timeout,
    );
    let router = pixpress::protocols::ws::room_routes(pool, Arc::new(settings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Serves `pixpress::protocols::ws::room_routes_on` with rooms on `bus`
/// and their state in `repos` (one instance of several sharing them) and
/// returns its address.
pub async fn serve_on(
    settings: Settings,
    bus: Arc<dyn pixpress::rooms::Bus>,
    repos: &dyn pixpress::rooms::RoomRepos,
) -> SocketAddr {
    let pool = WorkerPool::new(
        settings.upload.max_concurrent_tasks,
        settings.upload.max_queue,
        settings.upload.job_timeout,
    );
    let router = pixpress::protocols::ws::room_routes_on(pool, Arc::new(settings), bus, repos);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A real WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// JSON message types that reads pass over (see [`Client::ignoring`]).
    ignored: &'static [&'static str],
}

/// What a client read next.
#[derive(Debug)]
pub enum Read {
    Json(Value),
    Binary(Vec<u8>),
    Closed,
}

impl Client {
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect within the wait")
            .expect("connects");
        Self { ws, ignored: &[] }
    }

    /// Makes every read pass over JSON messages of these types (e.g. a
    /// share room's presence messages, in tests about something else).
    pub fn ignoring(mut self, kinds: &'static [&'static str]) -> Self {
        self.ignored = kinds;
        self
    }

    pub async fn send_json(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws.send(Message::binary(data)).await.unwrap();
    }

    /// The next data message, or `Closed` when the server ended the socket.
    pub async fn read(&mut self) -> Read {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message within the wait");
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON text frame");
                    if v["type"]
                        .as_str()
                        .is_some_and(|kind| self.ignored.contains(&kind))
                    {
                        continue;
                    }
                    return Read::Json(v);
                }
                Some(Ok(Message::Binary(b))) => return Read::Binary(b.to_vec()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Read::Closed,
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn json(&mut self) -> Value {
        match self.read().await {
            Read::Json(v) => v,
            other => panic!("expected a JSON message, got {other:?}"),
        }
    }

    pub async fn binary(&mut self) -> Vec<u8> {
        match self.read().await {
            Read::Binary(b) => b,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    /// The next JSON message, checked to be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let v = self.json().await;
        assert_eq!(v["type"], kind, "unexpected message: {v}");
        v
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A photo-like image with texture, so encoders have work to do.
pub fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let n = ((x * 7919 + y * 104_729) % 251) as u8 / 8;
        Rgb([
            ((x * 255) / width.max(1)) as u8 ^ n,
            ((y * 255) / height.max(1)) as u8,
            (((x + y) * 255) / (width + height).max(1)) as u8 ^ n,
        ])
    })
}

/// Pseudo-random noise: incompressible, to break byte budgets.
pub fn noise(width: u32, height: u32) -> RgbImage {
    let mut state: u32 = 0x9E37_79B9;
    RgbImage::from_fn(width, height, |_, _| {
        let mut px = [0u8; 3];
        for c in &mut px {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *c = state as u8;
        }
        Rgb(px)
    })
}

pub fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(&photo(width, height), ImageFormat::Jpeg)
}

/// Format and dimensions of encoded bytes, read by the `image` crate.
pub fn decoded(bytes: &[u8]) -> (ImageFormat, u32, u32) {
    let format = image::guess_format(bytes).expect("a known image format");
    let img = image::load_from_memory(bytes).expect("decodes");
    (format, img.width(), img.height())
}
