//! `storage` settings: where the named-file store keeps its files and how
//! much it holds.

use std::path::PathBuf;

use serde::Deserialize;

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
