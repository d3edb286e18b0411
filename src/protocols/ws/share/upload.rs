//! Reassembly of one member's chunked uploads: base64 chunks in any order,
//! duplicates ignored, every bound of the share settings enforced, progress
//! as a rising integer percent. Pure bookkeeping: no sockets, no images.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::ShareSettings;
use crate::error::Code;

/// Longest accepted file name, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;

/// Why an upload was refused; the text is shown to the uploader as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("no upload of this file was started: send imageUploadStart first")]
    NotStarted,
    #[error("file name is empty or longer than {MAX_FILENAME_CHARS} characters")]
    BadFilename,
    #[error("file of {size} bytes exceeds the limit of {limit} bytes")]
    TooBig { size: u64, limit: u64 },
    #[error("totalChunks must be between 1 and {max}, got {total}")]
    TooManyChunks { total: u64, max: usize },
    #[error("chunk index {index} is out of range: totalChunks is {total}")]
    IndexOutOfRange { index: u64, total: usize },
    #[error("totalChunks changed from {was} to {now} during the upload")]
    TotalChanged { was: usize, now: u64 },
    #[error("chunk {index} has {len} characters, over the limit of {max}")]
    ChunkTooLarge { index: u64, len: usize, max: usize },
    #[error("chunk {index} is not valid base64: {reason}")]
    BadBase64 { index: u64, reason: String },
    #[error("received {received} bytes but {announced} were announced")]
    SizeMismatch { received: u64, announced: u64 },
    #[error("too many uploads in flight: at most {max} per member")]
    TooManyUploads { max: usize },
    #[error("upload abandoned: no chunk for {0:?}")]
    TimedOut(Duration),
}

impl UploadError {
    /// The registry's code for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::NotStarted
            | Self::TooManyChunks { .. }
            | Self::IndexOutOfRange { .. }
            | Self::TotalChanged { .. }
            | Self::SizeMismatch { .. } => Code::InvalidMessage,
            Self::BadFilename => Code::InvalidName,
            Self::TooBig { .. } => Code::TooLarge,
            Self::ChunkTooLarge { .. } => Code::MessageTooLarge,
            Self::BadBase64 { .. } => Code::InvalidBase64,
            Self::TooManyUploads { .. } => Code::TooManyRequests,
            Self::TimedOut(_) => Code::UploadTimeout,
        }
    }
}

/// The bounds an upload is held to.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_upload_bytes: u64,
    pub max_chunks: usize,
    pub chunk_size: usize,
    pub max_uploads: usize,
    pub idle_timeout: Duration,
}

impl UploadLimits {
    pub fn from_settings(s: &ShareSettings) -> Self {
        Self {
            max_upload_bytes: s.max_upload_bytes,
            max_chunks: s.max_chunks,
            chunk_size: s.chunk_size,
            max_uploads: s.max_uploads_per_member,
            idle_timeout: s.upload_timeout,
        }
    }
}

/// An upload told apart by file name and, when given, `uploadId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadKey {
    pub filename: String,
    pub upload_id: Option<String>,
}

/// What a chunk did to its upload.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Already had that chunk; nothing changed.
    Duplicate,
    /// Stored; `Some(percent)` when the percentage rose.
    Stored(Option<u8>),
    /// The last missing chunk: here are the file's bytes (progress is 100).
    Complete(Vec<u8>),
}

/// One file being received.
struct Upload {
    announced: u64,
    total: Option<usize>,
    chunks: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: u64,
    percent: u8,
    touched: Instant,
}

/// A member's uploads being received.
#[derive(Default)]
pub struct Uploads {
    open: HashMap<UploadKey, Upload>,
}

