//! The partition log on local disk, in Kafka's own layout.
//!
//! `<data>/<topic>-<partition>/` holds `<base_offset:020>.log|.index|.timeindex` segments,
//! `<offset:020>.snapshot` producer-state snapshots and a `log-start-offset` checkpoint. Batches
//! are written exactly as producers sent them apart from the base offset and leader epoch, which
//! sit outside the CRC. This module owns appending, reading by offset and timestamp, rolling,
//! retention and crash recovery. It knows nothing about sockets or the Kafka protocol: callers
//! validate requests and serialise access (one writer per partition).

pub mod batch;
pub mod index;
pub mod producer_state;
pub mod records;
pub mod segment;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use batch::{BatchError, BatchHeader};
use producer_state::{ProducerError, ProducerStateManager, SequenceCheck};
use segment::{LogSegment, RecoveryReport, SegmentMark};

const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const LOG_START_FILE: &str = "log-start-offset";

/// How timestamps of appended batches are treated (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The settings of one partition's log, resolved from topic and broker configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u32,
    pub segment_ms: i64,
    /// `-1` keeps data forever.
    pub retention_ms: i64,
    /// `-1` means no size limit.
    pub retention_bytes: i64,
    pub index_interval_bytes: u32,
    pub max_message_bytes: u32,
    pub timestamp_type: TimestampType,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// fsync after this many messages (`i64::MAX`: leave it to the OS, as Kafka does).
    pub flush_messages: i64,
    /// fsync when the oldest unflushed append is this old.
    pub flush_ms: i64,
    /// Sealed segments are copied to the remote tier; retention is then decided by the remote
    /// log manager, which deletes local copies only once they are safely uploaded.
    pub remote_storage: bool,
    /// How long / how much of the log stays local when tiered (`-2`: the total retention).
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    /// Records are indexed for search (`search.enabled`).
    pub search_enabled: bool,
    /// JSON paths indexed in the `json` field (`search.fields`); empty: the whole object.
    pub search_fields: Vec<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            remote_storage: false,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            search_enabled: false,
            search_fields: Vec::new(),
        }
    }
}

impl LogConfig {
    /// Local retention in effect for a tiered log (`-2` falls back to the total retention).
    pub fn effective_local_retention(&self) -> (i64, i64) {
        let ms = if self.local_retention_ms == -2 {
            self.retention_ms
        } else {
            self.local_retention_ms
        };
        let bytes = if self.local_retention_bytes == -2 {
            self.retention_bytes
        } else {
            self.local_retention_bytes
        };
        (ms, bytes)
    }
}

/// A sealed segment as the remote tier sees it: what it holds and where its files are.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub base_offset: i64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub size: u64,
    pub log: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
    /// Producer state as of `next_offset`, when a snapshot was written at the roll.
    pub producer_snapshot: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("timestamp {timestamp} of the batch is out of the accepted range")]
    InvalidTimestamp { timestamp: i64 },
    #[error("log i/o failed: {0}")]
    Io(#[from] io::Error),
    /// An earlier write failure left the log in a state it could not undo, or an fsync failed:
    /// no append is taken until it is whole again (or the broker restarts and recovers it).
    #[error("partition is offline: {0}")]
    Offline(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// The offset is in the log but its segment now lives only in the remote tier.
    #[error("offset {offset} is below the local log start {local_start}")]
    NotLocal {
        offset: i64,
        local_start: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("log i/o failed: {0}")]
    Io(#[from] io::Error),
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's timestamp when `LogAppendTime` applies, else `-1`.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The batch was a producer retry; nothing was written.
    pub duplicate: bool,
}

/// A byte range of a segment file that holds whole batches. It keeps the file open, so a
/// segment deleted by retention while the range is being sent still reads correctly.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u32,
}

#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub region: Option<FileRegion>,
}

/// One partition's log.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, LogSegment>,
    log_start_offset: i64,
    producers: ProducerStateManager,
    leader_epoch: i32,
    unflushed_messages: i64,
    first_unflushed_ms: Option<i64>,
    /// A failed append whose bytes could not be cut off yet; retried before the next append.
    pending_rollback: Option<LogMark>,
    /// Why appends are refused until a restart (an fsync failed: what the disk holds is unknown).
    fsync_failed: Option<String>,
}

/// Where the log stood before an append, to undo it if a write fails half-way.
#[derive(Debug)]
struct LogMark {
    active_base: i64,
    segment: SegmentMark,
    end_offset: i64,
    /// Producer state before the append, kept only when the append holds several batches (a
    /// single batch updates the state only after it is written).
    producers: Option<ProducerStateManager>,
}

