//! A cluster keeps the states of its remote segments in the internal topic
//! `__remote_log_metadata` (as Kafka's topic-based remote log metadata manager does), not in the
//! controller quorum's log: the quorum carries the cluster's shape, the topic carries what grows
//! with the data.
//!
//! - **Where**: the states of user partition `(topic id, p)` go to partition
//!   `hash("<topic id>:<p>") % partitions` of the topic, so they stay in order. The topic is made
//!   on first use with as many replicas as there are live brokers, up to 3, and keeps its records
//!   forever (`retention.ms=-1`).
//! - **Writing**: the partition's leader (the only broker that uploads or deletes its segments)
//!   produces the states with `acks=all` to the leader of their metadata partition, wherever it
//!   is, with the broker's own Kafka client, retrying through leader changes, then waits until
//!   its own view has them (a retried produce may land twice: applying a state twice changes
//!   nothing).
//! - **Reading**: every broker reads every metadata partition from its leader with ordinary
//!   consumer fetches (up to the high watermark: only what every in-sync replica has) into one
//!   view. All brokers apply the same records in the same order, so their views agree up to how
//!   far each has read. A broker decides about a partition's segments (uploads, clean-ups) only
//!   once it has read its metadata partition to the end.
//! - **Moving in**: states a cluster still holds in its metadata log (it ran before this topic,
//!   or a single node's log was moved into it) are copied over by the leader of their metadata
//!   partition and then dropped from the metadata log; reads see both places until then.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use chronik_tiering::{RemoteLogSegmentMetadata, RemoteSegmentState};
use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::config::topic::TopicConfigs;
use crate::metadata::placement::{REMOTE_LOG_METADATA_TOPIC, remote_metadata_partition};
use crate::metadata::{MetadataRecord, MetadataState, MetadataStore, RemoteSegmentStore};
use crate::replica::{ReplicaManager, TopicError, client, internal_log};

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
/// How long a reader's fetch may wait at the leader for new states.
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 8 << 20;
/// How long an append may take, produce retries and waiting for the own view included.
const APPEND_TIMEOUT: Duration = Duration::from_secs(20);
const PRODUCE_TIMEOUT_MS: i32 = 10_000;
const BACKOFF: Duration = Duration::from_millis(100);
/// How often the topic is looked for, readers started and old states moved in.
const TICK: Duration = Duration::from_millis(500);
/// How long a reader waits before it asks again for a batch it could not decode.
const DAMAGED_RETRY: Duration = Duration::from_secs(5);

/// How far this broker has read one metadata partition.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    next: i64,
    /// Read to the leader's high watermark at least once.
    caught_up: bool,
}

pub struct RemoteLogMetadataTopic {
    metadata: Arc<MetadataStore>,
    replicas: Arc<ReplicaManager>,
    partitions: i32,
    /// Live brokers to wait for before the topic is made only to move old states in (the
    /// voters, up to 3): a cluster that is still forming would give it fewer replicas.
    forming_brokers: usize,
    /// Addresses to reach brokers at instead of what they registered.
    overrides: BTreeMap<i32, String>,
    view: RwLock<MetadataState>,
    progress: Mutex<HashMap<i32, Progress>>,
    /// Bumped whenever a reader moves on.
    advanced: tokio::sync::watch::Sender<u64>,
    readers: Mutex<HashMap<i32, tokio::task::JoinHandle<()>>>,
    /// The topic id the readers and the view belong to.
    topic_id: Mutex<Option<Uuid>>,
}

impl RemoteLogMetadataTopic {
    pub fn new(
        metadata: Arc<MetadataStore>,
        replicas: Arc<ReplicaManager>,
        partitions: i32,
        forming_brokers: usize,
        overrides: BTreeMap<i32, String>,
    ) -> Self {
        Self {
            metadata,
            replicas,
            partitions,
            forming_brokers,
            overrides,
            view: RwLock::new(MetadataState::default()),
            progress: Mutex::new(HashMap::new()),
            advanced: tokio::sync::watch::channel(0).0,
            readers: Mutex::new(HashMap::new()),
            topic_id: Mutex::new(None),
        }
    }

