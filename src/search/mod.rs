//! Search over both tiers.
//!
//! Each partition of a topic with `search.enabled=true` has a Tantivy index of the segment being
//! written (`<partition dir>/search/active/`), fed in the background from committed batches and
//! committed every `commit_interval_ms` with the next offset to index as its payload — so after a
//! crash indexing resumes exactly where the last commit ended, with nothing missing or twice.
//! When the log moves on to a new segment, the finished index is merged into one Tantivy segment
//! and packed into a split file (`<base_offset:020>.split`, see [`split`]) that the tiering path
//! uploads next to the segment before the segment may leave local disk. Queries fan out over the
//! active indexes, the local splits and the remote splits (read through the chunk cache) of the
//! partitions they ask for, skip splits outside their time range, and merge the top hits.

pub mod query;
pub mod schema;
pub mod split;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery};
use tantivy::schema::Value as _;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};
use uuid::Uuid;

use crate::config::SearchConfig;
use crate::log::ReadError;
use crate::metadata::RemoteSegmentStore;
use crate::objects::{RemoteObjects, SplitFile, SplitForUpload, SplitUploads};
use crate::replica::{Partition, ReplicaManager, Topic};
use chronik_tiering::RemoteSplitMetadata;
use query::{BadRequest, QueryBuilder, SearchRequest, Sort, SortKey};
use schema::Fields;
use split::{LocalSplit, SplitDirectory, SplitInfo, SplitSource};

const ACTIVE_DIR: &str = "active";
/// Bytes of log read per indexing step of one partition.
const STEP_BYTES: u32 = 4 << 20;
/// Remote splits kept open (their footers, hotcaches and term dictionaries in memory).
const OPEN_REMOTE_SPLITS: usize = 512;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{}", .0.reason)]
    BadRequest(BadRequest),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("search is not enabled on topic {0}; set search.enabled=true")]
    Disabled(String),
    #[error("search is unavailable: {0}")]
    Unavailable(String),
}

/// A local split ready to go to the remote tier with its segment.
#[derive(Debug, Clone)]
pub struct LocalSplitFile {
    pub path: PathBuf,
    pub info: SplitInfo,
    pub size: u64,
    pub footer_bytes: u64,
}

impl LocalSplitFile {
    fn for_upload(&self) -> SplitFile {
        SplitFile {
            path: self.path.clone(),
            base_offset: self.info.base_offset,
            next_offset: self.info.next_offset,
            min_timestamp_ms: self.info.min_timestamp_ms,
            max_timestamp_ms: self.info.max_timestamp_ms,
            docs: self.info.docs,
            size: self.size,
            footer_bytes: self.footer_bytes,
        }
    }
}

/// The commit payload of an active index: which segment it indexes and how far it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    segment_base: i64,
    next_offset: i64,
    min_ts: i64,
    max_ts: i64,
    docs: u64,
}

impl Progress {
    fn new(segment_base: i64, next_offset: i64) -> Self {
        Self {
            segment_base,
            next_offset,
            min_ts: -1,
            max_ts: -1,
            docs: 0,
        }
    }

    fn info(&self) -> SplitInfo {
        SplitInfo {
            base_offset: self.segment_base,
            next_offset: self.next_offset,
            min_timestamp_ms: self.min_ts,
            max_timestamp_ms: self.max_ts,
            docs: self.docs,
        }
    }
}

struct Active {
    index: Index,
    writer: IndexWriter,
    reader: IndexReader,
    /// Including documents not yet committed.
    progress: Progress,
    uncommitted: u64,
    last_commit: Instant,
}

/// An active index whose writer is gone, being packed.
struct Sealing {
    index: Index,
    reader: IndexReader,
}

struct OpenSplit {
    file: LocalSplitFile,
    searcher: Searcher,
}

/// What queries see of one partition, swapped as a whole so that a segment is never seen both
/// as the active index and as a split.
#[derive(Default)]
struct View {
    active: Option<(Progress, Searcher)>,
    splits: BTreeMap<i64, Arc<OpenSplit>>,
    /// Every offset below this is searchable.
    searchable: i64,
    /// The indexer is at or past this segment base: smaller sealed segments are done.
    position: i64,
}

/// The search state of one partition.
pub struct PartitionIndex {
    dir: PathBuf,
    partition: i32,
    active: Mutex<Option<Active>>,
    view: Mutex<View>,
    /// Records of the log the indexer had not read at the end of its last pass.
    unread: AtomicI64,
}

