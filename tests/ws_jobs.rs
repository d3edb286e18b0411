//! The job API over `/ws` (SPEC section 2), with tokio-tungstenite as the
//! client against a real server.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn connect(server: &pixpress::app::RunningServer) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http_addr))
        .await
        .expect("ws connects");
    ws
}

async fn next(ws: &mut Ws) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("an answer within the bound")
            .expect("socket open")
            .expect("valid frame");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(t) => serde_json::from_str(&t).expect("json frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[tokio::test]
async fn a_base64_request_is_answered_queued_processing_done() {
    let server = start(test_settings()).await;
    let mut ws = connect(&server).await;
    let input = jpeg(120, 80);
    send(
        &mut ws,
        json!({"filename":"my_image.jpeg","format":"jpg","quality":70,"data":B64.encode(&input)}),
    )
    .await;
    let md5 = pixpress::jobs::TaskKey::of(&input).to_string();
    let queued = next_json(&mut ws).await;
    assert_eq!(
        queued,
        json!({"status":"queued","md5":md5,"format":"jpg","quality":70,"filename":"my_image.jpeg"})
    );
    let processing = next_json(&mut ws).await;
    assert_eq!(processing["status"], "processing");
    let done = next_json(&mut ws).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["md5"], md5);
    assert_eq!(
        (done["width"].as_u64(), done["height"].as_u64()),
        (Some(120), Some(80))
    );
    assert_eq!(done["original_size"], input.len());
    let file = B64.decode(done["file"].as_str().unwrap()).unwrap();
    assert_eq!(file.len() as u64, done["size"].as_u64().unwrap());
    assert!(file.starts_with(&[0xFF, 0xD8, 0xFF]));

    // The same job is visible over HTTP: one store for every protocol.
    let status: Vec<Value> = reqwest::get(format!("http://{}/status/{md5}", server.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status[0]["status"], "done");
    server.shutdown().await;
}

#[tokio::test]
async fn a_binary_request_gets_a_text_frame_then_the_bytes() {
    let server = start(test_settings()).await;
    let mut ws = connect(&server).await;
    let input = png_rgba(64, 48);
    send(
        &mut ws,
        json!({"filename":"a.png","format":"webp","id":"req-7"}),
    )
    .await;
    ws.send(Message::Binary(input.clone().into()))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    let done = loop {
        let v = next_json(&mut ws).await;
        assert_eq!(v["id"], "req-7");
        statuses.push(v["status"].as_str().unwrap().to_owned());
        if v["status"] == "done" {
            break v;
        }
    };
    assert_eq!(statuses, ["queued", "processing", "done"]);
    assert!(done.get("file").is_none(), "bytes come as a binary frame");
    match next(&mut ws).await {
        Message::Binary(bytes) => {
            assert_eq!(bytes.len() as u64, done["size"].as_u64().unwrap());
            assert!(bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP");
        }
        other => panic!("expected the result bytes, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn several_requests_in_flight_are_told_apart_by_md5_and_id() {
    let server = start(test_settings()).await;
    let mut ws = connect(&server).await;
    let inputs: Vec<Vec<u8>> = (0..3).map(|i| jpeg(50 + i, 40)).collect();
    for (i, input) in inputs.iter().enumerate() {
        send(
            &mut ws,
            json!({"format":"png","id":i,"data":B64.encode(input)}),
        )
        .await;
    }
    let mut done = std::collections::HashMap::new();
    while done.len() < 3 {
        let v = next_json(&mut ws).await;
        if v["status"] == "done" {
            done.insert(v["id"].as_u64().unwrap(), v);
        }
    }
    for (i, input) in inputs.iter().enumerate() {
        let v = &done[&(i as u64)];
        assert_eq!(v["md5"], pixpress::jobs::TaskKey::of(input).to_string());
        assert_eq!(v["width"].as_u64(), Some(50 + i as u64));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_are_error_messages_and_the_socket_stays_usable() {
    let mut settings = test_settings();
    settings.upload.max_upload_size = 50_000;
    let server = start(settings).await;
    let mut ws = connect(&server).await;
    let cases = [
        (
            json!({"format":"jpg","data":"%%% not base64 %%%"}),
            "bad_request",
        ),
        (
            json!({"format":"jpg","data":B64.encode(b"just some text")}),
            "unsupported_format",
        ),
        (
            json!({"format":"bmp","data":B64.encode(jpeg(8, 8))}),
            "bad_request",
        ),
        (
            json!({"data":B64.encode(png_bomb_header(90_000, 90_000))}),
            "too_many_pixels",
        ),
        (
            json!({"data":B64.encode(vec![0xFFu8; 60_000])}),
            "too_large",
        ),
    ];
    for (request, code) in cases {
        send(&mut ws, request.clone()).await;
        let v = next_json(&mut ws).await;
        assert_eq!(v["status"], "error", "{request}");
        assert_eq!(v["message"], code, "{v}");
    }
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["message"], "bad_request");
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["message"], "bad_request");

    let input = jpeg(30, 30);
    send(&mut ws, json!({"format":"webp","data":B64.encode(&input)})).await;
    loop {
        let v = next_json(&mut ws).await;
        if v["status"] == "done" {
            break;
        }
        assert_ne!(v["status"], "error", "{v}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_is_an_error_message() {
    let mut settings = test_settings();
    settings.upload.max_concurrent_tasks = 1;
    settings.upload.max_queue = 0;
    let server = start(settings).await;
    let slot = server.state.store.pool().try_admit().expect("free slot");
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"data":B64.encode(jpeg(20, 20)),"id":1})).await;
    let v = next_json(&mut ws).await;
    assert_eq!(
        (
            v["status"].as_str(),
            v["message"].as_str(),
            v["id"].as_u64()
        ),
        (Some("error"), Some("queue_full"), Some(1))
    );
    drop(slot);
    send(&mut ws, json!({"data":B64.encode(jpeg(20, 20)),"id":2})).await;
    assert_eq!(next_json(&mut ws).await["status"], "queued");
    server.shutdown().await;
}

#[tokio::test]
async fn requests_in_flight_per_socket_are_bounded() {
    let mut settings = test_settings();
    settings.ws.max_in_flight = 1;
    settings.upload.max_concurrent_tasks = 1;
    let server = start(settings).await;
    let slot = server.state.store.pool().try_admit().expect("free slot");
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"data":B64.encode(jpeg(20, 20)),"id":1})).await;
    assert_eq!(next_json(&mut ws).await["status"], "queued");
    send(&mut ws, json!({"data":B64.encode(jpeg(21, 21)),"id":2})).await;
    let v = next_json(&mut ws).await;
    assert_eq!(
        (v["message"].as_str(), v["id"].as_u64()),
        (Some("too_many_requests"), Some(2))
    );
    drop(slot);
    server.shutdown().await;
}
