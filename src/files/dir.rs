//! Directory-backed `FileRepo`. Each file is written to a hidden temporary
//! file in the same directory, fsynced, then linked into place (which fails
//! rather than overwrite), and the directory is fsynced: a reader sees either
//! no file or the whole file, even across a crash. Names are checked by
//! `validate_name`, so a joined path never leaves the directory; symlinks
//! and anything else that is not a regular file are neither listed nor served.
//! Disk work runs on blocking threads, so async callers simply await.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{check_quota, validate_name, FileEntry, FileRepo, Quota, StorageError, MAX_NAME_BYTES};

const TMP_PREFIX: &str = ".tmp-";

/// Files kept in one directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirStore {
    inner: Arc<Dir>,
}

#[derive(Debug)]
struct Dir {
    dir: PathBuf,
    quota: Quota,
    /// Files and bytes stored; the lock also serialises writers.
    usage: Mutex<(usize, u64)>,
    next_tmp: AtomicU64,
}

impl DirStore {
    /// Opens (creating if needed) `dir`, removes temporary files left by an
    /// interrupted write and counts what is stored.
    pub fn open(dir: &Path, quota: Quota) -> Result<Self, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io("creating the storage directory"))?;
        let mut usage = (0usize, 0u64);
        for entry in fs::read_dir(dir).map_err(StorageError::io("reading the storage directory"))? {
            let entry = entry.map_err(StorageError::io("reading the storage directory"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some(size) = regular_file_size(&entry, name) {
                usage.0 += 1;
                usage.1 += size;
            }
        }
        Ok(Self {
            inner: Arc::new(Dir {
                dir: dir.to_owned(),
                quota,
                usage: Mutex::new(usage),
                next_tmp: AtomicU64::new(0),
            }),
        })
    }

    /// Runs `f` on a blocking thread: it touches the disk.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Dir) -> Result<T, StorageError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, StorageError>> {
        let dir = self.inner.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&dir))
                .await
                .unwrap_or(Err(StorageError::Interrupted))
        }
        .boxed()
    }
}

impl Dir {
    fn write_tmp(&self, data: &[u8]) -> Result<PathBuf, StorageError> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(data)?;
            file.sync_all()
        })();
        match result {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(StorageError::io("writing a file")(e))
            }
        }
    }

    /// Moves `tmp` to `target` without ever replacing an existing file.
    fn link_into_place(&self, tmp: &Path, target: &Path, name: &str) -> Result<(), StorageError> {
        let result = match fs::hard_link(tmp, target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(StorageError::AlreadyExists(name.to_owned()))
            }
            // Filesystems without hard links: the writer lock is held and the
            // name was checked to be free, so a rename cannot replace a file
            // this store wrote.
            Err(_) => fs::rename(tmp, target).map_err(StorageError::io("moving a file into place")),
        };
        let _ = fs::remove_file(tmp);
        result?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(StorageError::io("syncing the storage directory"))
    }
}

fn regular_file_size(entry: &fs::DirEntry, name: &str) -> Option<u64> {
    if validate_name(name, MAX_NAME_BYTES).is_err() {
        return None;
    }
    let meta = entry.metadata().ok()?; // does not follow symlinks
    meta.file_type().is_file().then_some(meta.len())
}

impl FileRepo for DirStore {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        let name = name.to_owned();
        self.blocking(move |dir| dir.put(&name, data))
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        let name = name.to_owned();
        self.blocking(move |dir| dir.get(&name))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<FileEntry>, StorageError>> {
        self.blocking(Dir::list)
    }
}

impl Dir {
    fn put(&self, name: &str, data: Bytes) -> Result<(), StorageError> {
        validate_name(name, MAX_NAME_BYTES)?;
        let target = self.dir.join(name);
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if fs::symlink_metadata(&target).is_ok() {
            return Err(StorageError::AlreadyExists(name.to_owned()));
        }
        check_quota(&self.quota, usage.0, usage.1, data.len() as u64)?;
        let tmp = self.write_tmp(&data)?;
        self.link_into_place(&tmp, &target, name)?;
        usage.0 += 1;
        usage.1 += data.len() as u64;
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Bytes, StorageError> {
        validate_name(name, MAX_NAME_BYTES)?;
        let path = self.dir.join(name);
        let not_found = || StorageError::NotFound(name.to_owned());
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_file() => {}
            Ok(_) => return Err(not_found()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(StorageError::io("reading a file")(e)),
        }
        match fs::read(&path) {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(StorageError::io("reading a file")(e)),
        }
    }

    fn list(&self) -> Result<Vec<FileEntry>, StorageError> {
        let mut files = Vec::new();
        for entry in
            fs::read_dir(&self.dir).map_err(StorageError::io("reading the storage directory"))?
        {
            let entry = entry.map_err(StorageError::io("reading the storage directory"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(size) = regular_file_size(&entry, name) {
                files.push(FileEntry {
                    name: name.to_owned(),
                    size,
                });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_atomically_and_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path(), Quota::default()).unwrap();
        store
            .put("a.png", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert!(matches!(
            store.put("a.png", Bytes::from_static(b"zzz")).await,
            Err(StorageError::AlreadyExists(_))
        ));
        assert_eq!(fs::read(tmp.path().join("a.png")).unwrap(), b"abc");
        assert_eq!(
            store.get("a.png").await.unwrap(),
            Bytes::from_static(b"abc")
        );
        assert!(matches!(
            store.get("b.png").await,
            Err(StorageError::NotFound(_))
        ));
        assert!(matches!(
            store.get("../a.png").await,
            Err(StorageError::InvalidName(_))
        ));
        assert!(matches!(
            store.put("../escape.png", Bytes::from_static(b"x")).await,
            Err(StorageError::InvalidName(_))
        ));

        // A leftover temporary file is removed on open and never listed.
        fs::write(tmp.path().join(".tmp-1-1"), b"partial").unwrap();
        let reopened = DirStore::open(
            tmp.path(),
            Quota {
                max_files: 1,
                max_total_bytes: 100,
            },
        )
        .unwrap();
        assert!(!tmp.path().join(".tmp-1-1").exists());
        assert_eq!(
            reopened.list().await.unwrap(),
            vec![FileEntry {
                name: "a.png".into(),
                size: 3
            }]
        );
        // The reopened store counts existing files against its quota.
        assert!(matches!(
            reopened.put("b.png", Bytes::from_static(b"x")).await,
            Err(StorageError::Full(_))
        ));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.png"), b"secret").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.png"),
            tmp.path().join("link.png"),
        )
        .unwrap();
        let store = DirStore::open(tmp.path(), Quota::default()).unwrap();
        assert!(store.list().await.unwrap().is_empty());
        assert!(matches!(
            store.get("link.png").await,
            Err(StorageError::NotFound(_))
        ));
    }
}
