//! Settings: built-in defaults, then `config.yaml` (or `--config PATH`), then
//! `PIXPRESS__SECTION__KEY` environment variables. Owns parsing and
//! validation only; it starts nothing.
//!
//! Sizes are written `10MB`, `500KB`, `64MiB` or as a plain number of bytes.
//! `KB`/`MB`/`GB` are binary (1024-based), as TinyImage used them, so the
//! default `10MB` upload limit is 10485760 bytes. Durations are written
//! `30s`, `10m`, `24h`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod storage;
mod tcp;

pub use storage::{StorageKind, StorageSettings};
pub use tcp::TcpSettings;

/// The settings file read when no `--config` is given and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "config.yaml";

/// Every setting of the server, grouped by section as in `config.yaml`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub upload: UploadSettings,
    pub download: DownloadSettings,
    pub limits: LimitSettings,
    pub quality: QualitySettings,
    pub cache: CacheSettings,
    pub ws: WsSettings,
    pub share: ShareSettings,
    pub img2img: Img2ImgSettings,
    pub tcp: TcpSettings,
    pub chat: ChatSettings,
    pub auth: AuthSettings,
    pub backend: BackendSettings,
    pub storage: StorageSettings,
    pub log: LogSettings,
}

/// How log lines are written to standard output.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// `text` (coloured only when standard output is a terminal) or `json`
/// (one object a line, for log collectors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    /// HTTP port; 0 picks any free port.
    pub port: u16,
    /// Optional directory where finished results are also written.
    pub output_dir: Option<PathBuf>,
    /// How often old files in `output_dir` are removed (older than `cache.ttl`).
    #[serde(with = "humantime_serde")]
    pub output_cleanup_interval: Duration,
    /// How long shutdown waits for jobs in flight.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// An HTTP client must send a request's headers within this long (and
    /// an idle keep-alive connection is closed after it); 0 = no bound.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Connections open at once from one client address, HTTP (WebSockets
    /// included) and TCP together; beyond it `too_many_connections`. 0 = no bound.
    pub max_connections_per_client: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            output_dir: None,
            output_cleanup_interval: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_client: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest accepted upload (the file itself).
    #[serde(deserialize_with = "de_size")]
    pub max_upload_size: u64,
    /// Encodes running at once, on blocking threads.
    pub max_concurrent_tasks: usize,
    /// Jobs waiting for a worker; beyond that, uploads get 503.
    pub max_queue: usize,
    /// Input bytes all waiting jobs may hold together; beyond that, 503.
    #[serde(deserialize_with = "de_size")]
    pub max_queued_bytes: u64,
    /// Pixels (width x height of the inputs) that running jobs may decode
    /// together; a job waits for its share. 0 = no bound.
    pub max_running_pixels: u64,
    /// A job running longer than this fails with `processing_timeout`.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// Uploads per minute per client address; 0 turns rate limiting off.
    pub rate_limit_per_minute: u32,
    /// Burst allowed above the rate.
    pub rate_limit_burst: u32,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            max_upload_size: 10 * 1024 * 1024,
            max_concurrent_tasks: 3,
            max_queue: 64,
            max_queued_bytes: 48 * 1024 * 1024,
            max_running_pixels: 40_000_000,
            job_timeout: Duration::from_secs(60),
            rate_limit_per_minute: 600,
            rate_limit_burst: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloadSettings {
    /// Relative path prefix announced in `GET /` for downloads.
    pub download_url: String,
    /// Download links the server hands out carry an HMAC-SHA256 signature
    /// and an expiry, and `/download` refuses a request without a valid,
    /// unexpired one (403). Off by default: TinyImage clients build
    /// `/download/{md5}` themselves.
    pub signed_urls: bool,
    /// The secret links are signed with (required with `signed_urls`, at
    /// least 16 bytes; the same on every instance of one service).
    pub signing_secret: Option<String>,
    /// How long a signed link stays valid after it was handed out.
    #[serde(with = "humantime_serde")]
    pub link_lifetime: Duration,
}

/// The shortest accepted `download.signing_secret`, in bytes.
pub const MIN_SIGNING_SECRET_BYTES: usize = 16;

