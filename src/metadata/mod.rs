//! Cluster metadata: an append-only, CRC-framed log of typed records (topics, configs, producer-id
//! reservations, committed group offsets) with snapshots, and the state replaying it rebuilds.
//!
//! Every change is durable before it is acknowledged: `MetadataStore::append` returns only after
//! the records are fsynced and applied. Appends from many tasks are written by one thread that
//! takes whatever is queued and fsyncs it once (group commit), so a burst of offset commits costs
//! one fsync, not one each. After an fsync failure the store refuses all further appends rather
//! than let memory and disk disagree. The interface — append records, read the state, snapshot —
//! assumes nothing about running on one node, so the log can become a replicated one.

pub mod placement;
pub mod raft_log;
pub mod record;
pub mod remote_segments;
pub mod state;
pub mod wal;

use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;

pub use record::{ListenerEndpoint, MetadataRecord, PartitionPlacement, StoredScramCredential};
pub use remote_segments::RemoteSegmentStore;
pub use state::{BrokerState, CommittedOffset, MetadataState, TopicState};
pub use wal::ReplayReport;

struct AppendRequest {
    records: Vec<MetadataRecord>,
    done: tokio::sync::oneshot::Sender<io::Result<u64>>,
}

/// A metadata log kept by a quorum (the controller): records proposed there, the state applied
/// from what it committed. Defined here, implemented above (`controller`).
pub trait ReplicatedLog: Send + Sync {
    /// Makes `records` durable on a quorum and applied on this node; the index they took effect
    /// at.
    fn propose(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, io::Result<u64>>;

    /// Runs `f` on the state this node applied.
    fn with_state(&self, f: &mut dyn FnMut(&MetadataState));
}

pub struct MetadataStore {
    state: Arc<RwLock<MetadataState>>,
    tx: std::sync::Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// When set, the log is the quorum's and `state`, `tx` and `writer` are unused.
    quorum: Option<Arc<dyn ReplicatedLog>>,
}

impl MetadataStore {
    /// Opens (or creates) the log in `dir` and replays it. A snapshot is taken after
    /// `snapshot_every` records.
    pub fn open(dir: &Path, snapshot_every: u64) -> io::Result<(Self, ReplayReport)> {
        let (mut wal, state, report) = wal::Wal::open(dir)?;
        let state = Arc::new(RwLock::new(state));
        let (tx, rx) = mpsc::channel::<AppendRequest>();
        let shared = state.clone();
        let writer = std::thread::Builder::new()
            .name("metadata-wal".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let records: Vec<MetadataRecord> =
                        batch.iter().flat_map(|r| r.records.iter().cloned()).collect();
                    let result = wal.write(&records);
                    match result {
                        Ok(first_index) => {
                            let mut st = shared.write().unwrap_or_else(|e| e.into_inner());
                            let mut index = first_index;
                            for req in batch {
                                for r in &req.records {
                                    st.apply(index, r);
                                    index += 1;
                                }
                                let _ = req.done.send(Ok(index - 1));
                            }
                            if wal.records_since_snapshot() >= snapshot_every
                                && let Err(e) = wal.snapshot(&st)
                            {
                                tracing::error!(error = %e, "metadata snapshot failed");
                            }
                        }
                        Err(e) => {
                            if wal.is_failed() {
                                tracing::error!(error = %e, "metadata log write failed; refusing writes until restart");
                            } else {
                                tracing::warn!(error = %e, "metadata log write failed and was cut off; later writes are retried");
                            }
                            for req in batch {
                                let _ = req.done.send(Err(io::Error::new(e.kind(), e.to_string())));
                            }
                        }
                    }
                }
            })?;
        Ok((
            Self {
                state,
                tx: std::sync::Mutex::new(Some(tx)),
                writer: std::sync::Mutex::new(Some(writer)),
                quorum: None,
            },
            report,
        ))
    }

    /// The metadata of a cluster: appends go to the controller quorum, reads see what this node
    /// applied.
    pub fn replicated(log: Arc<dyn ReplicatedLog>) -> Self {
        Self {
            state: Arc::new(RwLock::new(MetadataState::default())),
            tx: std::sync::Mutex::new(None),
            writer: std::sync::Mutex::new(None),
            quorum: Some(log),
        }
    }

    /// Makes `records` durable and applies them; returns the index of the last one.
    pub async fn append(&self, records: Vec<MetadataRecord>) -> io::Result<u64> {
        if records.is_empty() {
            return Ok(self.read(|s| s.last_index));
        }
        if let Some(q) = &self.quorum {
            return q.propose(records).await;
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        {
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            let Some(tx) = tx.as_ref() else {
                return Err(io::Error::other("metadata store is closed"));
            };
            tx.send(AppendRequest { records, done })
                .map_err(|_| io::Error::other("metadata writer stopped"))?;
        }
        wait.await
            .map_err(|_| io::Error::other("metadata writer stopped"))?
    }

    /// Runs `f` on the current state.
    pub fn read<R>(&self, f: impl FnOnce(&MetadataState) -> R) -> R {
        if let Some(q) = &self.quorum {
            let mut f = Some(f);
            let mut out = None;
            q.with_state(&mut |s| {
                if let Some(f) = f.take() {
                    out = Some(f(s));
                }
            });
            return out.expect("the quorum's state was read");
        }
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops the writer after it has written everything already queued.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
    }
}

impl Drop for MetadataStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_all_durable_and_ordered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = MetadataStore::open(dir.path(), 50).expect("open");
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    s.append(vec![MetadataRecord::OffsetCommitted {
                        group: format!("g{t}"),
                        topic: "t".into(),
                        partition: 0,
                        offset: i,
                        leader_epoch: 0,
                        metadata: None,
                        commit_ms: 0,
                    }])
                    .await
                    .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
        let before = store.read(|s| s.clone());
        assert_eq!(before.last_index, 320);
        for t in 0..8 {
            assert_eq!(
                before.offsets[&format!("g{t}")][&("t".to_string(), 0)].offset,
                39
            );
        }
        store.close();
        drop(store);
        let (store, report) = MetadataStore::open(dir.path(), 50).expect("reopen");
        assert!(report.snapshot_index > 0, "snapshots were taken");
        assert_eq!(store.read(|s| s.clone()), before);
    }
}