impl Uploads {
    /// Opens (or restarts) an upload. `busy` counts this member's uploads
    /// already past reassembly and still processing.
    pub fn start(
        &mut self,
        key: UploadKey,
        size: u64,
        busy: usize,
        limits: &UploadLimits,
    ) -> Result<(), UploadError> {
        if key.filename.is_empty() || key.filename.chars().count() > MAX_FILENAME_CHARS {
            return Err(UploadError::BadFilename);
        }
        if size > limits.max_upload_bytes {
            return Err(UploadError::TooBig {
                size,
                limit: limits.max_upload_bytes,
            });
        }
        let restarting = self.open.contains_key(&key);
        if !restarting && self.open.len() + busy >= limits.max_uploads {
            return Err(UploadError::TooManyUploads {
                max: limits.max_uploads,
            });
        }
        self.open.insert(
            key,
            Upload {
                announced: size,
                total: None,
                chunks: Vec::new(),
                received: 0,
                bytes: 0,
                percent: 0,
                touched: Instant::now(),
            },
        );
        Ok(())
    }

    /// Adds one base64 chunk. Any error drops the upload.
    pub fn add(
        &mut self,
        key: &UploadKey,
        index: u64,
        total: u64,
        data: &str,
        limits: &UploadLimits,
    ) -> Result<Added, UploadError> {
        let upload = self.open.get_mut(key).ok_or(UploadError::NotStarted)?;
        let result = upload.add(index, total, data, limits);
        if matches!(result, Err(_) | Ok(Added::Complete(_))) {
            self.open.remove(key);
        }
        result
    }

    /// Drops `key` if open (e.g. after a malformed chunk message).
    pub fn abandon(&mut self, key: &UploadKey) {
        self.open.remove(key);
    }

    /// When the next idle upload expires.
    pub fn next_expiry(&self, limits: &UploadLimits) -> Option<Instant> {
        self.open
            .values()
            .map(|u| u.touched + limits.idle_timeout)
            .min()
    }

