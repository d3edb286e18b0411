//! Chat across instances (`backend.kind: redis`): three in-process
//! instances of the chat routes, each with its own Redis chat repo on one
//! throwaway `redis-server` and a key prefix of the test's own, serve one
//! chat. Frames are awaited with a bounded wait, never a sleep.

mod chat_client;
mod redis_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_client::Client;
use futures_util::future::BoxFuture;
use pixpress::backend::ChatNow;
use pixpress::chat::{ImageRef, UploadedImages};
use pixpress::config::{BackendKind, Settings};
use pixpress::jobs::WorkerPool;
use pixpress::protocols::ws::chat::routes_with;
use redis_support::Redis;
use serde_json::{json, Value};

struct NoUploads;

impl UploadedImages for NoUploads {
    fn find<'a>(&'a self, _md5: &'a str) -> BoxFuture<'a, Option<ImageRef>> {
        Box::pin(std::future::ready(None))
    }
}

fn settings(redis: &Redis, test: &str) -> Settings {
    let mut s = Settings::default();
    s.backend.kind = BackendKind::Redis;
    s.backend.redis_url = redis.url.clone();
    s.backend.key_prefix = format!("chat-test:{test}:");
    s.chat.retention = Duration::from_secs(600);
    s
}

/// One instance of the chat with settings `s`.
async fn instance(s: Settings) -> SocketAddr {
    let repo = pixpress::chat::connect_repo(&s).await.expect("connects");
    assert_eq!(repo.kind(), "redis");
    let pool = WorkerPool::new(1, 4, Duration::from_secs(60));
    let app = routes_with(pool, Arc::new(s), Arc::new(NoUploads), repo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Three instances of the chat on one Redis.
async fn instances(redis: &Redis, test: &str) -> [SocketAddr; 3] {
    let mut addrs = Vec::new();
    for _ in 0..3 {
        addrs.push(instance(settings(redis, test)).await);
    }
    addrs.try_into().unwrap()
}

fn event_id(frame: &Value) -> u64 {
    frame["id"].as_u64().expect("an event id")
}

#[tokio::test]
async fn a_message_sent_on_a_reaches_b_live_and_replays_on_c() {
    let redis = Redis::start();
    let [a, b, c] = instances(&redis, "reach").await;
    let (mut alice, _) = Client::subscribed(a, "alice", 0).await;
    let (mut bob, answer) = Client::subscribed(b, "bob", 0).await;
    assert_eq!(answer, json!({"lastEventId": 0, "count": 0}));

    let m = alice.say("bob", "hello from A").await;
    let own = alice.event("new").await;
    assert_eq!(own["payload"]["chatId"], "bob");
    let live = bob.event("new").await;
    assert_eq!(event_id(&live), 1);
    assert_eq!(
        (
            &live["payload"]["messageId"],
            &live["payload"]["message"],
            &live["payload"]["chatId"]
        ),
        (&json!(m), &json!("hello from A"), &json!("alice"))
    );

    // Bob comes back on C having seen nothing: the same event, replayed.
    let (mut bob_c, answer) = Client::subscribed(c, "bob", 0).await;
    assert_eq!(answer, json!({"lastEventId": 1, "count": 1}));
    assert_eq!(bob_c.event("new").await, live);
    // Having seen it: nothing to replay.
    let (mut bob_c2, answer) = Client::subscribed(c, "bob", 1).await;
    assert_eq!(answer, json!({"lastEventId": 1, "count": 0}));
    // An id this chat never gave: truncated, reload.
    let (_, answer) = Client::subscribed(a, "bob", 9).await;
    assert_eq!(answer["truncated"], true, "{answer}");

    // getEvent and getEvents answer the same event on every instance.
    let got = bob_c2.call("getEvent", json!({"eventId": 1})).await;
    assert_eq!(got, live);
    let got = alice.call("getEvents", json!({"fromEventId": 0})).await;
    assert_eq!(got, json!([own]));
    for s in [&mut bob, &mut bob_c, &mut bob_c2] {
        s.nothing_pending().await;
    }
}

#[tokio::test]
async fn a_burst_reaches_every_socket_on_every_instance_in_order_exactly_once() {
    const N: usize = 60;
    let redis = Redis::start();
    let [a, b, c] = instances(&redis, "burst").await;
    let (mut alice, _) = Client::subscribed(a, "alice", 0).await;
    let (mut bob_b, _) = Client::subscribed(b, "bob", 0).await;
    let (mut bob_c, _) = Client::subscribed(c, "bob", 0).await;

    // Every request sent before any answer is read: the burst.
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            alice
                .send("new", json!({"chatId":"bob","message": format!("m{i}")}))
                .await,
        );
    }
    // A third socket of bob's joins on A in the middle of it, from 0: its
    // replay and the live events that follow make one sequence.
    let (mut bob_a, answer) = Client::subscribed(a, "bob", 0).await;
    let replayed = answer["count"].as_u64().unwrap();

    for (name, socket) in [("B", &mut bob_b), ("C", &mut bob_c), ("A", &mut bob_a)] {
        let mut seen = Vec::new();
        while seen.len() < N {
            let e = socket.event("new").await;
            seen.push((event_id(&e), e["payload"]["message"].clone()));
        }
        let want: Vec<(u64, Value)> = (0..N)
            .map(|i| (i as u64 + 1, json!(format!("m{i}"))))
            .collect();
        assert_eq!(
            seen, want,
            "bob's socket on {name}: ids 1..=N in order, once each"
        );
        socket.nothing_pending().await;
    }
    assert!(replayed as usize <= N);
    // Alice's answers come in the order sent, and her own copy of each
    // message after the answer that named it.
    let (mut answered, mut own) = (Vec::new(), Vec::new());
    while answered.len() < N || own.len() < N {
        let f = alice.next().await;
        match f["type"].as_str() {
            Some("response") => {
                assert_eq!(f["id"], ids[answered.len()], "{f}");
                answered.push(f["payload"]["messageId"].as_u64().unwrap());
            }
            Some("event") => {
                let m = f["payload"]["messageId"].as_u64().unwrap();
                assert!(answered.contains(&m), "an event before its response: {f}");
                own.push(m);
            }
            _ => panic!("unexpected {f}"),
        }
    }
    assert_eq!(own, answered, "her own copies in order");
}