    /// Starts the task that starts readers and moves old states in (needs a tokio runtime).
    pub fn start(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime to read {REMOTE_LOG_METADATA_TOPIC} on");
            return;
        };
        let weak = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                let Some(this) = weak.upgrade() else { return };
                this.tick(&weak).await;
                drop(this);
                tokio::time::sleep(TICK).await;
            }
        });
    }

    /// The topic's id and partition count, if it exists.
    fn topic(&self) -> Option<(Uuid, i32)> {
        self.metadata.read(|s| {
            s.topics
                .get(REMOTE_LOG_METADATA_TOPIC)
                .map(|t| (t.id, t.partitions))
        })
    }

    fn progress_of(&self, k: i32) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
            .copied()
            .unwrap_or_default()
    }

    /// The leader of metadata partition `k` and the address of its Kafka listener.
    fn leader_of(&self, k: i32) -> Option<(i32, String)> {
        let leader = self.metadata.read(|s| {
            let t = s.topics.get(REMOTE_LOG_METADATA_TOPIC)?;
            let leader = s.placements.get(&t.id)?.get(&k)?.leader;
            let addr = s
                .brokers
                .get(&leader)
                .map(|b| format!("{}:{}", b.host, b.port))?;
            Some((leader, addr))
        })?;
        if leader.0 < 0 {
            return None;
        }
        Some(match self.overrides.get(&leader.0) {
            Some(a) => (leader.0, a.clone()),
            None => leader,
        })
    }

    async fn tick(&self, weak: &Weak<Self>) {
        let Some((id, count)) = self.topic() else {
            let (old_states, live) = self.metadata.read(|s| {
                (
                    !s.remote_segments.is_empty(),
                    crate::metadata::placement::live_brokers(s).len(),
                )
            });
            if old_states
                && live >= self.forming_brokers
                && let Err(e) = self.ensure_topic().await
            {
                tracing::debug!(error = %e, "cannot make {REMOTE_LOG_METADATA_TOPIC} yet");
            }
            return;
        };
        {
            let mut topic_id = self.topic_id.lock().unwrap_or_else(|e| e.into_inner());
            if *topic_id != Some(id) {
                // A first start, or the topic was made again: read it from its start.
                for (_, r) in self
                    .readers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain()
                {
                    r.abort();
                }
                self.progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                *self.view.write().unwrap_or_else(|e| e.into_inner()) = MetadataState::default();
                *topic_id = Some(id);
            }
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            for k in 0..count {
                if readers.get(&k).is_none_or(|r| r.is_finished()) {
                    readers.insert(k, runtime.spawn(read_partition(weak.clone(), k)));
                }
            }
        }
        for k in 0..count {
            if let Err(e) = self.move_in(k, count).await {
                tracing::warn!(partition = k, error = %e, "cannot move remote segment states into {REMOTE_LOG_METADATA_TOPIC} yet; will retry");
            }
        }
    }

    /// Makes the topic if it does not exist; its partition count.
    async fn ensure_topic(&self) -> io::Result<i32> {
        if let Some((_, count)) = self.topic() {
            return Ok(count);
        }
        let live = self
            .metadata
            .read(|s| crate::metadata::placement::live_brokers(s).len());
        let configs = TopicConfigs::from_pairs([
            ("retention.ms", Some("-1")),
            ("retention.bytes", Some("-1")),
            ("search.enabled", Some("false")),
        ])
        .map_err(|e| io::Error::other(e.to_string()))?;
        match self
            .replicas
            .create_topic(
                REMOTE_LOG_METADATA_TOPIC,
                self.partitions,
                live.clamp(1, 3) as i16,
                configs,
                false,
            )
            .await
        {
            Ok(_) => tracing::info!(
                partitions = self.partitions,
                replicas = live.clamp(1, 3),
                "created the remote segment metadata topic {REMOTE_LOG_METADATA_TOPIC}"
            ),
            Err(TopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
        self.topic()
            .map(|(_, c)| c)
            .ok_or_else(|| io::Error::other(format!("{REMOTE_LOG_METADATA_TOPIC} not made")))
    }

    /// Produces one batch to metadata partition `k`'s leader; the offset it got.
    async fn produce(&self, k: i32, batch: &bytes::Bytes) -> Result<i64, (bool, String)> {
        let (leader, addr) = self
            .leader_of(k)
            .ok_or((true, format!("partition {k} has no leader")))?;
        let mut conn = client::connect(&addr, Duration::from_secs(2))
            .await
            .map_err(|e| (true, format!("broker {leader} at {addr}: {e}")))?;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(
                        REMOTE_LOG_METADATA_TOPIC,
                    )))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(k)
                            .with_records(Some(batch.clone())),
                    ]),
            ]);
        let answer = tokio::time::timeout(
            Duration::from_millis(PRODUCE_TIMEOUT_MS as u64 + 2_000),
            client::exchange(
                &mut conn,
                1,
                PRODUCE_VERSION,
                "chronik-remote-metadata",
                &request,
            ),
        )
        .await
        .map_err(|_| (true, format!("broker {leader} did not answer in time")))?
        .map_err(|e| (true, format!("broker {leader}: {e}")))?;
        let p = answer
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or((true, format!("broker {leader} answered for no partition")))?;
        match ResponseError::try_from_code(p.error_code) {
            None => Ok(p.base_offset),
            Some(e) => Err((e.is_retriable(), format!("broker {leader}: {e:?}"))),
        }
    }

    /// Waits until this broker's view holds offset `last` of metadata partition `k`.
    async fn wait_read(&self, k: i32, last: i64, deadline: tokio::time::Instant) -> io::Result<()> {
        let mut changes = self.advanced.subscribe();
        loop {
            if self.progress_of(k).next > last {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(io::Error::other("remote metadata readers stopped")),
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{REMOTE_LOG_METADATA_TOPIC}-{k}: offset {last} written but not read back in time"
                        ),
                    ));
                }
            }
        }
    }

    /// Applies what a reader fetched; called by the readers only. `false`: a batch could not
    /// be decoded, and the reader stays where it is.
    fn apply_fetched(&self, k: i32, records: &bytes::Bytes, high_watermark: i64) -> bool {
        let from = self.progress_of(k).next;
        let next = {
            let mut view = self.view.write().unwrap_or_else(|e| e.into_inner());
            match internal_log::decode(REMOTE_LOG_METADATA_TOPIC, records, from, |at, rec| {
                view.apply(at as u64, &rec)
            }) {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(partition = k, offset = from, error = %e, "damaged batch in {REMOTE_LOG_METADATA_TOPIC}; reading it again later");
                    return false;
                }
            }
        };
        {
            let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            let p = progress.entry(k).or_default();
            p.next = p.next.max(next);
            if p.next >= high_watermark {
                p.caught_up = true;
            }
        }
        self.advanced.send_modify(|n| *n += 1);
        true
    }

    /// Copies the states the metadata log still holds of user partitions that map to metadata
    /// partition `k` into it (only its leader, once it has read it to the end), then drops them
    /// from the metadata log.
    async fn move_in(&self, k: i32, count: i32) -> io::Result<()> {
        let leads = self
            .replicas
            .topic(REMOTE_LOG_METADATA_TOPIC)
            .and_then(|t| t.partition(k))
            .is_some_and(|p| p.is_leader());
        if !leads || !self.progress_of(k).caught_up {
            return Ok(());
        }
        let old: Vec<(String, RemoteLogSegmentMetadata, Option<_>)> = self.metadata.read(|s| {
            s.remote_segments
                .values()
                .filter(|(_, m)| remote_metadata_partition(m.topic_id, m.partition, count) == k)
                .map(|(t, m)| {
                    (
                        t.clone(),
                        m.clone(),
                        s.remote_splits.get(&m.segment_id).cloned(),
                    )
                })
                .collect()
        });
        if old.is_empty() {
            return Ok(());
        }
        let mut by_partition: BTreeMap<(Uuid, i32), Vec<MetadataRecord>> = BTreeMap::new();
        let mut ids = Vec::with_capacity(old.len());
        let known = |id: &Uuid| {
            self.view
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .remote_segments
                .contains_key(id)
        };
        let mut sorted = old;
        sorted.sort_by_key(|(_, m, _)| (m.topic_id, m.partition, m.base_offset));
        for (topic, m, split) in sorted {
            ids.push(m.segment_id);
            if known(&m.segment_id) {
                continue;
            }
            let records = by_partition.entry((m.topic_id, m.partition)).or_default();
            for state in states_leading_to(m.state) {
                records.push(MetadataRecord::RemoteSegmentUpdated {
                    topic: topic.clone(),
                    segment: RemoteLogSegmentMetadata { state, ..m.clone() },
                });
            }
            if let Some(split) = split {
                records.push(MetadataRecord::RemoteSplitAdded { split });
            }
        }
        let mut moved = 0usize;
        for (_, records) in by_partition {
            moved += records.len();
            RemoteSegmentStore::append(self, records).await?;
        }
        let segments = ids.len();
        self.metadata
            .append(vec![MetadataRecord::RemoteSegmentsMoved { segments: ids }])
            .await?;
        tracing::info!(
            partition = k,
            segments,
            records = moved,
            "moved remote segment states from the metadata log into {REMOTE_LOG_METADATA_TOPIC}"
        );
        Ok(())
    }
}

