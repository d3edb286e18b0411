//! In-memory `FileRepo`: a map of names to shared byte buffers.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{check_quota, validate_name, FileEntry, FileRepo, Quota, StorageError, MAX_NAME_BYTES};

/// Files kept in memory for the life of the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    quota: Quota,
    files: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            files: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every update is a single insert), so a poisoned lock is still usable.
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FileRepo for MemoryStore {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        let put = self.put_now(name, data);
        async move { put }.boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        let got = self.get_now(name);
        async move { got }.boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, StorageError>> {
        let listed = self.list_now();
        async move { listed }.boxed()
    }
}

impl MemoryStore {
    fn put_now(&self, name: &str, data: Bytes) -> Result<(), StorageError> {
        validate_name(name, MAX_NAME_BYTES)?;
        let mut files = self.lock();
        if files.contains_key(name) {
            return Err(StorageError::AlreadyExists(name.to_owned()));
        }
        let total: u64 = files.values().map(|b| b.len() as u64).sum();
        check_quota(&self.quota, files.len(), total, data.len() as u64)?;
        files.insert(name.to_owned(), data);
        Ok(())
    }

    fn get_now(&self, name: &str) -> Result<Bytes, StorageError> {
        validate_name(name, MAX_NAME_BYTES)?;
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NotFound(name.to_owned()))
    }

    fn list_now(&self) -> Result<Vec<FileEntry>, StorageError> {
        Ok(self
            .lock()
            .iter()
            .map(|(name, data)| FileEntry {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_lists_and_refuses_duplicates_and_overflow() {
        let store = MemoryStore::new(Quota {
            max_files: 2,
            max_total_bytes: 10,
        });
        store
            .put("b.png", Bytes::from_static(b"1234"))
            .await
            .unwrap();
        store.put("a.png", Bytes::from_static(b"12")).await.unwrap();
        assert!(matches!(
            store.put("a.png", Bytes::from_static(b"x")).await,
            Err(StorageError::AlreadyExists(_))
        ));
        assert!(matches!(
            store.put("c.png", Bytes::from_static(b"x")).await,
            Err(StorageError::Full(_))
        ));
        assert_eq!(
            store.get("b.png").await.unwrap(),
            Bytes::from_static(b"1234")
        );
        assert!(matches!(
            store.get("zz.png").await,
            Err(StorageError::NotFound(_))
        ));
        let names: Vec<_> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.size))
            .collect();
        assert_eq!(
            names,
            vec![("a.png".to_owned(), 2), ("b.png".to_owned(), 4)]
        );

        let small = MemoryStore::new(Quota {
            max_files: 10,
            max_total_bytes: 3,
        });
        assert!(matches!(
            small.put("a.png", Bytes::from_static(b"1234")).await,
            Err(StorageError::Full(_))
        ));
        assert!(matches!(
            small.put("../x", Bytes::from_static(b"1")).await,
            Err(StorageError::InvalidName(_))
        ));
    }
}
