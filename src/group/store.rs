//! Where the group coordinator keeps what it must not forget: committed offsets, the protocol
//! type of groups that joined once, deletions. Written as metadata records, in one of two places:
//!
//! - a single node keeps them in its metadata log ([`MetadataStore`]);
//! - a cluster keeps them in the partitions of the internal topic `__consumer_offsets`
//!   ([`OffsetsTopic`]): group `g` in partition `abs(hash(g)) % partitions`, whose leader is the
//!   group's coordinator. A commit is acknowledged once every in-sync replica of that partition
//!   has it; a broker that becomes leader of an offsets partition reads it whole into memory
//!   before it coordinates its groups (`COORDINATOR_LOAD_IN_PROGRESS` until then).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;

use crate::metadata::placement::{OFFSETS_TOPIC, offsets_partition};
use crate::metadata::{MetadataRecord, MetadataState, MetadataStore};
use crate::replica::{
    CommitWait, FetchError, Partition, Reader, Records, ReplicaManager, internal_log, split_batches,
};

/// How long a commit waits for the in-sync replicas of its offsets partition.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The coordinator's durable state, wherever it lives.
pub trait GroupStore: Send + Sync {
    /// Makes `records` (all about `group`) durable, then visible to [`GroupStore::read`].
    fn append<'a>(
        &'a self,
        group: &'a str,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'a, io::Result<()>>;

    /// Runs `f` over the state that holds `group`, or with `None` over every state this broker
    /// holds (each group is in exactly one of them).
    fn read(&self, group: Option<&str>, f: &mut dyn FnMut(&MetadataState));

    /// Whether this broker can answer for `group` now: `Err` with `NOT_COORDINATOR` or
    /// `COORDINATOR_LOAD_IN_PROGRESS` (a load is started then) otherwise.
    fn ready(&self, group: &str) -> Result<(), i16>;

    /// Drops what this broker no longer coordinates (called after leadership changes).
    fn forget_unled(&self) {}
}

impl GroupStore for MetadataStore {
    fn append<'a>(
        &'a self,
        _group: &'a str,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { MetadataStore::append(self, records).await.map(|_| ()) })
    }

    fn read(&self, _group: Option<&str>, f: &mut dyn FnMut(&MetadataState)) {
        MetadataStore::read(self, |s| f(s));
    }

    fn ready(&self, _group: &str) -> Result<(), i16> {
        Ok(())
    }
}

/// One offsets partition this broker leads, read into memory.
struct Loaded {
    leader_epoch: i32,
    state: RwLock<MetadataState>,
    /// Appends of one partition apply in log order.
    append_lock: tokio::sync::Mutex<()>,
}

/// Group state in the partitions of `__consumer_offsets` (a cluster).
pub struct OffsetsTopic {
    replicas: Arc<ReplicaManager>,
    /// Where clusters from before this store kept committed offsets: moved over on load.
    metadata: Arc<MetadataStore>,
    loaded: Mutex<HashMap<i32, Arc<Loaded>>>,
    loading: Arc<Mutex<HashSet<i32>>>,
    /// Loads finished elsewhere land here (a loader task holds only this).
    done: Arc<Mutex<HashMap<i32, Arc<Loaded>>>>,
}

impl OffsetsTopic {
    pub fn new(replicas: Arc<ReplicaManager>, metadata: Arc<MetadataStore>) -> Self {
        Self {
            replicas,
            metadata,
            loaded: Mutex::new(HashMap::new()),
            loading: Arc::new(Mutex::new(HashSet::new())),
            done: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The offsets partition of `group` and its local replica, if the topic exists here.
    fn partition_of(&self, group: &str) -> Option<(i32, Arc<Partition>)> {
        let topic = self.replicas.topic(OFFSETS_TOPIC)?;
        let index = offsets_partition(group, topic.partition_count());
        Some((index, topic.partition(index)?))
    }

    fn loaded_map(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Arc<Loaded>>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        loaded.extend(done.drain());
        loaded
    }

    /// The loaded state of `group`'s partition, if this broker leads it in the epoch it was
    /// loaded in.
    fn current(&self, group: &str) -> Result<(Arc<Partition>, Arc<Loaded>), i16> {
        let (index, partition) = self
            .partition_of(group)
            .ok_or(ResponseError::NotCoordinator.code())?;
        if !partition.is_leader() {
            return Err(ResponseError::NotCoordinator.code());
        }
        let epoch = partition.leader_epoch();
        match self.loaded_map().get(&index) {
            Some(l) if l.leader_epoch == epoch => Ok((partition, l.clone())),
            _ => {
                self.start_load(index, partition);
                Err(ResponseError::CoordinatorLoadInProgress.code())
            }
        }
    }

    fn start_load(&self, index: i32, partition: Arc<Partition>) {
        if !self
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.loading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&index);
            return;
        };
        let loading = self.loading.clone();
        let done = self.done.clone();
        let metadata = self.metadata.clone();
        runtime.spawn(async move {
            let started = std::time::Instant::now();
            let epoch = partition.leader_epoch();
            let loaded = match read_partition(&partition).await {
                Ok((state, records)) => migrate(&partition, &metadata, state)
                    .await
                    .map(|(state, moved)| (state, records + moved)),
                Err(e) => Err(e),
            };
            match loaded {
                Ok((state, records)) => {
                    tracing::info!(partition = index, epoch, records, elapsed_ms = started.elapsed().as_millis() as u64, "loaded group state from {OFFSETS_TOPIC}");
                    done.lock().unwrap_or_else(|e| e.into_inner()).insert(
                        index,
                        Arc::new(Loaded {
                            leader_epoch: epoch,
                            state: RwLock::new(state),
                            append_lock: tokio::sync::Mutex::new(()),
                        }),
                    );
                }
                Err(e) => {
                    tracing::error!(partition = index, error = %e, "cannot load group state from {OFFSETS_TOPIC}; will retry")
                }
            }
            loading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&index);
        });
    }
}