#[tokio::test]
async fn edits_deletes_and_marks_are_seen_on_every_instance() {
    let redis = Redis::start();
    let [a, b, c] = instances(&redis, "marks").await;
    let (mut alice_a, _) = Client::subscribed(a, "alice", 0).await;
    let (mut alice_c, _) = Client::subscribed(c, "alice", 0).await;
    let (mut bob, _) = Client::subscribed(b, "bob", 0).await;

    // A socket gets its own copy of an event after the response, so the
    // sender reads each copy before its next request.
    let m1 = alice_a.say("bob", "one").await;
    alice_a.event("new").await;
    let m2 = alice_a.say("bob", "two").await;
    alice_a.event("new").await;
    for s in [&mut alice_c, &mut bob] {
        s.event("new").await;
        s.event("new").await;
    }

    // Bob reads m2 on B: both of alice's messages are read, one event each,
    // for alice on A and C and for bob.
    let answer = bob
        .call("read", json!({"chatId": "alice", "messageId": m2}))
        .await;
    assert_eq!(answer, json!({"chatId": "alice", "messageId": m2}));
    for s in [&mut alice_a, &mut alice_c, &mut bob] {
        for m in [m1, m2] {
            let e = s.event("read").await;
            assert_eq!(
                (&e["payload"]["messageId"], &e["payload"]["from"]),
                (&json!(m), &json!("bob"))
            );
        }
    }
    // Marking again changes nothing and tells nobody.
    bob.call("read", json!({"chatId": "alice", "messageId": m2}))
        .await;

    // Alice edits on C; bob sees it live on B and in getMessage on A.
    alice_c
        .call(
            "edit",
            json!({"chatId": "bob", "messageId": m1, "message": "uno"}),
        )
        .await;
    let e = bob.event("edit").await;
    assert_eq!(e["payload"]["message"], "uno");
    alice_a.event("edit").await;
    alice_c.event("edit").await;
    let (mut bob_a, _) = Client::subscribed(a, "bob", 99).await;
    let got = bob_a
        .call("getMessage", json!({"chatId": "alice", "messageId": m1}))
        .await;
    assert_eq!(
        (
            &got["message"],
            got["updatedAt"].is_u64(),
            got["read"].is_u64()
        ),
        (&json!("uno"), true, true),
        "{got}"
    );
    // Only the author edits, whichever instance asks.
    let refused = bob_a
        .call("edit", json!({"messageId": m1, "message": "x"}))
        .await;
    assert_eq!(refused["error"], "forbidden");

    // Alice deletes on A; gone for bob on every instance.
    alice_a
        .call("delete", json!({"chatId": "bob", "messageId": m2}))
        .await;
    assert_eq!(bob.event("delete").await["payload"]["messageId"], json!(m2));
    assert_eq!(
        bob_a.event("delete").await["payload"]["messageId"],
        json!(m2)
    );
    let gone = bob
        .call("getMessage", json!({"chatId": "alice", "messageId": m2}))
        .await;
    assert_eq!(gone["error"], "unknown_message");
    let chat = bob_a.call("getChat", json!({"chatId": "alice"})).await;
    assert_eq!(
        (
            &chat["lastId"],
            &chat["unreadCount"],
            &chat["lastMessageStatus"]
        ),
        (&json!(m1), &json!(0), &json!("read"))
    );
    alice_a.event("delete").await;
    alice_c.event("delete").await;
    for s in [&mut alice_a, &mut alice_c, &mut bob, &mut bob_a] {
        s.nothing_pending().await;
    }
}

