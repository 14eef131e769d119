//! One partition as the broker serves it: the contract every layer above works with.
//!
//! A `Partition` owns its log (behind a lock), its **high watermark as a value of its own** (the
//! offset below which records are committed and shown to consumers; a watch channel, so long
//! polls wake on it), the last stable offset, the leader epoch cache, and the one read that hides
//! which tier answers ([`Partition::fetch`]: a file region of a local segment, or bytes of a
//! remote one). Epoch checks of requests happen here and nowhere else.
//!
//! On a single node the partition is its own whole in-sync replica set, so the high watermark
//! moves to the log end with every append; the last stable offset equals it while there are no
//! transactions.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;
use uuid::Uuid;

use super::TierSlot;
use super::epoch::EpochCache;
use super::replication::{ReplicaSet, Role};
use crate::log::batch::BatchHeader;
use crate::log::{AppendError, AppendInfo, FileRegion, LogConfig, PartitionLog, ReadError};

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    log: Mutex<PartitionLog>,
    high_watermark: watch::Sender<i64>,
    epochs: Mutex<EpochCache>,
    tier: Arc<TierSlot>,
    deleted: AtomicBool,
    /// This broker leads the partition (always on a single node; in a cluster, as the metadata
    /// places it). Requests to a partition it does not lead get `NOT_LEADER_OR_FOLLOWER`.
    leader: AtomicBool,
    /// The log end offset, for followers' long polls (consumers wait on the high watermark).
    log_end: watch::Sender<i64>,
    /// The in-sync set is this broker alone (a single node, or a leader whose followers all
    /// fell out): the high watermark follows the log end on every append.
    alone: AtomicBool,
    /// Replicas, in-sync set and followers' progress (see [`super::replication`]).
    replication: Mutex<ReplicaSet>,
}

/// How far a fetch may read: a consumer up to the high watermark, a follower to the log end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Consumer,
    Follower,
}

/// How waiting for records to be committed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitWait {
    /// Every in-sync replica has them: the high watermark passed them.
    Committed,
    /// This broker stopped leading the partition first.
    NotLeader,
    /// The in-sync set shrank below the minimum (its size).
    TooFewInSync(i64),
    TimedOut,
}

/// An in-sync set change a leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// The file in a partition's directory naming the topic id it belongs to, so a directory left
/// by a deleted topic is never taken for a new topic of the same name.
const TOPIC_ID_FILE: &str = "topic-id";