impl PartitionIndex {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The offset below which every record is searchable, at most `hw`.
    fn searchable(&self, hw: i64) -> i64 {
        self.view().searchable.min(hw)
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct SearchMetrics {
    pub docs_indexed: AtomicU64,
    pub bytes_indexed: AtomicU64,
    pub commits: AtomicU64,
    pub splits_sealed: AtomicU64,
    pub index_errors: AtomicU64,
    pub queries: AtomicU64,
    pub query_errors: AtomicU64,
    pub remote_splits_opened: AtomicU64,
    /// Records not yet read by the indexer at the end of its last pass, over all partitions.
    pub unread: AtomicU64,
    /// 1 while the indexing threads also run on `spill_cpus`.
    pub spilled: AtomicU64,
}

/// Where the idle-class indexing threads run: on the indexer's own CPUs, and on `spill_cpus`
/// too while it is far behind the log.
struct Placement {
    home: Vec<usize>,
    wide: Vec<usize>,
    after: u64,
    spilled: AtomicBool,
}

impl Placement {
    fn new(config: &SearchConfig) -> Self {
        Self {
            home: config.home_cpus(),
            wide: config.all_index_cpus(),
            after: config.spill_after_records,
            spilled: AtomicBool::new(false),
        }
    }

    /// The CPUs for indexing threads started now.
    fn cpus(&self) -> Vec<usize> {
        if self.spilled.load(Relaxed) {
            self.wide.clone()
        } else {
            self.home.clone()
        }
    }

    /// After a pass that left `unread` records unread and `lag` records not yet searchable:
    /// spread out when more than `after` records wait, come back once every record is
    /// searchable. Returns the CPUs to move to when that changed.
    fn steer(&self, unread: u64, lag: u64) -> Option<&[usize]> {
        if self.wide == self.home {
            return None;
        }
        let spilled = self.spilled.load(Relaxed);
        let spread = if spilled {
            lag > 0
        } else {
            unread > self.after
        };
        if spread == spilled {
            return None;
        }
        self.spilled.store(spread, Relaxed);
        Some(if spread { &self.wide } else { &self.home })
    }
}

pub struct SearchManager {
    config: SearchConfig,
    replicas: Arc<ReplicaManager>,
    /// Where the remote segments' splits are recorded.
    segments: Arc<dyn RemoteSegmentStore>,
    /// The remote tier's objects, for remote splits; `None` searches local data only.
    objects: Option<Arc<RemoteObjects>>,
    builder: QueryBuilder,
    partitions: Mutex<HashMap<(Uuid, i32), Arc<PartitionIndex>>>,
    remote_open: Mutex<HashMap<Uuid, Searcher>>,
    placement: Placement,
    pub metrics: SearchMetrics,
}

/// Partition status for `/topics/{topic}/_search/status`.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    pub high_watermark: i64,
    pub searchable_offset: i64,
    pub lag: i64,
    /// Records the indexer had not read yet at the end of its last pass.
    pub unread: i64,
    pub local_splits: usize,
    pub remote_splits: usize,
}

/// Runs `make` on a short-lived thread in Linux's idle scheduling class (`SCHED_IDLE`; nice 19
/// where that is refused), on `cpus` (empty: the caller's). The threads it starts — a Tantivy
/// writer's indexing and merge threads — inherit the class and the CPUs, so they only use CPU
/// time that produce, fetch and queries leave.
fn on_idle_thread<T: Send>(cpus: &[usize], make: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            crate::util::idle_class();
            if let Err(e) = crate::util::run_on(cpus) {
                tracing::debug!(cpus = ?cpus, error = %e, "indexing threads keep the indexer's CPUs");
            }
            make()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Commits with `progress` as the payload. Tantivy starts the writer's indexing threads anew
/// at every commit, from the committing thread: so it commits on an idle-class thread too.
fn commit_with(writer: &mut IndexWriter, progress: &Progress, cpus: &[usize]) -> io::Result<()> {
    let payload = serde_json::to_string(progress).map_err(io::Error::other)?;
    on_idle_thread(cpus, || {
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&payload);
        commit.commit()
    })
    .map_err(tantivy_io)?;
    Ok(())
}

fn tantivy_io(e: tantivy::TantivyError) -> io::Error {
    io::Error::other(e.to_string())
}

impl SearchManager {
    pub fn new(
        config: SearchConfig,
        replicas: Arc<ReplicaManager>,
        segments: Arc<dyn RemoteSegmentStore>,
        objects: Option<Arc<RemoteObjects>>,
    ) -> Self {
        let max_window = config.max_result_window as usize;
        Self {
            replicas,
            segments,
            objects,
            builder: QueryBuilder::new(Fields::new(), max_window),
            partitions: Mutex::new(HashMap::new()),
            remote_open: Mutex::new(HashMap::new()),
            placement: Placement::new(&config),
            metrics: SearchMetrics::default(),
            config,
        }
    }

    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    fn fields(&self) -> &Fields {
        &self.builder.fields
    }

    fn existing(&self, topic: &Topic, partition: i32) -> Option<Arc<PartitionIndex>> {
        self.existing_by_id(topic.id, partition)
    }

