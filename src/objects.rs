//! The remote tier's objects: where each one lives in the bucket, the cached ranged reads both the
//! remote log manager and search use, and the contract by which a sealed segment's search split
//! goes up with it.
//!
//! It sits below `remote/` and `search/`, so that neither imports the other: the remote log
//! manager copies segments and asks a [`SplitUploads`] (search) whether a split must go with
//! them; search reads remote splits through [`RemoteObjects::object_range`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chronik_cache::{ChunkCache, ChunkKey};
use chronik_tiering::object_store::{ObjectStore, ObjectStoreExt, path::Path as ObjectPath};
use chronik_tiering::{RemoteLogSegmentMetadata, RemoteSplitMetadata, cache_chunk_key};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object store: {0}")]
    Store(#[from] chronik_tiering::object_store::Error),
    #[error("cache: {0}")]
    Cache(#[from] chronik_cache::CacheError),
}

/// The bucket (under the cluster's prefix), its request counters and the chunk cache in front of
/// it.
pub struct RemoteObjects {
    store: Arc<dyn ObjectStore>,
    store_metrics: Arc<chronik_tiering::StoreMetrics>,
    cluster: String,
    /// Chunks of remote objects; `None` reads straight from the store.
    cache: Option<ChunkCache>,
    /// Chunks fetched ahead and not yet read (bounded), to measure read-ahead usefulness.
    prefetched: Mutex<HashSet<ChunkKey>>,
    /// Chunks being read ahead now: a reader's next fetches while one is under way (several per
    /// chunk) do not start it again.
    reading_ahead: Arc<Mutex<HashSet<ChunkKey>>>,
    /// Bytes responses carried from each `.log` chunk in ordinary memory, by chunk and
    /// allocation (bounded): see [`RemoteObjects::sent`].
    heap_sent: Mutex<HashMap<(ChunkKey, usize), u64>>,
    readahead_issued: AtomicU64,
    readahead_used: AtomicU64,
}

impl RemoteObjects {
    pub fn new(store: Arc<dyn ObjectStore>, cluster: String, cache: Option<ChunkCache>) -> Self {
        // Every request to the object store is counted by operation.
        let (store, store_metrics) = chronik_tiering::metered(store);
        Self {
            store,
            store_metrics,
            cluster,
            cache,
            prefetched: Mutex::new(HashSet::new()),
            reading_ahead: Arc::default(),
            heap_sent: Mutex::new(HashMap::new()),
            readahead_issued: AtomicU64::new(0),
            readahead_used: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn cache(&self) -> Option<&ChunkCache> {
        self.cache.as_ref()
    }

    /// Requests, errors, bytes and latency of the object store by operation.
    pub fn store_metrics(&self) -> chronik_tiering::StoreMetricsSnapshot {
        self.store_metrics.snapshot()
    }

    /// Chunks fetched ahead of a sequential reader, and how many of them a read then used.
    pub fn readahead(&self) -> (u64, u64) {
        (
            self.readahead_issued.load(Relaxed),
            self.readahead_used.load(Relaxed),
        )
    }

    /// One cheap request to the object store, for readiness checks.
    pub async fn probe(&self) -> Result<(), ObjectError> {
        use futures::StreamExt;
        let prefix = ObjectPath::from(self.cluster.as_str());
        let mut listing = self.store.list(Some(&prefix));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Where object `ext` (log, index, timeindex, snapshot, split) of a remote segment lives.
    pub fn segment_key(&self, topic: &str, m: &RemoteLogSegmentMetadata, ext: &str) -> ObjectPath {
        chronik_tiering::segment_object_key(
            &self.cluster,
            topic,
            m.topic_id,
            m.partition,
            m.base_offset,
            m.segment_id,
            ext,
        )
    }

    /// Where the search split of a remote segment lives.
    pub fn split_key(&self, topic: &str, s: &RemoteSplitMetadata) -> ObjectPath {
        chronik_tiering::segment_object_key(
            &self.cluster,
            topic,
            s.topic_id,
            s.partition,
            s.base_offset,
            s.segment_id,
            "split",
        )
    }

    /// Bytes `range` of any immutable remote object of `size` bytes whose chunks are cached
    /// under `id`, in chunks of `chunk_bytes` capped at the cache's chunk size (`u64::MAX`: the
    /// cache's). Objects read in small scattered pieces, like search splits, fetch far fewer
    /// bytes in small chunks; every object must always be read with the same chunk size (the
    /// cache keys chunks by index). Every chunk is fetched with one ranged GET however many
    /// readers miss it at once; the missing chunks of one range are fetched concurrently;
    /// `read_ahead` also fetches the chunk after the last one read.
    pub async fn object_range(
        &self,
        key: &ObjectPath,
        id: Uuid,
        size: u64,
        range: std::ops::Range<u64>,
        read_ahead: bool,
        chunk_bytes: u64,
    ) -> Result<Bytes, ObjectError> {
        let parts = self
            .ranged(key, id, size, range, read_ahead, chunk_bytes, false)
            .await?;
        if parts.len() <= 1 {
            return Ok(parts.into_iter().next().unwrap_or_default());
        }
        let mut out = bytes::BytesMut::with_capacity(parts_len(&parts));
        for p in &parts {
            out.extend_from_slice(p);
        }
        Ok(out.freeze())
    }

    /// [`RemoteObjects::object_range`] without joining: the range as slices of the cached
    /// chunks it spans, in order (one piece per chunk, none empty), so that nothing is copied.
    /// For objects whose bytes go out in fetch responses (`.log`): chunks fetched from the store
    /// go into memory files ([`crate::shm`]) as they arrive, so responses `sendfile` them (the
    /// fetched buffer is freed at once and reused for the next chunk); chunks the cache holds in
    /// ordinary memory move there once read again (see [`RemoteObjects::sent`]).
    pub async fn object_range_parts(
        &self,
        key: &ObjectPath,
        id: Uuid,
        size: u64,
        range: std::ops::Range<u64>,
        read_ahead: bool,
        chunk_bytes: u64,
    ) -> Result<Vec<Bytes>, ObjectError> {
        self.ranged(key, id, size, range, read_ahead, chunk_bytes, true)
            .await
    }

    /// Notes that a fetch response carries bytes `range` of the `.log` object cached under
    /// `id` (in chunks of the cache's size), straight from the cache's memory.
    ///
    /// A chunk in ordinary memory (read back from the disk tier, or put into the cache after an
    /// upload) is copied into the socket by every fetch that sends it; a memory file
    /// ([`crate::shm`]) goes by `sendfile` but costs a few plain copies to make. So such a
    /// chunk moves into one, replacing the memory tier's copy, once responses have carried more
    /// than its size from that copy: a chunk read again moves, one streamed through the cache
    /// once (read from disk, sent, evicted) never does. Counted per allocation, so a chunk
    /// evicted and read back from the disk tier starts again from nothing.
    pub fn sent(&self, id: Uuid, range: std::ops::Range<u64>) {
        let Some(cache) = &self.cache else { return };
        let cs = cache.chunk_bytes() as u64;
        let mut at = range.start;
        while at < range.end {
            let index = at / cs;
            let end = ((index + 1) * cs).min(range.end);
            self.count_sent(cache, cache_chunk_key(id, index), end - at);
            at = end;
        }
    }

    fn count_sent(&self, cache: &ChunkCache, key: ChunkKey, n: u64) {
        let Some(chunk) = cache.memory_peek(&key) else {
            return;
        };
        if chunk.len() < crate::shm::MIN_SHARED_BYTES || crate::shm::file_region(&chunk).is_some() {
            return;
        }
        let id = (key, chunk.as_ptr() as usize);
        {
            let mut sent = self.heap_sent.lock().unwrap_or_else(|e| e.into_inner());
            if sent.len() >= 4096 {
                sent.clear();
            }
            let total = sent.entry(id).or_insert(0);
            *total += n;
            if *total <= chunk.len() as u64 {
                return;
            }
            sent.remove(&id);
        }
        let shared = crate::shm::share(chunk);
        if crate::shm::file_region(&shared).is_some()
            && let Err(e) = cache.replace_in_memory(key, shared)
        {
            tracing::debug!(error = %e, "a chunk in a memory file did not replace its heap copy");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn ranged(
        &self,
        key: &ObjectPath,
        id: Uuid,
        size: u64,
        range: std::ops::Range<u64>,
        read_ahead: bool,
        chunk_bytes: u64,
        share: bool,
    ) -> Result<Vec<Bytes>, ObjectError> {
        let Some(cache) = &self.cache else {
            let b = self.store.get_range(key, range).await?;
            return Ok(if b.is_empty() { Vec::new() } else { vec![b] });
        };
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let cs = (cache.chunk_bytes() as u64).min(chunk_bytes).max(1);
        let first = range.start / cs;
        let last = (range.end - 1) / cs;
        let fetch_chunk = |index: u64| {
            let store = self.store.clone();
            let key = key.clone();
            let span = index * cs..((index + 1) * cs).min(size);
            async move {
                let chunk = store.get_range(&key, span).await?;
                Ok::<_, chronik_tiering::object_store::Error>(if share {
                    crate::shm::share(chunk)
                } else {
                    chunk
                })
            }
        };
        let parts = futures::future::try_join_all((first..=last).map(|index| {
            if self
                .prefetched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&cache_chunk_key(id, index))
            {
                self.readahead_used.fetch_add(1, Relaxed);
            }
            cache.get_or_fetch(cache_chunk_key(id, index), fetch_chunk(index))
        }))
        .await?;
        let next = last + 1;
        // Also when the next chunk is on the disk tier: loading it into memory ahead of the
        // reader keeps a disk read off the consumer's path.
        let ahead_key = cache_chunk_key(id, next);
        if read_ahead
            && next * cs < size
            && !cache.in_memory(&ahead_key)
            && self
                .reading_ahead
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ahead_key)
        {
            {
                let mut p = self.prefetched.lock().unwrap_or_else(|e| e.into_inner());
                if p.len() >= 4096 {
                    p.clear();
                }
                p.insert(ahead_key);
            }
            self.readahead_issued.fetch_add(1, Relaxed);
            let cache = cache.clone();
            let ahead = fetch_chunk(next);
            let reading_ahead = self.reading_ahead.clone();
            tokio::spawn(async move {
                if let Err(e) = cache.get_or_fetch(ahead_key, ahead).await {
                    tracing::debug!(segment = %id, chunk = next, error = %e, "read-ahead failed");
                }
                reading_ahead
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&ahead_key);
            });
        }
        let offset = (range.start - first * cs) as usize;
        let len = (range.end - range.start) as usize;
        let mut out = Vec::with_capacity(parts.len());
        let (mut skip, mut room) = (offset, len);
        for p in &parts {
            let take_from = skip.min(p.len());
            skip -= take_from;
            let take = (p.len() - take_from).min(room);
            room -= take;
            if take > 0 {
                out.push(p.slice(take_from..take_from + take));
            }
        }
        Ok(out)
    }
}

/// Bytes in `parts`.
pub fn parts_len(parts: &[Bytes]) -> usize {
    parts.iter().map(Bytes::len).sum()
}

/// Copies `buf.len()` bytes of `parts` from `at` into `buf`; false if `parts` ends before.
pub fn parts_read_at(parts: &[Bytes], mut at: usize, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    for p in parts {
        if filled == buf.len() {
            break;
        }
        if at >= p.len() {
            at -= p.len();
            continue;
        }
        let n = (p.len() - at).min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&p[at..at + n]);
        filled += n;
        at = 0;
    }
    filled == buf.len()
}

/// Bytes `range` of `parts`, as slices of them (nothing copied, no empty piece).
pub fn parts_slice(parts: &[Bytes], range: std::ops::Range<usize>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut base = 0;
    for p in parts {
        let (start, end) = (base, base + p.len());
        base = end;
        let (a, b) = (range.start.max(start), range.end.min(end));
        if a < b {
            out.push(p.slice(a - start..b - start));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.log` chunk the cache holds in ordinary memory moves into a memory file once responses
    /// have carried more than its size from it, and stays there; one read through once does
    /// not move. Chunks fetched from the store are in memory files from the start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chunk_sent_again_moves_into_a_memory_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::open(chronik_cache::CacheConfig {
            memory_bytes: 1 << 20,
            disk_bytes: 8 << 20,
            dir: dir.path().join("cache"),
            chunk_bytes: 64 << 10,
        })
        .await
        .unwrap();
        let data: Vec<u8> = (0..(128 << 10)).map(|i| (i % 253) as u8).collect();
        let key = ObjectPath::from("t/0/x.log");
        let store: Arc<dyn ObjectStore> =
            Arc::new(chronik_tiering::object_store::memory::InMemory::new());
        store
            .put(&key, Bytes::from(data.clone()).into())
            .await
            .unwrap();
        let objects = RemoteObjects::new(store, "c".into(), Some(cache.clone()));
        let id = Uuid::new_v4();
        let size = data.len() as u64;
        // In ordinary memory, as after an upload or a read from the disk tier.
        for (index, c) in data.chunks(64 << 10).enumerate() {
            cache
                .insert(cache_chunk_key(id, index as u64), Bytes::copy_from_slice(c))
                .unwrap();
        }
        let read = |r: std::ops::Range<u64>| {
            let objects = &objects;
            let key = &key;
            let data = &data;
            async move {
                let parts = objects
                    .object_range_parts(key, id, size, r.clone(), false, u64::MAX)
                    .await
                    .unwrap();
                assert_eq!(parts.concat(), &data[r.start as usize..r.end as usize]);
                objects.sent(id, r);
                parts
            }
        };

        // Chunk 0 sent once, in pieces: it stays in ordinary memory.
        for start in (0..(64 << 10)).step_by(16 << 10) {
            let parts = read(start..start + (16 << 10)).await;
            assert!(crate::shm::file_region(&parts[0]).is_none());
        }
        // Sent again: past its size it moves, and the next reads are slices of that file.
        let parts = read(100..40_000).await;
        assert!(crate::shm::file_region(&parts[0]).is_none());
        let parts = read(100..40_000).await;
        let region = crate::shm::file_region(&parts[0]).expect("sent from a memory file");
        assert_eq!(region.position, 100);
        let again = read(0..70_000).await;
        assert_eq!(
            again[0].as_ptr(),
            parts[0].as_ptr().wrapping_sub(100),
            "moved once"
        );
        // Chunk 1 has carried only 4,464 bytes: still ordinary memory.
        assert!(crate::shm::file_region(&again[1]).is_none());

        // A chunk fetched from the store goes into a memory file as it arrives.
        let fetched = objects
            .object_range_parts(&key, Uuid::new_v4(), size, 10..20, false, u64::MAX)
            .await
            .unwrap();
        assert_eq!(fetched.concat(), &data[10..20]);
        assert!(crate::shm::file_region(&fetched[0]).is_some());

        // Other objects (search splits, indexes) are read as they are, never moved.
        let other = Uuid::new_v4();
        for _ in 0..3 {
            let plain = objects
                .object_range(&key, other, size, 0..60_000, false, u64::MAX)
                .await
                .unwrap();
            assert_eq!(&plain[..], &data[..60_000]);
            assert!(crate::shm::file_region(&plain).is_none());
        }
        cache.close().await.unwrap();
    }

    #[test]
    fn parts_read_and_slice_across_pieces() {
        let parts = vec![
            Bytes::from_static(b"0123"),
            Bytes::from_static(b"45"),
            Bytes::from_static(b"6789"),
        ];
        assert_eq!(parts_len(&parts), 10);
        let mut buf = [0u8; 5];
        assert!(parts_read_at(&parts, 2, &mut buf));
        assert_eq!(&buf, b"23456");
        assert!(parts_read_at(&parts, 5, &mut buf));
        assert_eq!(&buf, b"56789");
        assert!(!parts_read_at(&parts, 6, &mut buf));
        let joined = |v: Vec<Bytes>| v.concat();
        assert_eq!(joined(parts_slice(&parts, 3..7)), b"3456");
        assert_eq!(parts_slice(&parts, 3..7).len(), 3);
        assert_eq!(joined(parts_slice(&parts, 0..10)), b"0123456789");
        assert!(parts_slice(&parts, 4..4).is_empty());
        assert_eq!(parts_slice(&parts, 4..6), vec![Bytes::from_static(b"45")]);
        // The pieces are the caller's memory, not copies.
        assert_eq!(parts_slice(&parts, 6..8)[0].as_ptr(), parts[2].as_ptr());
    }
}

/// A local search split ready to go to the remote tier with its segment.
#[derive(Debug, Clone)]
pub struct SplitFile {
    pub path: PathBuf,
    pub base_offset: i64,
    pub next_offset: i64,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub docs: u64,
    pub size: u64,
    pub footer_bytes: u64,
}

/// What the tiering path may do with a sealed segment of a searchable topic.
#[derive(Debug)]
pub enum SplitForUpload {
    /// The indexer has not finished the segment yet: do not upload it now.
    Pending,
    /// The segment has no split (indexing started after it, or it held no records).
    None,
    Ready(SplitFile),
}

/// Who says which split goes up with a sealed segment (the search indexer).
pub trait SplitUploads: Send + Sync {
    fn split_for_upload(&self, topic_id: Uuid, partition: i32, base_offset: i64) -> SplitForUpload;
}
