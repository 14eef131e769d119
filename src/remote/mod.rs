//! The remote log manager: copies sealed segments of tiered topics (`remote.storage.enable`) to
//! object storage, deletes local copies once they are safe there, applies retention across both
//! tiers, and reads fetches below the local log start back from the remote tier.
//!
//! Every state change of a remote segment (KIP-405: COPY_SEGMENT_STARTED → COPY_SEGMENT_FINISHED
//! → DELETE_SEGMENT_STARTED → DELETE_SEGMENT_FINISHED) is durable in the metadata log before the
//! next step: a local segment is deleted only after COPY_SEGMENT_FINISHED is durable, and objects
//! are deleted only after DELETE_SEGMENT_STARTED is. A segment left in COPY_SEGMENT_STARTED or
//! DELETE_SEGMENT_STARTED by a crash, or belonging to a deleted topic, is cleaned up by the next
//! pass, so nothing in the bucket is orphaned. Only this module talks to the object store.

pub mod metadata_topic;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chronik_tiering::object_store::{ObjectStore, ObjectStoreExt, path::Path as ObjectPath};
use chronik_tiering::{RemoteLogSegmentMetadata, RemoteSegmentState, cache_chunk_key};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::log::SealedSegment;
use crate::log::batch::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD};
use crate::metadata::{MetadataRecord, RemoteSegmentStore};
use crate::objects::{
    ObjectError, RemoteObjects, SplitFile, SplitForUpload, SplitUploads, parts_len, parts_read_at,
    parts_slice,
};
use crate::replica::{Partition, RemoteTier, ReplicaManager, Topic};

/// Object kinds of one segment.
const EXTS: [&str; 5] = ["log", "index", "timeindex", "snapshot", "split"];
/// Bytes fetched beyond the requested maximum so the batch boundary can be found in one GET.
const READ_SLACK: u64 = 64 * 1024;
/// Offset indexes kept in memory for remote reads (a fuller cache lives in `chronik-cache`).
const INDEX_CACHE_ENTRIES: usize = 256;

/// The chunk-cache slot of a segment's offset index object (no `.log` has that many chunks).
const INDEX_CHUNK: u64 = u64::MAX;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("object store: {0}")]
    Store(#[from] chronik_tiering::object_store::Error),
    #[error("tiering: {0}")]
    Tiering(#[from] chronik_tiering::TieringError),
    #[error("metadata log: {0}")]
    Metadata(#[from] std::io::Error),
    #[error("remote segment {0} is corrupt: {1}")]
    Corrupt(Uuid, String),
    #[error("cache: {0}")]
    Cache(#[from] chronik_cache::CacheError),
}

impl From<ObjectError> for RemoteError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::Store(e) => RemoteError::Store(e),
            ObjectError::Cache(e) => RemoteError::Cache(e),
        }
    }
}

/// Counters of the remote tier, ready to be exported as metrics.
#[derive(Debug, Default)]
pub struct TieringMetrics {
    pub segments_uploaded: std::sync::atomic::AtomicU64,
    pub bytes_uploaded: std::sync::atomic::AtomicU64,
    pub upload_errors: std::sync::atomic::AtomicU64,
    pub segments_deleted: std::sync::atomic::AtomicU64,
    pub remote_reads: std::sync::atomic::AtomicU64,
    pub remote_read_bytes: std::sync::atomic::AtomicU64,
    /// Sealed segments of tiered topics not yet copied, as of the last pass.
    pub segments_awaiting_upload: std::sync::atomic::AtomicU64,
    pub bytes_awaiting_upload: std::sync::atomic::AtomicU64,
}

/// A plain copy of [`TieringMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TieringMetricsSnapshot {
    pub segments_uploaded: u64,
    pub bytes_uploaded: u64,
    pub upload_errors: u64,
    pub segments_deleted: u64,
    pub remote_reads: u64,
    pub remote_read_bytes: u64,
    pub segments_awaiting_upload: u64,
    pub bytes_awaiting_upload: u64,
    pub readahead_issued: u64,
    pub readahead_used: u64,
}

impl TieringMetrics {
    fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TieringMetricsSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        TieringMetricsSnapshot {
            segments_uploaded: self.segments_uploaded.load(Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Relaxed),
            upload_errors: self.upload_errors.load(Relaxed),
            segments_deleted: self.segments_deleted.load(Relaxed),
            remote_reads: self.remote_reads.load(Relaxed),
            remote_read_bytes: self.remote_read_bytes.load(Relaxed),
            segments_awaiting_upload: self.segments_awaiting_upload.load(Relaxed),
            bytes_awaiting_upload: self.bytes_awaiting_upload.load(Relaxed),
            readahead_issued: 0,
            readahead_used: 0,
        }
    }
}

