//! `storage.kind: redis`: two instances on one Redis key prefix share one
//! namespace of files, with the never-overwrite rule and both bounds
//! holding across them. Each test starts its own `redis-server`.

mod redis_support;

use bytes::Bytes;
use pixpress::config::{BackendSettings, StorageKind, StorageSettings};
use pixpress::files::{connect, FileEntry, FileRepo, StorageError};
use redis_support::Redis;

async fn instance(
    redis: &Redis,
    max_files: usize,
    max_total_bytes: u64,
) -> std::sync::Arc<dyn FileRepo> {
    let storage = StorageSettings {
        kind: StorageKind::Redis,
        max_files,
        max_total_bytes,
        ..StorageSettings::default()
    };
    let backend = BackendSettings {
        redis_url: redis.url.clone(),
        key_prefix: "files-test:".into(),
        ..BackendSettings::default()
    };
    connect(&storage, &backend).await.expect("connects")
}

#[tokio::test]
async fn two_instances_share_files_and_never_overwrite() {
    let redis = Redis::start();
    let a = instance(&redis, 10, 1000).await;
    let b = instance(&redis, 10, 1000).await;

    a.put("one.png", Bytes::from_static(b"first"))
        .await
        .unwrap();
    assert_eq!(
        b.get("one.png").await.unwrap(),
        Bytes::from_static(b"first")
    );
    assert!(matches!(
        b.put("one.png", Bytes::from_static(b"second")).await,
        Err(StorageError::AlreadyExists(_))
    ));
    assert_eq!(
        a.get("one.png").await.unwrap(),
        Bytes::from_static(b"first")
    );
    b.put("two.jpg", Bytes::from_static(b"xy")).await.unwrap();
    assert_eq!(
        a.list().await.unwrap(),
        vec![
            FileEntry {
                name: "one.png".into(),
                size: 5
            },
            FileEntry {
                name: "two.jpg".into(),
                size: 2
            }
        ]
    );
    assert!(matches!(
        a.get("none.png").await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        a.put("../x.png", Bytes::from_static(b"x")).await,
        Err(StorageError::InvalidName(_))
    ));
}

#[tokio::test]
async fn the_bounds_hold_across_instances() {
    let redis = Redis::start();
    let a = instance(&redis, 2, 10).await;
    let b = instance(&redis, 2, 10).await;

    a.put("a.png", Bytes::from_static(b"123456")).await.unwrap();
    let over_bytes = b.put("b.png", Bytes::from_static(b"12345")).await;
    assert!(
        matches!(over_bytes, Err(StorageError::Full(_))),
        "{over_bytes:?}"
    );
    b.put("b.png", Bytes::from_static(b"1234")).await.unwrap();
    let over_files = a.put("c.png", Bytes::from_static(b"")).await;
    assert!(
        matches!(over_files, Err(StorageError::Full(_))),
        "{over_files:?}"
    );
    assert_eq!(
        b.list().await.unwrap().len(),
        2,
        "a refused put stores nothing"
    );
}
