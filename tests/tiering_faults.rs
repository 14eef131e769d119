//! Tiered storage when object storage misbehaves, with an `ObjectStore` that fails on purpose:
//! an outage during produce (nothing un-uploaded is deleted locally, the backlog waits, uploads
//! catch up afterwards, no record is lost), throttling answered by retries without duplicate
//! objects, and a crash in the middle of an upload leaving no orphan after the next start.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chronik_tiering::object_store::ObjectStore;
use chronik_tiering::object_store::memory::InMemory;
use chronik_tiering::{FaultInjector, FaultyStore};
use common::*;
use futures::TryStreamExt;
use kafka_protocol::records::Compression;

const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("remote.storage.enable", "true"),
    ("segment.bytes", "4096"),
    ("local.retention.bytes", "1"),
];

fn fast(c: &mut chronik::Config) {
    c.tiering.interval_ms = 50;
}

/// Object keys grouped by segment: `<base_offset>-<segment_id>` → extensions.
async fn segments_in(store: &InMemory) -> BTreeMap<String, BTreeSet<String>> {
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for meta in listed {
        let name = meta.location.filename().unwrap_or_default().to_string();
        if let Some((stem, ext)) = name.rsplit_once('.') {
            out.entry(stem.to_string())
                .or_default()
                .insert(ext.to_string());
        }
    }
    out
}

/// Every segment in the bucket is complete and no base offset is held twice.
async fn assert_no_orphans(store: &InMemory) {
    let segs = segments_in(store).await;
    let mut bases = BTreeSet::new();
    for (stem, exts) in &segs {
        for ext in ["log", "index", "timeindex"] {
            assert!(exts.contains(ext), "segment {stem} lacks .{ext}: {exts:?}");
        }
        let base = stem.split('-').next().unwrap_or_default().to_string();
        assert!(
            bases.insert(base.clone()),
            "base offset {base} is in the bucket twice"
        );
    }
}

async fn produce_segments(c: &mut Client, topic: &str, n: i64) -> Vec<(i64, Vec<u8>)> {
    let t0 = now_ms() - 60_000;
    let mut expected = Vec::new();
    for i in 0..n {
        let value = format!("record-{i:04}-{}", "y".repeat(300 + i as usize));
        let r = c
            .produce(
                topic,
                0,
                batch(&[value.as_bytes()], t0 + i * 1000, Compression::None),
                -1,
            )
            .await;
        assert_eq!(r.error_code, 0);
        expected.push((r.base_offset, value.into_bytes()));
    }
    expected
}

#[tokio::test]
async fn an_outage_delays_uploads_without_losing_or_deleting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = Arc::new(InMemory::new());
    let faults = FaultInjector::new();
    let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(bucket.clone(), faults.clone()));
    let broker = TestBroker::start_with_store(dir.path(), fast, Some(store)).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("outage", 1, TOPIC_CONFIGS).await, 0);
    faults.set_outage(true);
    let expected = produce_segments(&mut c, "outage", 60).await;
    // Several tiering passes fail while the store is down.
    wait_until("failed upload attempts", async || {
        faults.injected.load(Ordering::SeqCst) >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.list_offset("outage", 0, -4).await.offset,
        0,
        "nothing left local disk"
    );
    assert_eq!(
        c.list_offset("outage", 0, -5).await.offset,
        -1,
        "nothing is remote"
    );
    assert!(segments_in(&bucket).await.is_empty());
    assert_eq!(
        read_values(&mut c, "outage", 0).await,
        expected,
        "produce went on"
    );
    // The store comes back: uploads catch up, local copies go, nothing is lost.
    faults.set_outage(false);
    wait_until("uploads to catch up", async || {
        c.list_offset("outage", 0, -4).await.offset > 40
    })
    .await;
    assert_eq!(read_values(&mut c, "outage", 0).await, expected);
    assert_no_orphans(&bucket).await;
    broker.stop().await;
}

#[tokio::test]
async fn throttled_writes_are_retried_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = Arc::new(InMemory::new());
    let faults = FaultInjector::new();
    faults.throttle_writes.store(6, Ordering::SeqCst);
    faults.throttle_reads.store(2, Ordering::SeqCst);
    let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(bucket.clone(), faults.clone()));
    let broker = TestBroker::start_with_store(dir.path(), fast, Some(store)).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("throttled", 1, TOPIC_CONFIGS).await, 0);
    let expected = produce_segments(&mut c, "throttled", 60).await;
    wait_until("uploads despite SlowDown", async || {
        c.list_offset("throttled", 0, -4).await.offset > 40
    })
    .await;
    assert_eq!(
        faults.throttle_writes.load(Ordering::SeqCst),
        0,
        "every throttle was hit"
    );
    // Reads from the remote tier are throttled too; the fetch is retried by the client.
    let mut values = Vec::new();
    for _ in 0..10 {
        // A throttled remote read fails the fetch; the client tries again.
        if let Ok(v) = try_read_values(&mut c, "throttled", 0).await {
            values = v;
            break;
        }
    }
    assert_eq!(values, expected);
    assert_no_orphans(&bucket).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_crash_mid_upload_leaves_no_orphan_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = Arc::new(InMemory::new());
    let faults = FaultInjector::new();
    // The first object of the first segment lands; the next write hangs forever.
    faults.hang_writes_after.store(1, Ordering::SeqCst);
    let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore::new(bucket.clone(), faults.clone()));
    let broker = TestBroker::start_with_store(dir.path(), fast, Some(store)).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("midway", 1, TOPIC_CONFIGS).await, 0);
    let expected = produce_segments(&mut c, "midway", 60).await;
    wait_until("the first object to land", async || {
        !segments_in(&bucket).await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let orphan = segments_in(&bucket).await;
    assert_eq!(orphan.len(), 1, "one half-uploaded segment: {orphan:?}");
    assert_eq!(
        c.list_offset("midway", 0, -4).await.offset,
        0,
        "its local copy stays"
    );
    broker.crash().await;

    // Restart against the same bucket, without faults.
    let store: Arc<dyn ObjectStore> =
        Arc::new(FaultyStore::new(bucket.clone(), FaultInjector::new()));
    let broker = TestBroker::start_with_store(dir.path(), fast, Some(store)).await;
    let mut c = Client::connect(broker.addr).await;
    wait_until("uploads after the restart", async || {
        c.list_offset("midway", 0, -4).await.offset > 40
    })
    .await;
    let now = segments_in(&bucket).await;
    for stem in orphan.keys() {
        assert!(
            !now.contains_key(stem),
            "the interrupted upload {stem} is still in the bucket"
        );
    }
    assert_no_orphans(&bucket).await;
    assert_eq!(read_values(&mut c, "midway", 0).await, expected);
    broker.stop().await;
}
