//! A client of the chat protocol (`/ws/chat`) for the chat tests: requests
//! with ids, responses matched to them, events by kind.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub next_id: u64,
}

impl Client {
    pub async fn connect(addr: SocketAddr, user: &str) -> Self {
        let url = format!("ws://{addr}/ws/chat?user={user}");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connects");
        Self { ws, next_id: 0 }
    }

    /// Connects and subscribes from `last`; returns the subscribe answer.
    pub async fn subscribed(addr: SocketAddr, user: &str, last: u64) -> (Self, Value) {
        let mut c = Self::connect(addr, user).await;
        let answer = c.call("subscribe", json!({ "lastEventId": last })).await;
        (c, answer)
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Sends a frame exactly as given.
    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, payload_type: &str, payload: Value) -> String {
        self.next_id += 1;
        let id = format!("req{:03}", self.next_id);
        let frame = json!({"type":"request","timestamp":1_700_000_000,"id":id,
            "payloadType":payload_type,"payload":payload});
        self.send_text(frame.to_string()).await;
        id
    }

    /// The next frame, as JSON.
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the time limit")
                .expect("the socket is open")
                .expect("a readable frame");
            match msg {
                Message::Text(t) => {
                    return serde_json::from_str(&t).expect("server frames are JSON")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame, which must be the response to `id`; its payload.
    pub async fn response(&mut self, id: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], "response", "{frame}");
        assert_eq!(frame["id"], id, "{frame}");
        assert!(frame["timestamp"].is_u64(), "{frame}");
        frame["payload"].clone()
    }

    /// Sends a request and returns its response payload (the next frame).
    pub async fn call(&mut self, payload_type: &str, payload: Value) -> Value {
        let id = self.send(payload_type, payload).await;
        self.response(&id).await
    }

    /// A call that must fail with `code`.
    pub async fn call_err(&mut self, payload_type: &str, payload: Value, code: &str) {
        let answer = self.call(payload_type, payload).await;
        assert_eq!(answer["error"], code, "{answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }

    /// Sends a text message to `to`; returns its message id.
    pub async fn say(&mut self, to: &str, text: &str) -> u64 {
        let answer = self
            .call("new", json!({"chatId": to, "message": text}))
            .await;
        answer["messageId"]
            .as_u64()
            .unwrap_or_else(|| panic!("a message id: {answer}"))
    }

    /// The next frame, which must be an event of `kind`.
    pub async fn event(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], "event", "{frame}");
        assert_eq!(frame["eventType"], kind, "{frame}");
        frame
    }

    pub async fn typing(&mut self, chat_id: &str) {
        let frame =
            json!({"type":"event","timestamp":1,"eventType":"typing","payload":{"chatId":chat_id}});
        self.send_text(frame.to_string()).await;
    }

    /// Proves nothing else is queued for this socket ahead of a fresh
    /// response: everything produced before it was queued before it.
    pub async fn nothing_pending(&mut self) {
        let id = self
            .send("history", json!({"chatId": "nobody", "limit": 1}))
            .await;
        let frame = self.next().await;
        assert_eq!(
            frame["id"], id,
            "expected nothing before the probe's response, got {frame}"
        );
    }

    pub async fn close(mut self) {
        self.ws.close(None).await.unwrap();
        // Drain until the server's close, so the server has seen ours.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}