    /// Removes and returns the uploads idle past the timeout.
    pub fn expire(&mut self, now: Instant, limits: &UploadLimits) -> Vec<UploadKey> {
        let expired: Vec<UploadKey> = self
            .open
            .iter()
            .filter(|(_, u)| u.touched + limits.idle_timeout <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.open.remove(key);
        }
        expired
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

impl Upload {
    fn add(
        &mut self,
        index: u64,
        total: u64,
        data: &str,
        limits: &UploadLimits,
    ) -> Result<Added, UploadError> {
        let total = match self.total {
            Some(was) if was as u64 != total => {
                return Err(UploadError::TotalChanged { was, now: total })
            }
            Some(was) => was,
            None => {
                if total == 0 || total > limits.max_chunks as u64 {
                    return Err(UploadError::TooManyChunks {
                        total,
                        max: limits.max_chunks,
                    });
                }
                let total = total as usize;
                self.total = Some(total);
                self.chunks = vec![None; total];
                total
            }
        };
        if index >= total as u64 {
            return Err(UploadError::IndexOutOfRange { index, total });
        }
        if data.len() > limits.chunk_size {
            return Err(UploadError::ChunkTooLarge {
                index,
                len: data.len(),
                max: limits.chunk_size,
            });
        }
        self.touched = Instant::now();
        let slot = &mut self.chunks[index as usize];
        if slot.is_some() {
            return Ok(Added::Duplicate);
        }
        let bytes = crate::encoding::decode(data).map_err(|e| UploadError::BadBase64 {
            index,
            reason: e.to_string(),
        })?;
        self.bytes += bytes.len() as u64;
        if self.bytes > limits.max_upload_bytes {
            return Err(UploadError::TooBig {
                size: self.bytes,
                limit: limits.max_upload_bytes,
            });
        }
        if self.bytes > self.announced {
            return Err(UploadError::SizeMismatch {
                received: self.bytes,
                announced: self.announced,
            });
        }
        *slot = Some(bytes);
        self.received += 1;
        if self.received < total {
            let percent = (self.received * 100 / total) as u8;
            let rose = percent > self.percent;
            self.percent = self.percent.max(percent);
            return Ok(Added::Stored(rose.then_some(percent)));
        }
        if self.bytes != self.announced {
            return Err(UploadError::SizeMismatch {
                received: self.bytes,
                announced: self.announced,
            });
        }
        let mut file = Vec::with_capacity(self.bytes as usize);
        for chunk in self.chunks.drain(..) {
            file.extend_from_slice(&chunk.unwrap_or_default());
        }
        Ok(Added::Complete(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    fn limits() -> UploadLimits {
        UploadLimits {
            max_upload_bytes: 100,
            max_chunks: 4,
            chunk_size: 16,
            max_uploads: 2,
            idle_timeout: Duration::from_secs(60),
        }
    }

    fn key(name: &str) -> UploadKey {
        UploadKey {
            filename: name.into(),
            upload_id: None,
        }
    }

    #[test]
    fn chunks_in_any_order_with_duplicates_reassemble() {
        let l = limits();
        let mut u = Uploads::default();
        u.start(key("a"), 9, 0, &l).unwrap();
        let k = key("a");
        assert_eq!(
            u.add(&k, 2, 3, &STANDARD.encode(b"ghi"), &l),
            Ok(Added::Stored(Some(33)))
        );
        assert_eq!(
            u.add(&k, 2, 3, &STANDARD.encode(b"ghi"), &l),
            Ok(Added::Duplicate)
        );
        assert_eq!(
            u.add(&k, 0, 3, &STANDARD.encode(b"abc"), &l),
            Ok(Added::Stored(Some(66)))
        );
        assert_eq!(
            u.add(&k, 1, 3, &STANDARD.encode(b"def"), &l),
            Ok(Added::Complete(b"abcdefghi".to_vec()))
        );
        assert!(u.is_empty());
    }

    #[test]
    fn every_bound_is_an_error_that_drops_the_upload() {
        let l = limits();
        let k = key("a");
        let cases: Vec<(u64, u64, String, UploadError)> = vec![
            (
                0,
                5,
                "AA==".into(),
                UploadError::TooManyChunks { total: 5, max: 4 },
            ),
            (
                3,
                2,
                "AA==".into(),
                UploadError::IndexOutOfRange { index: 3, total: 2 },
            ),
            (
                0,
                1,
                "A".repeat(20),
                UploadError::ChunkTooLarge {
                    index: 0,
                    len: 20,
                    max: 16,
                },
            ),
        ];
        for (index, total, data, want) in cases {
            let mut u = Uploads::default();
            u.start(k.clone(), 3, 0, &l).unwrap();
            assert_eq!(u.add(&k, index, total, &data, &l), Err(want));
            assert_eq!(u.add(&k, 0, 1, "AA==", &l), Err(UploadError::NotStarted));
        }
        let mut u = Uploads::default();
        u.start(k.clone(), 3, 0, &l).unwrap();
        assert!(matches!(
            u.add(&k, 0, 1, "!!!!", &l),
            Err(UploadError::BadBase64 { .. })
        ));
        assert_eq!(
            u.start(key("big"), 101, 0, &l),
            Err(UploadError::TooBig {
                size: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn uploads_in_flight_are_bounded() {
        let l = limits();
        let mut u = Uploads::default();
        u.start(key("a"), 1, 0, &l).unwrap();
        u.start(key("a"), 1, 1, &l)
            .expect("restarting is not a new upload");
        assert_eq!(
            u.start(key("b"), 1, 1, &l),
            Err(UploadError::TooManyUploads { max: 2 })
        );
        let with_id = UploadKey {
            filename: "a".into(),
            upload_id: Some("2".into()),
        };
        u.start(with_id, 1, 0, &l)
            .expect("same name, other uploadId");
        assert_eq!(u.len(), 2);
    }

    #[test]
    fn idle_uploads_expire() {
        let l = limits();
        let mut u = Uploads::default();
        u.start(key("a"), 1, 0, &l).unwrap();
        let at = u.next_expiry(&l).unwrap();
        assert!(u.expire(at - Duration::from_millis(1), &l).is_empty());
        assert_eq!(u.expire(at, &l), vec![key("a")]);
        assert_eq!(u.next_expiry(&l), None);
    }
}
