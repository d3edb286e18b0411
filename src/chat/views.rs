//! The types clients read in responses: a Message (`getMessage`,
//! `getMessages`) and a Chat (`getChat`, `getChats`), in the original chat
//! API's names, and pixpress's earlier `history` page. Times are Unix
//! seconds. The service fills them in from the repo's records.

use std::sync::Arc;

use serde::Serialize;

use super::attachments::Attachment;
use super::events::UserId;
use super::ImageRef;

/// One message, as it stands now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    pub message_id: u64,
    /// Absent when the message has no text (an image or attachments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Arc<str>>,
    /// The author.
    pub sender: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Arc<[Attachment]>>,
    /// pixpress's `image` field, when the message was sent with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// When the recipient marked it delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlvrd: Option<u64>,
    /// When the recipient marked it read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<u64>,
    pub created_at: u64,
    /// When it was last edited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
}

/// Where the last message of a chat stands, as its receiver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Undelivered,
    Unread,
    Read,
}

/// A direct chat, from one user's side.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSummary {
    /// The other user.
    pub id: UserId,
    /// The same, under the name the original's `getChat` page uses.
    pub chat_id: UserId,
    /// Always `dialog`: pixpress chats are between two users.
    pub r#type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_text: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_author: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message_status: Option<MessageStatus>,
    /// Messages from the other user not yet read.
    pub unread_count: usize,
}

impl ChatSummary {
    /// A chat with no kept message.
    pub fn empty(other: &str) -> Self {
        Self {
            id: other.to_owned(),
            chat_id: other.to_owned(),
            r#type: "dialog",
            last_id: None,
            last_message_text: None,
            last_message_time: None,
            last_message_author: None,
            last_message_status: None,
            unread_count: 0,
        }
    }
}

/// A message as `history` returns it, from the asker's point of view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message_id: u64,
    pub chat_id: UserId,
    pub from: UserId,
    pub message: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    pub timestamp: u64,
    pub edited: bool,
    pub delivered: bool,
    pub read: bool,
}

/// A page of `history`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    pub chat_id: UserId,
    pub messages: Vec<MessageView>,
    /// Older messages exist (ask again with `before` = the first id here).
    pub has_more: bool,
}
