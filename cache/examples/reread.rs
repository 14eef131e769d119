//! Diagnostic: a sequential reader fills the cache from a slow "object store", then reads the
//! range again in-process and after a close/reopen. Prints where each pass was served from.
//!
//! `cargo run --release -p chronik-cache --example reread -- DIR CHUNKS [FETCH_MS]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use chronik_cache::{CacheConfig, ChunkCache, ChunkKey};

async fn pass(cache: &ChunkCache, chunks: u64, fetch_ms: u64, label: &str) {
    let before = cache.stats();
    let started = Instant::now();
    let len = cache.chunk_bytes();
    let fetch = move |i: u64| async move {
        tokio::time::sleep(Duration::from_millis(fetch_ms)).await;
        Ok::<_, std::io::Error>(Bytes::from(vec![(i % 251) as u8; len]))
    };
    // Like a consumer: four reads per chunk, and the next chunk read ahead.
    for i in 0..chunks {
        for _ in 0..4 {
            let got = cache
                .get_or_fetch(ChunkKey::new([7; 16], i), fetch(i))
                .await
                .expect("chunk");
            assert_eq!(got[0], (i % 251) as u8);
        }
        if i + 1 < chunks {
            let cache = cache.clone();
            tokio::spawn(async move {
                let _ = cache
                    .get_or_fetch(ChunkKey::new([7; 16], i + 1), fetch(i + 1))
                    .await;
            });
        }
    }
    let after = cache.stats();
    println!(
        "{label}: {:?} memory_hits={} disk_hits={} fetches={}",
        started.elapsed(),
        after.memory_hits - before.memory_hits,
        after.disk_hits - before.disk_hits,
        after.fetches - before.fetches
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let chunks: u64 = args[2].parse().unwrap();
    let fetch_ms: u64 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(40);
    let _ = std::fs::remove_dir_all(&dir);
    let config = CacheConfig {
        dir: dir.clone(),
        ..CacheConfig::default()
    };
    let cache = ChunkCache::open(config.clone()).await.unwrap();
    pass(&cache, chunks, fetch_ms, "cold").await;
    pass(&cache, chunks, fetch_ms, "warm").await;
    cache.close().await.unwrap();
    drop(cache);
    let cache = ChunkCache::open(config).await.unwrap();
    pass(&cache, chunks, fetch_ms, "after restart").await;
    cache.close().await.unwrap();
}
