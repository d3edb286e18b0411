//! Rooms across instances (`backend.kind: redis`): three in-process
//! instances, each with its own `RedisBus` on one throwaway `redis-server`,
//! serve one set of share and img2img rooms. Frames are awaited with a
//! bounded wait, never a sleep.

mod redis_support;
mod rooms_support;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::ImageFormat;
use pixpress::backend::RedisBus;
use pixpress::config::{BackendKind, Settings};
use redis_support::Redis;
use rooms_support::{decoded, jpeg, serve_on, Client};
use serde_json::{json, Value};

fn settings(redis: &Redis) -> Settings {
    let mut s = Settings::default();
    s.backend.kind = BackendKind::Redis;
    s.backend.redis_url = redis.url.clone();
    s.backend.key_prefix = "rooms-test:".into();
    s.share.chunk_size = 8192;
    s
}

/// Three instances on one Redis.
async fn instances(redis: &Redis) -> [SocketAddr; 3] {
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let s = settings(redis);
        let bus = RedisBus::connect(&s.backend).await.expect("connects");
        addrs.push(serve_on(s, Arc::new(bus)).await);
    }
    addrs.try_into().unwrap()
}

const PRESENCE: &[&str] = &["userConnected", "userDisconnected"];

async fn join_share(addr: SocketAddr, room: &str, name: &str) -> Client {
    let mut c = Client::connect(addr, &format!("/ws/share/{room}?name={name}")).await;
    let list = c.expect("userList").await;
    assert_eq!(list["users"].as_array().unwrap().last(), Some(&json!(name)));
    c.ignoring(PRESENCE)
}

/// Reads the processed image's stream (passing over progress and the
/// upload's announcement) and returns its complete message and bytes.
async fn read_image(c: &mut Client) -> (Value, Vec<u8>) {
    let mut bytes = Vec::new();
    loop {
        let m = c.json().await;
        match m["type"].as_str().unwrap() {
            "imageUploadProgress" | "imageUploadStart" => {}
            "imageUploadChunk" => {
                bytes.extend(STANDARD.decode(m["data"].as_str().unwrap()).unwrap());
            }
            "imageUploadComplete" => return (m, bytes),
            other => panic!("unexpected {other}: {m}"),
        }
    }
}

#[tokio::test]
async fn a_share_room_spans_three_instances() {
    let redis = Redis::start();
    let [a, b, c] = instances(&redis).await;
    let mut alice = join_share(a, "r", "alice").await;
    let mut bob = join_share(b, "r", "bob").await;
    let mut carol = join_share(c, "r", "carol").await;
    let mut elsewhere = join_share(a, "other", "eve").await;

    bob.send_json(json!({"type":"text","text":"hello"})).await;
    for member in [&mut alice, &mut bob, &mut carol] {
        let m = member.expect("text").await;
        assert_eq!(m["text"], "hello");
        assert_eq!(m["from"], "bob");
    }
    // Carol's text was published after bob's reached her: a second copy
    // of bob's own frame would reach bob before it.
    carol
        .send_json(json!({"type":"text","text":"second"}))
        .await;
    for member in [&mut alice, &mut bob, &mut carol] {
        let m = member.expect("text").await;
        assert_eq!(m["text"], "second", "{m}");
        assert_eq!(m["from"], "carol");
    }

    let file = jpeg(300, 200);
    let b64 = STANDARD.encode(&file);
    let chunks: Vec<&str> = b64
        .as_bytes()
        .chunks(4000)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    bob.send_json(json!({"type":"imageUploadStart","filename":"p.jpg","mimeType":"image/jpeg","size":file.len()}))
        .await;
    for (i, chunk) in chunks.iter().enumerate() {
        bob.send_json(
            json!({"type":"imageUploadChunk","filename":"p.jpg","chunkIndex":i,
            "totalChunks":chunks.len(),"data":chunk}),
        )
        .await;
    }
    let (done_b, bytes_b) = read_image(&mut bob).await;
    for member in [&mut alice, &mut carol] {
        let (done, bytes) = read_image(member).await;
        assert_eq!(done["from"], "bob");
        assert_eq!(done, done_b);
        assert_eq!(bytes, bytes_b);
    }
    assert_eq!(decoded(&bytes_b).1, 300);

    // A text in the other room comes next for eve: nothing of room r did.
    elsewhere
        .send_json(json!({"type":"text","text":"mine"}))
        .await;
    assert_eq!(elsewhere.expect("text").await["text"], "mine");
}

async fn connect_img2img(addr: SocketAddr, path: &str, kind: Option<&str>) -> Client {
    let mut c = Client::connect(addr, path).await;
    c.expect("welcome").await;
    if let Some(kind) = kind {
        c.send_json(json!({"type":"register","client_type":kind}))
            .await;
        assert_eq!(c.expect("registered").await["client_type"], kind);
    }
    c
}

#[tokio::test]
async fn an_img2img_result_reaches_consumers_on_other_instances_only() {
    let redis = Redis::start();
    let [a, b, c] = instances(&redis).await;
    let mut producer = connect_img2img(a, "/ws/img2img/studio", Some("producer")).await;
    let mut consumer_b = connect_img2img(b, "/ws/img2img/studio", Some("consumer")).await;
    let mut consumer_c = connect_img2img(c, "/ws/img2img/studio", Some("consumer")).await;
    let mut bystander_c = connect_img2img(c, "/ws/img2img/studio", None).await;

    producer
        .send_json(json!({"type":"img2img_binary","prompt":"resize 100x100","format":"jpeg","timestamp":7}))
        .await;
    producer.send_binary(jpeg(200, 100)).await;
    let mine = producer.expect("img2img_result_binary").await;
    let my_bytes = producer.binary().await;
    assert_eq!(decoded(&my_bytes), (ImageFormat::Jpeg, 100, 50));
    for consumer in [&mut consumer_b, &mut consumer_c] {
        assert_eq!(consumer.expect("img2img_result_binary").await, mine);
        assert_eq!(consumer.binary().await, my_bytes);
    }
    // The bystander is on consumer_c's instance, served by the same
    // delivery: were the result for it, it would come before the pong.
    bystander_c.send_json(json!({"type":"ping"})).await;
    assert_eq!(bystander_c.json().await["type"], "pong");
}
