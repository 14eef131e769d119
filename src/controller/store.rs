//! openraft's storage traits over the metadata log's files.
//!
//! [`LogStore`] keeps Raft entries (each encoded with postcard: its log id and payload) in a
//! [`RaftLog`]; the vote and the last purged log id live beside it. [`StateMachine`] applies
//! committed entries to a [`MetadataState`] and keeps its latest snapshot in `raft-snapshot`
//! (the snapshot's metadata, then the state in the single-node snapshot encoding), from which it
//! starts again after a restart; openraft then re-applies the committed entries after it.
//!
//! Disk work (appends with their fsync, cuts, purges, votes, snapshots) runs on the blocking
//! pool, never on a runtime worker.

use std::fmt::Debug;
use std::io::{self, Cursor};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use super::{Applied, ControllerTypes};
use crate::metadata::MetadataState;
use crate::metadata::raft_log::RaftLog;

type C = ControllerTypes;
type NodeId = u64;

const SNAPSHOT_FILE: &str = "raft-snapshot";

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, io::Error> {
    postcard::to_stdvec(v).map_err(io::Error::other)
}

fn decode<'a, T: Deserialize<'a>>(raw: &'a [u8]) -> Result<T, io::Error> {
    postcard::from_bytes(raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Runs disk work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// The Raft log of one controller, on disk. Clones share the log (a clone is its reader).
#[derive(Clone)]
pub struct LogStore {
    log: Arc<Mutex<RaftLog>>,
}

impl LogStore {
    pub fn open(dir: &Path) -> io::Result<Self> {
        let (log, report) = RaftLog::open(dir)?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                entries = report.entries,
                truncated_bytes = report.truncated_bytes,
                "cut a torn tail off the raft log"
            );
        }
        Ok(Self {
            log: Arc::new(Mutex::new(log)),
        })
    }

    fn lock(log: &Mutex<RaftLog>) -> std::sync::MutexGuard<'_, RaftLog> {
        log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry<C>>, io::Error> {
        let log = Self::lock(&self.log);
        log.range(start..end)
            .map(|(_, raw)| decode::<Entry<C>>(raw))
            .collect()
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<NodeId>> {
        let (start, end) = bounds(&range);
        self.entries(start, end)
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<NodeId>> {
        let log = Self::lock(&self.log);
        let read = |e: io::Error| StorageError::from(StorageIOError::read_logs(&e));
        let last_purged_log_id = match log.purged() {
            Some((_, id)) => Some(decode::<LogId<NodeId>>(id).map_err(read)?),
            None => None,
        };
        let last_log_id = match log.last() {
            Some((_, raw)) => Some(decode::<Entry<C>>(raw).map_err(read)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let raw = encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let log = self.log.clone();
        blocking(move || Self::lock(&log).save_vote(&raw))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let raw = Self::lock(&self.log)
            .read_vote()
            .map_err(|e| StorageIOError::read_vote(&e))?;
        match raw {
            Some(raw) => Ok(Some(
                decode(&raw).map_err(|e| StorageIOError::read_vote(&e))?,
            )),
            None => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let batch = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode(&e)?)))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let log = self.log.clone();
        let result = blocking(move || Self::lock(&log).append(&batch)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let log = self.log.clone();
        blocking(move || Self::lock(&log).truncate_from(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let id = encode(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        let log = self.log.clone();
        blocking(move || Self::lock(&log).purge_upto(log_id.index, &id))
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

/// A snapshot as kept on disk and handed to followers.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The state, in the single-node snapshot encoding.
    state: Vec<u8>,
}

impl StoredSnapshot {
    /// `u32 length of the metadata | metadata (postcard) | state`.
    fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let meta = encode(&self.meta)?;
        let mut out = Vec::with_capacity(4 + meta.len() + self.state.len());
        out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&self.state);
        Ok(out)
    }

    fn from_bytes(raw: &[u8]) -> io::Result<Self> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "damaged controller snapshot");
        if raw.len() < 4 {
            return Err(bad());
        }
        let len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        let meta_raw = raw.get(4..4 + len).ok_or_else(bad)?;
        Ok(Self {
            meta: decode(meta_raw)?,
            state: raw[4 + len..].to_vec(),
        })
    }
}

struct Machine {
    state: MetadataState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

/// The controller's state machine: the metadata state the broker serves from.
#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    machine: Arc<Mutex<Machine>>,
}

fn decode_state(raw: &[u8]) -> io::Result<MetadataState> {
    MetadataState::decode_snapshot(raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "undecodable metadata state"))
}

/// The snapshot file: a `StoredSnapshot` with a crc32c trailer, replaced atomically.
fn write_snapshot_file(dir: &Path, snap: &StoredSnapshot) -> io::Result<()> {
    let mut raw = snap.to_bytes()?;
    let crc = crc32c::crc32c(&raw);
    raw.extend_from_slice(&crc.to_be_bytes());
    crate::util::write_atomically(&dir.join(SNAPSHOT_FILE), &raw)
}

fn read_snapshot_file(dir: &Path) -> io::Result<Option<StoredSnapshot>> {
    let raw = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if raw.len() < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "damaged controller snapshot",
        ));
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "controller snapshot fails its checksum",
        ));
    }
    StoredSnapshot::from_bytes(body).map(Some)
}

