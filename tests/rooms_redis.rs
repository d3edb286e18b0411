//! Rooms across instances (`backend.kind: redis`): three in-process
//! instances, each with its own `RedisBus` and `RedisRooms` on one
//! throwaway `redis-server` (and a key prefix of each test's own), serve
//! one set of share and img2img rooms: live traffic, history, the text
//! pad, the member list and the member bound. Frames are awaited with a
//! bounded wait, never a sleep.

mod redis_support;
mod rooms_support;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::ImageFormat;
use pixpress::backend::{RedisBus, RedisRooms};
use pixpress::config::{BackendKind, Settings};
use redis_support::Redis;
use rooms_support::{decoded, jpeg, serve_on, Client};
use serde_json::{json, Value};

fn settings(redis: &Redis, prefix: &str) -> Settings {
    let mut s = Settings::default();
    s.backend.kind = BackendKind::Redis;
    s.backend.redis_url = redis.url.clone();
    s.backend.key_prefix = format!("rooms-test:{prefix}:");
    s.share.chunk_size = 8192;
    s
}

/// Three instances on one Redis.
async fn instances(redis: &Redis) -> [SocketAddr; 3] {
    instances_with(redis, "live", |_| {}).await
}

/// Three instances on one Redis, under key prefix `prefix`, with settings
/// changed by `tweak`.
async fn instances_with(
    redis: &Redis,
    prefix: &str,
    tweak: impl Fn(&mut Settings),
) -> [SocketAddr; 3] {
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let mut s = settings(redis, prefix);
        tweak(&mut s);
        let bus = RedisBus::connect(&s.backend).await.expect("connects");
        let repos = RedisRooms::connect(&s.backend).await.expect("connects");
        addrs.push(serve_on(s, Arc::new(bus), &repos).await);
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

/// A share member with every message, presence included.
async fn join_raw(addr: SocketAddr, room: &str, name: &str) -> (Client, Vec<String>) {
    let mut c = Client::connect(addr, &format!("/ws/share/{room}?name={name}")).await;
    let list = c.expect("userList").await;
    let users = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    (c, users)
}

#[tokio::test]
async fn a_late_joiner_on_another_instance_gets_the_history() {
    let redis = Redis::start();
    let [a, b, c] = instances_with(&redis, "history", |s| s.share.history = 2).await;
    let mut alice = join_share(a, "r", "alice").await;
    let mut bob = join_share(b, "r", "bob").await;
    for text in ["one", "two", "three"] {
        alice.send_json(json!({"type":"text","text":text})).await;
        // Bob, on another instance, is sent an item once it is kept.
        assert_eq!(bob.expect("text").await["text"], text);
        assert_eq!(alice.expect("text").await["text"], text);
    }
    let mut image_sent = Vec::new();
    {
        let file = jpeg(120, 80);
        let b64 = STANDARD.encode(&file);
        bob.send_json(json!({"type":"imageUploadStart","filename":"p.jpg","mimeType":"image/jpeg","size":file.len()}))
            .await;
        bob.send_json(json!({"type":"imageUploadChunk","filename":"p.jpg","chunkIndex":0,"totalChunks":1,"data":b64}))
            .await;
        let (done, bytes) = read_image(&mut alice).await;
        assert_eq!(done["from"], "bob");
        image_sent.extend(bytes);
    }
    // Carol joins on a third instance after both got everything.
    let mut carol = join_share(c, "r", "carol").await;
    assert_eq!(
        carol.expect("text").await["text"],
        "three",
        "the last two items"
    );
    let (done, bytes) = read_image(&mut carol).await;
    assert_eq!(done["from"], "bob");
    assert_eq!(bytes, image_sent);
    // Then live traffic, nothing of the history twice.
    alice.send_json(json!({"type":"text","text":"live"})).await;
    assert_eq!(carol.expect("text").await["text"], "live");

    // Another room has a history of its own.
    let mut dave = join_share(b, "other", "dave").await;
    dave.send_json(json!({"type":"text","text":"mine"})).await;
    assert_eq!(
        dave.expect("text").await["text"],
        "mine",
        "no history before it"
    );
}

#[tokio::test]
async fn the_text_pad_set_on_one_instance_is_what_a_joiner_on_another_sees() {
    let redis = Redis::start();
    let [a, b, c] = instances_with(&redis, "pad", |s| s.share.history = 0).await;
    let mut alice = join_share(a, "r", "alice").await;
    let mut bob = join_share(b, "r", "bob").await;
    for text in ["draft", "final text\nline 2"] {
        alice
            .send_json(json!({"type":"textUpdate","text":text}))
            .await;
        let m = bob.expect("textUpdate").await;
        assert_eq!(
            (m["text"].as_str(), m["from"].as_str()),
            (Some(text), Some("alice"))
        );
    }
    let mut carol = join_share(c, "r", "carol").await;
    let pad = carol.expect("textUpdate").await;
    assert_eq!(pad["text"], "final text\nline 2", "the latest text only");
    assert_eq!(pad["from"], "alice");
    // Bob clears it from his instance; a joiner on alice's sees it empty.
    bob.send_json(json!({"type":"textUpdate","text":""})).await;
    assert_eq!(alice.expect("textUpdate").await["text"], "");
    let mut dave = join_share(a, "r", "dave").await;
    assert_eq!(dave.expect("textUpdate").await["text"], "");
}

#[tokio::test]
async fn the_user_list_counts_every_member_on_every_instance() {
    let redis = Redis::start();
    let [a, b, c] = instances_with(&redis, "presence", |_| {}).await;
    let (mut alice, users) = join_raw(a, "r", "alice").await;
    assert_eq!(users, ["alice"]);
    let (mut bob, users) = join_raw(b, "r", "bob").await;
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(alice.expect("userConnected").await["name"], "bob");
    let (carol, users) = join_raw(c, "r", "carol").await;
    assert_eq!(users, ["alice", "bob", "carol"]);
    for member in [&mut alice, &mut bob] {
        assert_eq!(member.expect("userConnected").await["name"], "carol");
    }
    let (_elsewhere, users) = join_raw(b, "other", "eve").await;
    assert_eq!(users, ["eve"], "another room's list");

    // Carol leaves: both others, on two other instances, are told.
    carol.close().await;
    for member in [&mut alice, &mut bob] {
        assert_eq!(member.expect("userDisconnected").await["name"], "carol");
    }
    let (mut dave, users) = join_raw(c, "r", "dave").await;
    assert_eq!(users, ["alice", "bob", "dave"]);
    // And dave is told of later arrivals on other instances.
    let (_fay, users) = join_raw(a, "r", "fay").await;
    assert_eq!(users, ["alice", "bob", "dave", "fay"]);
    assert_eq!(dave.expect("userConnected").await["name"], "fay");
}

#[tokio::test]
async fn max_members_counts_the_whole_room_across_instances() {
    let redis = Redis::start();
    let [a, b, c] = instances_with(&redis, "bound", |s| {
        s.share.max_members = 2;
        s.img2img.max_members = 2;
    })
    .await;
    let (mut alice, _) = join_raw(a, "r", "alice").await;
    let (bob, users) = join_raw(b, "r", "bob").await;
    assert_eq!(users.len(), 2);
    assert_eq!(alice.expect("userConnected").await["name"], "bob");
    // Room r has two members, one on each of two other instances.
    let mut refused = Client::connect(c, "/ws/share/r?name=carol").await;
    let m = refused.expect("error").await;
    assert_eq!(m["code"], "room_full", "{m}");
    assert_eq!(m["error"], "room \"r\" is full (2 members)");
    assert!(matches!(refused.read().await, rooms_support::Read::Closed));
    // Another room is not full.
    join_raw(c, "other", "carol").await;
    // Once bob has left there is room again.
    bob.close().await;
    assert_eq!(alice.expect("userDisconnected").await["name"], "bob");
    let (_carol, users) = join_raw(c, "r", "carol").await;
    assert_eq!(users, ["alice", "carol"]);

    // img2img rooms count their clients across instances too.
    let _one = connect_img2img(a, "/ws/img2img/studio", None).await;
    let two = connect_img2img(b, "/ws/img2img/studio", None).await;
    let mut third = Client::connect(c, "/ws/img2img/studio").await;
    let m = third.expect("error").await;
    assert_eq!(m["message"], "room_full", "{m}");
    assert!(matches!(third.read().await, rooms_support::Read::Closed));
    // The two still in it are served.
    let mut two = two;
    two.send_json(json!({"type":"ping"})).await;
    assert_eq!(two.json().await["type"], "pong");
}

#[tokio::test]
async fn a_member_whose_instance_stops_renewing_drops_off_the_list() {
    let redis = Redis::start();
    // Renewals every 20 minutes: none during the test.
    let [a, b, c] = instances_with(&redis, "expiry", |s| {
        s.backend.member_ttl = std::time::Duration::from_secs(3600)
    })
    .await;
    let (_alice, _) = join_raw(a, "r", "alice").await;
    let (_bob, users) = join_raw(b, "r", "bob").await;
    assert_eq!(users, ["alice", "bob"]);
    // Bob's instance stops renewing (as if it had died): his entry's
    // expiry is set in the past, as it would be member_ttl later.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = "rooms-test:expiry:room:{share:r}:roster";
    let entries: Vec<String> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let bobs: Vec<&String> = entries.iter().filter(|e| e.ends_with("|bob")).collect();
    assert_eq!(bobs.len(), 1, "{entries:?}");
    let _: i64 = redis::cmd("ZADD")
        .arg(key)
        .arg("XX")
        .arg(1)
        .arg(bobs[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_carol, users) = join_raw(c, "r", "carol").await;
    assert_eq!(users, ["alice", "carol"]);
}