impl GroupStore for OffsetsTopic {
    fn append<'a>(
        &'a self,
        group: &'a str,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let (partition, loaded) = self.current(group).map_err(|c| {
                io::Error::other(format!(
                    "this broker does not coordinate group {group} now (error {c})"
                ))
            })?;
            let _order = loaded.append_lock.lock().await;
            let now = crate::util::now_ms();
            let batch = encode(group, &records, now)?;
            let batches = split_batches(&batch).map_err(|e| io::Error::other(e.to_string()))?;
            let info = partition
                .append(&batches, now)
                .map_err(|e| io::Error::other(e.to_string()))?;
            let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
            match partition
                .wait_committed(info.last_offset + 1, 1, deadline)
                .await
            {
                CommitWait::Committed => {}
                other => {
                    return Err(io::Error::other(format!(
                        "{OFFSETS_TOPIC}-{} did not commit the records: {other:?}",
                        partition.index
                    )));
                }
            }
            let mut state = loaded.state.write().unwrap_or_else(|e| e.into_inner());
            for (i, r) in records.iter().enumerate() {
                state.apply((info.base_offset + i as i64) as u64, r);
            }
            Ok(())
        })
    }

    fn read(&self, group: Option<&str>, f: &mut dyn FnMut(&MetadataState)) {
        match group {
            Some(g) => {
                if let Ok((_, l)) = self.current(g) {
                    f(&l.state.read().unwrap_or_else(|e| e.into_inner()));
                }
            }
            None => {
                let all: Vec<Arc<Loaded>> = self.loaded_map().values().cloned().collect();
                for l in all {
                    f(&l.state.read().unwrap_or_else(|e| e.into_inner()));
                }
            }
        }
    }

    fn ready(&self, group: &str) -> Result<(), i16> {
        self.current(group).map(|_| ())
    }

    fn forget_unled(&self) {
        let Some(topic) = self.replicas.topic(OFFSETS_TOPIC) else {
            self.loaded_map().clear();
            return;
        };
        self.loaded_map().retain(|index, l| {
            topic
                .partition(*index)
                .is_some_and(|p| p.is_leader() && p.leader_epoch() == l.leader_epoch)
        });
    }
}

/// Moves what the metadata log still holds of this partition's groups (a cluster from before
/// committed offsets lived in `__consumer_offsets`) into the partition, then drops it from the
/// metadata log. Groups the partition already knows are only dropped there (a move that was
/// interrupted after the partition had them).
async fn migrate(
    partition: &Partition,
    metadata: &MetadataStore,
    mut state: MetadataState,
) -> io::Result<(MetadataState, u64)> {
    let count = match metadata.read(|s| s.topics.get(OFFSETS_TOPIC).map(|t| t.partitions)) {
        Some(c) => c,
        None => return Ok((state, 0)),
    };
    let mine = |g: &String| offsets_partition(g, count) == partition.index;
    let (groups, records) = metadata.read(|s| {
        let mut groups: Vec<String> = s
            .offsets
            .keys()
            .chain(s.group_protocol_types.keys())
            .filter(|g| mine(g))
            .cloned()
            .collect();
        groups.sort();
        groups.dedup();
        let mut records: Vec<(String, Vec<MetadataRecord>)> = Vec::new();
        for g in &groups {
            if state.offsets.contains_key(g) || state.group_protocol_types.contains_key(g) {
                continue;
            }
            let mut of_group = Vec::new();
            if let Some(t) = s.group_protocol_types.get(g) {
                of_group.push(MetadataRecord::GroupProtocolTypeSet {
                    group: g.clone(),
                    protocol_type: t.clone(),
                });
            }
            for ((topic, p), o) in s.offsets.get(g).into_iter().flatten() {
                of_group.push(MetadataRecord::OffsetCommitted {
                    group: g.clone(),
                    topic: topic.clone(),
                    partition: *p,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_ms: o.commit_ms,
                });
            }
            records.push((g.clone(), of_group));
        }
        (groups, records)
    });
    if groups.is_empty() {
        return Ok((state, 0));
    }
    let mut moved = 0u64;
    for (group, of_group) in records {
        let now = crate::util::now_ms();
        let batch = encode(&group, &of_group, now)?;
        let batches = split_batches(&batch).map_err(|e| io::Error::other(e.to_string()))?;
        let info = partition
            .append(&batches, now)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        if partition
            .wait_committed(info.last_offset + 1, 1, deadline)
            .await
            != CommitWait::Committed
        {
            return Err(io::Error::other(format!(
                "moving group {group} into {OFFSETS_TOPIC}-{}: not committed in time",
                partition.index
            )));
        }
        for (i, r) in of_group.iter().enumerate() {
            state.apply((info.base_offset + i as i64) as u64, r);
        }
        moved += of_group.len() as u64;
    }
    let deletions = groups
        .iter()
        .map(|g| MetadataRecord::GroupDeleted { group: g.clone() })
        .collect();
    metadata.append(deletions).await?;
    tracing::info!(
        partition = partition.index,
        groups = groups.len(),
        records = moved,
        "moved committed offsets from the metadata log into {OFFSETS_TOPIC}"
    );
    Ok((state, moved))
}

