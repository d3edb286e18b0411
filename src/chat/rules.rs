//! The chat's rules that need no stored state: who a `chatId` may name,
//! how long a text may be, what a message must carry, who may edit,
//! delete or mark a message, and how many messages or events one answer
//! holds. The service applies them before it asks the repo for a change.

use super::error::ChatError;
use super::events::{HistoryQuery, MessagesQuery};
use crate::backend::MessageRow;
use crate::config::ChatSettings;

/// Most messages one `getMessages` answers with.
pub const MAX_MESSAGES_PER_ANSWER: usize = 100;
/// Most events one `getEvents` answers with.
pub const MAX_EVENTS_PER_ANSWER: usize = 100;

/// The bounds the rules enforce, from `chat.*` settings.
#[derive(Debug, Clone)]
pub struct Rules {
    pub max_message_len: usize,
    pub max_user_id_len: usize,
    pub default_history_limit: usize,
    pub max_history_limit: usize,
    /// Frames held for a socket while it catches up (`chat.socket_queue`).
    pub socket_queue: usize,
}

impl From<&ChatSettings> for Rules {
    fn from(s: &ChatSettings) -> Self {
        Self {
            max_message_len: s.max_message_len,
            max_user_id_len: s.max_user_id_len.max(1),
            default_history_limit: s.default_history_limit.clamp(1, s.max_history_limit.max(1)),
            max_history_limit: s.max_history_limit.max(1),
            socket_queue: s.socket_queue.max(1),
        }
    }
}

impl Rules {
    /// Checks that `user` may address `chat_id` (typing, history, new).
    pub fn check_chat_id(&self, user: &str, chat_id: &str) -> Result<(), ChatError> {
        super::events::validate_user_id(chat_id, self.max_user_id_len, "chatId")?;
        if chat_id == user {
            return Err(ChatError::InvalidRequest(
                "chatId names the other user of a direct chat, not yourself".into(),
            ));
        }
        Ok(())
    }

    pub fn check_text(&self, text: &str) -> Result<(), ChatError> {
        if text.len() > self.max_message_len {
            return Err(ChatError::MessageTooLong {
                len: text.len(),
                limit: self.max_message_len,
            });
        }
        Ok(())
    }

    /// A new message needs text, an image or attachments.
    pub fn check_new(
        &self,
        from: &str,
        to: &str,
        text: &str,
        has_content: bool,
    ) -> Result<(), ChatError> {
        self.check_chat_id(from, to)?;
        self.check_text(text)?;
        if text.is_empty() && !has_content {
            return Err(ChatError::InvalidRequest(
                "a message needs a non-empty message text, an image or attachments".into(),
            ));
        }
        Ok(())
    }

    /// Only the author edits or deletes a message; `chat_id`, when given,
    /// must be its chat.
    pub fn check_author(
        &self,
        user: &str,
        chat_id: Option<&str>,
        m: &MessageRow,
        verb: &'static str,
    ) -> Result<(), ChatError> {
        if m.from != user {
            return Err(ChatError::Forbidden(verb));
        }
        if chat_id.is_some_and(|c| c != m.to) {
            return Err(ChatError::UnknownMessage(m.id));
        }
        Ok(())
    }

    /// An edit keeps a message non-empty.
    pub fn check_edit(&self, text: &str, m: &MessageRow) -> Result<(), ChatError> {
        self.check_text(text)?;
        if text.is_empty() && m.content.is_empty() {
            return Err(ChatError::InvalidRequest(
                "a message without an image or attachments needs a non-empty message text".into(),
            ));
        }
        Ok(())
    }

    /// Whose messages a mark by `user` covers: the author of the target
    /// message when it is kept (only its recipient may mark it, in chat
    /// `chat_id` when given), else `chat_id`'s user.
    pub fn mark_author(
        &self,
        user: &str,
        chat_id: Option<&str>,
        message_id: u64,
        target: Option<&MessageRow>,
    ) -> Result<String, ChatError> {
        match (target, chat_id) {
            (Some(m), _) if m.to != user => Err(ChatError::Forbidden(
                "only the recipient of a message may mark it delivered or read",
            )),
            (Some(m), Some(c)) if c != m.from => Err(ChatError::UnknownMessage(message_id)),
            (Some(m), _) => Ok(m.from.clone()),
            (None, Some(c)) => {
                self.check_chat_id(user, c)?;
                Ok(c.to_owned())
            }
            (None, None) => Err(ChatError::UnknownMessage(message_id)),
        }
    }

