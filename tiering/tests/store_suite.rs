//! One battery of remote-store checks, run against every backend `open_store` supports:
//! `memory://`, `file://` (a temporary directory) and, when `TIERING_TEST_S3_ENDPOINT` is set,
//! a real S3 server (LocalStack or MinIO; see `localstack/README.md`).
//!
//! S3 run: `localstack/start.sh`, then
//! `TIERING_TEST_S3_ENDPOINT=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test \
//!  AWS_SECRET_ACCESS_KEY=test cargo test -p chronik-tiering --test store_suite`
//! (`TIERING_TEST_S3_BUCKET` defaults to `chronik`). `s3_store` takes its credentials from the
//! AWS chain as the broker does (here the environment); `s3_store_with_profile_credentials`
//! from a profile file it writes, with the process environment hidden from the chain.

use std::sync::Arc;

use chronik_tiering::object_store::aws::AmazonS3Builder;
use chronik_tiering::object_store::path::Path;
use chronik_tiering::object_store::prefix::PrefixStore;
use chronik_tiering::object_store::{ObjectStore, ObjectStoreExt};
use chronik_tiering::{
    AwsChainCredentialProvider, MIN_PART_SIZE, StoreOptions, metered, open_store,
    segment_object_key, upload_file,
};
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
async fn metered_memory_store_counts_the_suite() {
    let (store, metrics) = metered(open_store("memory://", &StoreOptions::default()).unwrap());
    exercise(store, "metered memory").await;
    let snap = metrics.snapshot();
    let large = 2 * MIN_PART_SIZE as u64 + 12345;
    assert_eq!((snap.put.requests, snap.put.bytes_sent), (1, 4096));
    assert_eq!(snap.multipart_create.requests, 1);
    assert_eq!(
        (snap.upload_part.requests, snap.upload_part.bytes_sent),
        (3, large)
    );
    assert_eq!(snap.multipart_complete.requests, 1);
    // Whole large object, a 3000-byte range, whole small object.
    assert_eq!(snap.get.requests, 3);
    assert_eq!(snap.get.bytes_received, large + 3000 + 4096);
    // One head before the deletes succeeds; the two after them fail (deleted).
    assert_eq!((snap.head.requests, snap.head.errors), (3, 2));
    assert_eq!((snap.delete.requests, snap.delete.errors), (2, 0));
    assert_eq!(snap.list.requests, 1);
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
    // Credentials come from the AWS chain, as for the broker: without any, the first request
    // fails with "no aws credentials found" (LocalStack takes test/test).
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

#[tokio::test]
async fn s3_store_with_profile_credentials() {
    let Ok(endpoint) = std::env::var("TIERING_TEST_S3_ENDPOINT") else {
        eprintln!("note: s3_store_with_profile_credentials skipped; see s3_store");
        return;
    };
    let bucket = std::env::var("TIERING_TEST_S3_BUCKET").unwrap_or_else(|_| "chronik".into());
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[localstack]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    let credentials = credentials.display().to_string();
    let nowhere = dir.path().join("config").display().to_string();
    // Only these variables are visible to the chain, so the keys can only come from the file.
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .env(aws_types::os_shim_internal::Env::from_slice(&[
            ("AWS_SHARED_CREDENTIALS_FILE", &credentials),
            ("AWS_CONFIG_FILE", &nowhere),
            ("AWS_PROFILE", "localstack"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]));
    let url = format!("s3://{bucket}");
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_endpoint(&endpoint)
        .with_allow_http(endpoint.starts_with("http://"))
        .with_credentials(Arc::new(AwsChainCredentialProvider::with_loader(
            loader, url,
        )))
        .build()
        .unwrap();
    let prefix = format!("store-suite-profile/{}", Uuid::new_v4());
    let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(s3, prefix.as_str()));
    exercise(store, "s3 via profile").await;
}
