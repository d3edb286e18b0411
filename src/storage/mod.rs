//! The named-file store shared by the TCP image-sharing protocol and the
//! `/files` HTTP routes: one flat namespace of files, kept in memory by
//! default or in a directory when `storage.dir` is set.
//!
//! This module owns the `FileStore` trait, its settings and errors; the name
//! rules live in `name`, the two implementations in `memory` and `dir`.
//! Stores never overwrite: a second `put` of the same name is refused.

pub mod dir;
pub mod memory;
pub mod name;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

pub use dir::DirStore;
pub use memory::MemoryStore;
pub use name::{validate_name, NameError, MAX_NAME_BYTES};

/// `storage` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Directory for stored files; `None` keeps them in memory.
    pub dir: Option<PathBuf>,
    /// How many files the store holds at most.
    pub max_files: usize,
    /// Total bytes the store holds at most. Written `1GB` or in bytes.
    #[serde(deserialize_with = "crate::config::de_size")]
    pub max_total_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            dir: None,
            max_files: 10_000,
            max_total_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl StorageSettings {
    /// Opens the configured store (creating the directory if needed).
    pub fn open(&self) -> Result<Arc<dyn FileStore>, StorageError> {
        let quota = Quota {
            max_files: self.max_files,
            max_total_bytes: self.max_total_bytes,
        };
        Ok(match &self.dir {
            Some(dir) => Arc::new(DirStore::open(dir, quota)?),
            None => Arc::new(MemoryStore::new(quota)),
        })
    }
}

/// Capacity limits every store enforces on `put`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_files: usize,
    pub max_total_bytes: u64,
}

impl Default for Quota {
    fn default() -> Self {
        let s = StorageSettings::default();
        Self {
            max_files: s.max_files,
            max_total_bytes: s.max_total_bytes,
        }
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
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_name",
            Self::AlreadyExists(_) => "already_exists",
            Self::NotFound(_) => "not_found",
            Self::Full(_) => "store_full",
            Self::Io { .. } => "storage_error",
        }
    }
}

/// A flat store of named files. Operations are synchronous and may touch the
/// disk: async callers run them with `tokio::task::spawn_blocking`.
pub trait FileStore: Send + Sync + 'static {
    /// Stores `data` under `name`; never overwrites an existing file.
    fn put(&self, name: &str, data: Bytes) -> Result<(), StorageError>;
    /// The exact bytes stored under `name`.
    fn get(&self, name: &str) -> Result<Bytes, StorageError>;
    /// All files, sorted by name.
    fn list(&self) -> Result<Vec<FileEntry>, StorageError>;
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