#[tokio::test]
async fn history_pages_the_same_from_every_instance() {
    let redis = Redis::start();
    let [a, b, c] = instances(&redis, "history").await;
    let mut alice = Client::connect(a, "alice").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(alice.say("bob", &format!("{i}")).await);
    }
    let ids = |page: &Value| -> Vec<u64> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["messageId"].as_u64().unwrap())
            .collect()
    };
    let mut bob_b = Client::connect(b, "bob").await;
    let page = bob_b
        .call("history", json!({"chatId": "alice", "limit": 2}))
        .await;
    assert_eq!(
        (ids(&page), &page["hasMore"]),
        (sent[3..].to_vec(), &json!(true))
    );
    let mut bob_c = Client::connect(c, "bob").await;
    let page = bob_c
        .call(
            "history",
            json!({"chatId": "alice", "before": sent[3], "limit": 10}),
        )
        .await;
    assert_eq!(
        (ids(&page), &page["hasMore"]),
        (sent[..3].to_vec(), &json!(false))
    );
    let list = bob_c
        .call("getMessages", json!({"chatId": "alice", "count": 3}))
        .await;
    let texts: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["2", "3", "4"]);
    let chats = bob_b.call("getChats", json!({})).await;
    assert_eq!(
        (
            &chats[0]["id"],
            &chats[0]["unreadCount"],
            &chats[0]["lastId"]
        ),
        (&json!("alice"), &json!(5), &json!(sent[4]))
    );
}

#[tokio::test]
async fn a_lost_redis_is_backend_unavailable_and_the_socket_stays_usable() {
    let redis = Redis::start();
    let [a, _, _] = instances(&redis, "lost").await;
    let mut alice = Client::connect(a, "alice").await;
    alice.say("bob", "kept").await;
    drop(redis);
    let answer = alice.call("getChats", json!({})).await;
    assert_eq!(answer["error"], "backend_unavailable", "{answer}");
    let answer = alice
        .call("new", json!({"chatId": "bob", "message": "lost"}))
        .await;
    assert_eq!(answer["error"], "backend_unavailable", "{answer}");
    // Still answering: a request that needs no store.
    let answer = alice
        .call("history", json!({"chatId": "bob", "limit": 0}))
        .await;
    assert_eq!(answer["error"], "invalid_request", "{answer}");
}

#[tokio::test]
async fn a_user_whose_instance_died_goes_offline_for_its_contacts() {
    let redis = Redis::start();
    let mut s = settings(&redis, "reap");
    s.backend.member_ttl = Duration::from_millis(300);
    // B renews its presence every 100 ms; the other instance is only its
    // chat store, which connects alice and then never renews (as an
    // instance killed with alice's socket open).
    let b = instance(s.clone()).await;
    let dead = pixpress::chat::connect_repo(&s).await.expect("connects");
    let (mut bob, _) = Client::subscribed(b, "bob", 0).await;
    bob.say("alice", "are you there?").await;
    bob.event("new").await;
    assert!(
        dead.connect("alice", ChatNow::current()).await.unwrap(),
        "alice comes online on the other instance"
    );

    // Once that instance has not renewed for `member_ttl`, B takes its
    // socket out of presence and tells alice's contacts.
    let offline = bob.event("offline").await;
    assert_eq!(offline["payload"]["userId"], "alice", "{offline}");
    // Alice counts as offline now: a socket of hers comes online again.
    let (_alice, _) = Client::subscribed(b, "alice", 0).await;
    let online = bob.event("online").await;
    assert_eq!(online["payload"]["userId"], "alice", "{online}");
    bob.nothing_pending().await;
}