impl StateMachine {
    /// Starts from the snapshot in `dir`, if any.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut machine = Machine {
            state: MetadataState::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
            snapshots_built: 0,
        };
        if let Some(snap) = read_snapshot_file(dir)? {
            machine.state = decode_state(&snap.state)?;
            machine.last_applied = snap.meta.last_log_id;
            machine.membership = snap.meta.last_membership.clone();
            machine.snapshot = Some(snap);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            machine: Arc::new(Mutex::new(machine)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the applied metadata state.
    pub fn read<T>(&self, f: impl FnOnce(&MetadataState) -> T) -> T {
        f(&self.lock().state)
    }
}

impl RaftSnapshotBuilder<C> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<NodeId>> {
        let snap = {
            let mut m = self.lock();
            let state = encode(&m.state).map_err(|e| StorageIOError::read_state_machine(&e))?;
            m.snapshots_built += 1;
            let snapshot_id = match m.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, m.snapshots_built),
                None => format!("none-{}", m.snapshots_built),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: m.last_applied,
                    last_membership: m.membership.clone(),
                    snapshot_id,
                },
                state,
            }
        };
        let dir = self.dir.clone();
        let to_write = snap.clone();
        blocking(move || write_snapshot_file(&dir, &to_write))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(snap.meta.signature()), &e))?;
        self.lock().snapshot = Some(snap.clone());
        Ok(Snapshot {
            meta: snap.meta,
            snapshot: Box::new(Cursor::new(snap.state)),
        })
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let m = self.lock();
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut m = self.lock();
        let mut out = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(proposal) => {
                    for record in &proposal.records {
                        m.state.apply(index, record);
                    }
                }
                EntryPayload::Membership(membership) => {
                    m.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            m.last_applied = Some(entry.log_id);
            out.push(Applied { index });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let snap = StoredSnapshot {
            meta: meta.clone(),
            state: snapshot.into_inner(),
        };
        let state = decode_state(&snap.state)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let dir = self.dir.clone();
        let to_write = snap.clone();
        blocking(move || write_snapshot_file(&dir, &to_write))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut m = self.lock();
        m.state = state;
        m.last_applied = meta.last_log_id;
        m.membership = meta.last_membership.clone();
        m.snapshot = Some(snap);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<C>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.state)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    /// Each test of openraft's suite gets a fresh directory, removed when the guard drops.
    struct Builder;

    impl StoreBuilder<C, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().map_err(|e| StorageIOError::write_logs(&e))?;
            let log = LogStore::open(dir.path()).map_err(|e| StorageIOError::write_logs(&e))?;
            let sm = StateMachine::open(dir.path()).map_err(|e| StorageIOError::write_logs(&e))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own storage test suite: log state, reads, vote, truncation, purge, applying,
    /// membership and snapshot transfer, as openraft relies on them.
    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(Builder).expect("openraft storage suite");
    }

    #[tokio::test]
    async fn the_log_the_vote_and_the_snapshot_survive_a_restart() {
        use openraft::CommittedLeaderId;
        let dir = tempfile::tempdir().expect("tempdir");
        let id = |index| LogId::new(CommittedLeaderId::new(3, 1), index);
        let records = |i: i64| crate::controller::Proposal {
            records: vec![crate::metadata::MetadataRecord::ProducerIdsReserved { end: i * 1000 }],
        };
        {
            let mut log = LogStore::open(dir.path()).expect("open");
            let mut sm = StateMachine::open(dir.path()).expect("open");
            let entries: Vec<Entry<C>> = (1..=4)
                .map(|i| Entry {
                    log_id: id(i),
                    payload: EntryPayload::Normal(records(i as i64)),
                })
                .collect();
            log.save_vote(&Vote::new(3, 1)).await.expect("vote");
            openraft::storage::RaftLogStorageExt::blocking_append(&mut log, entries.clone())
                .await
                .expect("append");
            sm.apply(entries[..3].to_vec()).await.expect("apply");
            sm.build_snapshot().await.expect("snapshot");
            log.purge(id(2)).await.expect("purge");
        }
        let mut log = LogStore::open(dir.path()).expect("reopen");
        let mut sm = StateMachine::open(dir.path()).expect("reopen");
        assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(id(2)));
        assert_eq!(state.last_log_id, Some(id(4)));
        let kept = log.try_get_log_entries(0..10).await.expect("entries");
        assert_eq!(
            kept.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [3, 4]
        );
        let (applied, _) = sm.applied_state().await.expect("applied");
        assert_eq!(applied, Some(id(3)));
        assert_eq!(sm.read(|s| s.producer_id_end), 3000);
    }
}
