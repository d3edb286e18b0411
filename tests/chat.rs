//! The chat protocol (`GET /ws/chat?user=ID`) as real WebSocket clients see
//! it, against the chat routes served in-process (and, for attachments
//! made from uploads, the whole server).

mod chat_client;
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chat_client::Client;
use futures_util::future::BoxFuture;
use futures_util::SinkExt;
use md5::{Digest, Md5};
use pixpress::chat::{ImageRef, UploadedImages};
use pixpress::config::Settings;
use pixpress::jobs::WorkerPool;
use pixpress::protocols::ws::chat::routes;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Uploads known by md5, as the HTTP job store would answer.
#[derive(Default)]
struct Uploads(HashMap<String, ImageRef>);

impl UploadedImages for Uploads {
    fn find<'a>(&'a self, md5: &'a str) -> BoxFuture<'a, Option<ImageRef>> {
        Box::pin(std::future::ready(self.0.get(md5).cloned()))
    }
}

async fn serve_with(settings: Settings, uploads: Uploads) -> SocketAddr {
    let pool = WorkerPool::new(2, 8, Duration::from_secs(60));
    let app = routes(pool, Arc::new(settings), Arc::new(uploads));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn serve() -> SocketAddr {
    serve_with(Settings::default(), Uploads::default()).await
}

/// `value` without the field `name`.
fn without(value: &Value, name: &str) -> Value {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove(name);
    }
    value
}

