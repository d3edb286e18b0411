//! `tcp` settings: the port and every limit of the image-sharing protocol.

use std::time::Duration;

use serde::Deserialize;

/// `tcp` settings. Sizes are bytes, timeouts whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpSettings {
    /// Port of the listener (0 picks any free port).
    pub port: u16,
    /// Largest frame body accepted; a bigger length prefix closes the
    /// connection before its body is read. Written `64MB` or in bytes.
    #[serde(deserialize_with = "crate::config::de_size_usize")]
    pub max_frame_bytes: usize,
    /// Connections served at once; more are told the server is busy.
    pub max_connections: usize,
    /// How long a connection may wait between frames.
    pub idle_timeout_secs: u64,
    /// How long a frame may go without any byte arriving once it has begun.
    pub read_timeout_secs: u64,
    /// How long one whole frame may take to arrive.
    pub frame_timeout_secs: u64,
    /// How long writing one reply may take.
    pub write_timeout_secs: u64,
    /// Longest file name, in bytes (at most 255).
    pub max_name_len: usize,
}

impl Default for TcpSettings {
    fn default() -> Self {
        Self {
            port: 9090,
            max_frame_bytes: 64 * 1024 * 1024,
            max_connections: 256,
            idle_timeout_secs: 300,
            read_timeout_secs: 30,
            frame_timeout_secs: 600,
            write_timeout_secs: 60,
            max_name_len: 255,
        }
    }
}

impl TcpSettings {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_secs(self.frame_timeout_secs)
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }
}