/// A remote segment's offset index: (relative offset, position) entries.
type RemoteOffsetIndex = Arc<Vec<(u32, u32)>>;

pub struct RemoteLogManager {
    objects: Arc<RemoteObjects>,
    /// Where the states of remote segments live (metadata log, or a cluster's internal topic).
    segments: Arc<dyn RemoteSegmentStore>,
    replicas: Arc<ReplicaManager>,
    /// The search indexer, when search is on: a searchable segment goes up with its split.
    splits: Option<Arc<dyn SplitUploads>>,
    part_size: usize,
    indexes: Mutex<HashMap<Uuid, RemoteOffsetIndex>>,
    metrics: TieringMetrics,
}

/// What the remote tier holds for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteRange {
    pub start: i64,
    /// One past the last remote offset.
    pub next: i64,
}

impl RemoteLogManager {
    pub fn new(
        objects: Arc<RemoteObjects>,
        segments: Arc<dyn RemoteSegmentStore>,
        replicas: Arc<ReplicaManager>,
        splits: Option<Arc<dyn SplitUploads>>,
        part_size: usize,
    ) -> Self {
        Self {
            objects,
            segments,
            replicas,
            splits,
            part_size,
            indexes: Mutex::new(HashMap::new()),
            metrics: TieringMetrics::default(),
        }
    }

    pub fn objects(&self) -> &Arc<RemoteObjects> {
        &self.objects
    }

    pub fn metrics(&self) -> TieringMetricsSnapshot {
        let (readahead_issued, readahead_used) = self.objects.readahead();
        TieringMetricsSnapshot {
            readahead_issued,
            readahead_used,
            ..self.metrics.snapshot()
        }
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        self.objects.store()
    }