impl Default for DownloadSettings {
    fn default() -> Self {
        Self {
            download_url: "download/".into(),
            signed_urls: false,
            signing_secret: None,
            link_lifetime: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest decoded image, in pixels (checked from the header).
    pub max_pixels: u64,
    /// Largest width or height.
    pub max_dimension: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_dimension: 16_384,
        }
    }
}

/// `quality=auto` and `format=auto`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualitySettings {
    /// The perceptual score (SSIMULACRA2, 30-100) `quality=auto` aims at
    /// when the request gives no `target`.
    pub auto_target: u8,
    /// `format=auto` considers AVIF only for images of at most this many
    /// pixels (AVIF encodes are slow); 0 leaves AVIF out.
    pub auto_avif_max_pixels: u64,
    /// Tiles of 256 pixels in the sample an image over a megapixel is
    /// searched on (2-64): more is closer to the whole image's score and
    /// slower.
    pub auto_sample_tiles: u32,
    /// Up to this many pixels, the output of a sampled search is scored
    /// again on the whole image, which reports the exact score and steps
    /// the quality up when it falls short; 0 = never (the sample's score
    /// is reported, `score_sampled: true`).
    pub auto_exact_max_pixels: u64,
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self {
            auto_target: crate::pipeline::DEFAULT_TARGET as u8,
            auto_avif_max_pixels: crate::pipeline::DEFAULT_AVIF_MAX_PIXELS,
            auto_sample_tiles: crate::pipeline::DEFAULT_SAMPLE_TILES,
            auto_exact_max_pixels: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// How long results and statuses are kept after their last write.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Bound on the bytes of results held in memory.
    #[serde(deserialize_with = "de_size")]
    pub max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            max_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Limits of the `/ws` job socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsSettings {
    /// Largest WebSocket message (a base64 request is 4/3 of the image).
    #[serde(deserialize_with = "de_size")]
    pub max_message_bytes: u64,
    /// Requests a single socket may have queued or processing.
    pub max_in_flight: usize,
    /// Every WebSocket protocol: a socket with no message (nor pong) from
    /// its client for this long is closed (1000); 0 = never.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Every WebSocket protocol: the server pings each socket this often; 0 = never.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            max_in_flight: 8,
            idle_timeout: Duration::from_secs(120),
            ping_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShareSettings {
    /// Shared images are resized to fit this box.
    pub max_dimension: u32,
    /// Byte budget of a processed shared image.
    #[serde(deserialize_with = "de_size")]
    pub max_image_bytes: u64,
    /// Base64 characters per chunk, both directions.
    pub chunk_size: usize,
    /// Items a late joiner is sent.
    pub history: usize,
    /// How long history items are kept.
    #[serde(with = "humantime_serde")]
    pub history_ttl: Duration,
    /// Largest upload (decoded bytes) before processing.
    #[serde(deserialize_with = "de_size")]
    pub max_upload_bytes: u64,
    /// Chunks per upload.
    pub max_chunks: usize,
    /// Uploads one member may have in flight.
    pub max_uploads_per_member: usize,
    /// Members per room.
    pub max_members: usize,
    /// An upload with no new chunk for this long is dropped.
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// Outbound messages queued per member before it is dropped as too slow.
    /// Raised, if needed, to hold one whole processed image's chunks.
    pub member_queue: usize,
    /// Largest text message, in bytes.
    #[serde(deserialize_with = "de_size_usize")]
    pub max_text_bytes: usize,
    /// Bound on the bytes of history held for all rooms together.
    #[serde(deserialize_with = "de_size")]
    pub history_max_bytes: u64,
    /// Largest text of the shared text pad (`textUpdate`), in bytes.
    #[serde(deserialize_with = "de_size_usize")]
    pub text_pad_max_bytes: usize,
    /// Text-pad updates a member may send at once.
    pub text_pad_burst: u32,
    /// One more text-pad update is allowed per this much time (0 = no bound).
    #[serde(with = "humantime_serde")]
    pub text_pad_refill: Duration,
    /// A processed image up to this many bytes also travels whole, as base64
    /// `data`, in its `imageUploadComplete`.
    #[serde(deserialize_with = "de_size")]
    pub complete_data_max_bytes: u64,
}

impl Default for ShareSettings {
    fn default() -> Self {
        Self {
            max_dimension: 2048,
            max_image_bytes: 500_000,
            chunk_size: 32_768,
            history: 20,
            history_ttl: Duration::from_secs(3600),
            max_upload_bytes: 20 * 1024 * 1024,
            max_chunks: 1024,
            max_uploads_per_member: 4,
            max_members: 64,
            upload_timeout: Duration::from_secs(60),
            member_queue: 1024,
            max_text_bytes: 16 * 1024,
            history_max_bytes: 256 * 1024 * 1024,
            text_pad_max_bytes: 64 * 1024,
            text_pad_burst: 30,
            text_pad_refill: Duration::from_millis(50),
            complete_data_max_bytes: 512 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Img2ImgSettings {
    /// Metadata waiting for its binary frame is dropped after this.
    #[serde(with = "humantime_serde")]
    pub metadata_timeout: Duration,
    /// A job running longer is answered with `processing_timeout`.
    #[serde(with = "humantime_serde")]
    pub processing_timeout: Duration,
    /// Largest WebSocket message.
    #[serde(deserialize_with = "de_size")]
    pub max_message_bytes: u64,
    /// Members per room.
    pub max_members: usize,
    /// Requests one connection may have queued or processing at once.
    pub max_in_flight: usize,
    /// Outbound messages queued per member before it is dropped as too slow
    /// (a result is two messages).
    pub member_queue: usize,
    /// A result is fitted inside this box (never enlarged) unless the
    /// prompt sizes or crops it, as the original server's 512x512 answer.
    pub default_size: BoxSize,
}

/// A box written `WIDTHxHEIGHT`, such as `512x512`.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BoxSize {
    pub width: u32,
    pub height: u32,
}

/// Shown as written in the configuration.
impl fmt::Debug for BoxSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl TryFrom<String> for BoxSize {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a box such as 512x512");
        let (w, h) = text.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let side = |v: &str| v.trim().parse::<u32>().ok().filter(|n| *n > 0);
        match (side(w), side(h)) {
            (Some(width), Some(height)) => Ok(Self { width, height }),
            _ => Err(bad()),
        }
    }
}

impl Default for Img2ImgSettings {
    fn default() -> Self {
        Self {
            metadata_timeout: Duration::from_secs(10),
            processing_timeout: Duration::from_secs(60),
            max_message_bytes: 16 * 1024 * 1024,
            max_members: 64,
            max_in_flight: 4,
            member_queue: 256,
            default_size: BoxSize {
                width: 512,
                height: 512,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// How long events and messages are kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Events kept per user (oldest dropped first).
    pub max_events_per_user: usize,
    /// Messages kept per chat.
    pub max_messages_per_chat: usize,
    /// Largest text of a message, in bytes.
    pub max_message_len: usize,
    /// Largest WebSocket message.
    #[serde(deserialize_with = "de_size")]
    pub max_frame_bytes: u64,
    /// Messages kept in all chats together (oldest dropped first).
    pub max_messages: usize,
    /// Users tracked at once; past it, unknown users are refused.
    pub max_users: usize,
    /// Longest user id (`?user=` and `chatId`), in bytes.
    pub max_user_id_len: usize,
    /// Sockets one user may have open at once.
    pub max_sockets_per_user: usize,
    /// Live frames queued per socket before it is dropped as too slow. The
    /// queue also has room for a whole `subscribe` replay on top of this
    /// (`max_events_per_user` frames), so a replay never overflows it.
    pub socket_queue: usize,
    /// Requests one socket may have waiting; past it, requests are answered
    /// with `busy`.
    pub max_pending_requests: usize,
    /// Messages a `history` request returns when it gives no `limit`.
    pub default_history_limit: usize,
    /// Largest `limit` of a `history` request (larger ones are capped).
    pub max_history_limit: usize,
    /// Images in messages are scaled to fit this many pixels a side.
    pub max_dimension: u32,
    /// An image in a message is encoded to at most this many bytes.
    #[serde(deserialize_with = "de_size")]
    pub max_image_bytes: u64,
    /// Largest image a message may carry (decoded base64 bytes).
    #[serde(deserialize_with = "de_size")]
    pub max_upload_bytes: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_events_per_user: 10_000,
            max_messages_per_chat: 10_000,
            max_message_len: 16 * 1024,
            max_frame_bytes: 16 * 1024 * 1024,
            max_messages: 1_000_000,
            max_users: 100_000,
            max_user_id_len: 128,
            max_sockets_per_user: 16,
            socket_queue: 1024,
            max_pending_requests: 64,
            default_history_limit: 50,
            max_history_limit: 500,
            max_dimension: 2048,
            max_image_bytes: 500_000,
            max_upload_bytes: 20 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// When not empty, the HTTP and WS job APIs need `Authorization: Bearer <key>`,
    /// and a task is visible only to the keys that uploaded it (and admin keys).
    pub api_keys: Vec<ApiKey>,
    /// When set, rooms and chat take the user from a signed token's `sub`.
    pub jwt_secret: Option<String>,
}

/// One API key: a plain string, or `{key, name, admin}`. The name is who
/// owns the tasks the key uploads (default: a digest of the key, never the
/// key itself); an admin key sees every task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub name: Option<String>,
    pub admin: bool,
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            name: None,
            admin: false,
        }
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        Self::from(key.as_str())
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Plain(String),
            Full {
                key: String,
                #[serde(default)]
                name: Option<String>,
                #[serde(default)]
                admin: bool,
            },
        }
        let key = match Form::deserialize(d)? {
            Form::Plain(key) => ApiKey::from(key),
            Form::Full { key, name, admin } => ApiKey { key, name, admin },
        };
        if key.key.trim().is_empty() {
            return Err(serde::de::Error::custom("an API key must not be empty"));
        }
        Ok(key)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSettings {
    /// `memory` (one instance) or `redis` (instances sharing one Redis form
    /// one job service; see docs/distributed.md).
    pub kind: BackendKind,
    pub redis_url: String,
    /// Prefix of every Redis key and channel, so several services (or
    /// tests) can share one Redis.
    pub key_prefix: String,
    /// A job taken by an instance and not finished after this long is
    /// taken again by another (its worker is presumed dead). Defaults to
    /// twice `upload.job_timeout`.
    #[serde(with = "humantime_serde")]
    pub claim_idle: Option<Duration>,
    /// Times a job is handed to a worker before it is set aside (status
    /// `error`, code `job_failed_repeatedly`) instead of being taken over
    /// again: a job whose worker dies every time stops there.
    pub max_attempts: u32,
    /// Room posts (a room-wide send of the share or img2img protocol)
    /// waiting to be published for the other instances, per protocol;
    /// past it a post reaches only this instance's members (logged).
    pub bus_queue: usize,
    /// A room member an instance stops renewing (the instance died) drops
    /// off its room's roster in Redis after this long; renewed every third.
    #[serde(with = "humantime_serde")]
    pub member_ttl: Duration,
}

impl BackendSettings {
    /// `claim_idle`, or its default for the given job timeout.
    pub fn claim_idle_or(&self, job_timeout: Duration) -> Duration {
        self.claim_idle.unwrap_or(job_timeout * 2)
    }
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            kind: BackendKind::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "pixpress:".into(),
            claim_idle: None,
            max_attempts: 3,
            bus_queue: 4096,
            member_ttl: Duration::from_secs(30),
        }
    }
}

/// A settings file or variable that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    File {
        path: PathBuf,
        source: config::ConfigError,
    },
    #[error("invalid configuration: {0}")]
    Invalid(config::ConfigError),
    #[error("invalid configuration: {key}: {message}")]
    Value { key: &'static str, message: String },
}

impl Settings {
    /// Loads defaults, then the file (`path`, or `config.yaml` when present),
    /// then `PIXPRESS__SECTION__KEY` variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env = std::env::vars().filter(|(k, _)| k.starts_with("PIXPRESS__"));
        Self::load_from(path, env)
    }

    /// As `load`, with the environment given (tests use this).
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        let file = match path {
            Some(p) => Some((p.to_path_buf(), true)),
            None => Some((PathBuf::from(DEFAULT_CONFIG_FILE), false)),
        };
        if let Some((p, required)) = file {
            if required && !p.exists() {
                return Err(ConfigError::File {
                    path: p,
                    source: config::ConfigError::Message("file not found".into()),
                });
            }
            builder = builder.add_source(
                config::File::from(p.as_path())
                    .format(config::FileFormat::Yaml)
                    .required(required),
            );
        }
        let env_map: config::Map<String, String> = env.into_iter().collect();
        builder = builder.add_source(
            config::Environment::with_prefix("PIXPRESS")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("auth.api_keys")
                .try_parsing(true)
                .source(Some(env_map)),
        );
        let built = builder.build().map_err(|e| match path {
            Some(p) => ConfigError::File {
                path: p.to_path_buf(),
                source: e,
            },
            None => ConfigError::Invalid(e),
        })?;
        let settings: Settings = built.try_deserialize().map_err(ConfigError::Invalid)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key, message: &str| {
            Err(ConfigError::Value {
                key,
                message: message.into(),
            })
        };
        if self.upload.max_concurrent_tasks == 0 {
            return fail("upload.max_concurrent_tasks", "must be at least 1");
        }
        if self.upload.max_upload_size == 0 {
            return fail("upload.max_upload_size", "must be more than 0");
        }
        if self.limits.max_pixels == 0 || self.limits.max_dimension == 0 {
            return fail("limits", "max_pixels and max_dimension must be more than 0");
        }
        let targets = crate::pipeline::MIN_TARGET..=crate::pipeline::MAX_TARGET;
        if !targets.contains(&f32::from(self.quality.auto_target)) {
            return fail("quality.auto_target", "must be from 30 to 100");
        }
        if !(2..=64).contains(&self.quality.auto_sample_tiles) {
            return fail("quality.auto_sample_tiles", "must be from 2 to 64");
        }
        if self.cache.ttl.is_zero() {
            return fail("cache.ttl", "must be more than 0");
        }
        if self.share.chunk_size < 4 {
            return fail("share.chunk_size", "must be at least 4 base64 characters");
        }
        if self.backend.member_ttl < Duration::from_millis(100) {
            return fail("backend.member_ttl", "must be at least 100ms");
        }
        if self.download.signed_urls {
            let secret = self.download.signing_secret.as_deref().unwrap_or_default();
            if secret.len() < MIN_SIGNING_SECRET_BYTES {
                return fail(
                    "download.signing_secret",
                    "signed_urls needs a secret of at least 16 bytes",
                );
            }
            if self.download.link_lifetime.is_zero() {
                return fail("download.link_lifetime", "must be more than 0");
            }
        }
        if self.backend.max_attempts == 0 {
            return fail("backend.max_attempts", "must be at least 1");
        }
        if self.backend.kind == BackendKind::Redis && self.backend.redis_url.is_empty() {
            return fail("backend.redis_url", "is required with backend.kind redis");
        }
        Ok(())
    }

    /// The pipeline limits derived from these settings.
    /// The pipeline limits with inputs bounded by `max_input_bytes` (a
    /// protocol's own upload bound) instead.
    pub fn pipeline_limits_within(&self, max_input_bytes: u64) -> crate::pipeline::Limits {
        crate::pipeline::Limits {
            max_input_bytes: usize::try_from(max_input_bytes).unwrap_or(usize::MAX),
            ..self.pipeline_limits()
        }
    }

    pub fn pipeline_limits(&self) -> crate::pipeline::Limits {
        crate::pipeline::Limits {
            max_input_bytes: usize::try_from(self.upload.max_upload_size)
                .unwrap_or(usize::MAX)
                .max(usize::try_from(self.share.max_upload_bytes).unwrap_or(usize::MAX)),
            max_pixels: self.limits.max_pixels,
            max_dimension: self.limits.max_dimension,
        }
    }
}