    fn existing_by_id(&self, topic_id: Uuid, partition: i32) -> Option<Arc<PartitionIndex>> {
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic_id, partition))
            .cloned()
    }

    /// The partition's index, opened (and recovered) on first use.
    fn open_partition(
        &self,
        topic: &Topic,
        p: &Partition,
        dir: &Path,
    ) -> io::Result<Arc<PartitionIndex>> {
        if let Some(pi) = self.existing(topic, p.index) {
            return Ok(pi);
        }
        let pi = Arc::new(self.recover(p, dir)?);
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((topic.id, p.index), pi.clone());
        Ok(pi)
    }

    /// Opens what a previous run left: the local splits and the active index at its last
    /// commit. Documents the log no longer has (a crash lost its unflushed tail) are deleted.
    fn recover(&self, p: &Partition, dir: &Path) -> io::Result<PartitionIndex> {
        std::fs::create_dir_all(dir)?;
        let mut splits = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".split.tmp") {
                std::fs::remove_file(&path)?;
                continue;
            }
            if !name.ends_with(".split") {
                continue;
            }
            match open_local_split(&path) {
                Ok(s) => {
                    splits.insert(s.file.info.base_offset, Arc::new(s));
                }
                Err(e) => {
                    // A damaged split is rebuilt from the log when the log still has it.
                    tracing::warn!(path = %path.display(), error = %e, "dropping unreadable split");
                    std::fs::remove_file(&path)?;
                }
            }
        }
        let log_end = p.high_watermark();
        let after_splits = splits.values().map(|s| s.file.info.next_offset).max();
        let active_dir = dir.join(ACTIVE_DIR);
        let mut active = None;
        if active_dir.join("meta.json").exists() {
            let index = Index::open_in_dir(&active_dir).map_err(tantivy_io)?;
            let progress = index
                .load_metas()
                .map_err(tantivy_io)?
                .payload
                .and_then(|p| serde_json::from_str::<Progress>(&p).ok());
            match progress {
                Some(pr) if !splits.contains_key(&pr.segment_base) => {
                    active = Some(self.open_active(index, pr, log_end)?);
                }
                _ => {
                    // Already packed into a split (a crash after packing), or never committed.
                    std::fs::remove_dir_all(&active_dir)?;
                }
            }
        } else if active_dir.exists() {
            std::fs::remove_dir_all(&active_dir)?;
        }
        let start = after_splits.unwrap_or_else(|| p.local_log_start_offset());
        let view_active = active
            .as_ref()
            .map(|a: &Active| (a.progress, a.reader.searcher()));
        let searchable = active.as_ref().map_or(start, |a| a.progress.next_offset);
        let position = active.as_ref().map_or(start, |a| a.progress.segment_base);
        Ok(PartitionIndex {
            dir: dir.to_path_buf(),
            partition: p.index,
            active: Mutex::new(active),
            view: Mutex::new(View {
                active: view_active,
                splits,
                searchable,
                position,
            }),
            unread: AtomicI64::new(0),
        })
    }

    fn open_active(
        &self,
        index: Index,
        mut progress: Progress,
        log_end: i64,
    ) -> io::Result<Active> {
        schema::register_analyzers(&index);
        // Config::validate keeps both within Tantivy's limits (at most 16 threads, 15 MiB to
        // 4 GiB of buffer each).
        let threads = self.config.effective_index_threads();
        let memory = threads * self.config.writer_memory_bytes as usize;
        let mut writer: IndexWriter = on_idle_thread(&self.placement.cpus(), || {
            index.writer_with_num_threads(threads, memory)
        })
        .map_err(tantivy_io)?;
        // The active index is merged into one segment when it is sealed anyway: merging less
        // often before that (16 segments of a level at once instead of 8) saves about a tenth
        // of the indexing work and leaves at most a few dozen segments to search.
        let mut merges = tantivy::indexer::LogMergePolicy::default();
        merges.set_min_num_segments(ACTIVE_MERGE_SEGMENTS);
        writer.set_merge_policy(Box::new(merges));
        if progress.next_offset > log_end {
            // The log lost records the index has: forget them.
            let gone = RangeQuery::new(
                std::ops::Bound::Included(Term::from_field_i64(self.fields().offset, log_end)),
                std::ops::Bound::Unbounded,
            );
            writer.delete_query(Box::new(gone)).map_err(tantivy_io)?;
            progress.next_offset = log_end.max(progress.segment_base);
            commit_with(&mut writer, &progress, &self.placement.cpus())?;
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_io)?;
        Ok(Active {
            index,
            writer,
            reader,
            progress,
            uncommitted: 0,
            last_commit: Instant::now(),
        })
    }

    fn new_active(&self, dir: &Path, progress: Progress) -> io::Result<Active> {
        let path = dir.join(ACTIVE_DIR);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        let index =
            Index::create_in_dir(&path, self.fields().schema.clone()).map_err(tantivy_io)?;
        self.open_active(index, progress, i64::MAX)
    }

    /// Indexes what is new in every searchable partition. Runs on a blocking thread.
    pub fn index_pass(&self) {
        let (mut unread, mut lag) = (0u64, 0u64);
        for topic in self.replicas.topics() {
            for p in topic.partitions() {
                let config = p.log_config();
                // In a cluster the leader indexes (its splits go up with its segments).
                if !config.search_enabled || p.is_deleted() || !p.is_leader() {
                    continue;
                }
                let dir = self
                    .replicas
                    .partition_dir(&topic.name, p.index)
                    .join("search");
                let result = self.open_partition(&topic, p, &dir).and_then(|pi| {
                    let remote_end = Self::remote_end(&self.remote_splits(topic.id, p.index));
                    self.index_step(&pi, p, &config.search_fields, remote_end)?;
                    let hw = p.high_watermark();
                    unread += pi.unread.load(Relaxed).max(0) as u64;
                    lag += (hw - pi.searchable(hw)).max(0) as u64;
                    Ok(())
                });
                if let Err(e) = result {
                    self.metrics.index_errors.fetch_add(1, Relaxed);
                    tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "indexing failed; will retry from the last commit");
                    // Start again from what is on disk: the last commit of the active index and
                    // the splits (a failed seal leaves the active index committed).
                    self.partitions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(topic.id, p.index));
                }
            }
        }
        // Forget partitions of deleted topics (their directories went with the topic).
        let live: std::collections::HashSet<Uuid> =
            self.replicas.topics().iter().map(|t| t.id).collect();
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _), _| live.contains(id));
        self.metrics.unread.store(unread, Relaxed);
        if let Some(cpus) = self.placement.steer(unread, lag) {
            let spread = self.placement.spilled.load(Relaxed);
            self.metrics.spilled.store(spread as u64, Relaxed);
            match crate::util::move_idle_threads(cpus) {
                Ok(n) => {
                    tracing::info!(cpus = ?cpus, threads = n, unread, lag, "indexing threads moved ({})",
                    if spread { "far behind the log: spill_cpus too" } else { "caught up: index_cpus only" })
                }
                Err(e) => {
                    tracing::warn!(cpus = ?cpus, error = %e, "cannot move the indexing threads")
                }
            }
        }
    }

    fn index_step(
        &self,
        pi: &PartitionIndex,
        p: &Partition,
        json_paths: &[String],
        remote_end: i64,
    ) -> io::Result<()> {
        let mut guard = pi.active.lock().unwrap_or_else(|e| e.into_inner());
        // What the remote tier has indexed is not indexed again: a new leader starts at the
        // remote end its predecessor reached, and so does a broker that led the partition
        // before and lost it while the other leader moved on (queries take offsets below the
        // remote end only from the remote splits).
        let next = match guard.as_ref() {
            Some(a) => a.progress.next_offset,
            None => pi.view().searchable,
        };
        if next < remote_end {
            tracing::info!(dir = %pi.dir.display(), from = next, to = remote_end, "search indexing continues at the remote tier's end");
            self.skip_to(pi, &mut guard, remote_end)?;
        }
        let mut budget = STEP_BYTES as u64 * 4;
        // The pass stopped at its budget with records left: the indexer is behind the log.
        let mut behind = false;
        loop {
            let next = match guard.as_ref() {
                Some(a) => a.progress.next_offset,
                None => pi.view().searchable,
            };
            let hw = p.high_watermark();
            pi.unread.store(hw - next, Relaxed);
            if next >= hw || budget == 0 {
                behind = next < hw;
                break;
            }
            let (base, bytes) = match p.read_bytes(next, STEP_BYTES) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(ReadError::NotLocal { local_start, .. }) => {
                    self.skip_to(pi, &mut guard, local_start)?;
                    continue;
                }
                Err(ReadError::OffsetOutOfRange { log_start, .. }) if next < log_start => {
                    self.skip_to(pi, &mut guard, log_start)?;
                    continue;
                }
                Err(ReadError::OffsetOutOfRange { .. }) => break,
                Err(ReadError::Io(e)) => return Err(e),
            };
            let bytes = bytes::Bytes::from(bytes);
            budget = budget.saturating_sub(bytes.len() as u64);
            // A new segment: the previous one is finished.
            if guard
                .as_ref()
                .is_none_or(|a| a.progress.segment_base != base)
            {
                if let Some(done) = guard.take() {
                    self.seal(pi, done)?;
                }
                *guard = Some(self.new_active(&pi.dir, Progress::new(base, next))?);
                pi.view().position = base;
            }
            let active = guard.as_mut().expect("set above");
            let crate::log::records::Decoded {
                records,
                errors,
                next_offset,
            } = crate::log::records::decode_batches(&bytes);
            for e in errors {
                self.metrics.index_errors.fetch_add(1, Relaxed);
                tracing::warn!(dir = %pi.dir.display(), error = %e, "batch skipped by the indexer");
            }
            for r in records.iter().filter(|r| r.offset >= next) {
                let doc = schema::document(self.fields(), pi.partition, r, json_paths);
                active.writer.add_document(doc).map_err(tantivy_io)?;
                let pr = &mut active.progress;
                pr.docs += 1;
                if r.timestamp >= 0 {
                    pr.min_ts = if pr.min_ts < 0 {
                        r.timestamp
                    } else {
                        pr.min_ts.min(r.timestamp)
                    };
                    pr.max_ts = pr.max_ts.max(r.timestamp);
                }
                active.uncommitted += 1;
            }
            self.metrics
                .docs_indexed
                .fetch_add(records.len() as u64, Relaxed);
            self.metrics
                .bytes_indexed
                .fetch_add(bytes.len() as u64, Relaxed);
            active.progress.next_offset = active.progress.next_offset.max(next_offset);
            if active.uncommitted == 0 {
                // Only control batches: nothing to search, but the position moved.
                active.uncommitted = 1;
            }
        }
        // Behind the log, records are not searchable within commit_interval_ms anyway: commit
        // less often, so the active index gets fewer, larger segments and merges less (a quarter
        // less CPU for 1 M records); once caught up, the next pass commits at the usual pace.
        let interval = if behind {
            self.config
                .behind_commit_interval_ms
                .max(self.config.commit_interval_ms)
        } else {
            self.config.commit_interval_ms
        };
        if let Some(a) = guard.as_mut()
            && a.uncommitted > 0
            && a.last_commit.elapsed() >= Duration::from_millis(interval)
        {
            self.commit(pi, a)?;
        }
        drop(guard);
        self.drop_gone_splits(pi, p);
        Ok(())
    }

    /// The log no longer has offsets below `offset` locally: finish what is indexed and carry
    /// on from there.
    fn skip_to(
        &self,
        pi: &PartitionIndex,
        guard: &mut Option<Active>,
        offset: i64,
    ) -> io::Result<()> {
        if let Some(done) = guard.take() {
            self.seal(pi, done)?;
        }
        let mut v = pi.view();
        v.searchable = v.searchable.max(offset);
        v.position = v.position.max(offset);
        Ok(())
    }

    fn commit(&self, pi: &PartitionIndex, a: &mut Active) -> io::Result<()> {
        commit_with(&mut a.writer, &a.progress, &self.placement.cpus())?;
        a.reader.reload().map_err(tantivy_io)?;
        a.uncommitted = 0;
        a.last_commit = Instant::now();
        self.metrics.commits.fetch_add(1, Relaxed);
        let mut v = pi.view();
        v.active = Some((a.progress, a.reader.searcher()));
        v.searchable = a.progress.next_offset;
        Ok(())
    }

    /// Packs a finished active index into a split file and swaps it in for the active index.
    fn seal(&self, pi: &PartitionIndex, a: Active) -> io::Result<()> {
        let progress = a.progress;
        let dir = pi.dir.join(ACTIVE_DIR);
        if progress.docs == 0 {
            drop(a);
            std::fs::remove_dir_all(&dir)?;
            let mut v = pi.view();
            v.active = None;
            v.searchable = v.searchable.max(progress.next_offset);
            return Ok(());
        }
        let Active {
            index,
            mut writer,
            reader,
            ..
        } = a;
        commit_with(&mut writer, &progress, &self.placement.cpus())?;
        // Background merges of the writer must be finished (or they race the merge below for
        // the same segments); then one merge makes the split a single Tantivy segment.
        writer.wait_merging_threads().map_err(tantivy_io)?;
        let ids = index.searchable_segment_ids().map_err(tantivy_io)?;
        if ids.len() > 1 {
            let mut merger: IndexWriter = on_idle_thread(&self.placement.cpus(), || {
                index.writer_with_num_threads(1, 15 << 20)
            })
            .map_err(tantivy_io)?;
            merger.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
            merger.merge(&ids).wait().map_err(tantivy_io)?;
            merger.wait_merging_threads().map_err(tantivy_io)?;
        }
        let a = Sealing { index, reader };
        let metas = a.index.searchable_segment_metas().map_err(tantivy_io)?;
        let prefixes: Vec<String> = metas.iter().map(|m| m.id().uuid_string()).collect();
        let mut files = vec!["meta.json".to_string()];
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                files.push(name);
            }
        }
        files.sort();
        let out = pi.dir.join(format!("{:020}.split", progress.segment_base));
        split::pack(&dir, &files, &progress.info(), &out)?;
        let opened = Arc::new(open_local_split(&out)?);
        let Sealing { index, reader } = a;
        {
            let mut v = pi.view();
            v.splits.insert(progress.segment_base, opened);
            v.active = None;
            v.searchable = v.searchable.max(progress.next_offset);
        }
        drop(reader);
        drop(index);
        std::fs::remove_dir_all(&dir)?;
        self.metrics.splits_sealed.fetch_add(1, Relaxed);
        tracing::debug!(dir = %pi.dir.display(), base_offset = progress.segment_base, docs = progress.docs, "search split sealed");
        Ok(())
    }

    /// Local splits of segments that left local disk are deleted (the remote tier has its own
    /// copy when the topic is tiered).
    fn drop_gone_splits(&self, pi: &PartitionIndex, p: &Partition) {
        let local_start = p.local_log_start_offset();
        let gone: Vec<Arc<OpenSplit>> = {
            let mut v = pi.view();
            let keys: Vec<i64> = v
                .splits
                .iter()
                .filter(|(_, s)| s.file.info.next_offset <= local_start)
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| v.splits.remove(k)).collect()
        };
        for s in gone {
            if let Err(e) = std::fs::remove_file(&s.file.path) {
                tracing::warn!(path = %s.file.path.display(), error = %e, "could not delete split");
            }
        }
    }

    /// Whether the sealed segment at `base` of a searchable partition may be uploaded now.
    pub fn split_for_upload(&self, topic_id: Uuid, partition: i32, base: i64) -> SplitForUpload {
        let Some(pi) = self.existing_by_id(topic_id, partition) else {
            return SplitForUpload::Pending;
        };
        let v = pi.view();
        if let Some(s) = v.splits.get(&base) {
            return SplitForUpload::Ready(s.file.for_upload());
        }
        if base < v.position {
            SplitForUpload::None
        } else {
            SplitForUpload::Pending
        }
    }

    /// Indexing status of a topic's partitions.
    pub fn status(&self, topic: &Topic) -> Vec<PartitionStatus> {
        topic
            .partitions()
            .iter()
            .map(|p| {
                let hw = p.high_watermark();
                let remote = self.remote_splits(topic.id, p.index);
                let (searchable, local, unread) = match self.existing(topic, p.index) {
                    Some(pi) => (
                        pi.searchable(hw),
                        pi.view().splits.len(),
                        pi.unread.load(Relaxed),
                    ),
                    None => (p.local_log_start_offset().min(hw), 0, 0),
                };
                PartitionStatus {
                    partition: p.index,
                    high_watermark: hw,
                    searchable_offset: searchable,
                    lag: hw - searchable,
                    unread: unread.clamp(0, hw - searchable),
                    local_splits: local,
                    remote_splits: remote.len(),
                }
            })
            .collect()
    }

    /// Records indexed but not yet searchable, over every searchable partition.
    pub fn lag(&self) -> i64 {
        let mut lag = 0;
        for t in self.replicas.topics() {
            if !t.partitions().iter().any(|p| p.log_config().search_enabled) {
                continue;
            }
            lag += self.status(&t).iter().map(|s| s.lag).sum::<i64>();
        }
        lag
    }

    pub fn parse(&self, body: &Value) -> Result<SearchRequest, SearchError> {
        self.builder.request(body).map_err(SearchError::BadRequest)
    }

    pub fn query_string(&self, q: &str) -> Result<Box<dyn Query>, SearchError> {
        self.builder
            .query_string(q)
            .map_err(SearchError::BadRequest)
    }

    /// The search splits the remote tier holds of a partition, oldest first: the one place
    /// that reads where their metadata is kept.
    fn remote_splits(&self, topic_id: Uuid, partition: i32) -> Vec<RemoteSplitMetadata> {
        self.segments.splits_of(topic_id, partition)
    }

    /// Every offset below this is covered by the partition's remote splits (`i64::MIN`: none).
    /// The local index answers only for offsets from here on, so that a record is found in
    /// exactly one place even when the local index began before the remote tier's end (a new
    /// leader, or one that led before).
    fn remote_end(remote: &[RemoteSplitMetadata]) -> i64 {
        remote
            .iter()
            .map(|r| r.next_offset)
            .max()
            .unwrap_or(i64::MIN)
    }

    /// Runs a query over this broker's own view of the given partitions. Blocking: remote
    /// splits are read with `handle.block_on`.
    pub fn search(
        &self,
        topic: &Topic,
        req: &SearchRequest,
        handle: &tokio::runtime::Handle,
    ) -> Result<Value, SearchError> {
        let started = Instant::now();
        let parts: Vec<Part> = topic
            .partitions()
            .iter()
            .map(|p| Part {
                partition: p.index,
                remote_only: false,
            })
            .collect();
        let result = self
            .collect(topic, req, handle, &parts)
            .and_then(|c| self.answer(topic, req, c, Vec::new(), Vec::new(), started));
        self.count_query(started, result.is_ok());
        result
    }

    /// Counts a query (and its time) for `/metrics`.
    pub fn count_query(&self, started: Instant, ok: bool) {
        self.metrics.queries.fetch_add(1, Relaxed);
        if !ok {
            self.metrics.query_errors.fetch_add(1, Relaxed);
        }
        crate::metrics::get()
            .search_query_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// The best `from + size` hits of `parts` (those `req.partitions` allows) on this broker:
    /// each partition from its local index and its remote splits, or from its remote splits
    /// only when `remote_only`. Documents are read later, for the page only.
    pub fn collect(
        &self,
        topic: &Topic,
        req: &SearchRequest,
        handle: &tokio::runtime::Handle,
        parts: &[Part],
    ) -> Result<Collected, SearchError> {
        let overlaps = |min_ts: i64, max_ts: i64| {
            let (from, to) = req.time;
            // Unknown times (-1) are never pruned.
            if min_ts < 0 || max_ts < 0 {
                return true;
            }
            from.is_none_or(|f| max_ts >= f) && to.is_none_or(|t| min_ts < t)
        };
        let mut units = Vec::new();
        let mut remote_pending = Vec::new();
        let mut pruned = 0usize;
        let mut remote_units = 0usize;
        for part in parts {
            if req
                .partitions
                .as_ref()
                .is_some_and(|ps| !ps.contains(&part.partition))
            {
                continue;
            }
            // A partition this broker does not hold is searched in the remote tier only.
            let held = topic.partition(part.partition);
            if held.is_none() && !part.remote_only {
                continue;
            }
            let index = part.partition;
            let log_start = held.as_ref().map_or(i64::MIN, |p| p.log_start_offset());
            let remote = self.remote_splits(topic.id, index);
            let remote_end = Self::remote_end(&remote);
            let (active, splits) = match self.existing(topic, index) {
                Some(pi) if !part.remote_only => {
                    let v = pi.view();
                    (v.active.clone(), v.splits.clone())
                }
                _ => (None, BTreeMap::new()),
            };
            // Local units answer from the remote end on; below it a local split stands in for
            // the remote split of the same records (it is cheaper to read).
            let local_from = log_start.max(remote_end);
            let same_as_remote = |i: &SplitInfo| {
                remote
                    .iter()
                    .any(|r| r.base_offset == i.base_offset && r.next_offset == i.next_offset)
            };
            let mut replaced = std::collections::HashSet::new();
            for (base, s) in &splits {
                let i = &s.file.info;
                let min_offset = if i.next_offset <= remote_end {
                    if !same_as_remote(i) {
                        continue;
                    }
                    replaced.insert(*base);
                    log_start
                } else {
                    local_from
                };
                if !overlaps(i.min_timestamp_ms, i.max_timestamp_ms) || i.next_offset <= min_offset
                {
                    pruned += 1;
                    continue;
                }
                units.push(Unit {
                    partition: index,
                    searcher: s.searcher.clone(),
                    min_offset: (*base < min_offset).then_some(min_offset),
                });
            }
            if let Some((pr, searcher)) = active {
                if !overlaps(pr.min_ts, pr.max_ts) || pr.next_offset <= local_from {
                    pruned += 1;
                } else {
                    units.push(Unit {
                        partition: index,
                        searcher,
                        min_offset: (pr.segment_base < local_from).then_some(local_from),
                    });
                }
            }
            for r in remote {
                if replaced.contains(&r.base_offset) {
                    continue;
                }
                if !overlaps(r.min_timestamp_ms, r.max_timestamp_ms) || r.next_offset <= log_start {
                    pruned += 1;
                    continue;
                }
                let min_offset = (r.base_offset < log_start).then_some(log_start);
                remote_pending.push((index, r, min_offset));
            }
        }
        // Opening a remote split and searching it wait on the object store far more than they
        // compute: they run side by side.
        let threads = if remote_pending.is_empty() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            REMOTE_QUERY_THREADS
        };
        let opened = parallel_map(&remote_pending, threads, |(_, r, _)| {
            self.remote_searcher(topic, r, handle)
        });
        for ((partition, _, min_offset), searcher) in remote_pending.iter().zip(opened) {
            remote_units += 1;
            units.push(Unit {
                partition: *partition,
                searcher: searcher?,
                min_offset: *min_offset,
            });
        }
        let limit = req.from + req.size;
        let mut total = 0u64;
        let mut hits: Vec<(SortKey, f32, usize, DocAddress)> = Vec::new();
        let searched = parallel_map(&units, threads, |unit| {
            let query: Box<dyn Query> = match unit.min_offset {
                Some(min) => Box::new(BooleanQuery::new(vec![
                    (Occur::Must, req.query.box_clone()),
                    (
                        Occur::Must,
                        Box::new(ConstScoreQuery::new(
                            Box::new(RangeQuery::new(
                                std::ops::Bound::Included(Term::from_field_i64(
                                    self.fields().offset,
                                    min,
                                )),
                                std::ops::Bound::Unbounded,
                            )),
                            0.0,
                        )),
                    ),
                ])),
                None => req.query.box_clone(),
            };
            let unavailable = |e: tantivy::TantivyError| SearchError::Unavailable(e.to_string());
            if limit == 0 {
                let count = unit.searcher.search(&query, &Count).map_err(unavailable)?;
                return Ok((count as u64, Vec::new()));
            }
            let sort = req.sort;
            let after = req.after;
            let collector =
                TopDocs::with_limit(limit).tweak_score(move |segment: &tantivy::SegmentReader| {
                    let col = |name: &str| {
                        segment
                            .fast_fields()
                            .i64(name)
                            .ok()
                            .map(|c| c.first_or_default_col(0))
                    };
                    let (ts, off, part) = (col("timestamp"), col("offset"), col("partition"));
                    move |doc: tantivy::DocId, score: tantivy::Score| {
                        let get = |c: &Option<Arc<dyn tantivy::columnar::ColumnValues<i64>>>| {
                            c.as_ref().map_or(0, |c| c.get_val(doc))
                        };
                        let key = SortKey::new(sort, score, get(&part), get(&off), get(&ts));
                        match after {
                            Some(a) if key >= a => (SortKey::NONE, score),
                            _ => (key, score),
                        }
                    }
                });
            let (count, top) = unit
                .searcher
                .search(&query, &(Count, collector))
                .map_err(unavailable)?;
            Ok((count as u64, top))
        });
        for (ui, result) in searched.into_iter().enumerate() {
            let (count, top) = result?;
            total += count;
            for ((key, score), addr) in top {
                if key != SortKey::NONE {
                    hits.push((key, score, ui, addr));
                }
            }
        }
        Ok(Collected {
            units,
            hits,
            total,
            remote: remote_units,
            pruned,
            threads,
        })
    }

    /// The answer to `req`: this broker's hits merged with those other brokers gave for the
    /// partitions they lead, the page cut out, and the partitions no one answered for listed.
    pub fn answer(
        &self,
        topic: &Topic,
        req: &SearchRequest,
        local: Collected,
        peers: Vec<PeerAnswer>,
        missing: Vec<Missing>,
        started: Instant,
    ) -> Result<Value, SearchError> {
        enum Hit {
            Local(f32, usize, DocAddress),
            Peer(Value),
        }
        let Collected {
            units,
            hits,
            mut total,
            remote: mut remote_units,
            mut pruned,
            threads,
        } = local;
        let mut searched = units.len();
        let mut all: Vec<(SortKey, Hit)> = hits
            .into_iter()
            .map(|(key, score, ui, addr)| (key, Hit::Local(score, ui, addr)))
            .collect();
        for peer in peers {
            total += peer.total;
            searched += peer.searched;
            remote_units += peer.remote;
            pruned += peer.pruned;
            all.extend(peer.hits.into_iter().map(|(k, v)| (k, Hit::Peer(v))));
        }
        all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let page: Vec<Hit> = all
            .into_iter()
            .skip(req.from)
            .take(req.size)
            .map(|(_, h)| h)
            .collect();
        let docs = parallel_map(&page, threads, |h| match h {
            Hit::Local(_, ui, addr) => Some(units[*ui].searcher.doc::<TantivyDocument>(*addr)),
            Hit::Peer(_) => None,
        });
        let mut out = Vec::with_capacity(page.len());
        for (hit, doc) in page.into_iter().zip(docs) {
            match (hit, doc) {
                (Hit::Local(score, ui, _), Some(doc)) => {
                    let doc = doc.map_err(|e| SearchError::Unavailable(e.to_string()))?;
                    let unit = &units[ui];
                    out.push(self.hit_json(&topic.name, unit.partition, &doc, req.sort, score));
                }
                (Hit::Peer(v), _) => out.push(v),
                (Hit::Local(..), None) => unreachable!("a local hit's document is read"),
            }
        }
        let mut body = json!({
            "took_ms": started.elapsed().as_millis() as u64,
            "total": total,
            "splits": {
                "searched": searched,
                "remote": remote_units,
                "pruned": pruned,
            },
            "hits": out,
        });
        if !missing.is_empty() {
            body["partial"] = json!(true);
            body["missing"] = serde_json::to_value(&missing).unwrap_or_default();
        }
        Ok(body)
    }

    fn hit_json(
        &self,
        topic: &str,
        partition: i32,
        doc: &TantivyDocument,
        sort: Sort,
        score: f32,
    ) -> Value {
        let f = self.fields();
        let int = |field| doc.get_first(field).and_then(|v| v.as_i64()).unwrap_or(-1);
        let offset = int(f.offset);
        let timestamp = int(f.timestamp);
        let raw = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_bytes())
                .map(<[u8]>::to_vec)
        };
        let mut hit = serde_json::Map::new();
        hit.insert("topic".into(), json!(topic));
        hit.insert("partition".into(), json!(partition));
        hit.insert("offset".into(), json!(offset));
        hit.insert("timestamp".into(), json!(timestamp));
        put_bytes(&mut hit, "key", raw(f.key_raw));
        put_bytes(&mut hit, "value", raw(f.value_raw));
        let headers: Vec<Value> = raw(f.headers_raw)
            .map(|h| schema::decode_headers(&h))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let mut m = serde_json::Map::new();
                m.insert("key".into(), json!(k));
                put_bytes(&mut m, "value", v);
                Value::Object(m)
            })
            .collect();
        hit.insert("headers".into(), Value::Array(headers));
        let sort_values = match sort {
            Sort::Score => json!([score, partition, offset]),
            Sort::Timestamp { .. } => json!([timestamp, partition, offset]),
            Sort::Offset { .. } => json!([offset, partition]),
        };
        hit.insert(
            "score".into(),
            if sort == Sort::Score {
                json!(score)
            } else {
                Value::Null
            },
        );
        hit.insert("sort".into(), sort_values);
        Value::Object(hit)
    }

    fn remote_searcher(
        &self,
        topic: &Topic,
        r: &chronik_tiering::RemoteSplitMetadata,
        handle: &tokio::runtime::Handle,
    ) -> Result<Searcher, SearchError> {
        if let Some(s) = self
            .remote_open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&r.segment_id)
        {
            return Ok(s.clone());
        }
        let objects = self
            .objects
            .clone()
            .ok_or_else(|| SearchError::Unavailable("no remote tier".into()))?;
        let source = Arc::new(RemoteSplit {
            key: objects.split_key(&topic.name, r),
            cache_id: split_cache_id(r.segment_id),
            size: r.size_bytes,
            objects,
            handle: handle.clone(),
        });
        let dir = SplitDirectory::open(source, r.footer_bytes)
            .map_err(|e| SearchError::Unavailable(format!("remote split {}: {e}", r.segment_id)))?;
        let searcher = open_searcher(dir)
            .map_err(|e| SearchError::Unavailable(format!("remote split {}: {e}", r.segment_id)))?;
        self.metrics.remote_splits_opened.fetch_add(1, Relaxed);
        let mut open = self.remote_open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= OPEN_REMOTE_SPLITS {
            open.clear();
        }
        open.insert(r.segment_id, searcher.clone());
        Ok(searcher)
    }

    /// Closes indexes cleanly: uncommitted documents are committed so a restart does not redo
    /// them.
    pub fn close(&self) {
        let parts: Vec<Arc<PartitionIndex>> = self
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for pi in parts {
            let mut guard = pi.active.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(a) = guard.as_mut()
                && a.uncommitted > 0
                && let Err(e) = self.commit(&pi, a)
            {
                tracing::warn!(dir = %pi.dir.display(), error = %e, "search index commit at shutdown failed");
            }
        }
    }
}