/// The states a segment went through to reach `state`, in order (`DeleteSegmentFinished`
/// segments are not kept anywhere).
fn states_leading_to(state: RemoteSegmentState) -> Vec<RemoteSegmentState> {
    use RemoteSegmentState::*;
    match state {
        CopySegmentStarted => vec![CopySegmentStarted],
        CopySegmentFinished => vec![CopySegmentStarted, CopySegmentFinished],
        DeleteSegmentStarted => vec![CopySegmentStarted, DeleteSegmentStarted],
        DeleteSegmentFinished => Vec::new(),
    }
}

/// The user partition a remote segment record is about.
fn subject(record: &MetadataRecord) -> Option<(Uuid, i32)> {
    match record {
        MetadataRecord::RemoteSegmentUpdated { segment, .. } => {
            Some((segment.topic_id, segment.partition))
        }
        MetadataRecord::RemoteSplitAdded { split } => Some((split.topic_id, split.partition)),
        _ => None,
    }
}

impl RemoteSegmentStore for RemoteLogMetadataTopic {
    fn append(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            let Some(first) = records.first() else {
                return Ok(());
            };
            let (topic_id, partition) = subject(first).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "only remote segment states go to the remote segment metadata topic",
                )
            })?;
            if records
                .iter()
                .any(|r| subject(r) != Some((topic_id, partition)))
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "one append holds the states of one partition",
                ));
            }
            let count = self.ensure_topic().await?;
            let k = remote_metadata_partition(topic_id, partition, count);
            let key = format!("{topic_id}:{partition}");
            let batch = internal_log::encode(key.as_bytes(), &records, crate::util::now_ms())?;
            let deadline = tokio::time::Instant::now() + APPEND_TIMEOUT;
            let base = loop {
                match self.produce(k, &batch).await {
                    Ok(base) => break base,
                    Err((retriable, e)) => {
                        if !retriable || tokio::time::Instant::now() + BACKOFF > deadline {
                            return Err(io::Error::other(format!(
                                "{REMOTE_LOG_METADATA_TOPIC}-{k}: {e}"
                            )));
                        }
                        tracing::debug!(partition = k, error = %e, "remote segment states not produced yet; retrying");
                        tokio::time::sleep(BACKOFF).await;
                    }
                }
            };
            self.wait_read(k, base + records.len() as i64 - 1, deadline)
                .await
        })
    }

    fn read_each(&self, f: &mut dyn FnMut(&MetadataState)) {
        f(&self.view.read().unwrap_or_else(|e| e.into_inner()));
        self.metadata.read(|s| {
            if !s.remote_segments.is_empty() {
                f(s)
            }
        });
    }

    fn read_own(&self, f: &mut dyn FnMut(&MetadataState)) {
        f(&self.view.read().unwrap_or_else(|e| e.into_inner()));
    }

    fn ready(&self, topic_id: Uuid, partition: i32) -> bool {
        if self
            .metadata
            .read(|s| s.holds_remote_segments_of(topic_id, partition))
        {
            return false;
        }
        match self.topic() {
            None => true,
            Some((_, count)) => {
                self.progress_of(remote_metadata_partition(topic_id, partition, count))
                    .caught_up
            }
        }
    }
}

