//! The chat service: direct chats between users, with per-user numbered
//! events that a client resumes from after a reconnect, and images in
//! messages. The protocol that speaks it is `protocols::ws::chat`
//! (described in `docs/chat.md`).
//!
//! Parts: `events` (the chat's requests, events and response frames),
//! `rules` (who may do what, and the answers' bounds), `service` (carries
//! out requests on the repo, `backend::ChatRepo`: memory or Redis),
//! `delivery` (live events to this instance's sockets, in order, with no
//! gap or duplicate), `records` (the chat's types as the repo's records),
//! `views` (the Message and Chat types clients read), `attachments`
//! (message attachments), `images` (message images), `error` (error
//! codes). This module
//! builds the service and owns the [`UploadedImages`] seam through which
//! messages may reference images uploaded over HTTP.

pub mod attachments;
mod delivery;
mod error;
pub mod events;
mod images;
mod records;
mod rules;
mod service;
pub mod views;

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use attachments::{Attachment, AttachmentInput, AttachmentKind};
pub use delivery::Link;
pub use error::ChatError;
pub use events::{
    validate_user_id, HistoryQuery, Mark, MarkReply, MessagesQuery, NewMessage, Receipt, Request,
    Target, UserId,
};
pub use service::ChatService;

use self::images::ChatImages;
use self::rules::Rules;
use crate::backend::{BackendError, ChatBounds, ChatRepo, MemoryChat, RedisChat};
use crate::config::{BackendKind, Settings};
use crate::jobs::{JobStore, WorkerPool};
use crate::rooms::{HubLimits, RoomHub};

/// An image a message refers to, as its events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub md5: String,
    /// Where clients fetch the bytes.
    pub url: String,
    pub width: u32,
    pub height: u32,
    /// Bytes.
    pub size: u64,
}

/// Images uploaded earlier (over HTTP), found by the md5 that the upload
/// answered with. A message's `image` or image attachment may name one of
/// them.
/// With `backend.kind: redis` they are the whole service's uploads.
pub trait UploadedImages: Send + Sync {
    /// The upload's finished result, as an `image` field refers to it.
    fn find<'a>(&'a self, md5: &'a str) -> BoxFuture<'a, Option<ImageRef>>;

    /// The bytes of that result, which an image attachment is made from.
    fn bytes<'a>(&'a self, _md5: &'a str) -> BoxFuture<'a, Option<bytes::Bytes>> {
        Box::pin(std::future::ready(None))
    }
}

/// The chat's store as `backend.kind` says: this process's memory, or the
/// Redis every instance shares.
pub async fn connect_repo(settings: &Settings) -> Result<Arc<dyn ChatRepo>, BackendError> {
    let bounds = ChatBounds::from(&settings.chat);
    Ok(match settings.backend.kind {
        BackendKind::Memory => Arc::new(MemoryChat::new(bounds)),
        BackendKind::Redis => Arc::new(RedisChat::connect(&settings.backend, bounds).await?),
    })
}

/// Builds the chat of one server on `repo`. Called inside a Tokio runtime,
/// it also starts the live delivery, the retention sweep and (across
/// instances) the presence renewal, which end
/// when the service is dropped. Chat images are kept in `images`, the job
/// store.
pub fn start(
    pool: WorkerPool,
    settings: &Settings,
    uploads: Arc<dyn UploadedImages>,
    images: JobStore,
    repo: Arc<dyn ChatRepo>,
) -> Arc<ChatService> {
    let chat = &settings.chat;
    let hub = RoomHub::new(HubLimits {
        max_members: chat.max_sockets_per_user.max(1),
        member_queue: chat
            .max_events_per_user
            .saturating_add(chat.socket_queue)
            .saturating_add(1),
    });
    let images = ChatImages::new(pool, uploads, images, settings);
    let service = Arc::new(ChatService::new(repo, Rules::from(chat), hub, images));
    let sweep_every = (chat.retention / 8).clamp(Duration::from_secs(1), Duration::from_secs(60));
    repeat(Arc::downgrade(&service), sweep_every, |s| async move {
        s.sweep().await
    });
    if let Some(every) = service.reap_every() {
        repeat(Arc::downgrade(&service), every, |s| async move {
            s.reap().await
        });
    }
    service
}

/// Runs `work` on the chat every `every` while the chat exists (the
/// retention sweep, and presence renewal across instances).
fn repeat<F, Fut>(service: Weak<ChatService>, every: Duration, work: F)
where
    F: Fn(Arc<ChatService>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(service) = service.upgrade() else {
                return;
            };
            work(service).await;
        }
    });
}
