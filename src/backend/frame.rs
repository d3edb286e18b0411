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

/// Frames laid out for storage or the wire: each frame's kind (text or
/// not) and length, and their bytes back to back. [`unpack`] reverses it.
pub fn pack(frames: &[Frame]) -> (Vec<(bool, usize)>, Vec<u8>) {
    let layout = frames.iter().map(|f| (f.is_text(), f.len())).collect();
    let mut body = Vec::with_capacity(frames.iter().map(Frame::len).sum());
    for frame in frames {
        body.extend_from_slice(frame.data());
    }
    (layout, body)
}

/// The frames of a [`pack`]ed body; an error says what does not fit.
pub fn unpack(layout: &[(bool, usize)], body: Bytes) -> Result<Vec<Frame>, String> {
    let total: usize = layout.iter().map(|(_, len)| len).sum();
    if total != body.len() {
        return Err("frame lengths do not match the body".into());
    }
    let mut frames = Vec::with_capacity(layout.len());
    let mut at = 0;
    for &(text, len) in layout {
        let data = body.slice(at..at + len);
        at += len;
        frames.push(if text {
            Frame::text(String::from_utf8(data.to_vec()).map_err(|_| "text is not UTF-8")?)
        } else {
            Frame::binary(data)
        });
    }
    Ok(frames)
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

    #[test]
    fn packed_frames_unpack_to_the_same_frames() {
        let frames = vec![
            Frame::text("a\n"),
            Frame::binary(vec![0, 255]),
            Frame::text(""),
        ];
        let (layout, body) = pack(&frames);
        assert_eq!(unpack(&layout, Bytes::from(body.clone())).unwrap(), frames);
        assert!(unpack(&layout, Bytes::from(body[1..].to_vec())).is_err());
        assert!(unpack(&[(true, 2)], Bytes::from_static(&[0xff, 0xfe])).is_err());
    }
}
