//! The chunk cache on the remote read path, counted at the object store: a consumer reading the
//! whole remote range costs about one GET per chunk (plus the index objects), ten consumers
//! reading the same range at once cost no more GETs than one, and a second read is served
//! without any GET at all, also after a restart.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chronik_tiering::object_store::ObjectStore;
use chronik_tiering::object_store::memory::InMemory;
use chronik_tiering::{StoreMetrics, metered};
use common::*;
use kafka_protocol::records::Compression;

const CHUNK: u64 = 1 << 20;

fn config(c: &mut chronik::Config) {
    c.tiering.interval_ms = 50;
    c.cache.chunk_bytes = CHUNK;
    // Room for the whole remote range in every memory shard's share, so that the second read
    // depends on caching only, not on how chunks happen to hash over the shards.
    c.cache.memory_bytes = 256 << 20;
    c.cache.disk_bytes = 128 << 20;
}

const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("remote.storage.enable", "true"),
    ("segment.bytes", "4194304"),
    ("local.retention.bytes", "1"),
];

/// Produces about 16 MB in 16 KiB batches and waits until all but the active segment is remote
/// and gone from the local disk, so that no segment changes tier while the test reads.
async fn fill(c: &mut Client, data_dir: &std::path::Path, topic: &str) -> Vec<(i64, Vec<u8>)> {
    assert_eq!(c.create_topic(topic, 1, TOPIC_CONFIGS).await, 0);
    let mut expected = Vec::new();
    let value = vec![b'v'; 1024];
    for i in 0..1000i64 {
        let values: Vec<Vec<u8>> = (0..16)
            .map(|j| {
                let mut v = value.clone();
                v[..8].copy_from_slice(&(i * 16 + j).to_be_bytes());
                v
            })
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let r = c
            .produce(topic, 0, batch(&refs, now_ms(), Compression::None), -1)
            .await;
        assert_eq!(r.error_code, 0);
        for (j, v) in values.into_iter().enumerate() {
            expected.push((r.base_offset + j as i64, v));
        }
    }
    let partition_dir = data_dir.join(format!("{topic}-0"));
    wait_until("the sealed segments to be remote", async || {
        let logs = std::fs::read_dir(&partition_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .count()
            })
            .unwrap_or(0);
        logs == 1 && c.list_offset(topic, 0, -4).await.offset > 10_000
    })
    .await;
    expected
}

fn gets(m: &StoreMetrics) -> u64 {
    m.snapshot().get.requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_consumers_cost_no_more_gets_than_one_and_a_second_read_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, metrics) = metered(Arc::new(InMemory::new()));
    let store: Arc<dyn ObjectStore> = store;
    let broker = TestBroker::start_with_store(dir.path(), config, Some(store.clone())).await;
    let mut c = Client::connect(broker.addr).await;
    let expected = fill(&mut c, dir.path(), "cached").await;
    let remote_end = c.list_offset("cached", 0, -4).await.offset;
    let remote: Vec<_> = expected
        .iter()
        .filter(|(o, _)| *o < remote_end)
        .cloned()
        .collect();
    // Each 1 KiB value takes a little more on disk (record and batch headers).
    let remote_bytes = remote.len() as u64 * 1100;

    let before = gets(&metrics);
    let started = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..10 {
        let addr = broker.addr;
        let want = remote.clone();
        readers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let got = read_values(&mut c, "cached", 0).await;
            assert_eq!(
                &got[..want.len()],
                &want[..],
                "byte-identical from the remote tier"
            );
        }));
    }
    for r in readers {
        r.await.expect("reader");
    }
    let ten = gets(&metrics) - before;
    let chunks = remote_bytes.div_ceil(CHUNK);
    let segments = (remote_end as u64 * 1100).div_ceil(4 << 20) + 1;
    // One GET per chunk, plus each segment's index and a chunk boundary per segment.
    assert!(
        ten <= chunks + 3 * segments,
        "ten readers: {ten} GETs for {chunks} chunks in {segments} segments ({:?})",
        started.elapsed()
    );

    // The same range again: everything comes from the cache.
    let before = gets(&metrics);
    let got = read_values(&mut c, "cached", 0).await;
    assert_eq!(&got[..remote.len()], &remote[..]);
    assert_eq!(gets(&metrics) - before, 0, "a second read needs no GET");
    broker.stop().await;

    // After a clean restart the disk tier serves the range, segment indexes included.
    let broker = TestBroker::start_with_store(dir.path(), config, Some(store.clone())).await;
    let mut c = Client::connect(broker.addr).await;
    let before = gets(&metrics);
    let got = read_values(&mut c, "cached", 0).await;
    assert_eq!(&got[..remote.len()], &remote[..]);
    assert_eq!(
        gets(&metrics) - before,
        0,
        "a read after a restart needs no GET"
    );
    broker.stop().await;

    // A single reader on a fresh broker (cold cache) costs as many GETs as ten did.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (store, metrics) = metered(Arc::new(InMemory::new()));
    let store: Arc<dyn ObjectStore> = store;
    let broker = TestBroker::start_with_store(dir2.path(), config, Some(store)).await;
    let mut c = Client::connect(broker.addr).await;
    fill(&mut c, dir2.path(), "cached").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = gets(&metrics);
    let _ = read_values(&mut c, "cached", 0).await;
    let one = gets(&metrics) - before;
    assert!(
        ten <= one + 2,
        "ten readers cost {ten} GETs, one reader {one}"
    );
    broker.stop().await;
}