/// What opening a partition log found, for the start-up log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenReport {
    pub segments: usize,
    pub clean_shutdown: bool,
    pub recovery: RecoveryReport,
    pub replayed_batches: u64,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`. After an unclean shutdown the last segment is
    /// scanned batch by batch and a torn or corrupt tail is truncated.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> io::Result<(Self, OpenReport)> {
        Self::open_at(dir, config, now_ms, None)
    }

    /// Opens the log knowing what the remote tier holds (`[start, next)`): an empty or lost
    /// local log continues at `next`, so offsets already in the remote tier are never handed
    /// out again, and the log still starts at `start`.
    pub fn open_at(
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        remote: Option<(i64, i64)>,
    ) -> io::Result<(Self, OpenReport)> {
        let min_next_offset = remote.map_or(0, |(_, next)| next);
        fs::create_dir_all(dir)?;
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = clean_marker.exists();
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") || name.ends_with(".deleted") {
                fs::remove_file(entry.path())?;
            } else if let Some(stem) = name.strip_suffix(".log")
                && let Ok(base) = stem.parse::<i64>()
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let checkpoint = read_log_start(dir)?;
        let mut report = OpenReport {
            clean_shutdown: clean,
            ..Default::default()
        };
        let mut segments = BTreeMap::new();
        let last = bases.last().copied();
        for base in bases {
            let active = Some(base) == last;
            let recover = !clean && active;
            let (mut seg, r) = LogSegment::open(dir, base, config.index_interval_bytes, recover)?;
            if recover {
                report.recovery = r;
            }
            if !active {
                if r.rebuilt_indexes
                    && let Err(e) = seg.persist_indexes()
                {
                    // Only costs a rescan at the next start.
                    tracing::warn!(dir = %dir.display(), base_offset = base, error = %e, "cannot write rebuilt segment indexes");
                }
                seg.release();
            }
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            let base = checkpoint.unwrap_or(0).max(min_next_offset);
            segments.insert(
                base,
                LogSegment::create(dir, base, config.index_interval_bytes, now_ms)?,
            );
        }
        report.segments = segments.len();
        let first_base = *segments.keys().next().unwrap_or(&0);
        let log_end = segments.values().next_back().map_or(0, |s| s.next_offset());
        // With tiering the log may start below the first local segment (the checkpoint says
        // where); without it, the first local segment is the lower bound.
        let log_start_offset = match (checkpoint, remote) {
            (Some(c), Some(_)) => c.min(log_end),
            (Some(c), None) if config.remote_storage => c.min(log_end),
            (Some(c), None) => c.max(first_base).min(log_end),
            (None, Some((start, _))) => start.min(first_base),
            (None, None) => first_base,
        };

        let (mut producers, from) = match ProducerStateManager::load_latest(dir, log_end)? {
            Some((p, at)) => (p, at),
            None => (ProducerStateManager::default(), first_base),
        };
        for seg in segments.values() {
            if seg.next_offset() <= from {
                continue;
            }
            let start = seg
                .find_batch(from, seg.size())?
                .map_or(seg.size(), |b| b.position);
            for b in seg.batches_from(start, seg.size())? {
                if b.header.base_offset >= from {
                    producers.update(&b.header);
                    report.replayed_batches += 1;
                }
            }
        }
        if clean {
            fs::remove_file(&clean_marker)?;
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                config,
                segments,
                log_start_offset,
                producers,
                leader_epoch: 0,
                unflushed_messages: 0,
                first_unflushed_ms: None,
                pending_rollback: None,
                fsync_failed: None,
            },
            report,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    fn active(&self) -> &LogSegment {
        self.segments
            .values()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    /// The offset the next appended record gets; on a single node also the high watermark.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The first offset held on local disk.
    pub fn local_log_start_offset(&self) -> i64 {
        let first = self.segments.keys().next().copied().unwrap_or(0);
        first.max(self.log_start_offset)
    }

    /// Every segment except the active one, oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        let n = self.segments.len();
        self.segments
            .values()
            .take(n.saturating_sub(1))
            .map(|s| {
                let snapshot = producer_state::snapshot_path(&self.dir, s.next_offset());
                SealedSegment {
                    base_offset: s.base_offset(),
                    next_offset: s.next_offset(),
                    max_timestamp: s.max_timestamp(),
                    size: s.size() as u64,
                    log: segment::segment_path(&self.dir, s.base_offset(), "log"),
                    offset_index: segment::segment_path(&self.dir, s.base_offset(), "index"),
                    time_index: segment::segment_path(&self.dir, s.base_offset(), "timeindex"),
                    producer_snapshot: snapshot.exists().then_some(snapshot),
                }
            })
            .collect()
    }

    /// Deletes the local copy of a sealed segment that lives on in the remote tier. The log
    /// start offset does not move; the checkpoint is written first so a restart keeps it.
    pub fn delete_local_segment(&mut self, base_offset: i64) -> io::Result<bool> {
        let active = self.active().base_offset();
        if base_offset == active || !self.segments.contains_key(&base_offset) {
            return Ok(false);
        }
        // Once per log is enough: the value does not change here, and two fsyncs per deleted
        // segment held produce off while a backlog of uploaded segments was deleted.
        if read_log_start(&self.dir)? != Some(self.log_start_offset) {
            write_log_start(&self.dir, self.log_start_offset)?;
        }
        if let Some(seg) = self.segments.remove(&base_offset) {
            seg.delete_files()?;
        }
        Ok(true)
    }

    /// Moves the log start forward (remote retention or DeleteRecords on a tiered log),
    /// deleting local segments wholly below it.
    pub fn advance_log_start(&mut self, offset: i64) -> io::Result<()> {
        let offset = offset.min(self.log_end_offset());
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            write_log_start(&self.dir, offset)?;
            self.delete_segments_below_start()?;
        }
        Ok(())
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The epoch stamped on batches appended from now on.
    pub fn set_leader_epoch(&mut self, epoch: i32) {
        self.leader_epoch = epoch;
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size() as u64).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Checks that `batches` can be appended (size, timestamps, producer sequences) without
    /// writing anything. A producer retry of a single batch is answered with its offsets.
    fn check_append(
        &self,
        batches: &[(BatchHeader, Bytes)],
        now_ms: i64,
    ) -> Result<Option<AppendInfo>, AppendError> {
        // Several batches of one producer in a request follow each other's sequences: each is
        // checked against the state as the ones before it will have left it.
        let mut scratch = (batches.len() > 1).then(|| self.producers.clone());
        for (h, bytes) in batches {
            if bytes.len() > self.config.max_message_bytes as usize {
                return Err(AppendError::TooLarge {
                    size: bytes.len(),
                    max: self.config.max_message_bytes,
                });
            }
            if self.config.timestamp_type == TimestampType::CreateTime {
                let ts = h.max_timestamp;
                let too_old = ts < now_ms.saturating_sub(self.config.timestamp_before_max_ms);
                let too_new = ts > now_ms.saturating_add(self.config.timestamp_after_max_ms);
                if ts >= 0 && (too_old || too_new) {
                    return Err(AppendError::InvalidTimestamp { timestamp: ts });
                }
            }
            let producers = scratch.as_ref().unwrap_or(&self.producers);
            if let SequenceCheck::Duplicate { base_offset } = producers.check(h)? {
                if batches.len() != 1 {
                    // A retry can only be recognised batch by batch; Kafka's producers send one
                    // batch per partition, so a mixed request is not a retry.
                    return Err(AppendError::Producer(ProducerError::OutOfOrder {
                        producer_id: h.producer_id,
                        expected: -1,
                        received: h.base_sequence,
                    }));
                }
                return Ok(Some(AppendInfo {
                    base_offset,
                    last_offset: base_offset + h.last_offset_delta as i64,
                    log_append_time: -1,
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                }));
            }
            if let Some(scratch) = scratch.as_mut() {
                scratch.update(h);
            }
        }
        Ok(None)
    }

    /// Appends validated producer batches (see [`batch::split_batches`]), assigning offsets.
    ///
    /// All or nothing: when a write fails (ENOSPC, EIO, a short write) everything this call
    /// wrote is cut off again before the error is returned, so no later append ever lands
    /// behind torn bytes. When even that fails, the partition refuses appends
    /// ([`AppendError::Offline`]) and retries the cut before each later one.
    pub fn append(
        &mut self,
        batches: &[(BatchHeader, Bytes)],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        self.ensure_writable()?;
        if let Some(dup) = self.check_append(batches, now_ms)? {
            return Ok(dup);
        }
        let mark = self.mark(batches.len() > 1);
        match self.append_unchecked(batches, now_ms) {
            Ok((info, records)) => {
                if let Err(e) = self.maybe_flush(records, now_ms) {
                    // The bytes are written but their durability is unknown: after a failed
                    // fsync the page cache may already have dropped them, so nothing is
                    // acknowledged and the log waits for a restart to recover from the disk
                    // (`flush` took it offline).
                    tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; partition offline until restart");
                    return Err(AppendError::Io(e));
                }
                Ok(info)
            }
            Err(e) => {
                if let Err(undo) = self.rollback(&mark) {
                    tracing::error!(dir = %self.dir.display(), error = %e, undo_error = %undo,
                        "append failed and could not be undone; partition offline until it can");
                    self.pending_rollback = Some(mark);
                }
                Err(e)
            }
        }
    }

    /// Appends batches a leader already numbered and stamped (a follower copying its leader's
    /// log): offsets, leader epochs and bytes stay as they are. Batches wholly below the log end
    /// (an answer overlapping what this log already holds) are skipped; a batch that does not
    /// start at the log end is refused. All or nothing, as [`PartitionLog::append`].
    pub fn append_replicated(
        &mut self,
        batches: &[(BatchHeader, Bytes)],
        now_ms: i64,
    ) -> Result<usize, AppendError> {
        self.ensure_writable()?;
        let end = self.log_end_offset();
        let fresh: Vec<&(BatchHeader, Bytes)> = batches
            .iter()
            .filter(|(h, _)| h.last_offset() >= end)
            .collect();
        let Some(first) = fresh.first() else {
            return Ok(0);
        };
        if first.0.base_offset != end {
            return Err(AppendError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "replicated batch starts at {}, not at the log end {end}",
                    first.0.base_offset
                ),
            )));
        }
        let mark = self.mark(fresh.len() > 1);
        let mut records = 0i64;
        let written = (|| -> Result<(), AppendError> {
            for (h, bytes) in &fresh {
                if h.base_offset != self.log_end_offset() {
                    return Err(AppendError::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "replicated batches leave a gap at {}",
                            self.log_end_offset()
                        ),
                    )));
                }
                self.maybe_roll(bytes.len(), h.last_offset_delta, now_ms)?;
                self.active_mut().append(h, &[], bytes)?;
                self.producers.update(h);
                if h.partition_leader_epoch > self.leader_epoch {
                    self.leader_epoch = h.partition_leader_epoch;
                }
                records += h.record_count as i64;
            }
            Ok(())
        })();
        match written {
            Ok(()) => {
                if let Err(e) = self.maybe_flush(records, now_ms) {
                    tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; partition offline until restart");
                    return Err(AppendError::Io(e));
                }
                Ok(fresh.len())
            }
            Err(e) => {
                if let Err(undo) = self.rollback(&mark) {
                    tracing::error!(dir = %self.dir.display(), error = %e, undo_error = %undo,
                        "replicated append failed and could not be undone; partition offline until it can");
                    self.pending_rollback = Some(mark);
                }
                Err(e)
            }
        }
    }

    /// Cuts the log back to end at `offset` (a follower dropping a tail its leader does not
    /// have): the batch holding `offset` and everything after it go. Cutting below the first
    /// local segment empties the local log, which then continues at `offset`. The files are cut
    /// and the log opened again, so indexes and producer state are rebuilt as after a crash.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> io::Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if let Some(reason) = &self.fsync_failed {
            return Err(io::Error::other(format!(
                "an fsync failed ({reason}); restart the broker to recover the log"
            )));
        }
        let first = *self.segments.keys().next().unwrap_or(&0);
        let keep = self.segment_base_for(offset).filter(|_| offset > first);
        let cut = match keep {
            Some(base) => {
                let seg = &self.segments[&base];
                let at = seg
                    .find_batch(offset, seg.size())?
                    .map_or(seg.size(), |b| b.position);
                Some((base, at))
            }
            None => None,
        };
        let doomed: Vec<i64> = match cut {
            Some((base, 0)) if base != first => {
                self.segments.range(base..).map(|(b, _)| *b).collect()
            }
            Some((base, _)) => self.segments.range(base + 1..).map(|(b, _)| *b).collect(),
            None => self.segments.keys().copied().collect(),
        };
        for base in &doomed {
            if let Some(seg) = self.segments.get(base) {
                seg.delete_files()?;
            }
        }
        if let Some((base, at)) = cut
            && !doomed.contains(&base)
        {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(segment::segment_path(&self.dir, base, "log"))?;
            file.set_len(at as u64)?;
            file.sync_all()?;
            for ext in ["index", "timeindex"] {
                match fs::remove_file(segment::segment_path(&self.dir, base, ext)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if cut.is_none() {
            write_log_start(&self.dir, offset)?;
        }
        producer_state::remove_snapshots_above(&self.dir, offset)?;
        let start = if cut.is_none() {
            offset
        } else {
            self.log_start_offset
        };
        self.reopen(now_ms, Some((start, 0)))
    }

    /// Empties the local log, which continues at `offset` (a follower far behind its leader's
    /// log start starts over there).
    pub fn restart_at(&mut self, offset: i64, now_ms: i64) -> io::Result<()> {
        for seg in self.segments.values() {
            seg.delete_files()?;
        }
        write_log_start(&self.dir, offset)?;
        producer_state::remove_snapshots_above(&self.dir, -1)?;
        self.reopen(now_ms, Some((offset, offset)))
    }

    /// Empties the local log, which continues at `next` (the remote tier's end) while the log
    /// still starts at `start`, in the remote tier.
    pub fn restart_tiered(&mut self, start: i64, next: i64, now_ms: i64) -> io::Result<()> {
        for seg in self.segments.values() {
            seg.delete_files()?;
        }
        write_log_start(&self.dir, start)?;
        producer_state::remove_snapshots_above(&self.dir, -1)?;
        self.reopen(now_ms, Some((start, next)))
    }

    fn reopen(&mut self, now_ms: i64, remote: Option<(i64, i64)>) -> io::Result<()> {
        let epoch = self.leader_epoch;
        self.segments.clear();
        let (mut reopened, _) = Self::open_at(&self.dir, self.config.clone(), now_ms, remote)?;
        reopened.leader_epoch = epoch;
        *self = reopened;
        Ok(())
    }

    /// Refuses appends while the log is offline; first retries a pending rollback.
    fn ensure_writable(&mut self) -> Result<(), AppendError> {
        if let Some(reason) = &self.fsync_failed {
            return Err(AppendError::Offline(format!(
                "an fsync failed ({reason}); restart the broker to recover the log"
            )));
        }
        if let Some(mark) = self.pending_rollback.take() {
            if let Err(e) = self.rollback(&mark) {
                self.pending_rollback = Some(mark);
                return Err(AppendError::Offline(format!(
                    "a failed write could not be cut off yet: {e}"
                )));
            }
            tracing::info!(dir = %self.dir.display(), "failed write cut off; partition writable again");
        }
        Ok(())
    }

    /// Whether appends are refused (see [`AppendError::Offline`]).
    pub fn is_offline(&self) -> bool {
        self.fsync_failed.is_some() || self.pending_rollback.is_some()
    }

    fn mark(&self, with_producers: bool) -> LogMark {
        let active = self.active();
        LogMark {
            active_base: active.base_offset(),
            segment: active.mark(),
            end_offset: active.next_offset(),
            producers: with_producers.then(|| self.producers.clone()),
        }
    }

    /// Puts the log back where `mark` was taken: segments rolled since are removed, the segment
    /// that was active is cut back, producer snapshots above the old end are deleted (they
    /// describe batches that are gone) and the producer state is restored.
    fn rollback(&mut self, mark: &LogMark) -> io::Result<()> {
        let newer: Vec<i64> = self
            .segments
            .range(mark.active_base + 1..)
            .map(|(b, _)| *b)
            .collect();
        for base in newer {
            if let Some(seg) = self.segments.get(&base) {
                seg.delete_files()?;
            }
            self.segments.remove(&base);
        }
        let Some(active) = self.segments.get_mut(&mark.active_base) else {
            return Err(io::Error::other(
                "the segment active before the append is gone",
            ));
        };
        active.rollback(mark.segment)?;
        producer_state::remove_snapshots_above(&self.dir, mark.end_offset)?;
        if let Some(p) = &mark.producers {
            self.producers = p.clone();
        }
        Ok(())
    }

    /// Writes and numbers `batches` without checks or rollback; returns what was appended and
    /// how many records.
    fn append_unchecked(
        &mut self,
        batches: &[(BatchHeader, Bytes)],
        now_ms: i64,
    ) -> Result<(AppendInfo, i64), AppendError> {
        let log_append_time = match self.config.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => -1,
        };
        let base_offset = self.log_end_offset();
        let mut records = 0i64;
        for (h, bytes) in batches {
            self.maybe_roll(bytes.len(), h.last_offset_delta, now_ms)?;
            let offset = self.log_end_offset();
            let mut header = *h;
            header.base_offset = offset;
            header.partition_leader_epoch = self.leader_epoch;
            let rewritten;
            let body: &[u8] = if log_append_time >= 0 {
                rewritten = batch::with_log_append_time(bytes, now_ms);
                header.max_timestamp = now_ms;
                header.first_timestamp = now_ms;
                &rewritten
            } else {
                bytes
            };
            let prefix = batch::stored_prefix(body, offset, self.leader_epoch);
            self.active_mut()
                .append(&header, &prefix, &body[prefix.len()..])?;
            self.producers.update(&header);
            records += h.record_count as i64;
        }
        let last_offset = self.log_end_offset() - 1;
        Ok((
            AppendInfo {
                base_offset,
                last_offset,
                log_append_time,
                log_start_offset: self.log_start_offset,
                duplicate: false,
            },
            records,
        ))
    }

    fn maybe_roll(
        &mut self,
        batch_len: usize,
        last_offset_delta: i32,
        now_ms: i64,
    ) -> io::Result<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size() as u64 + batch_len as u64 > self.config.segment_bytes as u64;
        let old = now_ms.saturating_sub(active.created_ms()) > self.config.segment_ms;
        let next = active.next_offset();
        let offsets_overflow =
            next + last_offset_delta as i64 - active.base_offset() > i32::MAX as i64;
        if full || old || offsets_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end.
    pub fn roll(&mut self, now_ms: i64) -> io::Result<()> {
        let next = self.log_end_offset();
        if self.active().is_empty() {
            return Ok(());
        }
        // The sealed segment is made durable in the background, as Kafka does: an fsync of up to
        // a whole segment must not stall appends (the partition lock is held here). After a
        // crash only the last segment is scanned, so this bounds what a power loss can hurt.
        let sealed = self.active().reader()?;
        let base = self.active().base_offset();
        self.active_mut().seal()?;
        std::thread::Builder::new()
            .name("segment-flush".into())
            .spawn(move || {
                if let Err(e) = sealed.sync_data() {
                    tracing::error!(base_offset = base, error = %e, "fsync of a sealed segment failed");
                }
            })?;
        self.producers.write_snapshot(&self.dir, next)?;
        let seg = LogSegment::create(&self.dir, next, self.config.index_interval_bytes, now_ms)?;
        self.segments.insert(next, seg);
        Ok(())
    }

    fn maybe_flush(&mut self, records: i64, now_ms: i64) -> io::Result<()> {
        self.unflushed_messages += records;
        let since = *self.first_unflushed_ms.get_or_insert(now_ms);
        if self.unflushed_messages >= self.config.flush_messages
            || now_ms.saturating_sub(since) >= self.config.flush_ms
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Forces everything written so far to disk. A failure takes the log offline until a
    /// restart (see [`AppendError::Offline`]).
    pub fn flush(&mut self) -> io::Result<()> {
        if let Err(e) = self.active().flush() {
            self.fsync_failed = Some(e.to_string());
            return Err(e);
        }
        self.unflushed_messages = 0;
        self.first_unflushed_ms = None;
        Ok(())
    }

    /// Whether a time-based flush is due (for the background flusher).
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.first_unflushed_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.flush_ms)
    }

    /// Base offset of the local segment holding `offset` (the active one past the end).
    pub fn segment_base_for(&self, offset: i64) -> Option<i64> {
        self.segments.range(..=offset).next_back().map(|(b, _)| *b)
    }

    /// Finds the bytes to return for a fetch at `offset`: whole batches, at most `max_bytes`
    /// unless `at_least_one` and the first batch alone is larger.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> Result<ReadInfo, ReadError> {
        self.read_below(offset, max_bytes, at_least_one, i64::MAX)
    }

    /// As [`PartitionLog::read`], returning only batches that start below `max_offset` (a
    /// consumer reads below the high watermark; the records above it are not committed yet).
    pub fn read_below(
        &self,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
        max_offset: i64,
    ) -> Result<ReadInfo, ReadError> {
        let log_end = self.log_end_offset();
        let mut info = ReadInfo {
            high_watermark: log_end,
            log_start_offset: self.log_start_offset,
            region: None,
        };
        if offset < self.log_start_offset || offset > log_end {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset == log_end || offset >= max_offset {
            return Ok(info);
        }
        let local_start = self.local_log_start_offset();
        if offset < local_start {
            return Err(ReadError::NotLocal {
                offset,
                local_start,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        let floor = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for seg in self.segments.range(floor..).map(|(_, s)| s) {
            if seg.base_offset() >= max_offset {
                break;
            }
            let limit = if max_offset < seg.next_offset() {
                seg.find_batch(max_offset, seg.size())?
                    .map_or(seg.size(), |b| b.position)
            } else {
                seg.size()
            };
            let Some((file, position, len)) =
                seg.read_region(offset, max_bytes, at_least_one, limit)?
            else {
                continue;
            };
            if len > 0 {
                info.region = Some(FileRegion {
                    file,
                    position: position as u64,
                    len,
                });
            }
            return Ok(info);
        }
        Ok(info)
    }

    /// The earliest offset whose record has a timestamp at or after `timestamp`, with that
    /// record's timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> io::Result<Option<(i64, i64)>> {
        for seg in self.segments.values() {
            let Some(b) = seg.find_batch_by_timestamp(timestamp, seg.size())? else {
                continue;
            };
            // Inside the batch the first record that qualifies decides.
            let raw = seg.read_batch(&b)?;
            let mut buf = Bytes::from(raw);
            if let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
                for r in set.records {
                    if r.offset >= self.log_start_offset && r.timestamp >= timestamp {
                        return Ok(Some((r.offset, r.timestamp)));
                    }
                }
            }
            // Undecodable or all before log start: fall back to the batch boundary.
            let base = b.header.base_offset.max(self.log_start_offset);
            if b.header.last_offset() >= base {
                return Ok(Some((base, b.header.max_timestamp)));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the first record with the largest timestamp
    /// (ListOffsets -3), or `(-1, -1)` for an empty log.
    pub fn max_timestamp_offset(&self) -> io::Result<(i64, i64)> {
        let Some(seg) = self
            .segments
            .values()
            .filter(|s| !s.is_empty())
            .max_by_key(|s| s.max_timestamp())
        else {
            return Ok((-1, -1));
        };
        let (batch_offset, max_ts) = (seg.offset_of_max_timestamp(), seg.max_timestamp());
        // The segment knows the batch; the record inside it is found by decoding.
        if let Some(b) = seg.find_batch(batch_offset, seg.size())? {
            let mut buf = Bytes::from(seg.read_batch(&b)?);
            if let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
                && let Some(r) = set.records.iter().find(|r| r.timestamp == max_ts)
            {
                return Ok((r.offset, max_ts));
            }
        }
        Ok((batch_offset, max_ts))
    }

    /// Moves the log start to `offset` (DeleteRecords), deleting segments wholly below it.
    pub fn delete_records_before(&mut self, offset: i64) -> io::Result<i64> {
        let offset = offset.min(self.log_end_offset());
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            write_log_start(&self.dir, offset)?;
            self.delete_segments_below_start()?;
        }
        Ok(self.log_start_offset)
    }

    fn delete_segments_below_start(&mut self) -> io::Result<()> {
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(_, s)| s.next_offset() <= self.log_start_offset)
            .map(|(b, _)| *b)
            .collect();
        for base in doomed {
            if self.segments.len() == 1 {
                // The active segment stays, empty or not; roll first so it can go.
                break;
            }
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete_files()?;
            }
        }
        Ok(())
    }

    /// Applies `retention.ms` and `retention.bytes` to sealed segments. Returns how many
    /// segments were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        let mut deleted = 0;
        if self.config.remote_storage {
            // Total retention spans both tiers; the remote log manager applies it.
            return Ok(0);
        }
        loop {
            if self.segments.len() < 2 {
                break;
            }
            let Some((&base, oldest)) = self.segments.iter().next() else {
                break;
            };
            let expired = self.config.retention_ms >= 0
                && oldest.max_timestamp() >= 0
                && now_ms.saturating_sub(oldest.max_timestamp()) > self.config.retention_ms;
            let over_size = self.config.retention_bytes >= 0
                && self.size_bytes() - oldest.size() as u64 >= self.config.retention_bytes as u64;
            if !expired && !over_size {
                break;
            }
            let next_start = oldest.next_offset();
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete_files()?;
            }
            if next_start > self.log_start_offset {
                self.log_start_offset = next_start;
                write_log_start(&self.dir, next_start)?;
            }
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Flushes everything and marks the log cleanly closed, so the next start skips recovery.
    pub fn close(&mut self) -> io::Result<()> {
        self.flush()?;
        self.active().persist_indexes()?;
        let end = self.log_end_offset();
        self.producers.write_snapshot(&self.dir, end)?;
        crate::util::write_atomically(&self.dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        Ok(())
    }

    /// Deletes the whole partition directory.
    pub fn delete(self) -> io::Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(dir)
    }
}

fn read_log_start(dir: &Path) -> io::Result<Option<i64>> {
    match fs::read_to_string(dir.join(LOG_START_FILE)) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_log_start(dir: &Path, offset: i64) -> io::Result<()> {
    crate::util::write_atomically(&dir.join(LOG_START_FILE), offset.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use batch::tests::{make_batch, make_idempotent_batch};

    fn batches(raw: Vec<u8>) -> Vec<(BatchHeader, Bytes)> {
        batch::split_batches(&Bytes::from(raw)).expect("valid")
    }

    fn small_config() -> LogConfig {
        LogConfig {
            segment_bytes: 400,
            index_interval_bytes: 100,
            ..Default::default()
        }
    }

    fn read_all(log: &PartitionLog, from: i64) -> Vec<BatchHeader> {
        let mut out = Vec::new();
        let mut offset = from;
        while offset < log.log_end_offset() {
            let info = log.read(offset, 1 << 20, true).expect("read");
            let region = info.region.expect("data");
            let mut raw = vec![0u8; region.len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&*region.file, &mut raw, region.position)
                .expect("read");
            for (h, _) in batch::split_batches(&Bytes::from(raw)).expect("stored batches valid") {
                offset = h.last_offset() + 1;
                out.push(h);
            }
        }
        out
    }

    #[test]
    fn appends_roll_and_read_back_across_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = PartitionLog::open(dir.path(), small_config(), 0).expect("open");
        for i in 0..30 {
            let info = log
                .append(&batches(make_batch(0, 2, 1000 + i)), 1000)
                .expect("append");
            assert_eq!(info.base_offset, i * 2);
        }
        assert_eq!(log.log_end_offset(), 60);
        assert!(log.segment_count() > 3);
        let all = read_all(&log, 0);
        assert_eq!(all.len(), 30);
        assert!(
            all.windows(2)
                .all(|w| w[1].base_offset == w[0].last_offset() + 1)
        );
        // Reads that start mid-batch return the whole batch.
        let info = log.read(7, 1, true).expect("read");
        assert!(info.region.is_some());
        assert!(matches!(
            log.read(61, 100, true),
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert!(log.read(60, 100, true).expect("read").region.is_none());
        assert_eq!(
            log.offset_for_timestamp(1010).expect("io"),
            Some((20, 1010))
        );
        assert_eq!(log.offset_for_timestamp(5000).expect("io"), None);
        assert_eq!(log.max_timestamp_offset().expect("io"), (58, 1029));
    }

    /// The stored bytes of a leader's log from `from` on, as a follower's fetch gets them.
    fn stored_from(log: &PartitionLog, from: i64) -> Bytes {
        let info = log.read(from, 1 << 20, true).expect("read");
        let mut raw = Vec::new();
        let mut offset = from;
        let mut region = info.region;
        while let Some(r) = region {
            let mut chunk = vec![0u8; r.len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&*r.file, &mut chunk, r.position)
                .expect("read");
            for (h, _) in batch::split_stored_batches(&Bytes::from(chunk.clone())).expect("valid") {
                offset = h.last_offset() + 1;
            }
            raw.extend_from_slice(&chunk);
            region = if offset < log.log_end_offset() {
                log.read(offset, 1 << 20, true).expect("read").region
            } else {
                None
            };
        }
        Bytes::from(raw)
    }

    #[test]
    fn followers_copy_batches_as_they_are_and_truncate_divergent_tails() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let follower_dir = tempfile::tempdir().expect("tempdir");
        let (mut leader, _) =
            PartitionLog::open(leader_dir.path(), small_config(), 0).expect("open");
        leader.set_leader_epoch(3);
        for i in 0..12 {
            leader
                .append(
                    &batches(make_idempotent_batch(0, 2, 1000 + i, 7, 0, i as i32 * 2)),
                    1000,
                )
                .expect("append");
        }
        let (mut follower, _) =
            PartitionLog::open(follower_dir.path(), small_config(), 0).expect("open");
        let copied = batch::split_stored_batches(&stored_from(&leader, 0)).expect("valid");
        assert_eq!(copied.len(), 12);
        // Twice: the second time every batch is below the log end and is skipped.
        assert_eq!(
            follower.append_replicated(&copied, 1000).expect("append"),
            12
        );
        assert_eq!(
            follower.append_replicated(&copied, 1000).expect("append"),
            0
        );
        assert_eq!(follower.log_end_offset(), 24);
        assert_eq!(
            follower.leader_epoch(),
            3,
            "the leader's epoch travels with its batches"
        );
        assert_eq!(
            stored_from(&follower, 0),
            stored_from(&leader, 0),
            "byte for byte"
        );
        assert!(
            follower.segment_count() > 1,
            "the follower rolls segments too"
        );
        // A batch that does not start at the log end is refused.
        let gap = batch::split_stored_batches(&stored_from(&leader, 20)).expect("valid");
        let (mut short, _) = PartitionLog::open(
            tempfile::tempdir().expect("tempdir").path(),
            small_config(),
            0,
        )
        .expect("open");
        assert!(short.append_replicated(&gap, 1000).is_err());

        // Consumers read below a high watermark.
        let below = follower.read_below(0, 1 << 20, true, 10).expect("read");
        let region = below.region.expect("data");
        let mut raw = vec![0u8; region.len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&*region.file, &mut raw, region.position)
            .expect("read");
        let seen = batch::split_stored_batches(&Bytes::from(raw)).expect("valid");
        assert!(
            seen.iter().all(|(h, _)| h.base_offset < 10),
            "{:?}",
            seen.len()
        );
        assert!(
            follower
                .read_below(10, 1 << 20, true, 10)
                .expect("read")
                .region
                .is_none()
        );

        // Cut back into an earlier segment, then go on from there: offsets, producer state
        // and indexes are as if the tail had never been written.
        follower.truncate_to(9, 1000).expect("truncate");
        assert_eq!(
            follower.log_end_offset(),
            8,
            "the batch holding offset 9 goes whole"
        );
        assert_eq!(read_all(&follower, 0).len(), 4);
        let next = batch::split_stored_batches(&stored_from(&leader, 8)).expect("valid");
        assert_eq!(follower.append_replicated(&next, 1000).expect("append"), 8);
        assert_eq!(stored_from(&follower, 0), stored_from(&leader, 0));
        // The producer's sequence continues where the leader's does.
        let info = follower
            .append(&batches(make_idempotent_batch(0, 2, 2000, 7, 0, 24)), 2000)
            .expect("next in sequence");
        assert_eq!(info.base_offset, 24);
        let dup = follower
            .append(&batches(make_idempotent_batch(0, 2, 1011, 7, 0, 22)), 2000)
            .expect("a retry");
        assert!(dup.duplicate);

        // Everything local goes: the log continues at the given offset.
        follower.restart_at(100, 3000).expect("restart");
        assert_eq!(
            (follower.log_start_offset(), follower.log_end_offset()),
            (100, 100)
        );
        drop(follower);
        let (reopened, _) =
            PartitionLog::open(follower_dir.path(), small_config(), 0).expect("reopen");
        assert_eq!(
            (reopened.log_start_offset(), reopened.log_end_offset()),
            (100, 100)
        );
    }

    #[test]
    fn restart_after_clean_and_unclean_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = PartitionLog::open(dir.path(), small_config(), 0).expect("open");
        for i in 0..10 {
            log.append(&batches(make_idempotent_batch(0, 2, 1, 5, 0, i * 2)), 0)
                .expect("append");
        }
        log.close().expect("close");
        drop(log);
        let (log, report) = PartitionLog::open(dir.path(), small_config(), 0).expect("reopen");
        assert!(report.clean_shutdown);
        assert_eq!(log.log_end_offset(), 20);
        // The producer state survived: a retry is recognised, a gap is refused.
        let mut log = log;
        let dup = log
            .append(&batches(make_idempotent_batch(0, 2, 1, 5, 0, 18)), 0)
            .expect("dup");
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, 18);
        assert!(matches!(
            log.append(&batches(make_idempotent_batch(0, 2, 1, 5, 0, 30)), 0),
            Err(AppendError::Producer(ProducerError::OutOfOrder { .. }))
        ));
        log.append(&batches(make_idempotent_batch(0, 2, 1, 5, 0, 20)), 0)
            .expect("next in sequence");
        drop(log); // unclean: no close()
        // Tear the last batch.
        let active = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .max()
            .expect("a segment");
        let len = fs::metadata(&active).expect("stat").len();
        fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .expect("open")
            .set_len(len - 3)
            .expect("truncate");
        let (mut log, report) = PartitionLog::open(dir.path(), small_config(), 0).expect("recover");
        assert!(!report.clean_shutdown);
        assert!(report.recovery.truncated_bytes > 0);
        assert_eq!(log.log_end_offset(), 20);
        // The torn batch is gone, so the producer may write sequence 20 again.
        let info = log
            .append(&batches(make_idempotent_batch(0, 2, 1, 5, 0, 20)), 0)
            .expect("append");
        assert_eq!(info.base_offset, 20);
        assert!(!info.duplicate);
    }

    #[test]
    fn delete_records_and_retention_move_the_log_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = PartitionLog::open(dir.path(), small_config(), 0).expect("open");
        for i in 0..30 {
            log.append(&batches(make_batch(0, 2, 1000 + i)), 1000)
                .expect("append");
        }
        let segments = log.segment_count();
        assert_eq!(log.delete_records_before(25).expect("delete"), 25);
        assert!(log.segment_count() < segments);
        assert!(matches!(
            log.read(24, 100, true),
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert!(read_all(&log, 25).iter().any(|h| h.last_offset() >= 25));
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path(), small_config(), 0).expect("reopen");
        assert_eq!(log.log_start_offset(), 25);
        let mut cfg = small_config();
        cfg.retention_ms = 10;
        log.set_config(cfg);
        let deleted = log.enforce_retention(1_000_000).expect("retention");
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), log.active().base_offset());
    }

    /// The segment and snapshot files of a log and their sizes (index files are written at a
    /// roll and left to be checked at load, so they are not compared).
    fn log_files(dir: &Path) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = fs::read_dir(dir)
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".log") || name.ends_with(".snapshot")
            })
            .map(|e| {
                let len = e.metadata().expect("stat").len();
                (e.file_name().to_string_lossy().into_owned(), len)
            })
            .collect();
        out.sort();
        out
    }

    /// A write that fails half-way (a full disk) leaves nothing behind: the next append lands
    /// where the failed one would have, and a restart after a crash keeps every acknowledged
    /// batch (the bug where later appends followed torn bytes and recovery cut them all).
    #[test]
    fn a_failed_write_is_cut_off_before_the_next_append() {
        use segment::write_faults;
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = PartitionLog::open(dir.path(), small_config(), 0).expect("open");
        for i in 0..3 {
            log.append(&batches(make_idempotent_batch(0, 2, 7, 0, 0, i * 2)), 0)
                .expect("append");
        }
        let before = log_files(dir.path());
        for budget in [0, 1, 30, 61] {
            write_faults::fail_after(budget);
            let err = log
                .append(&batches(make_idempotent_batch(0, 2, 7, 0, 0, 6)), 0)
                .expect_err("the disk is full");
            write_faults::clear();
            assert!(matches!(err, AppendError::Io(_)), "{err}");
            assert_eq!(log.log_end_offset(), 6);
            assert_eq!(log_files(dir.path()), before, "budget {budget}");
            assert!(!log.is_offline());
        }
        // Space is back: the retry is taken as new (its sequence was never stored).
        let info = log
            .append(&batches(make_idempotent_batch(0, 2, 7, 0, 0, 6)), 0)
            .expect("append after space returns");
        assert_eq!((info.base_offset, info.duplicate), (6, false));
        for i in 4..10 {
            log.append(&batches(make_idempotent_batch(0, 2, 7, 0, 0, i * 2)), 0)
                .expect("append");
        }
        drop(log); // a crash: no clean close
        let (log, report) = PartitionLog::open(dir.path(), small_config(), 0).expect("recover");
        assert_eq!(report.recovery.truncated_bytes, 0);
        assert_eq!(log.log_end_offset(), 20);
        assert_eq!(read_all(&log, 0).len(), 10);
    }

    /// A request of several batches that fails after a roll is undone as a whole: the new
    /// segment, its producer snapshot and the producer state of the batches before it.
    #[test]
    fn a_failed_append_of_several_batches_is_undone_across_a_roll() {
        use segment::write_faults;
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = PartitionLog::open(dir.path(), small_config(), 0).expect("open");
        // Fill the first segment almost to its 400 bytes.
        let mut seq = 0;
        while log.segment_count() == 1 && log.active().size() < 300 {
            log.append(&batches(make_idempotent_batch(0, 1, 9, 0, 0, seq)), 0)
                .expect("append");
            seq += 1;
        }
        let end = log.log_end_offset();
        let before = log_files(dir.path());
        let mut raw = Vec::new();
        for i in 0..4 {
            raw.extend(make_idempotent_batch(0, 1, 9, 0, 0, seq + i));
        }
        let one = make_idempotent_batch(0, 1, 9, 0, 0, 0).len();
        // The first batches fit and the roll happens; the last write fails half-way.
        write_faults::fail_after(3 * one + one / 2);
        let err = log
            .append(&batches(raw.clone()), 0)
            .expect_err("the disk is full");
        assert!(matches!(err, AppendError::Io(_)), "{err}");
        write_faults::clear();
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log_files(dir.path()), before);
        // The producer state went back too: the same batches are new, not duplicates.
        let info = log.append(&batches(raw), 0).expect("append");
        assert_eq!((info.base_offset, info.duplicate), (end, false));
        assert!(log.segment_count() > 1);
    }

    #[test]
    fn refuses_oversized_and_badly_timed_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            max_message_bytes: 80,
            ..Default::default()
        };
        let (mut log, _) = PartitionLog::open(dir.path(), cfg, 0).expect("open");
        assert!(matches!(
            log.append(&batches(make_batch(0, 5, 1)), 1),
            Err(AppendError::TooLarge { .. })
        ));
        log.set_config(LogConfig {
            timestamp_after_max_ms: 10,
            ..Default::default()
        });
        assert!(matches!(
            log.append(&batches(make_batch(0, 1, 1000)), 1),
            Err(AppendError::InvalidTimestamp { .. })
        ));
        assert_eq!(log.log_end_offset(), 0);
    }
}