/// One partition of a query and how this broker answers for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub partition: i32,
    /// Only its remote splits: its leader, which has the rest, did not answer.
    pub remote_only: bool,
}

/// A searched unit: one split or active index of one partition.
struct Unit {
    partition: i32,
    searcher: Searcher,
    /// Records below this (the log start, or the remote end for a local index) are not
    /// answered from this unit.
    min_offset: Option<i64>,
}

/// This broker's best hits of a query, before the page is cut out and documents are read.
pub struct Collected {
    units: Vec<Unit>,
    hits: Vec<(SortKey, f32, usize, DocAddress)>,
    total: u64,
    remote: usize,
    pruned: usize,
    threads: usize,
}

impl Collected {
    /// Adds another collection of the same query (other partitions).
    pub fn extend(&mut self, other: Collected) {
        let shift = self.units.len();
        self.units.extend(other.units);
        self.hits.extend(
            other
                .hits
                .into_iter()
                .map(|(k, s, ui, a)| (k, s, ui + shift, a)),
        );
        self.total += other.total;
        self.remote += other.remote;
        self.pruned += other.pruned;
        self.threads = self.threads.max(other.threads);
    }
}

/// What the leader of some partitions answered for them (their best `from + size` hits).
pub struct PeerAnswer {
    pub total: u64,
    pub searched: usize,
    pub remote: usize,
    pub pruned: usize,
    /// Each hit as the leader rendered it, with its sort key.
    pub hits: Vec<(SortKey, Value)>,
}