fn event_id(frame: &Value) -> u64 {
    frame["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("an event id: {frame}"))
}

#[tokio::test]
async fn the_protocol_sequence_replays_eight_missed_events_then_goes_live() {
    let addr = serve().await;
    let (mut u1, _) = Client::subscribed(addr, "user1", 0).await;
    let (mut u2, answer) = Client::subscribed(addr, "user2", 0).await;
    assert_eq!(answer, json!({"lastEventId": 0, "count": 0}));

    // Event 1 reaches user2 live.
    let first = u1.say("user2", "hello").await;
    let own = u1.event("new").await;
    assert_eq!(
        own["payload"]["chatId"], "user2",
        "user1 sees the chat as user2"
    );
    let e = u2.event("new").await;
    assert_eq!(event_id(&e), 1);
    assert_eq!(
        e["payload"],
        json!({"messageId": first, "chatId": "user1", "userId": "user1", "from": "user1",
               "message": "hello"})
    );

    // user2 goes away; user1, a contact, is told.
    u2.close().await;
    let off = u1.event("offline").await;
    assert!(
        off.get("id").is_none(),
        "presence events carry no id: {off}"
    );
    assert_eq!(off["payload"]["chatId"], "user2");

    // Eight state changes while user2 is offline: six messages, an edit, a delete.
    let mut ids = vec![first];
    for i in 2..=7 {
        ids.push(u1.say("user2", &format!("message {i}")).await);
        u1.event("new").await;
    }
    let answer = u1
        .call("edit", json!({"messageId": ids[1], "message": "edited"}))
        .await;
    assert_eq!(answer, json!({"messageId": ids[1]}));
    u1.event("edit").await;
    u1.call("delete", json!({"messageId": ids[2]})).await;
    u1.event("delete").await;

    // user2 comes back from event 1: 8 missed events, in order, then live.
    let mut u2 = Client::connect(addr, "user2").await;
    let on = u1.event("online").await;
    assert_eq!(on["payload"]["chatId"], "user2");
    assert_eq!(
        u2.call("subscribe", json!({"lastEventId": 1})).await,
        json!({"lastEventId": 9, "count": 8})
    );
    let mut kinds = Vec::new();
    for want in 2..=9 {
        let e = u2.next().await;
        assert_eq!(e["type"], "event");
        assert_eq!(event_id(&e), want);
        assert_eq!(e["payload"]["chatId"], "user1");
        assert_eq!(e["payload"]["from"], "user1");
        kinds.push(e["eventType"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        kinds,
        ["new", "new", "new", "new", "new", "new", "edit", "delete"]
    );
    u2.nothing_pending().await;

    // typing: passed on, no id.
    u2.typing("user1").await;
    let t = u1.event("typing").await;
    assert!(t.get("id").is_none(), "{t}");
    assert_eq!(
        t["payload"],
        json!({"chatId": "user2", "userId": "user2", "from": "user2"})
    );

    // new from user2.
    let back = u2.say("user1", "hi back").await;
    assert_eq!(event_id(&u2.event("new").await), 10, "user2's own copy");
    let e = u1.event("new").await;
    assert_eq!(e["payload"]["messageId"], back);
    assert_eq!(e["payload"]["chatId"], "user2");

    // delivered and read, by the recipient, reach the author (the event
    // is named `dlvrd`, whichever name the request used).
    for (kind, event, id) in [("delivered", "dlvrd", 11), ("read", "read", 12)] {
        assert_eq!(
            u2.call(kind, json!({"messageId": first})).await,
            json!({"messageId": first})
        );
        assert_eq!(event_id(&u2.event(event).await), id);
        let e = u1.event(event).await;
        assert!(e["payload"]["timestamp"].is_u64(), "{e}");
        assert_eq!(
            without(&e["payload"], "timestamp"),
            json!({"messageId": first, "chatId": "user2", "from": "user2"})
        );
    }

    // delete, by the author, reaches the recipient.
    u1.call("delete", json!({"messageId": ids[3]})).await;
    u1.event("delete").await;
    let e = u2.event("delete").await;
    assert_eq!(event_id(&e), 13);
    assert_eq!(
        e["payload"],
        json!({"messageId": ids[3], "chatId": "user1", "from": "user1"})
    );

    // history shows what is left, oldest first.
    let page = u2.call("history", json!({"chatId": "user1"})).await;
    let listed: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [first, ids[1], ids[4], ids[5], ids[6], back]);
    assert_eq!(page["hasMore"], false);
    let m0 = &page["messages"][0];
    assert_eq!(
        (&m0["delivered"], &m0["read"], &m0["from"]),
        (&json!(true), &json!(true), &json!("user1"))
    );
    assert_eq!(
        (
            &page["messages"][1]["message"],
            &page["messages"][1]["edited"]
        ),
        (&json!("edited"), &json!(true))
    );
    u1.nothing_pending().await;
    u2.nothing_pending().await;
}

#[tokio::test]
async fn a_reconnecting_client_resumes_with_each_event_exactly_once() {
    let addr = serve().await;
    let (mut a, _) = Client::subscribed(addr, "alice", 0).await;
    let (mut b, _) = Client::subscribed(addr, "bob", 0).await;
    for i in 0..3 {
        a.say("bob", &format!("{i}")).await;
        a.event("new").await;
    }
    let mut last = 0;
    for want in 1..=3 {
        last = event_id(&b.event("new").await);
        assert_eq!(last, want);
    }
    b.close().await;
    a.event("offline").await;
    for i in 3..5 {
        a.say("bob", &format!("{i}")).await;
        a.event("new").await;
    }

    let mut b = Client::connect(addr, "bob").await;
    a.event("online").await;
    let answer = b.call("subscribe", json!({"lastEventId": last})).await;
    assert_eq!(answer, json!({"lastEventId": 5, "count": 2}));
    let texts =
        [b.event("new").await, b.event("new").await].map(|e| e["payload"]["message"].clone());
    assert_eq!(texts, [json!("3"), json!("4")]);
    a.say("bob", "5").await;
    let live = b.event("new").await;
    assert_eq!(
        (event_id(&live), &live["payload"]["message"]),
        (6, &json!("5"))
    );
    b.nothing_pending().await;

    // An id the server does not know (say, from before a restart) is flagged.
    let answer = b.call("subscribe", json!({"lastEventId": 99})).await;
    assert_eq!(
        answer,
        json!({"lastEventId": 6, "count": 0, "truncated": true})
    );
}

#[tokio::test]
async fn events_arriving_during_a_replay_follow_it_without_gap_or_duplicate() {
    const SENT: u64 = 300;
    let addr = serve().await;
    let mut a = Client::connect(addr, "alice").await;
    // Half is waiting for bob; the other half is sent while he subscribes.
    for i in 0..SENT / 2 {
        a.say("bob", &i.to_string()).await;
    }
    let sender = tokio::spawn(async move {
        for i in SENT / 2..SENT {
            a.say("bob", &i.to_string()).await;
        }
        a
    });
    // Subscribe while alice is still sending.
    let (mut b, answer) = Client::subscribed(addr, "bob", 0).await;
    let replayed = answer["count"].as_u64().unwrap();
    assert_eq!(
        answer["lastEventId"].as_u64().unwrap(),
        replayed,
        "a replay from 0 holds every event"
    );
    let mut seen = Vec::new();
    while seen.len() < SENT as usize {
        let e = b.event("new").await;
        seen.push((
            event_id(&e),
            e["payload"]["message"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        ));
    }
    let want: Vec<(u64, u64)> = (1..=SENT).map(|i| (i, i - 1)).collect();
    assert_eq!(
        seen, want,
        "ids 1..=N in order, each message once, in the order sent"
    );
    // alice stays connected: her going offline would be an event for bob.
    let _alice = sender.await.unwrap();
    b.nothing_pending().await;
}

#[tokio::test]
async fn two_concurrent_senders_give_every_socket_of_the_recipient_the_same_gapless_sequence() {
    const EACH: u64 = 100;
    let addr = serve().await;
    let (mut b1, _) = Client::subscribed(addr, "bob", 0).await;
    let (mut b2, _) = Client::subscribed(addr, "bob", 0).await;
    let senders: Vec<_> = ["alice", "carol"]
        .into_iter()
        .map(|name| {
            tokio::spawn(async move {
                let mut c = Client::connect(addr, name).await;
                let mut ids = Vec::new();
                for i in 0..EACH {
                    ids.push(c.say("bob", &format!("{name} {i}")).await);
                }
                (c, ids)
            })
        })
        .collect();
    let mut message_ids = Vec::new();
    // The senders stay connected: their going offline would be events for bob.
    let mut connected = Vec::new();
    for s in senders {
        let (c, ids) = s.await.unwrap();
        connected.push(c);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "one sender's message ids grow"
        );
        message_ids.extend(ids);
    }
    let mut sequences = Vec::new();
    for b in [&mut b1, &mut b2] {
        let mut seq = Vec::new();
        let mut per_sender: HashMap<String, Vec<u64>> = HashMap::new();
        for want in 1..=2 * EACH {
            let e = b.event("new").await;
            assert_eq!(event_id(&e), want, "strictly increasing, no gaps");
            let (from, n) = e["payload"]["message"]
                .as_str()
                .unwrap()
                .split_once(' ')
                .unwrap();
            per_sender
                .entry(from.to_owned())
                .or_default()
                .push(n.parse().unwrap());
            seq.push(e["payload"]["messageId"].as_u64().unwrap());
        }
        for (from, ns) in per_sender {
            assert_eq!(
                ns,
                (0..EACH).collect::<Vec<_>>(),
                "{from}'s messages in the order sent"
            );
        }
        b.nothing_pending().await;
        sequences.push(seq);
    }
    assert_eq!(
        sequences[0], sequences[1],
        "both sockets see the same order"
    );
    message_ids.sort_unstable();
    let mut got = sequences[0].clone();
    got.sort_unstable();
    assert_eq!(got, message_ids);
}

#[tokio::test]
async fn every_socket_of_a_user_gets_the_events_including_its_own_actions() {
    let addr = serve().await;
    let (mut a, _) = Client::subscribed(addr, "alice", 0).await;
    let (mut phone, _) = Client::subscribed(addr, "bob", 0).await;
    let (mut laptop, _) = Client::subscribed(addr, "bob", 0).await;
    let m = a.say("bob", "hi").await;
    a.event("new").await;
    for b in [&mut phone, &mut laptop] {
        let e = b.event("new").await;
        assert_eq!((event_id(&e), &e["payload"]["messageId"]), (1, &json!(m)));
    }
    // bob reads on the phone: the laptop learns it too.
    phone.call("read", json!({"messageId": m})).await;
    for b in [&mut phone, &mut laptop] {
        let e = b.event("read").await;
        assert_eq!((event_id(&e), &e["payload"]["from"]), (2, &json!("bob")));
    }
    a.event("read").await;
    // A second socket is not a new presence; closing one of two is not offline.
    phone.close().await;
    laptop.nothing_pending().await;
    a.nothing_pending().await;
    laptop.close().await;
    assert_eq!(a.event("offline").await["payload"]["chatId"], "bob");
}

#[tokio::test]
async fn only_the_author_edits_or_deletes_and_only_the_recipient_marks() {
    let addr = serve().await;
    let (mut a, _) = Client::subscribed(addr, "alice", 0).await;
    let (mut b, _) = Client::subscribed(addr, "bob", 0).await;
    let (mut c, _) = Client::subscribed(addr, "carol", 0).await;
    let m = a.say("bob", "mine").await;
    a.event("new").await;
    b.event("new").await;

    b.call_err(
        "edit",
        json!({"messageId": m, "message": "theirs"}),
        "forbidden",
    )
    .await;
    b.call_err("delete", json!({"messageId": m}), "forbidden")
        .await;
    c.call_err("delete", json!({"messageId": m}), "forbidden")
        .await;
    a.call_err("delivered", json!({"messageId": m}), "forbidden")
        .await;
    a.call_err("read", json!({"messageId": m}), "forbidden")
        .await;
    c.call_err("read", json!({"messageId": m}), "forbidden")
        .await;
    // Nothing changed and nobody was told.
    for x in [&mut a, &mut b, &mut c] {
        x.nothing_pending().await;
    }
    let page = c.call("history", json!({"chatId": "alice"})).await;
    assert_eq!(
        page["messages"],
        json!([]),
        "a third user sees nothing of the chat"
    );
    let page = b.call("history", json!({"chatId": "alice"})).await;
    assert_eq!(page["messages"][0]["message"], "mine");
    assert_eq!(page["messages"][0]["read"], false);
}

#[tokio::test]
async fn bad_input_gets_an_error_response_and_the_socket_stays_usable() {
    let mut settings = Settings::default();
    settings.chat.max_message_len = 10;
    let addr = serve_with(settings, Uploads::default()).await;
    let (mut a, _) = Client::subscribed(addr, "alice", 0).await;
    let (mut b, _) = Client::subscribed(addr, "bob", 0).await;
    let req = |id: &str, t: &str, p: Value| {
        json!({"type":"request","timestamp":1,"id":id,"payloadType":t,"payload":p}).to_string()
    };
    let cases: Vec<(String, Value, &str)> = vec![
        ("this is not json".into(), Value::Null, "invalid_json"),
        ("[1,2]".into(), Value::Null, "invalid_request"),
        (
            json!({"type":"gossip","id":"x1"}).to_string(),
            json!("x1"),
            "unknown_type",
        ),
        (req("x2", "shout", json!({})), json!("x2"), "unknown_type"),
        (
            req("x3", "new", json!({"message":"no chat"})),
            json!("x3"),
            "invalid_request",
        ),
        (
            req("x4", "new", json!({"chatId":"bob"})),
            json!("x4"),
            "invalid_request",
        ),
        (
            req("x5", "new", json!({"chatId":7,"message":"hi"})),
            json!("x5"),
            "invalid_request",
        ),
        (
            req("x6", "delete", json!({"messageId":"one"})),
            json!("x6"),
            "invalid_request",
        ),
        (
            req("x7", "subscribe", json!({"lastEventId":-1})),
            json!("x7"),
            "invalid_request",
        ),
        (
            req("x8", "read", json!({"messageId":424242})),
            json!("x8"),
            "unknown_message",
        ),
        (
            req("x9", "edit", json!({"messageId":424242,"message":"x"})),
            json!("x9"),
            "unknown_message",
        ),
        (
            req("x10", "new", json!({"chatId":"alice","message":"me"})),
            json!("x10"),
            "invalid_request",
        ),
        (
            req(
                "x11",
                "new",
                json!({"chatId":"bob","message":"far too long a text"}),
            ),
            json!("x11"),
            "message_too_long",
        ),
        (
            req("x12", "new", json!({"chatId":"bob","message":""})),
            json!("x12"),
            "invalid_request",
        ),
        (
            req("x13", "history", json!({"chatId":"bob","limit":0})),
            json!("x13"),
            "invalid_request",
        ),
        (
            req("x14", "delete", json!(null)),
            json!("x14"),
            "invalid_request",
        ),
        (
            json!({"type":"request","payloadType":"read","payload":{"messageId":1}}).to_string(),
            Value::Null,
            "invalid_request",
        ),
        (
            json!({"type":"event","eventType":"typing","payload":{}}).to_string(),
            Value::Null,
            "invalid_request",
        ),
        (
            json!({"type":"event","eventType":"typing","payload":{"chatId":"alice"}}).to_string(),
            Value::Null,
            "invalid_request",
        ),
        (
            json!({"type":"event","eventType":"new","payload":{}}).to_string(),
            Value::Null,
            "unknown_type",
        ),
    ];
    for (frame, id, code) in cases {
        a.send_text(frame.clone()).await;
        let answer = a.next().await;
        assert_eq!(answer["type"], "response", "{frame} -> {answer}");
        assert_eq!(answer["id"], id, "{frame} -> {answer}");
        assert_eq!(answer["payload"]["error"], code, "{frame} -> {answer}");
        assert!(answer["payload"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    a.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let answer = a.next().await;
    assert_eq!(
        answer["payload"]["error"], "binary_not_supported",
        "{answer}"
    );

    // Still usable, and no bad frame produced an event for anyone.
    b.nothing_pending().await;
    let m = a.say("bob", "ok").await;
    assert_eq!(a.event("new").await["payload"]["messageId"], m);
    assert_eq!(b.event("new").await["payload"]["messageId"], m);
}

#[tokio::test]
async fn a_connection_without_a_user_is_refused_and_an_oversized_frame_closes_only_its_socket() {
    let mut settings = Settings::default();
    settings.chat.max_frame_bytes = 4096;
    let addr = serve_with(settings, Uploads::default()).await;
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws/chat")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!(
            "expected HTTP 400, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }

    let (mut a, _) = Client::subscribed(addr, "alice", 0).await;
    let (mut b, _) = Client::subscribed(addr, "bob", 0).await;
    a.send("new", json!({"chatId": "bob", "message": "x".repeat(8192)}))
        .await;
    let answer = a.next().await;
    assert_eq!(answer["payload"]["error"], "frame_too_large", "{answer}");
    // bob is unaffected.
    let (mut c, _) = Client::subscribed(addr, "carol", 0).await;
    c.say("bob", "still here").await;
    assert_eq!(b.event("new").await["payload"]["message"], "still here");
}

#[tokio::test]
async fn a_message_may_carry_an_earlier_upload_by_md5() {
    let upload = ImageRef {
        md5: "0cc175b9c0f1b6a831c399e269772661".into(),
        url: "/download/0cc175b9c0f1b6a831c399e269772661".into(),
        width: 640,
        height: 480,
        size: 12345,
    };
    let uploads = Uploads(HashMap::from([(upload.md5.clone(), upload.clone())]));
    let addr = serve_with(Settings::default(), uploads).await;
    let (mut a, _) = Client::subscribed(addr, "alice", 0).await;
    let (mut b, _) = Client::subscribed(addr, "bob", 0).await;
    a.call(
        "new",
        json!({"chatId":"bob","message":"look","image":upload.md5.to_uppercase()}),
    )
    .await;
    let e = b.event("new").await;
    assert_eq!(
        e["payload"]["image"],
        serde_json::to_value(&upload).unwrap()
    );
    assert_eq!(e["payload"]["message"], "look");
    a.event("new").await;
    a.call_err(
        "new",
        json!({"chatId":"bob","message":"","image":"ffffffffffffffffffffffffffffffff"}),
        "unknown_image",
    )
    .await;
    a.call_err(
        "new",
        json!({"chatId":"bob","message":"","image":"%%%"}),
        "invalid_base64",
    )
    .await;
    b.nothing_pending().await;
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn a_base64_image_is_processed_to_webp_within_bounds_and_served() {
    let mut settings = Settings::default();
    settings.chat.max_dimension = 800;
    let addr = serve_with(settings, Uploads::default()).await;
    let (mut a, _) = Client::subscribed(addr, "alice", 0).await;
    let (mut b, _) = Client::subscribed(addr, "bob", 0).await;
    let data = base64::engine::general_purpose::STANDARD.encode(png(1600, 1000));
    let answer = a
        .call("new", json!({"chatId":"bob","message":"","image":data}))
        .await;
    assert!(answer["messageId"].is_u64(), "{answer}");
    let image = b.event("new").await["payload"]["image"].clone();
    assert_eq!(
        (&image["width"], &image["height"]),
        (&json!(800), &json!(500)),
        "{image}"
    );
    let md5 = image["md5"].as_str().unwrap();
    assert_eq!(image["url"], format!("/chat/images/{md5}"));

    let response = reqwest::get(format!("http://{addr}/chat/images/{md5}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/webp");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, image["size"].as_u64().unwrap());
    assert_eq!(format!("{:x}", Md5::digest(&bytes)), md5);
    let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::WebP).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (800, 500));

    // The same image may be sent again by its md5.
    a.event("new").await;
    a.call("new", json!({"chatId":"bob","message":"again","image":md5}))
        .await;
    assert_eq!(b.event("new").await["payload"]["image"], image);

    let missing = reqwest::get(format!("http://{addr}/chat/images/{}", "0".repeat(32)))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // Bytes that are no image are refused by the pipeline, by name.
    let junk = base64::engine::general_purpose::STANDARD.encode(b"definitely not an image");
    a.event("new").await;
    a.call_err(
        "new",
        json!({"chatId":"bob","message":"","image":junk}),
        "unsupported_format",
    )
    .await;
}

/// The frame of a request as the original client writes it.
fn request(id: &str, timestamp: u64, payload_type: &str, payload: Value) -> Value {
    json!({"type": "request", "timestamp": timestamp, "id": id,
           "payloadType": payload_type, "payload": payload})
}

/// The next frame, which must be a response to `id`; the whole frame.
async fn response_frame(c: &mut Client, id: &str) -> Value {
    let frame = c.next().await;
    assert_eq!(
        (&frame["type"], &frame["id"]),
        (&json!("response"), &json!(id)),
        "{frame}"
    );
    assert!(frame["timestamp"].is_u64(), "{frame}");
    frame
}

/// The original chat API's worked example, message by message as its client
/// sends them (its ids, its payloads), then the rest of the original's
/// requests. What differs from the example's text is pixpress's by design
/// (docs/chat.md, Compatibility): the actor's own copy of each event, which
/// takes an id of the actor's, and `from` beside the original's fields.
#[tokio::test]
async fn the_original_worked_example_plays_message_by_message() {
    let addr = serve().await;
    // Before the example, User1 has seen its event 1 and missed 8 more:
    // messages from User3.
    let (mut u3, _) = Client::subscribed(addr, "User3", 0).await;
    let (mut u1, _) = Client::subscribed(addr, "User1", 0).await;
    u3.say("User1", "m1").await;
    u3.event("new").await;
    assert_eq!(event_id(&u1.event("new").await), 1);
    u1.close().await;
    let off = u3.event("offline").await;
    assert_eq!(
        off["payload"],
        json!({"userId": "User1", "chatId": "User1"})
    );
    for i in 2..=9 {
        u3.say("User1", &format!("m{i}")).await;
        u3.event("new").await;
    }

    // User1 to server: subscribe, my last event id: 1.
    let mut u1 = Client::connect(addr, "User1").await;
    let on = u3.event("online").await;
    assert!(on.get("id").is_none(), "{on}");
    assert_eq!(on["payload"], json!({"userId": "User1", "chatId": "User1"}));
    u1.send_json(request(
        "0",
        1_700_500_000,
        "subscribe",
        json!({"lastEventId": 1}),
    ))
    .await;
    let r = response_frame(&mut u1, "0").await;
    assert_eq!(r["payload"], json!({"lastEventId": 9, "count": 8}));
    // Server to User1: 8 events.
    for want in 2..=9 {
        let e = u1.event("new").await;
        assert_eq!(event_id(&e), want);
        assert_eq!(
            without(&e["payload"], "messageId"),
            json!({"chatId": "User3", "userId": "User3", "from": "User3",
                   "message": format!("m{want}")})
        );
    }

    // User2 to server: subscribe from 0.
    let mut u2 = Client::connect(addr, "User2").await;
    u2.send_json(request(
        "0",
        1_700_800_000,
        "subscribe",
        json!({"lastEventId": 0}),
    ))
    .await;
    let r = response_frame(&mut u2, "0").await;
    assert_eq!(r["payload"], json!({"lastEventId": 0, "count": 0}));

    // User1 is typing to User2: a request without an id, never answered.
    u1.send_json(json!({"type": "request", "timestamp": 1_700_500_000,
                        "payloadType": "typing", "payload": {"chatId": "User2"}}))
        .await;
    let t = u2.next().await;
    assert!(t["timestamp"].is_u64(), "{t}");
    assert_eq!(
        without(&t, "timestamp"),
        json!({"type": "event", "eventType": "typing",
               "payload": {"chatId": "User1", "userId": "User1", "from": "User1"}})
    );
    u1.nothing_pending().await;

    // User1 sends a message with an image to User2: a foreign URL, passed on.
    let sent = json!({"type": "image", "id": "img123", "filename": "photo.jpg",
        "url": "<http://example.com/photo.jpg>",
        "payload": {"mimetype": "image/jpeg", "width": 1024, "height": 768, "size": 204800}});
    let mut carried = sent.clone();
    carried["meta"] = sent["payload"].clone();
    u1.send_json(request(
        "1",
        1_700_300_000,
        "new",
        json!({"chatId": "User2",
        "message": "Check out this photo!", "attachments": [sent]}),
    ))
    .await;
    let r = response_frame(&mut u1, "1").await;
    let m = r["payload"]["messageId"].as_u64().expect("a message id");
    assert_eq!(r["payload"], json!({"messageId": m}));
    let own = u1.event("new").await;
    assert_eq!(event_id(&own), 10, "User1's own copy");
    assert_eq!(own["payload"]["chatId"], "User2");
    let e = u2.event("new").await;
    assert_eq!(event_id(&e), 1);
    assert_eq!(
        e["payload"],
        json!({"chatId": "User1", "userId": "User1", "messageId": m,
               "message": "Check out this photo!", "attachments": [carried.clone()],
               "from": "User1"})
    );

    // User2: message delivered. Its response has no payload.
    u2.send_json(request(
        "101",
        1_700_200_000,
        "dlvrd",
        json!({"chatId": "User1", "messageId": m}),
    ))
    .await;
    let r = response_frame(&mut u2, "101").await;
    assert_eq!(
        without(&r, "timestamp"),
        json!({"type": "response", "id": "101"})
    );
    assert_eq!(event_id(&u2.event("dlvrd").await), 2, "User2's own copy");
    let e = u1.event("dlvrd").await;
    assert_eq!(event_id(&e), 11);
    let marked_at = e["payload"]["timestamp"]
        .as_u64()
        .expect("when it was marked");
    assert_eq!(
        e["payload"],
        json!({"chatId": "User2", "messageId": m, "timestamp": marked_at, "from": "User2"})
    );

    // User2: message read. Its response echoes the request's payload.
    u2.send_json(request(
        "102",
        1_700_200_000,
        "read",
        json!({"chatId": "User1", "messageId": m}),
    ))
    .await;
    let r = response_frame(&mut u2, "102").await;
    assert_eq!(r["payload"], json!({"chatId": "User1", "messageId": m}));
    assert_eq!(event_id(&u2.event("read").await), 3);
    let e = u1.event("read").await;
    assert_eq!(event_id(&e), 12);
    assert_eq!(
        without(&e["payload"], "timestamp"),
        json!({"chatId": "User2", "messageId": m, "from": "User2"})
    );

    // Only the recipient marks; only the author edits or deletes.
    let denied = u1
        .call("dlvrd", json!({"chatId": "User2", "messageId": m}))
        .await;
    assert_eq!(denied["error"], "forbidden", "{denied}");
    let denied = u2
        .call(
            "edit",
            json!({"chatId": "User1", "messageId": m, "message": "x"}),
        )
        .await;
    assert_eq!(denied["error"], "forbidden", "{denied}");
    let denied = u2
        .call("delete", json!({"chatId": "User1", "messageId": m}))
        .await;
    assert_eq!(denied["error"], "forbidden", "{denied}");
    let wrong_chat = u1
        .call(
            "edit",
            json!({"chatId": "User3", "messageId": m, "message": "x"}),
        )
        .await;
    assert_eq!(wrong_chat["error"], "unknown_message", "{wrong_chat}");

    // User1 edits it.
    u1.send_json(request(
        "3",
        1_700_300_000,
        "edit",
        json!({"chatId": "User2", "messageId": m, "message": "Check out this picture!"}),
    ))
    .await;
    assert_eq!(
        response_frame(&mut u1, "3").await["payload"],
        json!({"messageId": m})
    );
    assert_eq!(event_id(&u1.event("edit").await), 13);
    let e = u2.event("edit").await;
    assert_eq!(event_id(&e), 4);
    assert_eq!(
        (
            &e["payload"]["chatId"],
            &e["payload"]["messageId"],
            &e["payload"]["message"]
        ),
        (
            &json!("User1"),
            &json!(m),
            &json!("Check out this picture!")
        )
    );

    // Three more; one dlvrd covers them all, one event each for the author.
    let mut later = Vec::new();
    for text in ["one", "two", "three"] {
        later.push(u1.say("User2", text).await);
        u1.event("new").await;
        u2.event("new").await;
    }
    assert_eq!(
        u2.call("dlvrd", json!({"chatId": "User1", "messageId": later[2]}))
            .await,
        Value::Null,
        "no payload"
    );
    for (i, want) in later.iter().enumerate() {
        let own = u2.event("dlvrd").await;
        assert_eq!(
            (event_id(&own), &own["payload"]["messageId"]),
            (8 + i as u64, &json!(want))
        );
        let e = u1.event("dlvrd").await;
        assert_eq!(
            (event_id(&e), &e["payload"]["messageId"]),
            (17 + i as u64, &json!(want))
        );
    }
    // Marking again changes nothing and tells nobody.
    u2.call("dlvrd", json!({"chatId": "User1", "messageId": later[2]}))
        .await;
    u1.nothing_pending().await;
    u2.nothing_pending().await;

    // getMessages: the newest `count`, oldest first; with endId, up to it.
    let page = u2
        .call("getMessages", json!({"chatId": "User1", "count": 2}))
        .await;
    let ids: Vec<&Value> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["messageId"])
        .collect();
    assert_eq!(ids, [&json!(later[1]), &json!(later[2])]);
    let two = &page[0];
    assert_eq!(
        (&two["message"], &two["sender"]),
        (&json!("two"), &json!("User1"))
    );
    assert!(two["createdAt"].is_u64() && two["dlvrd"].is_u64(), "{two}");
    assert!(
        two.get("read").is_none() && two.get("updatedAt").is_none(),
        "{two}"
    );
    let all = u2
        .call("getMessages", json!({"chatId": "User1", "count": 100}))
        .await;
    assert_eq!(all.as_array().unwrap().len(), 4);
    let first = &all[0];
    assert_eq!(
        (
            &first["messageId"],
            &first["message"],
            &first["attachments"]
        ),
        (
            &json!(m),
            &json!("Check out this picture!"),
            &json!([carried])
        )
    );
    assert!(
        first["read"].is_u64() && first["updatedAt"].is_u64(),
        "{first}"
    );
    let upto = u2
        .call(
            "getMessages",
            json!({"chatId": "User1", "endId": later[0], "count": 1}),
        )
        .await;
    assert_eq!(upto.as_array().unwrap().len(), 1);
    assert_eq!(upto[0]["messageId"], later[0]);
    let bad = u2
        .call("getMessages", json!({"chatId": "User1", "count": 101}))
        .await;
    assert_eq!(bad["error"], "invalid_request", "{bad}");
    // getMessage: the same Message.
    assert_eq!(
        u2.call("getMessage", json!({"chatId": "User1", "messageId": m}))
            .await,
        *first
    );
    let other = u3
        .call("getMessage", json!({"chatId": "User1", "messageId": m}))
        .await;
    assert_eq!(
        other["error"], "unknown_message",
        "a third user sees nothing: {other}"
    );

    // getChats / getChat: newest chat first, as each user sees it.
    let chats = u2.call("getChats", json!({})).await;
    let t = chats[0]["lastMessageTime"].clone();
    assert!(t.is_u64(), "{chats}");
    assert_eq!(
        chats,
        json!([{"id": "User1", "chatId": "User1", "type": "dialog", "lastId": later[2],
                "lastMessageText": "three", "lastMessageTime": t, "lastMessageAuthor": "User1",
                "lastMessageStatus": "unread", "unreadCount": 3}])
    );
    let chats = u1.call("getChats", json!({})).await;
    let listed: Vec<(&Value, &Value, &Value)> = chats
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (&c["id"], &c["unreadCount"], &c["lastMessageStatus"]))
        .collect();
    assert_eq!(
        listed,
        [
            (&json!("User2"), &json!(0), &json!("unread")),
            (&json!("User3"), &json!(9), &json!("undelivered")),
        ]
    );
    assert_eq!(
        u1.call("getChat", json!({"chatId": "User2"})).await,
        chats[0]
    );
    assert_eq!(
        u1.call("getChat", json!({"chatId": "Nobody"})).await,
        json!({"id": "Nobody", "chatId": "Nobody", "type": "dialog", "unreadCount": 0})
    );

    // User1 deletes the message (the example's last step).
    u1.send_json(request(
        "2",
        1_700_400_000,
        "delete",
        json!({"chatId": "User2", "messageId": m}),
    ))
    .await;
    assert_eq!(
        response_frame(&mut u1, "2").await["payload"],
        json!({"messageId": m})
    );
    u1.event("delete").await;
    let e = u2.event("delete").await;
    assert_eq!(event_id(&e), 11);
    assert_eq!(
        e["payload"],
        json!({"chatId": "User1", "messageId": m, "from": "User1"})
    );

    // getEvents after 8, and getEvent: the events as they were sent.
    let events = u2.call("getEvents", json!({"fromEventId": 8})).await;
    let seen: Vec<(u64, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (event_id(e), e["eventType"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(9, "dlvrd"), (10, "dlvrd"), (11, "delete")]);
    assert_eq!(events[2]["type"], "event");
    assert_eq!(events[2]["payload"], e["payload"]);
    let first_event = u2.call("getEvent", json!({"eventId": 1})).await;
    assert_eq!(
        (&first_event["eventType"], event_id(&first_event)),
        (&json!("new"), 1)
    );
    assert_eq!(first_event["payload"]["attachments"][0]["id"], "img123");
    let gone = u2.call("getEvent", json!({"eventId": 99})).await;
    assert_eq!(gone["error"], "unknown_event", "{gone}");

    // User2 says it is offline: User1 is told, User2's socket stays open.
    u2.send_json(json!({"type": "event", "timestamp": 1_700_400_000, "eventType": "offline"}))
        .await;
    let off = u1.event("offline").await;
    assert!(off.get("id").is_none(), "{off}");
    assert_eq!(
        off["payload"],
        json!({"userId": "User2", "chatId": "User2"})
    );
    u2.nothing_pending().await;
    // Subscribing again makes it online.
    assert_eq!(
        u2.call("subscribe", json!({"lastEventId": 11})).await,
        json!({"lastEventId": 11, "count": 0})
    );
    assert_eq!(u1.event("online").await["payload"]["userId"], "User2");

    // User2 leaves, misses a message, comes back with its last event id.
    u2.close().await;
    assert_eq!(u1.event("offline").await["payload"]["userId"], "User2");
    let missed = u1.say("User2", "while you were away").await;
    u1.event("new").await;
    let mut u2 = Client::connect(addr, "User2").await;
    assert_eq!(u1.event("online").await["payload"]["userId"], "User2");
    u2.send_json(request(
        "0",
        1_700_900_000,
        "subscribe",
        json!({"lastEventId": 11}),
    ))
    .await;
    let r = response_frame(&mut u2, "0").await;
    assert_eq!(r["payload"], json!({"lastEventId": 12, "count": 1}));
    let e = u2.event("new").await;
    assert_eq!(
        (event_id(&e), &e["payload"]["messageId"]),
        (12, &json!(missed))
    );
    u2.nothing_pending().await;
    u1.nothing_pending().await;
}

/// Uploads `bytes` through `POST /upload` and waits for the result; its md5.
async fn upload_png(base: &str, bytes: Vec<u8>) -> String {
    let form = reqwest::multipart::Form::new()
        .part(
            "picture",
            reqwest::multipart::Part::bytes(bytes).file_name("cat.png"),
        )
        .text("format", "png");
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let md5 = answer["md5"].as_str().expect("an md5").to_owned();
    let status: Value = reqwest::get(format!("{base}/status/{md5}?wait=30"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status[0]["status"], "done", "{status}");
    md5
}

/// A chat image the server made: served as WebP, `size` bytes, of the
/// dimensions its meta says.
async fn assert_served_webp(base: &str, attachment: &Value) {
    let meta = &attachment["meta"];
    assert_eq!(attachment["payload"], *meta, "{attachment}");
    assert_eq!(meta["mimetype"], "image/webp", "{attachment}");
    let url = attachment["url"].as_str().unwrap();
    assert!(url.starts_with("/chat/images/"), "{attachment}");
    let response = reqwest::get(format!("{base}{url}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/webp");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, meta["size"].as_u64().unwrap());
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::WebP).unwrap();
    assert_eq!(
        (json!(image.width()), json!(image.height())),
        (meta["width"].clone(), meta["height"].clone())
    );
}

#[tokio::test]
async fn image_attachments_from_an_upload_or_base64_are_processed_and_foreign_urls_pass_untouched()
{
    let mut settings = common::test_settings();
    settings.chat.max_dimension = 800;
    let server = common::start(settings).await;
    let base = common::base_url(&server);
    let md5 = upload_png(&base, png(1200, 900)).await;
    let (mut a, _) = Client::subscribed(server.http_addr, "alice", 0).await;
    let (mut b, _) = Client::subscribed(server.http_addr, "bob", 0).await;

    // A URL of someone else's: a listener that would see a fetch.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let foreign_url = format!("http://{}/photo.jpg", elsewhere.local_addr().unwrap());
    let foreign_meta =
        json!({"mimetype": "image/jpeg", "width": 1024, "height": 768, "size": 204800});
    let data = base64::engine::general_purpose::STANDARD.encode(png(400, 300));
    let attachments = json!([
        {"type": "image", "id": md5, "filename": "cat.png"},
        {"type": "image", "id": "by-path", "url": format!("/download/{md5}?format=png")},
        {"type": "image", "id": "pasted", "filename": "pasted.png", "data": data},
        {"type": "image", "id": "img123", "filename": "photo.jpg", "url": foreign_url,
         "meta": foreign_meta},
        {"type": "file", "id": "f1", "filename": "notes.pdf", "url": "/files/notes.pdf",
         "payload": {"extension": "pdf", "size": 2048}},
    ]);
    let m = a
        .call(
            "new",
            json!({"chatId": "bob", "message": "", "attachments": attachments}),
        )
        .await["messageId"]
        .as_u64()
        .expect("a message id");
    let e = b.event("new").await;
    assert_eq!(e["payload"]["messageId"], m);
    assert!(e["payload"].get("message").is_some_and(|t| t == ""), "{e}");
    let got = e["payload"]["attachments"].as_array().unwrap().clone();
    assert_eq!(got.len(), 5);

    // By upload md5 (as id, then as a path of this server): the upload's
    // result made a WebP within the chat's bounds, under the client's id.
    for (attachment, id, filename) in [
        (&got[0], md5.as_str(), "cat.webp".to_owned()),
        (
            &got[1],
            "by-path",
            format!(
                "{}.webp",
                got[1]["url"].as_str().unwrap().rsplit('/').next().unwrap()
            ),
        ),
    ] {
        assert_eq!(
            (&attachment["type"], &attachment["id"]),
            (&json!("image"), &json!(id))
        );
        assert_eq!(attachment["filename"], filename, "{attachment}");
        assert_eq!(
            (&attachment["meta"]["width"], &attachment["meta"]["height"]),
            (&json!(800), &json!(600)),
            "{attachment}"
        );
        assert_served_webp(&base, attachment).await;
    }
    assert_eq!(
        got[0]["url"], got[1]["url"],
        "the same upload, the same image"
    );
    // By base64 data: processed, and the data is not passed on.
    assert_eq!(
        (&got[2]["id"], &got[2]["filename"], &got[2]["meta"]["width"]),
        (&json!("pasted"), &json!("pasted.webp"), &json!(400))
    );
    assert!(got[2].get("data").is_none(), "{}", got[2]);
    assert_served_webp(&base, &got[2]).await;
    // Someone else's URL and a file: as sent, with the meta under both names.
    assert_eq!(
        got[3],
        json!({"type": "image", "id": "img123", "filename": "photo.jpg", "url": foreign_url,
               "payload": foreign_meta, "meta": foreign_meta})
    );
    assert_eq!(got[4]["url"], "/files/notes.pdf");
    assert_eq!(got[4]["meta"], json!({"extension": "pdf", "size": 2048}));
    assert!(
        matches!(elsewhere.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the foreign URL was never fetched"
    );
    // The message keeps them: getMessage answers the same attachments.
    a.event("new").await;
    let kept = b
        .call("getMessage", json!({"chatId": "alice", "messageId": m}))
        .await;
    assert_eq!(kept["attachments"], json!(got));
    assert!(kept.get("message").is_none(), "no text: {kept}");

    // What is refused, to the sender only.
    let refused = [
        (
            json!([{"type": "file", "filename": "x.bin", "data": "AAAA"}]),
            "invalid_request",
        ),
        (
            json!([{"type": "image", "id": "ffffffffffffffffffffffffffffffff"}]),
            "unknown_image",
        ),
        (
            json!([{"type": "image", "id": "no-url"}]),
            "invalid_request",
        ),
        (json!([{"type": "sticker", "url": "x"}]), "invalid_request"),
        (json!([{"type": "image", "data": "%%%"}]), "invalid_base64"),
        (
            json!(vec![json!({"type": "file", "url": "x"}); 11]),
            "invalid_request",
        ),
        (
            json!([{"type": "file", "url": "x", "meta": {"note": "x".repeat(5000)}}]),
            "invalid_request",
        ),
    ];
    for (attachments, code) in refused {
        a.call_err(
            "new",
            json!({"chatId": "bob", "message": "x", "attachments": attachments}),
            code,
        )
        .await;
    }
    b.nothing_pending().await;
    a.nothing_pending().await;
}
