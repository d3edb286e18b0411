//! `storage` settings: where the named-file store keeps its files and how
//! much it holds.

use std::path::PathBuf;

use serde::Deserialize;

/// Where the files are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// In this instance: memory, or `dir` when set.
    #[default]
    Local,
    /// Shared by every instance on `backend.redis_url` (below
    /// `backend.key_prefix`).
    Redis,
}

/// `storage` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `local` (memory or `dir`) or `redis`.
    pub kind: StorageKind,
    /// Directory for stored files (`kind: local`); `None` keeps them in memory.
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
            kind: StorageKind::Local,
            dir: None,
            max_files: 10_000,
            max_total_bytes: 1024 * 1024 * 1024,
        }
    }
}