    /// Bytes `range` of a remote `.log` object, through the chunk cache, with the chunk after
    /// the last one read fetched ahead for sequential consumers: as slices of the cached
    /// chunks, never copied.
    async fn log_range(
        &self,
        key: &ObjectPath,
        m: &RemoteLogSegmentMetadata,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<Bytes>, RemoteError> {
        Ok(self
            .objects
            .object_range_parts(
                key,
                m.segment_id,
                m.segment_size_bytes,
                range,
                true,
                u64::MAX,
            )
            .await?)
    }

    fn key(&self, topic: &str, m: &RemoteLogSegmentMetadata, ext: &str) -> ObjectPath {
        self.objects.segment_key(topic, m, ext)
    }

    pub fn segments(&self, topic_id: Uuid, partition: i32) -> Vec<RemoteLogSegmentMetadata> {
        self.segments.segments_of(topic_id, partition)
    }

    pub fn range(&self, topic_id: Uuid, partition: i32) -> Option<RemoteRange> {
        let segs = self.segments(topic_id, partition);
        Some(RemoteRange {
            start: segs.first()?.base_offset,
            next: segs.last()?.end_offset + 1,
        })
    }

    async fn record(&self, topic: &str, m: &RemoteLogSegmentMetadata) -> Result<(), RemoteError> {
        self.segments
            .append(vec![MetadataRecord::RemoteSegmentUpdated {
                topic: topic.to_string(),
                segment: m.clone(),
            }])
            .await?;
        Ok(())
    }

    /// Copies one sealed segment and its indexes and producer snapshot.
    async fn copy_segment(
        &self,
        topic: &Topic,
        partition: &Partition,
        seg: &SealedSegment,
        split: Option<SplitFile>,
    ) -> Result<(), RemoteError> {
        let started = RemoteLogSegmentMetadata {
            topic_id: topic.id,
            partition: partition.index,
            segment_id: Uuid::new_v4(),
            base_offset: seg.base_offset,
            end_offset: seg.next_offset - 1,
            max_timestamp_ms: seg.max_timestamp,
            segment_size_bytes: seg.size,
            leader_epoch: partition.leader_epoch(),
            state: RemoteSegmentState::CopySegmentStarted,
        };
        self.record(&topic.name, &started).await?;
        let files = [
            Some((&seg.log, "log")),
            Some((&seg.offset_index, "index")),
            Some((&seg.time_index, "timeindex")),
            seg.producer_snapshot.as_ref().map(|p| (p, "snapshot")),
        ];
        for (path, ext) in files.into_iter().flatten() {
            if ext == "snapshot" && !path.exists() {
                // Producer snapshots are optional: an old one may already be gone.
                continue;
            }
            let key = self.key(&topic.name, &started, ext);
            chronik_tiering::upload_file(self.store().as_ref(), &key, path, self.part_size).await?;
        }
        let mut records = Vec::with_capacity(2);
        if let Some(split) = split {
            let key = self.key(&topic.name, &started, "split");
            chronik_tiering::upload_file(self.store().as_ref(), &key, &split.path, self.part_size)
                .await?;
            records.push(MetadataRecord::RemoteSplitAdded {
                split: chronik_tiering::RemoteSplitMetadata {
                    topic_id: topic.id,
                    partition: partition.index,
                    segment_id: started.segment_id,
                    base_offset: split.base_offset,
                    next_offset: split.next_offset,
                    min_timestamp_ms: split.min_timestamp_ms,
                    max_timestamp_ms: split.max_timestamp_ms,
                    docs: split.docs,
                    size_bytes: split.size,
                    footer_bytes: split.footer_bytes,
                },
            });
        }
        let finished = started.with_state(RemoteSegmentState::CopySegmentFinished)?;
        records.push(MetadataRecord::RemoteSegmentUpdated {
            topic: topic.name.clone(),
            segment: finished.clone(),
        });
        self.segments.append(records).await?;
        TieringMetrics::add(&self.metrics.segments_uploaded, 1);
        TieringMetrics::add(&self.metrics.bytes_uploaded, seg.size);
        tracing::info!(
            topic = %topic.name,
            partition = partition.index,
            base_offset = seg.base_offset,
            bytes = seg.size,
            segment = %started.segment_id,
            "segment copied to the remote tier"
        );
        Ok(())
    }

    /// Deletes a segment's objects, with its state changes recorded around the deletion.
    async fn delete_segment(
        &self,
        topic: &str,
        m: &RemoteLogSegmentMetadata,
    ) -> Result<(), RemoteError> {
        tracing::info!(topic, partition = m.partition, base_offset = m.base_offset, segment = %m.segment_id, state = ?m.state, "deleting a remote segment");
        let deleting = if m.state == RemoteSegmentState::DeleteSegmentStarted {
            m.clone()
        } else {
            let d = m.with_state(RemoteSegmentState::DeleteSegmentStarted)?;
            self.record(topic, &d).await?;
            d
        };
        for ext in EXTS {
            match self.store().delete(&self.key(topic, &deleting, ext)).await {
                Ok(()) | Err(chronik_tiering::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&m.segment_id);
        if let Some(cache) = self.objects.cache() {
            let chunks = m.segment_size_bytes.div_ceil(cache.chunk_bytes() as u64);
            for index in (0..chunks).chain([INDEX_CHUNK]) {
                cache.remove(&cache_chunk_key(m.segment_id, index)).await;
            }
        }
        let done = deleting.with_state(RemoteSegmentState::DeleteSegmentFinished)?;
        self.record(topic, &done).await?;
        TieringMetrics::add(&self.metrics.segments_deleted, 1);
        Ok(())
    }

    /// One pass over every partition: copy, local retention, remote retention, cleanup.
    pub async fn run_once(&self) {
        let now = crate::util::now_ms();
        let live: HashMap<Uuid, Arc<Topic>> = self
            .replicas
            .topics()
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        // Segments of deleted topics and interrupted copies or deletions. A copy is interrupted
        // only if the partition's leader is not making it: this broker cleans up copies of the
        // partitions it leads (its own from before a crash, or a former leader's), never one
        // another broker is uploading right now.
        let leads = |m: &RemoteLogSegmentMetadata| {
            live.get(&m.topic_id)
                .and_then(|t| t.partition(m.partition))
                .is_some_and(|p| p.is_leader())
        };
        let leftovers: Vec<(String, RemoteLogSegmentMetadata)> = self
            .segments
            .all_own()
            .into_iter()
            .filter(|(_, m)| {
                !live.contains_key(&m.topic_id)
                    || (m.state == RemoteSegmentState::CopySegmentStarted
                        && leads(m)
                        && self.segments.ready(m.topic_id, m.partition))
                    || m.state == RemoteSegmentState::DeleteSegmentStarted
            })
            .collect();
        for (topic, m) in leftovers {
            if let Err(e) = self.delete_segment(&topic, &m).await {
                tracing::warn!(topic = %topic, segment = %m.segment_id, error = %e, "remote cleanup failed; will retry");
            }
        }
        for topic in live.values() {
            for p in topic.partitions() {
                if !p.log_config().remote_storage {
                    continue;
                }
                if let Err(e) = self.tier_partition(topic, p, now).await {
                    TieringMetrics::add(&self.metrics.upload_errors, 1);
                    tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "tiering pass failed; will retry");
                }
            }
        }
        // What is still waiting for the next pass.
        let (mut segments, mut bytes) = (0u64, 0u64);
        for topic in live.values() {
            for p in topic.partitions() {
                if !p.log_config().remote_storage {
                    continue;
                }
                let next = self.range(topic.id, p.index).map_or(i64::MIN, |r| r.next);
                for seg in p.sealed_segments().iter().filter(|s| s.base_offset >= next) {
                    segments += 1;
                    bytes += seg.size;
                }
            }
        }
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics
            .segments_awaiting_upload
            .store(segments, Relaxed);
        self.metrics.bytes_awaiting_upload.store(bytes, Relaxed);
    }

    async fn tier_partition(
        &self,
        topic: &Topic,
        p: &Arc<Partition>,
        now_ms: i64,
    ) -> Result<(), RemoteError> {
        if !self.segments.ready(topic.id, p.index) {
            // This broker has not read all of the partition's segment states yet (a cluster's
            // broker just started, or they are being moved into the internal topic).
            return Ok(());
        }
        let remote = self.segments(topic.id, p.index);
        let copied: HashMap<i64, &RemoteLogSegmentMetadata> =
            remote.iter().map(|m| (m.base_offset, m)).collect();
        let remote_next = remote.last().map_or(i64::MIN, |m| m.end_offset + 1);
        let sealed = p.sealed_segments();
        // Only a partition's leader uploads; followers drop local copies the leader uploaded.
        let uploads = if p.is_leader() { &sealed[..] } else { &[] };
        for seg in uploads {
            if !copied.contains_key(&seg.base_offset) && seg.base_offset >= remote_next {
                // A searchable topic's segment goes up with its split: wait for the indexer.
                let split = match &self.splits {
                    Some(s) if p.log_config().search_enabled => {
                        match s.split_for_upload(topic.id, p.index, seg.base_offset) {
                            SplitForUpload::Pending => break,
                            SplitForUpload::None => None,
                            SplitForUpload::Ready(split) => Some(split),
                        }
                    }
                    _ => None,
                };
                self.copy_segment(topic, p, seg, split).await?;
            }
        }
        // Local retention: only segments that are safely remote may go.
        let remote = self.segments(topic.id, p.index);
        let copied: HashMap<i64, &RemoteLogSegmentMetadata> =
            remote.iter().map(|m| (m.base_offset, m)).collect();
        let config = p.log_config();
        let (local_ms, local_bytes) = config.effective_local_retention();
        let mut local_size: u64 = p.size_bytes();
        for seg in &sealed {
            if !copied.contains_key(&seg.base_offset) {
                break;
            }
            let expired = local_ms >= 0
                && seg.max_timestamp >= 0
                && now_ms.saturating_sub(seg.max_timestamp) > local_ms;
            let too_big = local_bytes >= 0 && local_size > local_bytes as u64;
            if !expired && !too_big {
                break;
            }
            // Deleting a local copy takes the partition's log lock and fsyncs the log-start
            // checkpoint. Off the runtime's workers, and one segment per await: after an outage
            // the backlog is hundreds of segments, and a loop of them without a pause held produce
            // to this partition off for seconds (reliability suite, S3 faults).
            let part = Arc::clone(p);
            let base_offset = seg.base_offset;
            let deleted =
                tokio::task::spawn_blocking(move || part.delete_local_segment(base_offset))
                    .await
                    .map_err(std::io::Error::other)??;
            if deleted {
                local_size = local_size.saturating_sub(seg.size);
                tracing::debug!(topic = %topic.name, partition = p.index, base_offset = seg.base_offset, "deleted local copy of a remote segment");
            }
        }
        // Total retention and DeleteRecords across both tiers, oldest remote segments first.
        let log_start = p.log_start_offset();
        let local_only: u64 = p.size_bytes();
        let mut remote_bytes: u64 = remote
            .iter()
            .filter(|m| m.base_offset < p.local_log_start_offset())
            .map(|m| m.segment_size_bytes)
            .sum();
        let mut new_start = log_start;
        for m in &remote {
            let below_start = m.end_offset < log_start;
            let expired = config.retention_ms >= 0
                && m.max_timestamp_ms >= 0
                && now_ms.saturating_sub(m.max_timestamp_ms) > config.retention_ms;
            let too_big = config.retention_bytes >= 0
                && remote_bytes + local_only > config.retention_bytes as u64;
            if !below_start && !expired && !too_big {
                break;
            }
            self.delete_segment(&topic.name, m).await?;
            remote_bytes = remote_bytes.saturating_sub(m.segment_size_bytes);
            new_start = new_start.max(m.end_offset + 1);
        }
        if new_start > log_start {
            p.advance_log_start(new_start)?;
        }
        Ok(())
    }

    async fn offset_index(
        &self,
        topic: &str,
        m: &RemoteLogSegmentMetadata,
    ) -> Result<RemoteOffsetIndex, RemoteError> {
        if let Some(i) = self
            .indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&m.segment_id)
        {
            return Ok(i.clone());
        }
        let key = self.key(topic, m, "index");
        let whole = |store: Arc<dyn ObjectStore>, key: ObjectPath| async move {
            store.get(&key).await?.bytes().await
        };
        // Through the chunk cache, so that a restarted broker has its indexes on local disk; an
        // index larger than a chunk (huge segments, small chunks) is read directly.
        let raw = match self.objects.cache() {
            Some(cache) => match cache
                .get_or_fetch(
                    cache_chunk_key(m.segment_id, INDEX_CHUNK),
                    whole(self.store().clone(), key.clone()),
                )
                .await
            {
                Ok(raw) => raw,
                Err(chronik_cache::CacheError::ChunkTooLarge { .. }) => {
                    whole(self.store().clone(), key).await?
                }
                Err(e) => return Err(e.into()),
            },
            None => whole(self.store().clone(), key).await?,
        };
        let entries: Vec<(u32, u32)> = raw
            .chunks_exact(8)
            .map(|c| {
                (
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                    u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        let entries = Arc::new(entries);
        let mut cache = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= INDEX_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(m.segment_id, entries.clone());
        Ok(entries)
    }

    /// The first remote record at or after `timestamp` below offset `below`, with its timestamp.
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        timestamp: i64,
        below: i64,
    ) -> Result<Option<(i64, i64)>, RemoteError> {
        let segs = self.segments(topic_id, partition);
        for m in segs.iter().filter(|m| m.base_offset < below) {
            if m.max_timestamp_ms < timestamp {
                continue;
            }
            let mut offset = m.base_offset;
            while offset <= m.end_offset {
                let Some((parts, _, _)) = self
                    .read_batches(topic, topic_id, partition, offset, 1 << 20, true)
                    .await?
                else {
                    break;
                };
                let mut buf = Bytes::from(parts.concat());
                let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
                    .map_err(|e| RemoteError::Corrupt(m.segment_id, e.to_string()))?;
                for r in sets.iter().flat_map(|s| s.records.iter()) {
                    if r.offset >= offset && r.timestamp >= timestamp {
                        return Ok(Some((r.offset, r.timestamp)));
                    }
                    offset = offset.max(r.offset + 1);
                }
                if sets.is_empty() {
                    break;
                }
            }
        }
        Ok(None)
    }

    /// Reads whole batches at `offset` from the remote tier, as a local read would return them:
    /// at most `max_bytes`, but at least one batch when `at_least_one`. The batches come as
    /// slices of the cached chunks they span (in order; joined they are the batches), so a
    /// fetch copies none of their bytes; with them the segment and the byte range of its
    /// `.log` object they are.
    async fn read_batches(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> Result<Option<(Vec<Bytes>, Uuid, std::ops::Range<u64>)>, RemoteError> {
        let Some(m) = self.segments.segment_for(topic_id, partition, offset) else {
            return Ok(None);
        };
        let m = &m;
        let index = self.offset_index(topic, m).await?;
        let rel = offset - m.base_offset;
        let idx = index.partition_point(|&(r, _)| (r as i64) < rel);
        let start = if idx == 0 { 0 } else { index[idx - 1].1 as u64 };
        let size = m.segment_size_bytes;
        let want = (max_bytes as u64)
            .saturating_add(READ_SLACK)
            .max(READ_SLACK);
        let log_key = self.key(topic, m, "log");
        let mut pos = start;
        let mut window_start = start;
        let mut window = self
            .log_range(&log_key, m, start..(start + want).min(size))
            .await?;
        let mut window_len = parts_len(&window);
        let corrupt = |why: &str| RemoteError::Corrupt(m.segment_id, why.to_string());
        let mut header = [0u8; BATCH_HEADER_LEN];
        // Skip batches that end before `offset`.
        let first = loop {
            if pos >= size {
                return Ok(None);
            }
            let at = (pos - window_start) as usize;
            if !parts_read_at(&window, at, &mut header) {
                window_start = pos;
                window = self
                    .log_range(&log_key, m, pos..(pos + want).min(size))
                    .await?;
                window_len = parts_len(&window);
                if window_len < BATCH_HEADER_LEN {
                    return Err(corrupt("truncated batch header"));
                }
                continue;
            }
            let h = BatchHeader::parse(&header).map_err(|e| corrupt(&e.to_string()))?;
            if h.last_offset() >= offset {
                break h;
            }
            pos += h.total_len() as u64;
        };
        let read_start = pos;
        let mut end = pos + first.total_len() as u64;
        if end - read_start > max_bytes as u64 && !at_least_one {
            return Ok(None);
        }
        // Extend over following batches that fit, using what the window already holds.
        let mut overhead = [0u8; LOG_OVERHEAD];
        loop {
            let at = (end - window_start) as usize;
            if end >= size || !parts_read_at(&window, at, &mut overhead) {
                break;
            }
            let len = i32::from_be_bytes([overhead[8], overhead[9], overhead[10], overhead[11]]);
            let next_end = end + LOG_OVERHEAD as u64 + len.max(0) as u64;
            if next_end - read_start > max_bytes as u64 || next_end > size {
                break;
            }
            end = next_end;
        }
        let window_end = window_start + window_len as u64;
        let out = if read_start >= window_start && end <= window_end {
            let a = (read_start - window_start) as usize;
            let b = (end - window_start) as usize;
            parts_slice(&window, a..b)
        } else {
            self.log_range(&log_key, m, read_start..end).await?
        };
        let out_len = parts_len(&out) as u64;
        if out_len != end - read_start {
            return Err(corrupt("remote object shorter than its batches"));
        }
        TieringMetrics::add(&self.metrics.remote_reads, 1);
        TieringMetrics::add(&self.metrics.remote_read_bytes, out_len);
        Ok(Some((out, m.segment_id, read_start..end)))
    }

    /// [`RemoteLogManager::read_batches`] for a fetch response: the chunk cache learns what
    /// the response carries (see [`RemoteObjects::sent`]).
    pub async fn read(
        &self,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> Result<Option<Vec<Bytes>>, RemoteError> {
        let read = self
            .read_batches(topic, topic_id, partition, offset, max_bytes, at_least_one)
            .await?;
        Ok(read.map(|(parts, segment, range)| {
            self.objects.sent(segment, range);
            parts
        }))
    }
}

/// Partitions read the remote tier through this (the replica layer's one read).
impl RemoteTier for RemoteLogManager {
    fn read<'a>(
        &'a self,
        topic: &'a str,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> BoxFuture<'a, std::io::Result<Option<Vec<Bytes>>>> {
        Box::pin(async move {
            RemoteLogManager::read(
                self,
                topic,
                topic_id,
                partition,
                offset,
                max_bytes,
                at_least_one,
            )
            .await
            .map_err(std::io::Error::other)
        })
    }

    fn offset_for_timestamp<'a>(
        &'a self,
        topic: &'a str,
        topic_id: Uuid,
        partition: i32,
        timestamp: i64,
        below: i64,
    ) -> BoxFuture<'a, std::io::Result<Option<(i64, i64)>>> {
        Box::pin(async move {
            RemoteLogManager::offset_for_timestamp(
                self, topic, topic_id, partition, timestamp, below,
            )
            .await
            .map_err(std::io::Error::other)
        })
    }

    fn range(&self, topic_id: Uuid, partition: i32) -> Option<(i64, i64)> {
        self.segments.range(topic_id, partition)
    }

    /// `None` too while this broker has not read all of the partition's segment states: a
    /// follower restarting above the remote tier must not start below its real end.
    fn next_offset(&self, topic_id: Uuid, partition: i32) -> Option<i64> {
        if !self.segments.ready(topic_id, partition) {
            return None;
        }
        self.segments
            .range(topic_id, partition)
            .map(|(_, next)| next)
    }
}