/// A partition whose hits are not all in an answer, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Missing {
    pub partition: i32,
    /// The broker that leads it (-1: none).
    pub leader: i32,
    /// `true`: its records in the remote tier were searched, only those its leader holds
    /// locally are missing; `false`: none of its records were searched.
    pub remote_searched: bool,
    pub reason: String,
}

/// How many segments of one size class the active index collects before merging them.
const ACTIVE_MERGE_SEGMENTS: usize = 16;

/// How many remote splits one query opens and searches at once.
const REMOTE_QUERY_THREADS: usize = 8;

/// `f` of every item, on up to `threads` threads, in item order.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, f(item)));
                    }
                })
            })
            .collect();
        for w in workers {
            for (i, r) in w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) {
                out[i] = Some(r);
            }
        }
    });
    out.into_iter()
        .map(|r| r.expect("every item was taken by a worker"))
        .collect()
}

fn put_bytes(m: &mut serde_json::Map<String, Value>, name: &str, bytes: Option<Vec<u8>>) {
    match bytes {
        None => {
            m.insert(name.into(), Value::Null);
        }
        Some(b) => match String::from_utf8(b) {
            Ok(s) => {
                m.insert(name.into(), Value::String(s));
            }
            Err(e) => {
                let b = e.into_bytes();
                m.insert(
                    name.into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                );
                m.insert(format!("{name}_encoding"), json!("base64"));
            }
        },
    }
}