/// Reads metadata partition `k` from its leader into the view, for as long as the topic store
/// lives.
async fn read_partition(weak: Weak<RemoteLogMetadataTopic>, k: i32) {
    let mut conn: Option<(i32, TcpStream)> = None;
    let mut correlation = 0i32;
    loop {
        let Some(this) = weak.upgrade() else { return };
        let Some((leader, addr)) = this.leader_of(k) else {
            drop(this);
            tokio::time::sleep(BACKOFF * 2).await;
            continue;
        };
        if conn.as_ref().is_none_or(|(l, _)| *l != leader) {
            match client::connect(&addr, Duration::from_secs(2)).await {
                Ok(s) => conn = Some((leader, s)),
                Err(e) => {
                    tracing::debug!(partition = k, leader, error = %e, "remote metadata reader cannot connect");
                    drop(this);
                    tokio::time::sleep(BACKOFF * 2).await;
                    continue;
                }
            }
        }
        let Some((_, stream)) = conn.as_mut() else {
            continue;
        };
        let next = this.progress_of(k).next;
        drop(this);
        correlation = correlation.wrapping_add(1);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(PARTITION_MAX_BYTES)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str(
                        REMOTE_LOG_METADATA_TOPIC,
                    )))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(k)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(next)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(PARTITION_MAX_BYTES),
                    ]),
            ]);
        let answer = tokio::time::timeout(
            Duration::from_millis(MAX_WAIT_MS as u64) + Duration::from_secs(10),
            client::exchange(
                stream,
                correlation,
                FETCH_VERSION,
                "chronik-remote-metadata",
                &request,
            ),
        )
        .await;
        let response = match answer {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(partition = k, leader, error = %e, "remote metadata fetch failed; reconnecting");
                conn = None;
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
            Err(_) => {
                conn = None;
                continue;
            }
        };
        let Some(pd) = response
            .responses
            .first()
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == k))
        else {
            conn = None;
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        let Some(this) = weak.upgrade() else { return };
        match ResponseError::try_from_code(pd.error_code) {
            None => {
                let records = pd.records.clone().unwrap_or_default();
                if !this.apply_fetched(k, &records, pd.high_watermark) {
                    // Its states are not skipped (the partitions they belong to stay not ready
                    // to decide); asked again from the same offset, perhaps of a new leader,
                    // without spinning on it.
                    drop(this);
                    conn = None;
                    tokio::time::sleep(DAMAGED_RETRY).await;
                }
            }
            Some(ResponseError::OffsetOutOfRange) if next < pd.log_start_offset => {
                // The records are kept forever; an operator cut the partition's log.
                tracing::error!(
                    partition = k,
                    from = next,
                    to = pd.log_start_offset,
                    "{REMOTE_LOG_METADATA_TOPIC} lost records below its log start; reading on from there"
                );
                let mut progress = this.progress.lock().unwrap_or_else(|e| e.into_inner());
                progress.entry(k).or_default().next = pd.log_start_offset;
            }
            Some(e) => {
                tracing::debug!(partition = k, leader, error = ?e, "remote metadata fetch refused");
                conn = None;
                drop(this);
                tokio::time::sleep(BACKOFF * 2).await;
            }
        }
    }
}

