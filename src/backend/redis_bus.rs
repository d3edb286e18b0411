//! Room fan-out across instances on Redis pub/sub (`backend.kind: redis`).
//!
//! Each room has its channel, `P room:{topic}:{room}` (`P` =
//! `backend.key_prefix`). An instance publishes on its shared connection
//! and hears every room through one subscriber connection (pattern
//! `P room:*`), subscribed before [`RedisBus::connect`] returns, so nothing
//! published afterwards is missed while the subscription holds. A lost
//! subscription is made again (posts published meanwhile are missed).
//!
//! A message is a one-line JSON header (the [`RoomPost`] without its
//! frames, plus the topic and each frame's kind and length), a line break,
//! then the frames' bytes back to back: binary frames travel as they are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::redis::{connect_manager, each_message, subscribe, Channel};
use super::{BackendError, Bus, RoomPost};
use crate::config::BackendSettings;

/// How long connecting may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

type Subscribers = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<RoomPost>>>>>;

/// Rooms across every instance on one Redis and key prefix.
pub struct RedisBus {
    conn: ConnectionManager,
    prefix: String,
    subscribers: Subscribers,
    /// Ends the subscriber task with the bus.
    _stop: DropGuard,
}

/// The header of a message on a room channel.
#[derive(Serialize, Deserialize)]
struct Header {
    topic: String,
    #[serde(flatten)]
    post: RoomPost,
    /// Each frame: whether it is text, and its length in bytes.
    frames: Vec<(bool, usize)>,
}

impl RedisBus {
    /// Connects and subscribes to every room channel below the prefix.
    pub async fn connect(settings: &BackendSettings) -> Result<Self, BackendError> {
        let (client, conn) = connect_manager(settings).await?;
        let pattern = format!("{}room:*", settings.key_prefix);
        let pubsub = tokio::time::timeout(
            ANSWER_WITHIN * 2,
            subscribe(&client, &Channel::Pattern(pattern.clone())),
        )
        .await
        .map_err(|_| BackendError::NoAnswer(ANSWER_WITHIN * 2))??;
        let subscribers = Subscribers::default();
        let stop = CancellationToken::new();
        tokio::spawn(forward(
            client,
            pattern,
            pubsub,
            subscribers.clone(),
            stop.clone(),
        ));
        Ok(Self {
            conn,
            prefix: settings.key_prefix.clone(),
            subscribers,
            _stop: stop.drop_guard(),
        })
    }

    /// The channel of one room of one topic.
    pub fn channel(&self, topic: &str, room: &str) -> String {
        format!("{}room:{topic}:{room}", self.prefix)
    }
}

/// Hands every post heard to the subscribers of its topic; subscribes
/// again when the subscription is lost.
async fn forward(
    client: redis::Client,
    pattern: String,
    pubsub: redis::aio::PubSub,
    subscribers: Subscribers,
    stop: CancellationToken,
) {
    let channel = Channel::Pattern(pattern);
    each_message(client, channel, pubsub, stop, "room posts", |message| {
        match decode(message.get_payload_bytes()) {
            Ok((topic, post)) => {
                let mut topics = subscribers.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(list) = topics.get_mut(&topic) {
                    list.retain(|s| s.send(post.clone()).is_ok());
                }
            }
            Err(e) => tracing::warn!(error = %e, "unreadable room post"),
        }
        true
    })
    .await;
}

/// A post as a message: its header line, then its frames' bytes.
pub fn encode(topic: &str, post: &RoomPost) -> Bytes {
    let (frames, body) = super::frame::pack(&post.frames);
    let header = Header {
        topic: topic.to_owned(),
        post: post.clone(),
        frames,
    };
    let head = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = BytesMut::with_capacity(head.len() + 1 + body.len());
    out.put_slice(&head);
    out.put_u8(b'\n');
    out.put_slice(&body);
    out.freeze()
}

/// A message back into its topic and post.
pub fn decode(message: &[u8]) -> Result<(String, RoomPost), BackendError> {
    let bad = |why: &str| BackendError::BadRecord(format!("room post: {why}"));
    let split = message
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("no header line"))?;
    let header: Header =
        serde_json::from_slice(&message[..split]).map_err(|e| bad(&e.to_string()))?;
    let body = Bytes::copy_from_slice(&message[split + 1..]);
    let mut post = header.post;
    post.frames = super::frame::unpack(&header.frames, body).map_err(|why| bad(&why))?;
    Ok((header.topic, post))
}

impl Bus for RedisBus {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        post: &'a RoomPost,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            let mut conn = self.conn.clone();
            let channel = self.channel(topic, &post.room);
            conn.publish::<_, _, ()>(channel, encode(topic, post).as_ref())
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn subscribe(&self, topic: &str) -> mpsc::UnboundedReceiver<RoomPost> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(topic.to_owned())
            .or_default()
            .push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Frame;

    #[test]
    fn a_post_survives_the_wire_with_its_frames_and_routing() {
        let post = RoomPost {
            room: "r:with\ncolons".into(),
            origin: "share:host:1".into(),
            sender: 42,
            skip_sender: true,
            role: Some("consumer".into()),
            frames: vec![
                Frame::text("{\"type\":\"text\"}\n"),
                Frame::binary(vec![0, b'\n', 255]),
                Frame::text(""),
            ],
        };
        let (topic, back) = decode(&encode("img2img", &post)).unwrap();
        assert_eq!(topic, "img2img");
        assert_eq!(back, post);
    }

    #[test]
    fn a_message_whose_lengths_lie_is_refused() {
        let post = RoomPost {
            room: "r".into(),
            origin: "o".into(),
            sender: 1,
            skip_sender: false,
            role: None,
            frames: vec![Frame::binary(vec![1, 2, 3])],
        };
        let mut wire = encode("share", &post).to_vec();
        wire.pop();
        assert!(decode(&wire).is_err());
        assert!(decode(b"no header").is_err());
    }
}