fn open_searcher(dir: SplitDirectory) -> io::Result<Searcher> {
    let index = Index::open(dir).map_err(tantivy_io)?;
    let reader: IndexReader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(tantivy_io)?;
    Ok(reader.searcher())
}

fn open_local_split(path: &Path) -> io::Result<OpenSplit> {
    let source = Arc::new(LocalSplit::open(path)?);
    let size = source.size();
    let dir = SplitDirectory::open(source, 256 << 10)?;
    let info = dir.info().clone();
    let searcher = open_searcher(dir.clone())?;
    let footer_bytes = dir.tail_bytes();
    Ok(OpenSplit {
        file: LocalSplitFile {
            path: path.to_path_buf(),
            info,
            size,
            footer_bytes,
        },
        searcher,
    })
}

/// Remote splits are read (and cached) in pieces of this size. A query touches a few small
/// regions of a split (term dictionary blocks, postings, a column's pages, a doc-store block):
/// with the 4 MiB chunks of `.log` objects a cold query downloaded most of every split.
const SPLIT_READ_BYTES: u64 = 256 << 10;

/// Chunks of a split object are cached apart from those of its segment's `.log` object. The
/// mask changes whenever `SPLIT_READ_BYTES` does, so that a disk tier written with another
/// chunk size never answers for a chunk index of this one (0x5a was 4 MiB chunks).
fn split_cache_id(segment_id: Uuid) -> Uuid {
    let mut b = segment_id.into_bytes();
    for x in &mut b {
        *x ^= 0xa7;
    }
    Uuid::from_bytes(b)
}