impl Drop for RemoteLogMetadataTopic {
    fn drop(&mut self) {
        for (_, r) in self
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            r.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(id: u128, base: i64, state: RemoteSegmentState) -> RemoteLogSegmentMetadata {
        RemoteLogSegmentMetadata {
            topic_id: Uuid::from_u128(1),
            partition: 3,
            segment_id: Uuid::from_u128(id),
            base_offset: base,
            end_offset: base + 9,
            max_timestamp_ms: 5,
            segment_size_bytes: 100,
            leader_epoch: 0,
            state,
        }
    }

    #[test]
    fn replayed_states_end_where_the_metadata_log_left_them() {
        use RemoteSegmentState::*;
        for state in [
            CopySegmentStarted,
            CopySegmentFinished,
            DeleteSegmentStarted,
        ] {
            let mut view = MetadataState::default();
            for (i, s) in states_leading_to(state).into_iter().enumerate() {
                view.apply(
                    i as u64,
                    &MetadataRecord::RemoteSegmentUpdated {
                        topic: "t".into(),
                        segment: segment(7, 0, s),
                    },
                );
            }
            assert_eq!(
                view.remote_segments[&Uuid::from_u128(7)].1.state,
                state,
                "replaying the states leading to {state:?}"
            );
        }
        assert!(states_leading_to(DeleteSegmentFinished).is_empty());
    }

    /// A batch that cannot be decoded is not skipped: the reader stays at its offset (and is
    /// not caught up) until it reads good records there.
    #[test]
    fn a_damaged_batch_holds_the_reader_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let (metadata, _) = MetadataStore::open(&dir.path().join("meta"), 50).unwrap();
        let metadata = Arc::new(metadata);
        let replicas = Arc::new(ReplicaManager::open(&config, metadata.clone()).unwrap());
        let topic = RemoteLogMetadataTopic::new(metadata, replicas, 10, 3, BTreeMap::new());
        let records = vec![MetadataRecord::RemoteSegmentUpdated {
            topic: "t".into(),
            segment: segment(7, 0, RemoteSegmentState::CopySegmentStarted),
        }];
        let good = internal_log::encode(b"k", &records, 0).expect("encode");
        let mut damaged = good.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff; // the CRC no longer matches
        assert!(!topic.apply_fetched(4, &bytes::Bytes::from(damaged), 1));
        assert_eq!(topic.progress_of(4).next, 0);
        assert!(!topic.progress_of(4).caught_up);
        assert!(topic.apply_fetched(4, &good, 1));
        assert_eq!(topic.progress_of(4).next, 1);
        assert!(topic.progress_of(4).caught_up);
    }

