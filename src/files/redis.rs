//! Redis-backed `FileRepo` (`storage.kind: redis`): instances on one Redis
//! (`backend.redis_url`, keys below `backend.key_prefix`) share one flat
//! namespace of files.
//!
//! Keys: `files:data:{name}` holds a file's bytes, the hash `files:index`
//! its size by name, and `files:bytes` the total. A put is one Lua script,
//! so the "never overwrite" rule and `storage.max_files` /
//! `storage.max_total_bytes` hold across every instance: a second put of a
//! name, or one over a bound, changes nothing.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::{check_quota, validate_name, FileEntry, FileRepo, Quota, StorageError, MAX_NAME_BYTES};

/// How long connecting may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(4);

/// Stores the file unless the name exists or a bound would be passed.
/// KEYS: data, index, bytes. ARGV: name, data, max files, max bytes.
/// Returns 0 stored, 1 exists, 2 too many files, 3 too many bytes; then
/// the files and bytes held.
const PUT: &str = r#"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {1, 0, 0} end
local files = redis.call('HLEN', KEYS[2])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
if files >= tonumber(ARGV[3]) then return {2, files, total} end
if total + string.len(ARGV[2]) > tonumber(ARGV[4]) then return {3, files, total} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], string.len(ARGV[2]))
redis.call('INCRBY', KEYS[3], string.len(ARGV[2]))
return {0, files + 1, total + string.len(ARGV[2])}
"#;

/// Files kept in a shared Redis.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    quota: Quota,
    put: redis::Script,
}

impl RedisStore {
    /// Connects to `url` and checks that Redis answers.
    pub async fn connect(url: &str, prefix: &str, quota: Quota) -> Result<Self, StorageError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(CONNECT_WITHIN / 2)
            .set_response_timeout(Duration::from_secs(10));
        let mut conn = tokio::time::timeout(
            CONNECT_WITHIN,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| {
            StorageError::Backend(format!("redis did not answer within {CONNECT_WITHIN:?}"))
        })?
        .map_err(backend)?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(backend)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            quota,
            put: redis::Script::new(PUT),
        })
    }

    fn data_key(&self, name: &str) -> String {
        format!("{}files:data:{name}", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}files:index", self.prefix)
    }

    fn bytes_key(&self) -> String {
        format!("{}files:bytes", self.prefix)
    }

    async fn put_now(&self, name: &str, data: Bytes) -> Result<(), StorageError> {
        validate_name(name, MAX_NAME_BYTES)?;
        let mut conn = self.conn.clone();
        let (outcome, files, total): (u8, usize, u64) = self
            .put
            .key(self.data_key(name))
            .key(self.index_key())
            .key(self.bytes_key())
            .arg(name)
            .arg(data.as_ref())
            .arg(self.quota.max_files)
            .arg(self.quota.max_total_bytes)
            .invoke_async(&mut conn)
            .await
            .map_err(backend)?;
        match outcome {
            0 => Ok(()),
            1 => Err(StorageError::AlreadyExists(name.to_owned())),
            // The same wording as every store: the script only decided.
            _ => check_quota(&self.quota, files, total, data.len() as u64),
        }
    }

    async fn get_now(&self, name: &str) -> Result<Bytes, StorageError> {
        validate_name(name, MAX_NAME_BYTES)?;
        let mut conn = self.conn.clone();
        let data: Option<Vec<u8>> = conn.get(self.data_key(name)).await.map_err(backend)?;
        data.map(Bytes::from)
            .ok_or_else(|| StorageError::NotFound(name.to_owned()))
    }

    async fn list_now(&self) -> Result<Vec<FileEntry>, StorageError> {
        let mut conn = self.conn.clone();
        let index: Vec<(String, u64)> = conn.hgetall(self.index_key()).await.map_err(backend)?;
        let mut files: Vec<FileEntry> = index
            .into_iter()
            .map(|(name, size)| FileEntry { name, size })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

fn backend(e: redis::RedisError) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl FileRepo for RedisStore {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        self.put_now(name, data).boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        self.get_now(name).boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, StorageError>> {
        self.list_now().boxed()
    }
}
