//! Framing: a 4-byte big-endian length, then that many bytes. Reading checks
//! the length against the limit before reading (or allocating for) the body,
//! grows the buffer only as bytes arrive, and enforces the idle, read and
//! whole-frame timeouts.
//!
//! This is written by hand rather than with tokio-util's
//! `LengthDelimitedCodec`: the codec checks the length limit, but it knows
//! no time, so the three timeouts (before a frame's first byte, between its
//! bytes, and over the whole frame) would have to wrap every poll of the
//! stream from outside, and the idle timeout could not be told apart from a
//! stalled frame. Reading the header and body here keeps all three in one
//! place, with an error for each.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// Limits for reading one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    pub max_frame_bytes: usize,
    /// Waiting for the first byte of a frame.
    pub idle_timeout: Duration,
    /// Waiting for any further byte of a frame.
    pub read_timeout: Duration,
    /// The whole frame, from its first byte.
    pub frame_timeout: Duration,
}

/// Why no frame was read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection was closed")]
    Closed,
    #[error("no request within the idle timeout")]
    Idle,
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("the frame did not arrive in time")]
    Timeout,
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

const CHUNK: usize = 64 * 1024;

/// Reads one frame body.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limits: &FrameLimits,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; 4];
    let first = match tokio::time::timeout(limits.idle_timeout, r.read(&mut header)).await {
        Err(_) => return Err(FrameError::Idle),
        Ok(Ok(0)) => return Err(FrameError::Closed),
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return Err(e.into()),
    };
    let frame_deadline = Instant::now() + limits.frame_timeout;
    let deadline = |read_timeout: Duration| (Instant::now() + read_timeout).min(frame_deadline);

    let mut have = first;
    while have < 4 {
        match timeout_at(deadline(limits.read_timeout), r.read(&mut header[have..])).await {
            Err(_) => return Err(FrameError::Timeout),
            Ok(Ok(0)) => return Err(FrameError::Truncated),
            Ok(Ok(n)) => have += n,
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(header) as u64;
    if len > limits.max_frame_bytes as u64 {
        return Err(FrameError::TooLarge {
            len,
            max: limits.max_frame_bytes,
        });
    }
    let len = len as usize;
    let mut body: Vec<u8> = Vec::with_capacity(len.min(CHUNK));
    while body.len() < len {
        let want = (len - body.len()).min(CHUNK);
        body.reserve(want);
        let mut limited = (&mut *r).take(want as u64);
        match timeout_at(deadline(limits.read_timeout), limited.read_buf(&mut body)).await {
            Err(_) => return Err(FrameError::Timeout),
            Ok(Ok(0)) => return Err(FrameError::Truncated),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    Ok(body)
}

/// Writes one frame (length prefix and body) and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> FrameLimits {
        FrameLimits {
            max_frame_bytes: max,
            idle_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn reads_consecutive_frames_and_detects_the_end() {
        let mut input: &[u8] = b"\0\0\0\x03abc\0\0\0\0\0\0\0\x01z";
        let l = limits(10);
        assert_eq!(read_frame(&mut input, &l).await.unwrap(), b"abc");
        assert_eq!(read_frame(&mut input, &l).await.unwrap(), b"");
        assert_eq!(read_frame(&mut input, &l).await.unwrap(), b"z");
        assert!(matches!(
            read_frame(&mut input, &l).await,
            Err(FrameError::Closed)
        ));
    }

    #[tokio::test]
    async fn refuses_big_prefixes_and_truncation() {
        let mut input: &[u8] = b"\xff\xff\xff\xffrest";
        assert!(matches!(
            read_frame(&mut input, &limits(10)).await,
            Err(FrameError::TooLarge {
                len: 0xffff_ffff,
                max: 10
            })
        ));
        // Nothing of the body was consumed.
        assert_eq!(input, b"rest");
        let mut input: &[u8] = b"\0\0\0\x05ab";
        assert!(matches!(
            read_frame(&mut input, &limits(10)).await,
            Err(FrameError::Truncated)
        ));
        let mut input: &[u8] = b"\0\0";
        assert!(matches!(
            read_frame(&mut input, &limits(10)).await,
            Err(FrameError::Truncated)
        ));
    }
}