/// One batch holding `records`, each keyed by the group.
fn encode(group: &str, records: &[MetadataRecord], now_ms: i64) -> io::Result<Bytes> {
    internal_log::encode(group.as_bytes(), records, now_ms)
}

/// Reads an offsets partition from its start to its end and replays its records; returns the
/// state and how many records it held.
async fn read_partition(p: &Partition) -> io::Result<(MetadataState, u64)> {
    let mut state = MetadataState::default();
    let mut count = 0u64;
    let mut offset = p.log_start_offset();
    let end = p.log_end_offset();
    while offset < end {
        let fetched = match p.fetch_for(Reader::Follower, offset, 4 << 20, true).await {
            Ok(f) => f,
            Err(FetchError::OffsetOutOfRange { log_start, .. }) if log_start > offset => {
                offset = log_start;
                continue;
            }
            Err(e) => return Err(io::Error::other(e.to_string())),
        };
        let bytes = match fetched.records {
            Records::None => break,
            Records::Memory(parts) => Bytes::from(parts.concat()),
            Records::File(r) => {
                let mut buf = vec![0u8; r.len as usize];
                r.file.read_exact_at(&mut buf, r.position)?;
                Bytes::from(buf)
            }
        };
        let next = internal_log::decode(OFFSETS_TOPIC, &bytes, offset, |at, rec| {
            state.apply(at as u64, &rec);
            count += 1;
        })?;
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok((state, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;
    use crate::replica::TierSlot;

    fn committed(group: &str, offset: i64) -> MetadataRecord {
        MetadataRecord::OffsetCommitted {
            group: group.into(),
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: 2,
            metadata: Some("m".into()),
            commit_ms: 1234,
        }
    }

    #[tokio::test]
    async fn offsets_of_the_metadata_log_move_into_their_partition_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (metadata, _) = MetadataStore::open(&dir.path().join("meta"), 1000).expect("open");
        // Two partitions: "a" and "b" land in different ones, whichever they are.
        let (a, b) = ("a", "group-b");
        assert_ne!(offsets_partition(a, 2), offsets_partition(b, 2));
        metadata
            .append(vec![
                MetadataRecord::TopicCreated {
                    name: OFFSETS_TOPIC.into(),
                    id: uuid::Uuid::new_v4(),
                    partitions: 2,
                    configs: Default::default(),
                },
                committed(a, 10),
                committed(b, 20),
                MetadataRecord::GroupProtocolTypeSet {
                    group: a.into(),
                    protocol_type: "consumer".into(),
                },
            ])
            .await
            .expect("append");
        let index = offsets_partition(a, 2);
        let partition = Partition::open(
            &dir.path().join("data"),
            OFFSETS_TOPIC,
            uuid::Uuid::new_v4(),
            index,
            LogConfig::default(),
            None,
            Arc::new(TierSlot::default()),
        )
        .expect("partition");
        let (state, moved) = migrate(&partition, &metadata, MetadataState::default())
            .await
            .expect("migrate");
        assert_eq!(moved, 2, "the offset and the protocol type of group a");
        assert_eq!(state.offsets[a][&("t".to_string(), 0)].offset, 10);
        assert_eq!(state.group_protocol_types[a], "consumer");
        // What the partition holds reads back the same; the metadata log kept only group b.
        let (read, records) = read_partition(&partition).await.expect("read");
        assert_eq!(records, 2);
        assert_eq!(read.offsets, state.offsets);
        assert_eq!(read.offsets[a][&("t".to_string(), 0)].commit_ms, 1234);
        metadata.read(|s| {
            assert!(!s.offsets.contains_key(a) && !s.group_protocol_types.contains_key(a));
            assert!(
                s.offsets.contains_key(b),
                "another partition's group stays for its load"
            );
        });
        // A second load moves nothing again.
        let (_, moved) = migrate(&partition, &metadata, read).await.expect("again");
        assert_eq!(moved, 0);
        assert_eq!(partition.log_end_offset(), 2);
    }
}
