//! A protocol-neutral frame, text or binary bytes: what the room hub, its
//! history and presence carry and what a [`Bus`](super::Bus) moves between
//! instances. Protocols build frames and the WebSocket layer turns them
//! into socket messages (`protocols::ws::wire::message`).

use bytes::Bytes;

/// One outbound frame. Cloning is cheap (the bytes are shared), so a frame
/// sent to a whole room is built once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    text: bool,
    data: Bytes,
}

impl Frame {
    /// A text frame.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: true,
            data: Bytes::from(text.into()),
        }
    }

    /// A binary frame.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self {
            text: false,
            data: data.into(),
        }
    }

    /// The text of a text frame (always UTF-8: it was made from a string).
    pub fn as_text(&self) -> Option<&str> {
        if self.text {
            std::str::from_utf8(&self.data).ok()
        } else {
            None
        }
    }

    pub fn is_text(&self) -> bool {
        self.text
    }

    /// The frame's bytes (a text frame's UTF-8).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// Bytes carried, for history bounds.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_frames_keep_their_kind() {
        let t = Frame::text("hi");
        assert_eq!(t.as_text(), Some("hi"));
        assert!(t.is_text());
        let b = Frame::binary(vec![0xff, 0x00]);
        assert_eq!(b.as_text(), None);
        assert_eq!(b.len(), 2);
        assert_eq!(b.data().as_ref(), [0xff, 0x00]);
    }
}
