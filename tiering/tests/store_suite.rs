//! One battery of remote-store checks, run against every backend `open_store` supports:
//! `memory://`, `file://` (a temporary directory) and, when `TIERING_TEST_S3_ENDPOINT` is set,
//! a real S3 server (LocalStack or MinIO; see `localstack/README.md`).
//!
//! S3 run: `localstack/start.sh`, then
//! `TIERING_TEST_S3_ENDPOINT=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test \
//!  AWS_SECRET_ACCESS_KEY=test cargo test -p chronik-tiering --test store_suite`
//! (`TIERING_TEST_S3_BUCKET` defaults to `chronik`).

use std::sync::Arc;

use chronik_tiering::object_store::path::Path;
use chronik_tiering::object_store::{ObjectStore, ObjectStoreExt};
use chronik_tiering::{MIN_PART_SIZE, StoreOptions, open_store, segment_object_key, upload_file};
use futures::TryStreamExt;
use uuid::Uuid;

/// Deterministic, non-repeating-per-part content so a misplaced part changes the bytes.
fn file_with(dir: &std::path::Path, name: &str, len: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    let data: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, data).unwrap();
    path
}

/// Uploads a small and a multipart file under a fresh partition prefix, reads them back whole
/// and by range, lists and deletes them. Returns the keys it used (already deleted).
async fn exercise(store: Arc<dyn ObjectStore>, label: &str) -> Vec<Path> {
    let dir = tempfile::tempdir().unwrap();
    let topic_id = Uuid::new_v4();
    let key = |base: i64, ext: &str| {
        segment_object_key(
            "test-cluster",
            "orders",
            topic_id,
            0,
            base,
            Uuid::new_v4(),
            ext,
        )
    };

    // Small file: one PUT.
    let small = file_with(dir.path(), "small.index", 4096);
    let small_key = key(0, "index");
    let up = upload_file(store.as_ref(), &small_key, &small, MIN_PART_SIZE)
        .await
        .unwrap();
    assert_eq!((up.parts, up.size), (1, 4096), "{label}");

    // Large file: above the part size, so multipart; the last part is short.
    let len = 2 * MIN_PART_SIZE + 12345;
    let large = file_with(dir.path(), "large.log", len);
    let large_key = key(100, "log");
    let up = upload_file(store.as_ref(), &large_key, &large, MIN_PART_SIZE)
        .await
        .unwrap();
    assert_eq!((up.parts, up.size), (3, len as u64), "{label}");

    let expected = std::fs::read(&large).unwrap();
    let whole = store.get(&large_key).await.unwrap().bytes().await.unwrap();
    assert!(whole == expected[..], "{label}: whole object differs");
    assert_eq!(store.head(&large_key).await.unwrap().size, len as u64);

    // A range across the first part boundary, as the cache's chunk reads will do.
    let start = MIN_PART_SIZE as u64 - 1000;
    let range = store
        .get_range(&large_key, start..start + 3000)
        .await
        .unwrap();
    assert_eq!(
        range[..],
        expected[start as usize..start as usize + 3000],
        "{label}"
    );

    let small_back = store.get(&small_key).await.unwrap().bytes().await.unwrap();
    assert_eq!(
        small_back[..],
        std::fs::read(&small).unwrap()[..],
        "{label}"
    );

    // Listing the partition prefix returns both, in offset order.
    let partition_prefix = Path::from_iter([
        "test-cluster".to_string(),
        format!("orders-{topic_id}"),
        "0".into(),
    ]);
    let mut listed: Vec<Path> = store
        .list(Some(&partition_prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![small_key.clone(), large_key.clone()],
        "{label}"
    );

    for k in [&small_key, &large_key] {
        store.delete(k).await.unwrap();
        assert!(store.head(k).await.is_err(), "{label}: {k} still there");
    }
    vec![small_key, large_key]
}

#[tokio::test]
async fn memory_store() {
    let store = open_store("memory://", &StoreOptions::default()).unwrap();
    exercise(store, "memory").await;
}

#[tokio::test]
async fn file_store() {
    let root = tempfile::tempdir().unwrap();
    let url = format!("file://{}", root.path().join("remote").display());
    let store = open_store(&url, &StoreOptions::default()).unwrap();
    exercise(store, "file").await;
    // Deleted objects leave no files behind (directories may stay).
    let files = walk(&root.path().join("remote"));
    assert!(files.is_empty(), "{files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn s3_store() {
    let Ok(endpoint) = std::env::var("TIERING_TEST_S3_ENDPOINT") else {
        eprintln!(
            "note: s3_store skipped; set TIERING_TEST_S3_ENDPOINT (e.g. http://127.0.0.1:4566 \
             after localstack/start.sh) and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY to run it"
        );
        return;
    };
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some(),
        "TIERING_TEST_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not \
         (LocalStack takes test/test)"
    );
    let bucket = std::env::var("TIERING_TEST_S3_BUCKET").unwrap_or_else(|_| "chronik".into());
    let options = StoreOptions {
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        allow_http: endpoint.starts_with("http://"),
        ..StoreOptions::default()
    };
    let run = Uuid::new_v4();
    let prefix = format!("store-suite/{run}");
    let store = open_store(&format!("s3://{bucket}/{prefix}"), &options).unwrap();

    // A store for the whole bucket, to see where the prefixed store really wrote.
    let bucket_view = open_store(&format!("s3://{bucket}"), &options).unwrap();
    let probe = Path::from("probe");
    store.put(&probe, "p".into()).await.unwrap();
    let raw = Path::from(format!("{prefix}/probe"));
    assert_eq!(
        bucket_view.head(&raw).await.unwrap().size,
        1,
        "prefix not applied"
    );
    assert!(
        bucket_view.head(&probe).await.is_err(),
        "key escaped the prefix"
    );
    store.delete(&probe).await.unwrap();

    let keys = exercise(store, "s3").await;
    for k in keys {
        let raw = Path::from(format!("{prefix}/{k}"));
        assert!(bucket_view.head(&raw).await.is_err());
    }
}