    /// The page size of a `history` request.
    pub fn history_limit(&self, query: &HistoryQuery) -> Result<usize, ChatError> {
        match query.limit {
            None => Ok(self.default_history_limit),
            Some(0) => Err(ChatError::InvalidRequest("limit must be at least 1".into())),
            Some(n) => Ok(n.min(self.max_history_limit)),
        }
    }

    /// The page size of a `getMessages` request: 1 to
    /// [`MAX_MESSAGES_PER_ANSWER`], `chat.default_history_limit` when not given.
    pub fn messages_count(&self, query: &MessagesQuery) -> Result<usize, ChatError> {
        match query.count {
            None => Ok(self.default_history_limit.min(MAX_MESSAGES_PER_ANSWER)),
            Some(n @ 1..=MAX_MESSAGES_PER_ANSWER) => Ok(n),
            Some(n) => Err(ChatError::InvalidRequest(format!(
                "count must be 1 to {MAX_MESSAGES_PER_ANSWER}, not {n}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::from(&ChatSettings::default())
    }

    fn row(from: &str, to: &str) -> MessageRow {
        MessageRow {
            id: 7,
            from: from.into(),
            to: to.into(),
            text: "hi".into(),
            content: String::new(),
            created: 1,
            updated: None,
            delivered: None,
            read: None,
        }
    }

    #[test]
    fn bad_messages_are_refused() {
        let mut r = rules();
        r.max_message_len = 4;
        let code = |e: Result<(), ChatError>| e.unwrap_err().code();
        assert_eq!(
            code(r.check_new("a", "b", "12345", false)),
            "message_too_long"
        );
        assert_eq!(code(r.check_new("a", "a", "hi", false)), "invalid_request");
        assert_eq!(code(r.check_new("a", "", "hi", false)), "invalid_request");
        assert_eq!(code(r.check_new("a", "b", "", false)), "invalid_request");
        assert!(r.check_new("a", "b", "", true).is_ok(), "an image alone");
    }

    #[test]
    fn only_the_author_edits_or_deletes_and_only_the_recipient_marks() {
        let r = rules();
        let m = row("a", "b");
        let code = |e: ChatError| e.code();
        assert_eq!(
            code(r.check_author("b", None, &m, "x").unwrap_err()),
            "forbidden"
        );
        assert_eq!(
            code(r.check_author("a", Some("c"), &m, "x").unwrap_err()),
            "unknown_message"
        );
        assert!(r.check_author("a", Some("b"), &m, "x").is_ok());
        assert_eq!(
            code(r.mark_author("a", None, 7, Some(&m)).unwrap_err()),
            "forbidden"
        );
        assert_eq!(
            code(r.mark_author("c", None, 7, Some(&m)).unwrap_err()),
            "forbidden"
        );
        assert_eq!(r.mark_author("b", None, 7, Some(&m)).unwrap(), "a");
        assert_eq!(
            r.mark_author("b", Some("a"), 99, None).unwrap(),
            "a",
            "a missing id with chatId marks what is below it"
        );
        assert_eq!(
            code(r.mark_author("b", None, 99, None).unwrap_err()),
            "unknown_message"
        );
    }

    #[test]
    fn page_sizes_are_checked() {
        let r = rules();
        let q = HistoryQuery {
            chat_id: "b".into(),
            before: None,
            end_id: None,
            limit: Some(0),
        };
        assert_eq!(r.history_limit(&q).unwrap_err().code(), "invalid_request");
        let q = HistoryQuery {
            limit: Some(10_000),
            ..q
        };
        assert_eq!(r.history_limit(&q).unwrap(), r.max_history_limit);
        let m = MessagesQuery {
            chat_id: "b".into(),
            end_id: None,
            count: Some(101),
        };
        assert_eq!(r.messages_count(&m).unwrap_err().code(), "invalid_request");
    }
}
