//! The named-file store shared by the TCP image-sharing protocol and the
//! `/files` HTTP routes: one flat namespace of files, kept in memory by
//! default, in a directory when `storage.dir` is set, or shared by every
//! instance on one Redis with `storage.kind: redis`.
//!
//! This module owns the async `FileRepo` trait and its errors; the name
//! rules live in `name`, the implementations one a file (`memory`, `dir`;
//! the directory store does its disk work on blocking threads itself).
//! Stores never overwrite: a second `put` of the same name is refused.

pub mod dir;
pub mod memory;
pub mod name;
pub mod redis;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::error::Code;

pub use self::redis::RedisStore;
pub use crate::config::StorageSettings;
pub use dir::DirStore;
pub use memory::MemoryStore;
pub use name::{validate_name, NameError, MAX_NAME_BYTES};

/// Capacity limits every store enforces on `put`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_files: usize,
    pub max_total_bytes: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Self::from(&StorageSettings::default())
    }
}

impl From<&StorageSettings> for Quota {
    fn from(s: &StorageSettings) -> Self {
        Self {
            max_files: s.max_files,
            max_total_bytes: s.max_total_bytes,
        }
    }
}

/// Opens the configured local store: a directory when `storage.dir` is set
/// (created if needed), else memory. (`connect` opens any kind.)
pub fn open(settings: &StorageSettings) -> Result<Arc<dyn FileRepo>, StorageError> {
    let quota = Quota::from(settings);
    Ok(match &settings.dir {
        Some(dir) => Arc::new(DirStore::open(dir, quota)?),
        None => Arc::new(MemoryStore::new(quota)),
    })
}

/// Opens the configured store: the local one (`open`), or with
/// `storage.kind: redis` the files shared on `backend.redis_url` below
/// `backend.key_prefix`.
pub async fn connect(
    settings: &StorageSettings,
    backend: &crate::config::BackendSettings,
) -> Result<Arc<dyn FileRepo>, StorageError> {
    match settings.kind {
        crate::config::StorageKind::Local => open(settings),
        crate::config::StorageKind::Redis => Ok(Arc::new(
            RedisStore::connect(
                &backend.redis_url,
                &backend.key_prefix,
                Quota::from(settings),
            )
            .await?,
        )),
    }
}

/// One stored file, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
}

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error("a file named {0:?} already exists")]
    AlreadyExists(String),
    #[error("no file named {0:?}")]
    NotFound(String),
    #[error("the store is full: {0}")]
    Full(String),
    /// The store operation stopped half-way (its thread panicked).
    #[error("the store operation was interrupted")]
    Interrupted,
    /// The shared store (Redis) failed or did not answer.
    #[error("the shared file store failed: {0}")]
    Backend(String),
    #[error("storage I/O error while {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { action, source }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidName(_) => Code::InvalidName,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::NotFound(_) => Code::NotFound,
            Self::Full(_) => Code::StoreFull,
            Self::Io { .. } | Self::Interrupted | Self::Backend(_) => Code::StorageError,
        }
    }
}

/// A flat store of named files; a second `put` of a name is refused. The
/// one way every protocol reaches the files: memory, a directory, or (with
/// one more implementation) a shared backend.
pub trait FileRepo: Send + Sync + 'static {
    /// Stores `data` under `name`; never overwrites an existing file.
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>>;
    /// The exact bytes stored under `name`.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>>;
    /// All files, sorted by name.
    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, StorageError>>;
}

/// Checks `data` fits the quota given the current usage.
pub(crate) fn check_quota(
    quota: &Quota,
    files: usize,
    total: u64,
    data_len: u64,
) -> Result<(), StorageError> {
    if files >= quota.max_files {
        return Err(StorageError::Full(format!(
            "it holds the maximum of {} files",
            quota.max_files
        )));
    }
    if total.saturating_add(data_len) > quota.max_total_bytes {
        return Err(StorageError::Full(format!(
            "{data_len} more bytes would exceed the limit of {} bytes",
            quota.max_total_bytes
        )));
    }
    Ok(())
}
