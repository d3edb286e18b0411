//! In-memory `FileStore`: a map of names to shared byte buffers.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::{
    check_quota, validate_name, FileEntry, FileStore, Quota, StorageError, MAX_NAME_BYTES,
};

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

impl FileStore for MemoryStore {
    fn put(&self, name: &str, data: Bytes) -> Result<(), StorageError> {
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

    fn get(&self, name: &str) -> Result<Bytes, StorageError> {
        validate_name(name, MAX_NAME_BYTES)?;
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NotFound(name.to_owned()))
    }

    fn list(&self) -> Result<Vec<FileEntry>, StorageError> {
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

    #[test]
    fn stores_lists_and_refuses_duplicates_and_overflow() {
        let store = MemoryStore::new(Quota {
            max_files: 2,
            max_total_bytes: 10,
        });
        store.put("b.png", Bytes::from_static(b"1234")).unwrap();
        store.put("a.png", Bytes::from_static(b"12")).unwrap();
        assert!(matches!(
            store.put("a.png", Bytes::from_static(b"x")),
            Err(StorageError::AlreadyExists(_))
        ));
        assert!(matches!(
            store.put("c.png", Bytes::from_static(b"x")),
            Err(StorageError::Full(_))
        ));
        assert_eq!(store.get("b.png").unwrap(), Bytes::from_static(b"1234"));
        assert!(matches!(
            store.get("zz.png"),
            Err(StorageError::NotFound(_))
        ));
        let names: Vec<_> = store
            .list()
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
            small.put("a.png", Bytes::from_static(b"1234")),
            Err(StorageError::Full(_))
        ));
        assert!(matches!(
            small.put("../x", Bytes::from_static(b"1")),
            Err(StorageError::InvalidName(_))
        ));
    }
}