/// Parses `10MB`, `500KB`, `64MiB`, `1.5GB` or a plain byte count. `KB`,
/// `MB` and `GB` are 1024-based.
pub fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text.trim())
        .map_err(|e| format!("{text:?} is not a size (write e.g. 10MB, 500KB or 1048576): {e}"))
}

/// Serde helper: a size as a number of bytes or a string such as `10MB`.
pub fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

/// Serde helper for `usize` sizes.
pub fn de_size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = de_size(d)?;
    usize::try_from(n).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn boxes_are_width_by_height() {
        let b = BoxSize::try_from("640x480".to_owned()).unwrap();
        assert_eq!((b.width, b.height), (640, 480));
        for bad in ["640", "0x10", "ax4", "10x-1", ""] {
            assert!(BoxSize::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_are_binary_units_or_plain_bytes() {
        assert_eq!(parse_size("10MB").unwrap(), 10_485_760);
        assert_eq!(parse_size("500KB").unwrap(), 512_000);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("ten megs").is_err());
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::load_from(Some(Path::new("/nonexistent-ok")), env(&[]));
        assert!(s.is_err(), "a named file that does not exist is an error");
        let s = Settings::default();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.upload.max_upload_size, 10_485_760);
        assert_eq!(s.upload.max_concurrent_tasks, 3);
        assert_eq!(s.share.max_image_bytes, 500_000);
        assert_eq!(s.share.chunk_size, 32_768);
        assert_eq!(s.quality.auto_target, 80);
        assert_eq!(s.quality.auto_avif_max_pixels, 1_000_000);
        assert_eq!(s.quality.auto_sample_tiles, 12);
        assert_eq!(s.quality.auto_exact_max_pixels, 0);
    }

    #[test]
    fn environment_overrides_file_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "server:\n  port: 1234\nupload:\n  max_upload_size: 2MB\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&path),
            env(&[
                ("PIXPRESS__SERVER__PORT", "9000"),
                ("PIXPRESS__CACHE__TTL", "5m"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 9000);
        assert_eq!(s.upload.max_upload_size, 2 * 1024 * 1024);
        assert_eq!(s.cache.ttl, Duration::from_secs(300));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "upload:\n  max_upload_size: lots\n").unwrap();
        let err = Settings::load_from(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("max_upload_size"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[("PIXPRESS__UPLOAD__MAX_CONCURRENT_TASKS", "0")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_concurrent_tasks"), "{err}");
        let err = Settings::load_from(None, env(&[("PIXPRESS__QUALITY__AUTO_TARGET", "20")]))
            .unwrap_err();
        assert!(err.to_string().contains("auto_target"), "{err}");
        for tiles in ["1", "65"] {
            let err = Settings::load_from(
                None,
                env(&[("PIXPRESS__QUALITY__AUTO_SAMPLE_TILES", tiles)]),
            )
            .unwrap_err();
            assert!(err.to_string().contains("auto_sample_tiles"), "{err}");
        }
        let s = Settings::load_from(
            None,
            env(&[
                ("PIXPRESS__QUALITY__AUTO_SAMPLE_TILES", "16"),
                ("PIXPRESS__QUALITY__AUTO_EXACT_MAX_PIXELS", "20000000"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.quality.auto_sample_tiles, s.quality.auto_exact_max_pixels),
            (16, 20_000_000)
        );
    }

    #[test]
    fn the_shipped_config_file_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        let d = Settings::default();
        assert_eq!(format!("{s:?}"), format!("{d:?}"));
    }

    #[test]
    fn the_shipped_config_file_names_every_key() {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml"))
                .unwrap();
        let debug = format!("{:#?}", Settings::default());
        let missing: Vec<&str> = debug
            .lines()
            .filter_map(|l| l.trim_start().split_once(": ").map(|(k, _)| k))
            .filter(|k| {
                k.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            })
            .filter(|k| {
                !text.lines().any(|l| {
                    l.trim_start()
                        .trim_start_matches("# ")
                        .starts_with(&format!("{k}:"))
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "config.yaml does not document {missing:?}"
        );
    }

    #[test]
    fn signed_urls_need_a_secret() {
        let err = Settings::load_from(None, env(&[("PIXPRESS__DOWNLOAD__SIGNED_URLS", "true")]))
            .unwrap_err();
        assert!(err.to_string().contains("signing_secret"), "{err}");
        let err = Settings::load_from(
            None,
            env(&[
                ("PIXPRESS__DOWNLOAD__SIGNED_URLS", "true"),
                ("PIXPRESS__DOWNLOAD__SIGNING_SECRET", "short"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("signing_secret"), "{err}");
        let s = Settings::load_from(
            None,
            env(&[
                ("PIXPRESS__DOWNLOAD__SIGNED_URLS", "true"),
                ("PIXPRESS__DOWNLOAD__SIGNING_SECRET", "0123456789abcdef"),
                ("PIXPRESS__DOWNLOAD__LINK_LIFETIME", "10m"),
            ]),
        )
        .unwrap();
        assert!(s.download.signed_urls);
        assert_eq!(s.download.link_lifetime, Duration::from_secs(600));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "server:\n  prot: 1\n").unwrap();
        let err = Settings::load_from(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }
}