/// Makes sure `dir` holds partition data of topic `id`: a directory of another topic id (left
/// behind while this node was down when its topic was deleted) is removed; a directory without
/// the file (older data directories, or a new partition) is stamped.
fn claim_dir(dir: &Path, id: Uuid) -> std::io::Result<()> {
    let file = dir.join(TOPIC_ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(raw) if raw.trim() == id.to_string() => return Ok(()),
        Ok(raw) => {
            tracing::warn!(dir = %dir.display(), found = raw.trim(), expected = %id, "removing a partition directory of an earlier topic of the same name");
            std::fs::remove_dir_all(dir)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    crate::util::write_atomically(&file, id.to_string().as_bytes())
}

pub fn dir_name(topic: &str, index: i32) -> String {
    format!("{topic}-{index}")
}

/// Why a request's leader epoch does not match the partition's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochError {
    /// The request carries an epoch older than the current one (`FENCED_LEADER_EPOCH`).
    Fenced,
    /// The request carries an epoch newer than this broker knows (`UNKNOWN_LEADER_EPOCH`).
    Unknown,
}

/// The records a fetch found, from whichever tier held them.
#[derive(Debug)]
pub enum Records {
    None,
    /// Whole batches of a local segment, sent with `sendfile`.
    File(FileRegion),
    /// Whole batches read from the remote tier, in pieces (slices of cached chunks, in order).
    Memory(Vec<Bytes>),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::None => 0,
            Records::File(r) => r.len as usize,
            Records::Memory(parts) => parts.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a fetch answers for one partition.
#[derive(Debug)]
pub struct Fetched {
    pub records: Records,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("{0}")]
    Storage(String),
}

impl Partition {
    /// Opens the partition's log. `remote` is the `[start, next)` range already in the remote
    /// tier: a log whose local copy was lost continues at `next` instead of reusing offsets.
    pub fn open(
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        config: LogConfig,
        remote: Option<(i64, i64)>,
        tier: Arc<TierSlot>,
    ) -> std::io::Result<Self> {
        let dir = data_dir.join(dir_name(topic, index));
        if !topic_id.is_nil() {
            claim_dir(&dir, topic_id)?;
        }
        let (log, report) = PartitionLog::open_at(&dir, config, crate::util::now_ms(), remote)?;
        if !report.clean_shutdown && report.recovery.batches > 0 {
            tracing::info!(
                topic,
                partition = index,
                batches = report.recovery.batches,
                truncated_bytes = report.recovery.truncated_bytes,
                "recovered log tail after unclean shutdown"
            );
        }
        // This broker leads the partition in the log's epoch from its log end on; a log from
        // before the cache existed was written in that one epoch from its start.
        let mut epochs = match EpochCache::load(&dir)? {
            Some(c) => c,
            None => {
                let mut c = EpochCache::empty(&dir);
                c.assign(log.leader_epoch(), log.log_start_offset())?;
                c
            }
        };
        let mut log = log;
        // A restart continues in the newest epoch the cache knows (a cluster moves epochs on).
        if let Some(latest) = epochs.latest_epoch()
            && latest > log.leader_epoch()
        {
            log.set_leader_epoch(latest);
        }
        epochs.assign(log.leader_epoch(), log.log_end_offset())?;
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        let (log_end, _) = watch::channel(log.log_end_offset());
        Ok(Self {
            topic: topic.to_string(),
            topic_id,
            index,
            log: Mutex::new(log),
            high_watermark,
            epochs: Mutex::new(epochs),
            tier,
            deleted: AtomicBool::new(false),
            leader: AtomicBool::new(true),
            log_end,
            alone: AtomicBool::new(true),
            replication: Mutex::new(ReplicaSet::alone(-1)),
        })
    }

    fn replication(&self) -> std::sync::MutexGuard<'_, ReplicaSet> {
        self.replication.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> std::sync::MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn epochs(&self) -> std::sync::MutexGuard<'_, EpochCache> {
        self.epochs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn append(
        &self,
        batches: &[(BatchHeader, Bytes)],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let mut log = self.log();
        if self.deleted.load(Ordering::Acquire) {
            return Err(AppendError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "partition was deleted",
            )));
        }
        let info = log.append(batches, now_ms)?;
        let end = log.log_end_offset();
        // Only followers' long polls wait on the log end; they read the log itself, so without
        // one waiting nobody needs to be told (and a single node pays nothing for it).
        if self.log_end.receiver_count() > 0 {
            self.log_end.send_replace(end);
        }
        if self.alone.load(Ordering::Acquire) {
            // The in-sync set is this broker alone: what is written is committed. Moved under
            // the log's lock, so no reader sees records above the high watermark.
            self.high_watermark.send_replace(end);
        }
        Ok(info)
    }

    /// Appends batches of the leader's log as they are (this broker follows the partition);
    /// new leader epochs in them enter the epoch cache.
    pub fn append_replicated(
        &self,
        batches: &[(BatchHeader, Bytes)],
        now_ms: i64,
    ) -> Result<usize, AppendError> {
        let mut log = self.log();
        if self.deleted.load(Ordering::Acquire) {
            return Err(AppendError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "partition was deleted",
            )));
        }
        let end = log.log_end_offset();
        {
            let mut epochs = self.epochs();
            for (h, _) in batches.iter().filter(|(h, _)| h.last_offset() >= end) {
                if epochs
                    .latest_epoch()
                    .is_none_or(|e| e < h.partition_leader_epoch)
                {
                    epochs.assign(h.partition_leader_epoch, h.base_offset.max(end))?;
                }
            }
        }
        let n = log.append_replicated(batches, now_ms)?;
        self.log_end.send_replace(log.log_end_offset());
        Ok(n)
    }

    /// A follower's high watermark: the leader's, as far as this log reaches.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let end = self.log_end_offset();
        let hw = leader_high_watermark.min(end);
        self.high_watermark.send_if_modified(|v| {
            let changed = *v != hw;
            *v = hw;
            changed
        });
    }

    /// A follower takes its leader's log start (records deleted there by DeleteRecords or
    /// retention), up to its own high watermark.
    pub fn follow_log_start(&self, leader_log_start: i64) -> std::io::Result<()> {
        let target = leader_log_start.min(self.high_watermark());
        if target > self.log_start_offset() {
            self.delete_records_before(target)?;
        }
        Ok(())
    }

    /// The smallest log start among this leader and its caught-up followers: what DeleteRecords
    /// answers once every replica that could lead has dropped the records.
    pub fn low_watermark(&self) -> i64 {
        let start = self.log_start_offset();
        if self.alone.load(Ordering::Acquire) {
            return start;
        }
        self.replication()
            .low_watermark(start, self.high_watermark())
    }

    /// Cuts the log back to end at `offset` (a divergent tail, found through the leader's epoch
    /// history); the epoch cache and the high watermark follow.
    pub fn truncate_to(&self, offset: i64) -> std::io::Result<()> {
        let mut log = self.log();
        log.truncate_to(offset, crate::util::now_ms())?;
        let end = log.log_end_offset();
        self.epochs().truncate_from_end(end)?;
        self.log_end.send_replace(end);
        self.high_watermark.send_if_modified(|v| {
            let changed = *v > end;
            *v = (*v).min(end);
            changed
        });
        Ok(())
    }

    /// Empties the local log, which continues at `offset` (a follower whose log ends below
    /// its leader's log start).
    pub fn restart_at(&self, offset: i64) -> std::io::Result<()> {
        let mut log = self.log();
        log.restart_at(offset, crate::util::now_ms())?;
        let mut epochs = self.epochs();
        *epochs = EpochCache::empty(log.dir());
        self.log_end.send_replace(offset);
        self.high_watermark.send_replace(offset);
        Ok(())
    }

    /// A follower whose fetch offset is in the remote tier (below its leader's local log)
    /// empties its local log and continues at the remote tier's end, its log still starting at
    /// `leader_log_start`: it reads the older records from the remote tier like its leader,
    /// instead of copying them. `None` when the remote tier holds nothing of the partition.
    pub fn restart_above_remote(&self, leader_log_start: i64) -> std::io::Result<Option<i64>> {
        let Some(next) = self
            .tier
            .get()
            .and_then(|r| r.next_offset(self.topic_id, self.index))
        else {
            return Ok(None);
        };
        let mut log = self.log();
        log.restart_tiered(leader_log_start.min(next), next, crate::util::now_ms())?;
        *self.epochs() = EpochCache::empty(log.dir());
        self.log_end.send_replace(next);
        self.high_watermark.send_replace(next);
        Ok(Some(next))
    }

    /// The newest epoch this log holds batches of (`-1`: none): a follower's
    /// `LastFetchedEpoch`.
    pub fn last_fetched_epoch(&self) -> i32 {
        let log = self.log();
        if log.log_end_offset() <= log.log_start_offset() {
            return -1;
        }
        self.epochs().latest_epoch().unwrap_or(-1)
    }

    /// A receiver that changes whenever the log end moves (followers' long polls).
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// A follower fetched at `fetch_offset`: its progress moves, and with it the high
    /// watermark. Returns the high watermark after the fetch.
    pub fn follower_fetched(
        &self,
        replica: i32,
        fetch_offset: i64,
        log_start: i64,
        now_ms: i64,
    ) -> i64 {
        let end = self.log_end_offset();
        let hw = {
            let mut rs = self.replication();
            rs.fetched(replica, fetch_offset, end, now_ms);
            rs.fetched_log_start(replica, log_start);
            rs.high_watermark(end)
        };
        if let Some(hw) = hw {
            self.raise_high_watermark(hw);
        }
        self.high_watermark()
    }

    fn raise_high_watermark(&self, hw: i64) {
        self.high_watermark.send_if_modified(|v| {
            let raise = hw > *v;
            if raise {
                *v = hw;
            }
            raise
        });
    }

    /// Waits until the high watermark reaches `target` (every in-sync replica has the records
    /// below it), while this broker leads and at least `min_isr` replicas are in sync.
    pub async fn wait_committed(
        &self,
        target: i64,
        min_isr: i64,
        deadline: tokio::time::Instant,
    ) -> CommitWait {
        let mut hw = self.subscribe();
        loop {
            let reached = *hw.borrow_and_update() >= target;
            // As Kafka: the high watermark can pass the batch because the in-sync set shrank
            // under it, and then the batch is on fewer replicas than min.insync.replicas.
            let isr = self.isr_count();
            if reached {
                return if isr < min_isr {
                    CommitWait::TooFewInSync(isr)
                } else {
                    CommitWait::Committed
                };
            }
            if !self.is_leader() {
                return CommitWait::NotLeader;
            }
            if isr < min_isr {
                return CommitWait::TooFewInSync(isr);
            }
            // Leadership and in-sync changes do not move the watch: look again now and then.
            let tick =
                (tokio::time::Instant::now() + std::time::Duration::from_millis(100)).min(deadline);
            match tokio::time::timeout_at(tick, hw.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return CommitWait::NotLeader,
                Err(_) if tick >= deadline => return CommitWait::TimedOut,
                Err(_) => {}
            }
        }
    }

    /// Whether `replica` follows this partition (a fetch with that replica id is one of ours).
    pub fn has_follower(&self, replica: i32) -> bool {
        self.replication().is_replica(replica)
    }

    /// The in-sync set as this broker last saw it from the controller.
    pub fn isr(&self) -> Vec<i32> {
        self.replication().isr.clone()
    }

    /// How many replicas are in sync (1 without taking a lock when this broker is alone).
    pub fn isr_count(&self) -> i64 {
        if self.alone.load(Ordering::Acquire) {
            1
        } else {
            self.replication().isr.len() as i64
        }
    }

    /// In-sync replicas caught up within `max_lag_ms` ([`ReplicaSet::caught_up_in_sync`]).
    pub fn caught_up_in_sync(&self, max_lag_ms: i64, now_ms: i64) -> i64 {
        if self.alone.load(Ordering::Acquire) {
            1
        } else {
            self.replication().caught_up_in_sync(max_lag_ms, now_ms)
        }
    }

    /// The in-sync set change this leader should ask for now, if any (followers lagging more
    /// than `max_lag_ms` leave, caught-up ones join); marked pending until the metadata shows
    /// an answer.
    pub fn isr_change(&self, max_lag_ms: i64, now_ms: i64) -> Option<IsrChange> {
        if !self.is_leader() {
            return None;
        }
        let epoch_start = {
            let epoch = self.leader_epoch();
            self.epochs()
                .entries()
                .iter()
                .find(|e| e.epoch == epoch)
                .map_or(0, |e| e.start_offset)
        };
        let hw = self.high_watermark();
        let mut rs = self.replication();
        let isr = rs.wanted_isr(hw, epoch_start, max_lag_ms, now_ms)?;
        rs.pending_isr = Some(isr.clone());
        Some(IsrChange {
            leader_epoch: rs.leader_epoch,
            partition_epoch: rs.partition_epoch,
            isr,
        })
    }

    /// Forgets a pending in-sync set change (the controller refused it or never answered).
    pub fn clear_pending_isr(&self) {
        self.replication().pending_isr = None;
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// This broker leads the partition from now on, in `epoch` (never an older one than it
    /// knows): appends are stamped with it and the epoch cache starts it at the log end.
    pub fn become_leader(&self, epoch: i32) -> std::io::Result<()> {
        let mut log = self.log();
        if epoch > log.leader_epoch() {
            log.set_leader_epoch(epoch);
            self.epochs().assign(epoch, log.log_end_offset())?;
        }
        self.leader.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes the cluster's view of the partition: its role here, the leader epoch, replicas and
    /// in-sync set. A leader whose in-sync set is itself alone commits at its log end; one with
    /// followers commits as they fetch.
    pub fn set_replicas(
        &self,
        me: i32,
        role: Role,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
    ) -> std::io::Result<()> {
        match role {
            Role::Leader => self.become_leader(leader_epoch)?,
            Role::Follower { .. } => self.resign(),
        }
        let alone = {
            let mut rs = self.replication();
            rs.set_me(me);
            rs.update(
                role,
                leader_epoch,
                replicas,
                isr,
                partition_epoch,
                crate::util::now_ms(),
            );
            rs.is_alone()
        };
        let log = self.log();
        let end = log.log_end_offset();
        self.alone.store(alone, Ordering::Release);
        if alone {
            self.raise_high_watermark(end);
        } else if role == Role::Leader {
            // A smaller in-sync set may let the high watermark move on at once.
            let hw = self.replication().high_watermark(end);
            if let Some(hw) = hw {
                self.raise_high_watermark(hw);
            }
        }
        Ok(())
    }

    /// Another broker (or none) leads the partition now.
    pub fn resign(&self) {
        self.leader.store(false, Ordering::Release);
        self.alone.store(false, Ordering::Release);
    }

    /// Refusing appends after a write it could not undo, or a failed fsync.
    pub fn is_offline(&self) -> bool {
        self.log().is_offline()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Checks a request's `current_leader_epoch` (-1: the client does not know one).
    pub fn check_epoch(&self, requested: i32) -> Result<(), EpochError> {
        let current = self.leader_epoch();
        if requested < 0 || requested == current {
            Ok(())
        } else if requested > current {
            Err(EpochError::Unknown)
        } else {
            Err(EpochError::Fenced)
        }
    }

    /// Reads whole batches at `offset`, at most `max_bytes` (at least one batch when
    /// `at_least_one`), from the local log or, below the local log start, the remote tier.
    pub async fn fetch(
        &self,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> Result<Fetched, FetchError> {
        self.fetch_for(Reader::Consumer, offset, max_bytes, at_least_one)
            .await
    }

    /// [`Partition::fetch`] for `reader`: consumers see batches below the high watermark,
    /// followers everything up to the log end.
    pub async fn fetch_for(
        &self,
        reader: Reader,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> Result<Fetched, FetchError> {
        let local = {
            let log = self.log();
            let hw = self.high_watermark();
            let below = match reader {
                Reader::Consumer => hw,
                Reader::Follower => i64::MAX,
            };
            let read = log.read_below(offset, max_bytes, at_least_one, below);
            (read, hw)
        };
        match local {
            (Ok(info), hw) => Ok(Fetched {
                records: info.region.map_or(Records::None, Records::File),
                high_watermark: hw,
                last_stable_offset: hw,
                log_start_offset: info.log_start_offset,
            }),
            (
                Err(ReadError::NotLocal {
                    offset, log_start, ..
                }),
                hw,
            ) => {
                let records = match self.tier.get() {
                    Some(remote) => remote
                        .read(
                            &self.topic,
                            self.topic_id,
                            self.index,
                            offset,
                            max_bytes,
                            at_least_one,
                        )
                        .await
                        .map_err(|e| {
                            tracing::warn!(topic = %self.topic, partition = self.index, offset, error = %e, "remote read failed");
                            FetchError::Storage(format!("remote read failed: {e}"))
                        })?
                        .map_or(Records::None, Records::Memory),
                    None => Records::None,
                };
                Ok(Fetched {
                    records,
                    high_watermark: hw,
                    last_stable_offset: hw,
                    log_start_offset: log_start,
                })
            }
            (
                Err(ReadError::OffsetOutOfRange {
                    offset,
                    log_start,
                    log_end,
                }),
                _,
            ) => Err(FetchError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            }),
            (Err(ReadError::Io(e)), _) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "fetch read failed");
                Err(FetchError::Storage(e.to_string()))
            }
        }
    }

    /// Reads whole local batches at `offset` into memory (at most `max_bytes`, at least one
    /// batch), with the base offset of the segment they are in. For the indexer, which reads
    /// what is still local.
    pub fn read_bytes(
        &self,
        offset: i64,
        max_bytes: u32,
    ) -> Result<Option<(i64, Vec<u8>)>, ReadError> {
        let (info, base) = {
            let log = self.log();
            let info = log.read(offset, max_bytes, true)?;
            (info, log.segment_base_for(offset))
        };
        let Some(region) = info.region else {
            return Ok(None);
        };
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; region.len as usize];
        region.file.read_exact_at(&mut buf, region.position)?;
        Ok(Some((base.unwrap_or(offset), buf)))
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// The end of what read_committed consumers may see: the high watermark, as long as no
    /// transaction is open.
    pub fn last_stable_offset(&self) -> i64 {
        self.high_watermark()
    }

    /// The log end offset (LEO): where the next record goes.
    pub fn log_end_offset(&self) -> i64 {
        self.log().log_end_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log().log_start_offset()
    }

    pub fn offsets(&self) -> (i64, i64) {
        let log = self.log();
        (log.log_start_offset(), log.log_end_offset())
    }

    pub fn leader_epoch(&self) -> i32 {
        self.log().leader_epoch()
    }

    /// Where `epoch` ends, from the epoch cache (`OffsetForLeaderEpoch`): `(-1, -1)` for an
    /// epoch this partition never had after one it had.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let leo = self.log_end_offset();
        self.epochs().end_offset_for(epoch, leo)
    }

    /// The first record at or after `timestamp`, with its timestamp, in either tier.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, FetchError> {
        let (start, local_start) = {
            let log = self.log();
            (log.log_start_offset(), log.local_log_start_offset())
        };
        // Timestamps that may fall into the remote tier are looked up there first.
        if local_start > start
            && let Some(remote) = self.tier.get()
        {
            match remote
                .offset_for_timestamp(
                    &self.topic,
                    self.topic_id,
                    self.index,
                    timestamp,
                    local_start,
                )
                .await
            {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "remote timestamp lookup failed");
                    return Err(FetchError::Storage(e.to_string()));
                }
            }
        }
        self.log()
            .offset_for_timestamp(timestamp)
            .map_err(|e| FetchError::Storage(e.to_string()))
    }

    /// The highest offset in the remote tier, or -1 when nothing is there.
    pub fn last_tiered_offset(&self) -> i64 {
        self.tier
            .get()
            .and_then(|r| r.range(self.topic_id, self.index))
            .map_or(-1, |(_, next)| next - 1)
    }

    pub fn max_timestamp_offset(&self) -> std::io::Result<(i64, i64)> {
        self.log().max_timestamp_offset()
    }

    pub fn delete_records_before(&self, offset: i64) -> std::io::Result<i64> {
        let low = self.log().delete_records_before(offset)?;
        self.epochs().truncate_from_start(low)?;
        Ok(low)
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log().set_config(config);
    }

    pub fn log_config(&self) -> LogConfig {
        self.log().config().clone()
    }

    /// Sealed segments wholly below the high watermark (only committed records leave for the
    /// remote tier).
    pub fn sealed_segments(&self) -> Vec<crate::log::SealedSegment> {
        let hw = self.high_watermark();
        let mut segs = self.log().sealed_segments();
        segs.retain(|s| s.next_offset <= hw);
        segs
    }

    pub fn delete_local_segment(&self, base_offset: i64) -> std::io::Result<bool> {
        self.log().delete_local_segment(base_offset)
    }

    pub fn advance_log_start(&self, offset: i64) -> std::io::Result<()> {
        let start = {
            let mut log = self.log();
            log.advance_log_start(offset)?;
            log.log_start_offset()
        };
        self.epochs().truncate_from_start(start)
    }

    pub fn local_log_start_offset(&self) -> i64 {
        self.log().local_log_start_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log().size_bytes()
    }

    pub fn enforce_retention(&self, now_ms: i64) {
        let start = {
            let mut log = self.log();
            if let Err(e) = log.enforce_retention(now_ms) {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "retention failed");
            }
            log.log_start_offset()
        };
        if let Err(e) = self.epochs().truncate_from_start(start) {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "epoch checkpoint write failed");
        }
    }

    pub fn flush_if_due(&self, now_ms: i64) {
        let mut log = self.log();
        if log.flush_due(now_ms)
            && let Err(e) = log.flush()
        {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "flush failed");
        }
    }

    pub fn close(&self) {
        if self.is_deleted() {
            return;
        }
        if let Err(e) = self.log().close() {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "clean close failed");
        }
    }

    /// Marks the partition deleted (no append succeeds afterwards) and removes its files.
    pub fn delete(&self) -> std::io::Result<()> {
        let log = self.log();
        self.deleted.store(true, Ordering::Release);
        let dir = log.dir().to_path_buf();
        let doomed = dir.with_file_name(format!(
            "{}.{}-delete",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::rename(&dir, &doomed)?;
        drop(log);
        std::fs::remove_dir_all(doomed)
    }
}