/// The tiering path asks the indexer which split goes up with a sealed segment.
impl SplitUploads for SearchManager {
    fn split_for_upload(&self, topic_id: Uuid, partition: i32, base_offset: i64) -> SplitForUpload {
        SearchManager::split_for_upload(self, topic_id, partition, base_offset)
    }
}

/// A split in the remote tier, read in chunks through the cache.
struct RemoteSplit {
    objects: Arc<RemoteObjects>,
    key: chronik_tiering::object_store::path::Path,
    cache_id: Uuid,
    size: u64,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for RemoteSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteSplit({})", self.key)
    }
}

impl SplitSource for RemoteSplit {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, range: std::ops::Range<u64>) -> io::Result<tantivy::directory::OwnedBytes> {
        let bytes = self
            .handle
            .block_on(self.objects.object_range(
                &self.key,
                self.cache_id,
                self.size,
                range,
                false,
                SPLIT_READ_BYTES,
            ))
            .map_err(io::Error::other)?;
        Ok(tantivy::directory::OwnedBytes::new(bytes.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> i32 {
        // SAFETY: pid 0 is the calling thread.
        unsafe { nix::libc::sched_getscheduler(0) }
    }

    #[test]
    fn threads_started_on_an_idle_thread_are_idle_and_the_caller_is_not() {
        let before = policy();
        let (own, child) = on_idle_thread(&[], || {
            let child = std::thread::spawn(policy).join().unwrap();
            (policy(), child)
        });
        // SCHED_IDLE, or nice 19 in the normal class where a sandbox refuses it.
        assert!(own == nix::libc::SCHED_IDLE || own == before, "{own}");
        assert_eq!(child, own, "a thread started there inherits the class");
        assert_eq!(policy(), before, "the calling thread keeps its class");
    }

    #[test]
    fn indexing_threads_spread_when_far_behind_and_come_back_when_caught_up() {
        let p = Placement {
            home: vec![0],
            wide: vec![0, 1],
            after: 10,
            spilled: AtomicBool::new(false),
        };
        assert_eq!(p.steer(10, 50), None, "at the threshold: stay");
        assert_eq!(p.cpus(), vec![0]);
        assert_eq!(p.steer(11, 50), Some(&[0, 1][..]));
        assert_eq!(p.cpus(), vec![0, 1], "threads started now go wide");
        assert_eq!(p.steer(0, 3), None, "read up, but not all searchable yet");
        assert_eq!(p.steer(0, 0), Some(&[0][..]));
        assert_eq!(p.cpus(), vec![0]);
        let same = Placement {
            home: vec![0, 1],
            wide: vec![0, 1],
            after: 0,
            spilled: AtomicBool::new(false),
        };
        assert_eq!(
            same.steer(1_000_000, 1_000_000),
            None,
            "nowhere to spill to"
        );
    }

    #[test]
    fn idle_class_threads_are_moved_and_others_are_not() {
        let cpus = crate::util::allowed_cpus();
        let target = vec![*cpus.last().expect("a CPU")];
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (tell, seen) = std::sync::mpsc::channel();
        let idle = std::thread::spawn(move || {
            crate::util::idle_class();
            if policy() != nix::libc::SCHED_IDLE {
                return None; // a sandbox that refuses the idle class
            }
            tell.send(()).unwrap();
            wait.recv().unwrap();
            Some(crate::util::allowed_cpus())
        });
        let moved = match seen.recv() {
            Ok(()) => Some(crate::util::move_idle_threads(&target).expect("moved")),
            Err(_) => None,
        };
        go.send(()).ok();
        if let (Some(moved), Some(now)) = (moved, idle.join().unwrap()) {
            assert!(moved >= 1, "{moved}");
            assert_eq!(now, target, "the idle-class thread runs where it was moved");
        }
        assert_eq!(crate::util::allowed_cpus(), cpus, "a normal thread stays");
    }
}
