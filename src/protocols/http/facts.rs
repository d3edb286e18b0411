//! The facts a client needs before it talks to the server, answered by
//! `GET /` beside TinyImage's fields: default qualities, the automatic
//! quality's target, which credentials are needed, and the limits of the
//! share rooms and the chat. The web app reads them instead of carrying
//! copies of the configuration.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::MAX_NAME_CHARS;
use crate::config::Settings;
use crate::pipeline::Format;

/// Which credentials the server asks for.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthFacts {
    /// The job API (`/upload`, `/status`, `/download`, `/ws`) needs
    /// `Authorization: Bearer <key>` (`auth.api_keys` is set).
    pub api_key: bool,
    /// Rooms and chat take the user from a signed token (`auth.jwt_secret`
    /// is set): `Authorization: Bearer <token>` or `?token=`.
    pub token: bool,
}

/// The automatic quality (`quality=auto`, `format=auto`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AutoFacts {
    /// The score an auto variant aims at without a `target`.
    pub target: u8,
    /// The lowest `target` accepted.
    pub min_target: u8,
    /// The highest `target` accepted.
    pub max_target: u8,
}

/// Share rooms (`/ws/share/{room}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareFacts {
    /// Base64 characters per image chunk, both directions.
    pub chunk_size: usize,
    /// Largest image a member may share, in bytes before processing.
    pub max_upload_bytes: u64,
    /// Largest text message, in bytes.
    pub max_text_bytes: usize,
    /// Shared images are shrunk to fit this many pixels on their longer side.
    pub max_dimension: u32,
}

/// The chat (`/ws/chat`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatFacts {
    /// Largest text of a message, in bytes.
    pub max_message_len: usize,
    /// Longest user id, in bytes.
    pub max_user_id_len: usize,
    /// Largest image attachment, in bytes before processing.
    pub max_image_bytes: u64,
    /// Largest WebSocket message, in bytes (a base64 image is 4/3 of its size).
    pub max_frame_bytes: u64,
    /// Messages a `getMessages` page holds by default (at most 100).
    pub page_size: usize,
}

/// Everything above, as `GET /` answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientFacts {
    /// The quality each format uses when none is given.
    pub default_quality: BTreeMap<&'static str, u8>,
    pub auto_quality: AutoFacts,
    pub auth: AuthFacts,
    /// Longest room, member or user name, in characters.
    pub max_name_chars: usize,
    pub share: ShareFacts,
    pub chat: ChatFacts,
}

/// Most messages one `getMessages` request may ask for (the protocol's bound).
const CHAT_PAGE_MAX: usize = 100;

impl ClientFacts {
    pub fn of(settings: &Settings) -> Self {
        Self {
            default_quality: Format::ALL
                .iter()
                .filter(|f| f.available())
                .map(|f| (f.name(), f.default_quality()))
                .collect(),
            auto_quality: AutoFacts {
                target: settings.quality.auto_target,
                min_target: crate::pipeline::MIN_TARGET as u8,
                max_target: crate::pipeline::MAX_TARGET as u8,
            },
            auth: AuthFacts {
                api_key: !settings.auth.api_keys.is_empty(),
                token: settings.auth.jwt_secret.is_some(),
            },
            max_name_chars: MAX_NAME_CHARS,
            share: ShareFacts {
                chunk_size: settings.share.chunk_size,
                max_upload_bytes: settings.share.max_upload_bytes,
                max_text_bytes: settings.share.max_text_bytes,
                max_dimension: settings.share.max_dimension,
            },
            chat: ChatFacts {
                max_message_len: settings.chat.max_message_len,
                max_user_id_len: settings.chat.max_user_id_len,
                max_image_bytes: settings.chat.max_upload_bytes,
                max_frame_bytes: settings.chat.max_frame_bytes,
                page_size: settings.chat.default_history_limit.clamp(1, CHAT_PAGE_MAX),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_follow_the_settings() {
        let mut settings = Settings::default();
        settings.share.chunk_size = 4096;
        settings.chat.default_history_limit = 500;
        settings.auth.api_keys = vec!["k".into()];
        let facts = ClientFacts::of(&settings);
        assert_eq!(facts.share.chunk_size, 4096);
        assert_eq!(facts.chat.page_size, CHAT_PAGE_MAX);
        assert!(facts.auth.api_key);
        assert!(!facts.auth.token);
        assert_eq!(facts.default_quality.get("webp"), Some(&80));
        assert_eq!(
            facts.default_quality.contains_key("avif"),
            Format::Avif.available()
        );
        assert_eq!(facts.auto_quality.target, settings.quality.auto_target);
    }
}