    #[test]
    fn records_travel_through_a_batch_unchanged() {
        let records = vec![
            MetadataRecord::RemoteSegmentUpdated {
                topic: "t".into(),
                segment: segment(7, 0, RemoteSegmentState::CopySegmentStarted),
            },
            MetadataRecord::RemoteSegmentUpdated {
                topic: "t".into(),
                segment: segment(7, 0, RemoteSegmentState::CopySegmentFinished),
            },
        ];
        assert!(
            records
                .iter()
                .all(|r| subject(r) == Some((Uuid::from_u128(1), 3)))
        );
        let batch = internal_log::encode(b"k", &records, 42).expect("encode");
        let mut seen = Vec::new();
        let next = internal_log::decode(REMOTE_LOG_METADATA_TOPIC, &batch, 1, |at, r| {
            seen.push((at, r))
        })
        .expect("decode");
        assert_eq!(next, 2);
        assert_eq!(
            seen,
            vec![(1, records[1].clone())],
            "offsets below `from` are skipped"
        );
    }

    #[test]
    fn a_partitions_states_always_go_to_the_same_metadata_partition() {
        let id = Uuid::from_u128(0xfeed);
        let k = remote_metadata_partition(id, 5, 10);
        assert!((0..10).contains(&k));
        assert_eq!(k, remote_metadata_partition(id, 5, 10));
        let spread: std::collections::HashSet<i32> = (0..200)
            .map(|p| remote_metadata_partition(id, p, 10))
            .collect();
        assert!(spread.len() >= 8, "200 partitions over 10: {spread:?}");
    }
}
