//! The cluster metadata that replaying the log rebuilds: topics, producer-id reservations and
//! committed group offsets. Applying a record is deterministic and never fails, so every replica
//! of the log reaches the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use chronik_tiering::{RemoteLogSegmentMetadata, RemoteSegmentState, RemoteSplitMetadata};

use super::record::{
    ListenerEndpoint, MetadataRecord, PartitionPlacement, PlacementV1, Reassignment,
    StoredScramCredential,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    /// Index of the last record applied (0: none).
    pub last_index: u64,
    pub topics: BTreeMap<String, TopicState>,
    pub producer_id_end: i64,
    /// group → (topic, partition) → offset
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    /// segment id → (topic name, metadata) of every remote segment not yet fully deleted
    pub remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    /// segment id → the search split of that remote segment. New fields go last: snapshots
    /// written before a field existed are read through [`StateV2`] and [`StateV1`].
    pub remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
    /// group → protocol type of every group that ever joined (see
    /// [`MetadataRecord::GroupProtocolTypeSet`]).
    pub group_protocol_types: BTreeMap<String, String>,
    /// The cluster's id, when a controller quorum keeps the log (a single node keeps its own in
    /// its data directory).
    pub cluster_id: Option<String>,
    /// Every broker that registered with the quorum, by id.
    pub brokers: BTreeMap<i32, BrokerState>,
    /// topic id → partition → replicas and leadership. Empty on a single node.
    pub placements: BTreeMap<Uuid, BTreeMap<i32, PartitionPlacement>>,
    /// broker → `[start, end)` of the last producer-id block it took.
    pub producer_id_blocks: BTreeMap<i32, (i64, i64)>,
    /// topic id → partition → its reassignment in progress.
    pub reassignments: BTreeMap<Uuid, BTreeMap<i32, Reassignment>>,
    /// broker (-1: every broker's default) → its dynamic configs.
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// broker → its admin HTTP address (`host:port`), as its latest registration advertised
    /// it (see [`MetadataRecord::BrokerHttpAdvertised`]).
    pub broker_http: BTreeMap<i32, String>,
    /// broker → its Kafka listeners, as its latest registration advertised them (see
    /// [`MetadataRecord::BrokerListenersAdvertised`]).
    pub broker_listeners: BTreeMap<i32, Vec<ListenerEndpoint>>,
    /// user → mechanism → its SCRAM credential.
    pub scram_credentials: BTreeMap<String, BTreeMap<String, StoredScramCredential>>,
    /// Every ACL binding (CreateAcls/DeleteAcls).
    pub acls: std::collections::BTreeSet<crate::security::acl::AclBinding>,
    /// Client quotas by user and client id (AlterClientQuotas).
    pub client_quotas: crate::security::quota::QuotaConfigs,
    /// The index of the last record that changed topics, partitions or brokers: the replica
    /// layer reconciles its partitions with this state when it moves. Derived.
    #[serde(skip)]
    pub topology_version: TopologyVersion,
    /// (topic id, partition, base offset, segment id) of every entry of `remote_segments`: a
    /// partition's segments in offset order without scanning those of every partition (remote
    /// reads look here on every fetch). Derived, never stored: [`MetadataState::reindex`]
    /// rebuilds it after a snapshot is read.
    #[serde(skip)]
    remote_index: std::collections::BTreeSet<(Uuid, i32, i64, Uuid)>,
}

/// The index of the last record that changed topics, partitions or brokers (a snapshot read
/// counts as such a change). Derived from how the state was reached, not part of what it is:
/// two states are equal whatever their versions.
#[derive(Debug, Default, Clone, Copy, Eq)]
pub struct TopologyVersion(pub u64);

impl PartialEq for TopologyVersion {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Why a leader's change of its in-sync set was refused (Kafka's `AlterPartition` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterIsrError {
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error("the requester does not lead the partition in this leader epoch")]
    NotLeader,
    #[error("the change was made against partition epoch {sent}, not the current {current}")]
    StaleVersion { sent: i32, current: i32 },
    #[error("broker {0} cannot join the in-sync set (not a live replica)")]
    Ineligible(i32),
}

/// A broker as the quorum knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    /// The index of its registration: a restarted broker registers again with a new epoch.
    pub epoch: i64,
    pub incarnation: Uuid,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are not listed to clients.
    pub fenced: bool,
}

/// The snapshot layout before brokers' listeners, SCRAM credentials, ACLs and client quotas
/// were kept.
#[derive(Debug, Deserialize)]
pub struct StateV8 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
    group_protocol_types: BTreeMap<String, String>,
    cluster_id: Option<String>,
    brokers: BTreeMap<i32, BrokerState>,
    placements: BTreeMap<Uuid, BTreeMap<i32, PartitionPlacement>>,
    producer_id_blocks: BTreeMap<i32, (i64, i64)>,
    reassignments: BTreeMap<Uuid, BTreeMap<i32, Reassignment>>,
    broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    broker_http: BTreeMap<i32, String>,
}

impl From<StateV8> for MetadataState {
    fn from(v: StateV8) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            remote_splits: v.remote_splits,
            group_protocol_types: v.group_protocol_types,
            cluster_id: v.cluster_id,
            brokers: v.brokers,
            placements: v.placements,
            producer_id_blocks: v.producer_id_blocks,
            reassignments: v.reassignments,
            broker_configs: v.broker_configs,
            broker_http: v.broker_http,
            ..Default::default()
        }
    }
}

/// The snapshot layout before brokers' admin HTTP addresses were kept.
#[derive(Debug, Deserialize)]
pub struct StateV7 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
    group_protocol_types: BTreeMap<String, String>,
    cluster_id: Option<String>,
    brokers: BTreeMap<i32, BrokerState>,
    placements: BTreeMap<Uuid, BTreeMap<i32, PartitionPlacement>>,
    producer_id_blocks: BTreeMap<i32, (i64, i64)>,
    reassignments: BTreeMap<Uuid, BTreeMap<i32, Reassignment>>,
    broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
}

impl From<StateV7> for MetadataState {
    fn from(v: StateV7) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            remote_splits: v.remote_splits,
            group_protocol_types: v.group_protocol_types,
            cluster_id: v.cluster_id,
            brokers: v.brokers,
            placements: v.placements,
            producer_id_blocks: v.producer_id_blocks,
            reassignments: v.reassignments,
            broker_configs: v.broker_configs,
            ..Default::default()
        }
    }
}

/// The snapshot layout before dynamic broker configs were kept.
#[derive(Debug, Deserialize)]
pub struct StateV6 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
    group_protocol_types: BTreeMap<String, String>,
    cluster_id: Option<String>,
    brokers: BTreeMap<i32, BrokerState>,
    placements: BTreeMap<Uuid, BTreeMap<i32, PartitionPlacement>>,
    producer_id_blocks: BTreeMap<i32, (i64, i64)>,
    reassignments: BTreeMap<Uuid, BTreeMap<i32, Reassignment>>,
}

impl From<StateV6> for MetadataState {
    fn from(v: StateV6) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            remote_splits: v.remote_splits,
            group_protocol_types: v.group_protocol_types,
            cluster_id: v.cluster_id,
            brokers: v.brokers,
            placements: v.placements,
            producer_id_blocks: v.producer_id_blocks,
            reassignments: v.reassignments,
            ..Default::default()
        }
    }
}

/// The snapshot layout before partition reassignments were kept.
#[derive(Debug, Deserialize)]
pub struct StateV5 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
    group_protocol_types: BTreeMap<String, String>,
    cluster_id: Option<String>,
    brokers: BTreeMap<i32, BrokerState>,
    placements: BTreeMap<Uuid, BTreeMap<i32, PartitionPlacement>>,
    producer_id_blocks: BTreeMap<i32, (i64, i64)>,
}

impl From<StateV5> for MetadataState {
    fn from(v: StateV5) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            remote_splits: v.remote_splits,
            group_protocol_types: v.group_protocol_types,
            cluster_id: v.cluster_id,
            brokers: v.brokers,
            placements: v.placements,
            producer_id_blocks: v.producer_id_blocks,
            ..Default::default()
        }
    }
}

/// The snapshot layout before in-sync replica sets were kept.
#[derive(Debug, Deserialize)]
pub struct StateV4 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
    group_protocol_types: BTreeMap<String, String>,
    cluster_id: Option<String>,
    brokers: BTreeMap<i32, BrokerState>,
    placements: BTreeMap<Uuid, BTreeMap<i32, PlacementV1>>,
    producer_id_blocks: BTreeMap<i32, (i64, i64)>,
}

impl From<StateV4> for MetadataState {
    fn from(v: StateV4) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            remote_splits: v.remote_splits,
            group_protocol_types: v.group_protocol_types,
            cluster_id: v.cluster_id,
            brokers: v.brokers,
            placements: v
                .placements
                .into_iter()
                .map(|(id, m)| (id, m.into_iter().map(|(p, v)| (p, v.into())).collect()))
                .collect(),
            producer_id_blocks: v.producer_id_blocks,
            ..Default::default()
        }
    }
}

/// The snapshot layout before brokers and placements were kept.
#[derive(Debug, Deserialize)]
pub struct StateV3 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
    group_protocol_types: BTreeMap<String, String>,
}

impl From<StateV3> for MetadataState {
    fn from(v: StateV3) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            remote_splits: v.remote_splits,
            group_protocol_types: v.group_protocol_types,
            ..Default::default()
        }
    }
}

/// The snapshot layout before search splits existed.
#[derive(Debug, Deserialize)]
pub struct StateV1 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
}

impl From<StateV1> for MetadataState {
    fn from(v: StateV1) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            ..Default::default()
        }
    }
}

/// The snapshot layout before group protocol types were kept.
#[derive(Debug, Deserialize)]
pub struct StateV2 {
    last_index: u64,
    topics: BTreeMap<String, TopicState>,
    producer_id_end: i64,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
    remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
}

impl From<StateV2> for MetadataState {
    fn from(v: StateV2) -> Self {
        Self {
            last_index: v.last_index,
            topics: v.topics,
            producer_id_end: v.producer_id_end,
            offsets: v.offsets,
            remote_segments: v.remote_segments,
            remote_splits: v.remote_splits,
            ..Default::default()
        }
    }
}

impl MetadataState {
    /// Decodes a snapshot body of this layout or of an older one.
    pub fn decode_snapshot(body: &[u8]) -> Option<Self> {
        let mut state: Self = postcard::from_bytes(body)
            .ok()
            .or_else(|| postcard::from_bytes::<StateV8>(body).ok().map(Into::into))
            .or_else(|| postcard::from_bytes::<StateV7>(body).ok().map(Into::into))
            .or_else(|| postcard::from_bytes::<StateV6>(body).ok().map(Into::into))
            .or_else(|| postcard::from_bytes::<StateV5>(body).ok().map(Into::into))
            .or_else(|| postcard::from_bytes::<StateV4>(body).ok().map(Into::into))
            .or_else(|| postcard::from_bytes::<StateV3>(body).ok().map(Into::into))
            .or_else(|| postcard::from_bytes::<StateV2>(body).ok().map(Into::into))
            .or_else(|| postcard::from_bytes::<StateV1>(body).ok().map(Into::into))?;
        state.reindex();
        Some(state)
    }
}

impl MetadataState {
    /// Whether `incarnation` is broker `id`'s latest registration (records proposed with an
    /// earlier start are ignored).
    fn is_current_start(&self, id: i32, incarnation: &Uuid) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(|b| b.incarnation == *incarnation)
    }

    /// Rebuilds the derived index of remote segments (after a snapshot is read).
    pub fn reindex(&mut self) {
        self.topology_version = TopologyVersion(self.last_index);
        crate::security::acl::note_acls_changed();
        self.remote_index = self
            .remote_segments
            .values()
            .map(|(_, m)| index_key(m))
            .collect();
    }

    /// Readable remote segments of one partition in the index's order (base offset).
    fn readable_of(
        &self,
        topic_id: Uuid,
        partition: i32,
    ) -> impl Iterator<Item = &RemoteLogSegmentMetadata> {
        let lo = (topic_id, partition, i64::MIN, Uuid::nil());
        let hi = (topic_id, partition, i64::MAX, Uuid::from_u128(u128::MAX));
        self.remote_index
            .range(lo..=hi)
            .filter_map(|k| self.remote_segments.get(&k.3).map(|(_, m)| m))
            .filter(|m| m.state.is_readable())
    }

    /// Readable remote segments of one partition, oldest first.
    pub fn remote_segments_of(
        &self,
        topic_id: Uuid,
        partition: i32,
    ) -> Vec<RemoteLogSegmentMetadata> {
        self.readable_of(topic_id, partition).cloned().collect()
    }

    /// The first readable remote segment of a partition that ends at or after `offset`.
    pub fn remote_segment_for(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
    ) -> Option<RemoteLogSegmentMetadata> {
        self.readable_of(topic_id, partition)
            .find(|m| m.end_offset >= offset)
            .cloned()
    }

    /// Whether any remote segment of a partition is recorded here, in whatever state.
    pub fn holds_remote_segments_of(&self, topic_id: Uuid, partition: i32) -> bool {
        let lo = (topic_id, partition, i64::MIN, Uuid::nil());
        let hi = (topic_id, partition, i64::MAX, Uuid::from_u128(u128::MAX));
        self.remote_index.range(lo..=hi).next().is_some()
    }

    /// Search splits of one partition's readable remote segments, oldest first.
    /// The `[start, next)` offsets the remote tier holds of a partition, if any: a partition
    /// whose local log was lost continues at `next`.
    pub fn remote_range(&self, topic_id: Uuid, partition: i32) -> Option<(i64, i64)> {
        let segs = self.remote_segments_of(topic_id, partition);
        Some((segs.first()?.base_offset, segs.last()?.end_offset + 1))
    }

    pub fn remote_splits_of(&self, topic_id: Uuid, partition: i32) -> Vec<RemoteSplitMetadata> {
        self.remote_segments_of(topic_id, partition)
            .iter()
            .filter_map(|m| self.remote_splits.get(&m.segment_id).cloned())
            .collect()
    }
}

impl MetadataState {
    fn set_partitions(&mut self, index: u64, id: Uuid, partitions: &[(i32, PartitionPlacement)]) {
        let Some(count) = self
            .topics
            .values()
            .find(|t| t.id == id)
            .map(|t| t.partitions)
        else {
            return;
        };
        let of_topic = self.placements.entry(id).or_default();
        for (p, placement) in partitions {
            // A change computed from an older state (a leader's ISR change or another election
            // landed first) does not overwrite the newer one: partition epochs only grow.
            let stale = of_topic
                .get(p)
                .is_some_and(|cur| placement.partition_epoch <= cur.partition_epoch);
            if (0..count).contains(p) && !stale {
                of_topic.insert(*p, placement.clone());
            }
        }
        self.topology_version = TopologyVersion(index);
    }

    /// Checks a leader's proposed in-sync set against the state and returns the partition as it
    /// becomes: the leader must lead in `leader_epoch`, have seen `partition_epoch`, stay in the
    /// set, and every member must be a replica; a member joining must be live.
    pub fn alter_isr(
        &self,
        topic_id: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Result<PartitionPlacement, AlterIsrError> {
        let p = self
            .placement(topic_id, partition)
            .ok_or(AlterIsrError::UnknownPartition)?;
        if p.leader != leader || p.leader_epoch != leader_epoch || !isr.contains(&leader) {
            return Err(AlterIsrError::NotLeader);
        }
        if p.partition_epoch != partition_epoch {
            return Err(AlterIsrError::StaleVersion {
                sent: partition_epoch,
                current: p.partition_epoch,
            });
        }
        let live = |id: i32| self.brokers.get(&id).is_some_and(|b| !b.fenced);
        for r in isr {
            if !p.replicas.contains(r) || (!p.isr.contains(r) && !live(*r)) {
                return Err(AlterIsrError::Ineligible(*r));
            }
        }
        let mut members: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| isr.contains(r))
            .collect();
        members.dedup();
        Ok(PartitionPlacement {
            isr: members,
            partition_epoch: p.partition_epoch + 1,
            ..p.clone()
        })
    }

    /// A broker process started again: it may have lost records it never flushed, so it leaves
    /// every in-sync set that has other live members (it rejoins once it has caught up as a
    /// follower), and the partitions it led go to the first of those in replica order, in a new
    /// leader epoch. Where it is the last live in-sync replica it stays.
    fn leave_in_sync_sets(&mut self, broker: i32) {
        let live: std::collections::BTreeSet<i32> = self
            .brokers
            .iter()
            .filter(|(b, s)| **b != broker && !s.fenced)
            .map(|(b, _)| *b)
            .collect();
        for of_topic in self.placements.values_mut() {
            for p in of_topic.values_mut() {
                if !p.isr.contains(&broker) {
                    continue;
                }
                let others: Vec<i32> = p
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| *r != broker && live.contains(r))
                    .collect();
                if others.is_empty() {
                    continue;
                }
                if p.leader == broker {
                    p.leader = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| others.contains(r))
                        .unwrap_or(others[0]);
                    p.leader_epoch += 1;
                }
                p.isr.retain(|r| *r != broker);
                p.partition_epoch += 1;
            }
        }
    }

    /// The placement of one partition, if the cluster placed it.
    /// A dynamic config of `broker`: its own, else the default of every broker.
    pub fn broker_config(&self, broker: i32, key: &str) -> Option<&str> {
        [broker, -1]
            .iter()
            .find_map(|b| self.broker_configs.get(b)?.get(key))
            .map(String::as_str)
    }

    pub fn placement(&self, topic_id: Uuid, partition: i32) -> Option<&PartitionPlacement> {
        self.placements.get(&topic_id)?.get(&partition)
    }

    fn topic_by_id(&mut self, id: Uuid) -> Option<&mut TopicState> {
        self.topics.values_mut().find(|t| t.id == id)
    }

    pub fn apply(&mut self, index: u64, record: &MetadataRecord) {
        self.last_index = index;
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                configs,
            } => {
                // The first creation of a name wins: two brokers that create the same topic at
                // once both propose, and the later one finds the name taken.
                if self.topics.get(name).is_some_and(|t| t.id != *id) {
                    return;
                }
                self.topology_version = TopologyVersion(index);
                self.topics.insert(
                    name.clone(),
                    TopicState {
                        name: name.clone(),
                        id: *id,
                        partitions: *partitions,
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::TopicDeleted { id } => {
                let name = self
                    .topics
                    .values()
                    .find(|t| t.id == *id)
                    .map(|t| t.name.clone());
                self.placements.remove(id);
                self.reassignments.remove(id);
                if let Some(name) = name {
                    self.topology_version = TopologyVersion(index);
                    self.topics.remove(&name);
                    // Offsets of a deleted topic go with it, as in Kafka.
                    for offsets in self.offsets.values_mut() {
                        offsets.retain(|(t, _), _| *t != name);
                    }
                    self.offsets.retain(|_, o| !o.is_empty());
                }
            }
            MetadataRecord::PartitionsCreated { id, count } => {
                if let Some(t) = self.topic_by_id(*id) {
                    t.partitions = t.partitions.max(*count);
                    self.topology_version = TopologyVersion(index);
                }
            }
            MetadataRecord::TopicConfigsSet { id, configs } => {
                if let Some(t) = self.topic_by_id(*id) {
                    t.configs = configs.clone();
                    self.topology_version = TopologyVersion(index);
                }
            }
            MetadataRecord::ProducerIdsReserved { end } => {
                self.producer_id_end = self.producer_id_end.max(*end);
            }
            MetadataRecord::OffsetCommitted {
                group,
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
                commit_ms,
            } => {
                self.offsets.entry(group.clone()).or_default().insert(
                    (topic.clone(), *partition),
                    CommittedOffset {
                        offset: *offset,
                        leader_epoch: *leader_epoch,
                        metadata: metadata.clone(),
                        commit_ms: *commit_ms,
                    },
                );
            }
            MetadataRecord::OffsetDeleted {
                group,
                topic,
                partition,
            } => {
                if let Some(o) = self.offsets.get_mut(group) {
                    o.remove(&(topic.clone(), *partition));
                    if o.is_empty() {
                        self.offsets.remove(group);
                    }
                }
            }
            MetadataRecord::GroupDeleted { group } => {
                self.offsets.remove(group);
                self.group_protocol_types.remove(group);
            }
            MetadataRecord::GroupProtocolTypeSet {
                group,
                protocol_type,
            } => {
                self.group_protocol_types
                    .insert(group.clone(), protocol_type.clone());
            }
            MetadataRecord::RemoteSegmentUpdated { topic, segment } => {
                // Only the transitions of Kafka's remote segment states apply: in a cluster a
                // broker that lost its leadership may still finish a copy the new leader already
                // cleaned up, and that copy must not come back as a segment nobody can read.
                use RemoteSegmentState::*;
                let old_state = self
                    .remote_segments
                    .get(&segment.segment_id)
                    .map(|(_, m)| m.state);
                let valid = matches!(
                    (old_state, segment.state),
                    (None, CopySegmentStarted)
                        | (Some(CopySegmentStarted), CopySegmentFinished)
                        | (
                            Some(CopySegmentStarted | CopySegmentFinished | DeleteSegmentStarted),
                            DeleteSegmentStarted
                        )
                        | (Some(_), DeleteSegmentFinished)
                        | (Some(CopySegmentFinished), CopySegmentFinished)
                );
                if !valid {
                    return;
                }
                if let Some((_, old)) = self.remote_segments.get(&segment.segment_id) {
                    self.remote_index.remove(&index_key(old));
                }
                if segment.state == RemoteSegmentState::DeleteSegmentFinished {
                    self.remote_segments.remove(&segment.segment_id);
                    self.remote_splits.remove(&segment.segment_id);
                } else {
                    self.remote_index.insert(index_key(segment));
                    self.remote_segments
                        .insert(segment.segment_id, (topic.clone(), segment.clone()));
                }
            }
            MetadataRecord::ClusterIdSet { cluster_id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id.clone());
                }
            }
            MetadataRecord::BrokerRegistered {
                id,
                incarnation,
                host,
                port,
                rack,
            } => {
                self.topology_version = TopologyVersion(index);
                let restarted = self
                    .brokers
                    .get(id)
                    .is_some_and(|b| b.incarnation != *incarnation);
                self.brokers.insert(
                    *id,
                    BrokerState {
                        epoch: index as i64,
                        incarnation: *incarnation,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: false,
                    },
                );
                if restarted {
                    self.leave_in_sync_sets(*id);
                    // A new start advertises its own addresses (or none) after this record.
                    self.broker_http.remove(id);
                    self.broker_listeners.remove(id);
                }
            }
            MetadataRecord::BrokerFenced { id, epoch, fenced } => {
                // A decision about an earlier registration does not touch a newer one.
                if let Some(b) = self.brokers.get_mut(id)
                    && b.epoch == *epoch
                {
                    b.fenced = *fenced;
                    self.topology_version = TopologyVersion(index);
                }
            }
            MetadataRecord::PartitionsPlaced { id, placements } => {
                let placements: Vec<(i32, PartitionPlacement)> = placements
                    .iter()
                    .map(|(p, v)| (*p, v.clone().into()))
                    .collect();
                self.set_partitions(index, *id, &placements);
            }
            MetadataRecord::PartitionsSet { id, partitions } => {
                self.set_partitions(index, *id, partitions);
            }
            MetadataRecord::PartitionReassigned {
                id,
                partition,
                placement,
                reassignment,
            } => {
                let newer = self
                    .placement(*id, *partition)
                    .is_some_and(|cur| placement.partition_epoch > cur.partition_epoch);
                if newer {
                    self.set_partitions(index, *id, &[(*partition, placement.clone())]);
                    let of_topic = self.reassignments.entry(*id).or_default();
                    match reassignment {
                        Some(r) => {
                            of_topic.insert(*partition, r.clone());
                        }
                        None => {
                            of_topic.remove(partition);
                        }
                    }
                    if of_topic.is_empty() {
                        self.reassignments.remove(id);
                    }
                }
            }
            MetadataRecord::BrokerHttpAdvertised {
                id,
                incarnation,
                http,
            } => {
                // Only for the registration it was proposed with: a late one of an earlier
                // start does not replace what a newer start advertised.
                if self.is_current_start(*id, incarnation) {
                    self.broker_http.insert(*id, http.clone());
                }
            }
            MetadataRecord::BrokerListenersAdvertised {
                id,
                incarnation,
                listeners,
            } => {
                if self.is_current_start(*id, incarnation) {
                    self.broker_listeners.insert(*id, listeners.clone());
                }
            }
            MetadataRecord::ScramCredentialSet {
                user,
                mechanism,
                credential,
            } => match credential {
                Some(c) => {
                    self.scram_credentials
                        .entry(user.clone())
                        .or_default()
                        .insert(mechanism.clone(), c.clone());
                }
                None => {
                    if let Some(of_user) = self.scram_credentials.get_mut(user) {
                        of_user.remove(mechanism);
                        if of_user.is_empty() {
                            self.scram_credentials.remove(user);
                        }
                    }
                }
            },
            MetadataRecord::AclsCreated { acls } => {
                self.acls.extend(acls.iter().cloned());
                crate::security::acl::note_acls_changed();
            }
            MetadataRecord::AclsDeleted { acls } => {
                for acl in acls {
                    self.acls.remove(acl);
                }
                crate::security::acl::note_acls_changed();
            }
            MetadataRecord::ClientQuotasAltered { changes } => {
                for change in changes {
                    self.client_quotas.apply(change);
                }
            }
            MetadataRecord::BrokerConfigsSet { broker, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(broker);
                } else {
                    self.broker_configs.insert(*broker, configs.clone());
                }
            }
            MetadataRecord::IsrAltered {
                id,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                // Checked against the state it lands on: a change made against an older
                // partition epoch (an election or another change came first) does nothing.
                if let Ok(next) = self.alter_isr(
                    *id,
                    *partition,
                    *leader,
                    *leader_epoch,
                    *partition_epoch,
                    isr,
                ) {
                    self.set_partitions(index, *id, &[(*partition, next)]);
                }
            }
            MetadataRecord::ProducerIdBlockTaken { broker, size } => {
                let start = self.producer_id_end;
                self.producer_id_end = start.saturating_add((*size).max(0));
                self.producer_id_blocks
                    .insert(*broker, (start, self.producer_id_end));
            }
            MetadataRecord::RemoteSegmentsMoved { segments } => {
                for id in segments {
                    if let Some((_, old)) = self.remote_segments.remove(id) {
                        self.remote_index.remove(&index_key(&old));
                    }
                    self.remote_splits.remove(id);
                }
            }
            MetadataRecord::RemoteSplitAdded { split } => {
                // A split outlives nothing: it is only kept while its segment is known.
                if self.remote_segments.contains_key(&split.segment_id) {
                    self.remote_splits.insert(split.segment_id, split.clone());
                }
            }
        }
    }
}

fn index_key(m: &RemoteLogSegmentMetadata) -> (Uuid, i32, i64, Uuid) {
    (m.topic_id, m.partition, m.base_offset, m.segment_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronik_tiering::RemoteSplitMetadata;

    fn segment(state: RemoteSegmentState) -> RemoteLogSegmentMetadata {
        RemoteLogSegmentMetadata {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            segment_id: Uuid::from_u128(2),
            base_offset: 0,
            end_offset: 9,
            max_timestamp_ms: 5,
            segment_size_bytes: 100,
            leader_epoch: 0,
            state,
        }
    }

    fn updated(state: RemoteSegmentState) -> MetadataRecord {
        MetadataRecord::RemoteSegmentUpdated {
            topic: "t".into(),
            segment: segment(state),
        }
    }

    #[test]
    fn remote_segment_states_move_only_forward() {
        use RemoteSegmentState::*;
        let mut s = MetadataState::default();
        let id = segment(CopySegmentStarted).segment_id;
        let state = |s: &MetadataState| s.remote_segments.get(&id).map(|(_, m)| m.state);
        s.apply(1, &updated(CopySegmentFinished));
        assert_eq!(state(&s), None, "a copy finishes only after it started");
        s.apply(2, &updated(CopySegmentStarted));
        // The partition's new leader cleans up a copy its former leader had not finished...
        s.apply(3, &updated(DeleteSegmentStarted));
        s.apply(4, &updated(DeleteSegmentFinished));
        // ...which the former leader then reports finished: the objects are gone, so it stays gone.
        s.apply(5, &updated(CopySegmentFinished));
        assert_eq!(state(&s), None);
        s.apply(6, &updated(CopySegmentStarted));
        s.apply(7, &updated(DeleteSegmentStarted));
        s.apply(8, &updated(CopySegmentFinished));
        assert_eq!(
            state(&s),
            Some(DeleteSegmentStarted),
            "no way back from a deletion"
        );
    }

    #[test]
    fn moved_remote_segments_leave_the_state_with_their_splits() {
        let mut s = MetadataState::default();
        s.apply(1, &updated(RemoteSegmentState::CopySegmentStarted));
        s.apply(2, &updated(RemoteSegmentState::CopySegmentFinished));
        let m = segment(RemoteSegmentState::CopySegmentFinished);
        s.apply(
            3,
            &MetadataRecord::RemoteSplitAdded {
                split: RemoteSplitMetadata {
                    topic_id: m.topic_id,
                    partition: 0,
                    segment_id: m.segment_id,
                    base_offset: 0,
                    next_offset: 10,
                    min_timestamp_ms: 1,
                    max_timestamp_ms: 5,
                    docs: 10,
                    size_bytes: 1000,
                    footer_bytes: 100,
                },
            },
        );
        assert!(s.holds_remote_segments_of(m.topic_id, 0));
        assert_eq!(s.remote_splits_of(m.topic_id, 0).len(), 1);
        s.apply(
            4,
            &MetadataRecord::RemoteSegmentsMoved {
                segments: vec![m.segment_id, Uuid::from_u128(99)],
            },
        );
        assert!(!s.holds_remote_segments_of(m.topic_id, 0));
        assert!(s.remote_segments.is_empty() && s.remote_splits.is_empty());
        assert_eq!(s.remote_range(m.topic_id, 0), None);
    }

    #[test]
    fn a_split_lives_and_dies_with_its_segment() {
        let mut s = MetadataState::default();
        let split = RemoteSplitMetadata {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            segment_id: Uuid::from_u128(2),
            base_offset: 0,
            next_offset: 10,
            min_timestamp_ms: 1,
            max_timestamp_ms: 5,
            docs: 10,
            size_bytes: 1000,
            footer_bytes: 100,
        };
        // A split of an unknown segment is ignored.
        s.apply(
            1,
            &MetadataRecord::RemoteSplitAdded {
                split: split.clone(),
            },
        );
        assert!(s.remote_splits.is_empty());
        s.apply(2, &updated(RemoteSegmentState::CopySegmentStarted));
        s.apply(
            3,
            &MetadataRecord::RemoteSplitAdded {
                split: split.clone(),
            },
        );
        assert!(
            s.remote_splits_of(split.topic_id, 0).is_empty(),
            "not readable yet"
        );
        s.apply(4, &updated(RemoteSegmentState::CopySegmentFinished));
        assert_eq!(s.remote_splits_of(split.topic_id, 0), vec![split.clone()]);
        s.apply(5, &updated(RemoteSegmentState::DeleteSegmentStarted));
        s.apply(6, &updated(RemoteSegmentState::DeleteSegmentFinished));
        assert!(s.remote_splits.is_empty());
    }

    #[test]
    fn a_partitions_remote_segments_come_from_the_index_in_offset_order() {
        let mut s = MetadataState::default();
        let seg = |partition: i32, id: u128, base: i64, state| RemoteLogSegmentMetadata {
            partition,
            segment_id: Uuid::from_u128(id),
            base_offset: base,
            end_offset: base + 9,
            ..segment(state)
        };
        let mut i = 0;
        let mut put = |s: &mut MetadataState, m: RemoteLogSegmentMetadata| {
            i += 1;
            let r = MetadataRecord::RemoteSegmentUpdated {
                topic: "t".into(),
                segment: m,
            };
            s.apply(i, &r);
        };
        use RemoteSegmentState::*;
        // Ids out of offset order, two partitions interleaved, one copy still running.
        for (p, id, base) in [(0, 30, 20), (1, 11, 0), (0, 10, 0), (0, 20, 10)] {
            put(&mut s, seg(p, id, base, CopySegmentStarted));
            put(&mut s, seg(p, id, base, CopySegmentFinished));
        }
        put(&mut s, seg(0, 40, 30, CopySegmentStarted));
        let t = Uuid::from_u128(1);
        let bases = |s: &MetadataState, p| -> Vec<i64> {
            s.remote_segments_of(t, p)
                .iter()
                .map(|m| m.base_offset)
                .collect()
        };
        assert_eq!(bases(&s, 0), vec![0, 10, 20]);
        assert_eq!(bases(&s, 1), vec![0]);
        let at = |s: &MetadataState, o| s.remote_segment_for(t, 0, o).map(|m| m.base_offset);
        assert_eq!(at(&s, 15), Some(10));
        assert_eq!(at(&s, 29), Some(20));
        assert_eq!(
            at(&s, 30),
            None,
            "a copy that has not finished is not readable"
        );
        // Deleting the middle segment leaves a gap: an offset in it reads the next segment.
        put(&mut s, seg(0, 20, 10, DeleteSegmentStarted));
        assert_eq!(at(&s, 15), Some(20));
        put(&mut s, seg(0, 20, 10, DeleteSegmentFinished));
        assert_eq!(bases(&s, 0), vec![0, 20]);
        // The index is not in snapshots; reindex rebuilds the same answers.
        let raw = postcard::to_stdvec(&s).unwrap();
        let mut back: MetadataState = postcard::from_bytes(&raw).unwrap();
        assert!(
            back.remote_segments_of(t, 0).is_empty(),
            "derived, not stored"
        );
        back.reindex();
        assert_eq!(back, s);
        assert_eq!(bases(&back, 0), vec![0, 20]);
    }

    #[test]
    fn snapshots_from_before_splits_still_load() {
        #[derive(Serialize)]
        struct Old {
            last_index: u64,
            topics: BTreeMap<String, TopicState>,
            producer_id_end: i64,
            offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
            remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
        }
        let mut remote_segments = BTreeMap::new();
        remote_segments.insert(
            Uuid::from_u128(2),
            (
                "t".to_string(),
                segment(RemoteSegmentState::CopySegmentFinished),
            ),
        );
        let old = Old {
            last_index: 7,
            topics: BTreeMap::new(),
            producer_id_end: 1000,
            offsets: BTreeMap::new(),
            remote_segments,
        };
        let raw = postcard::to_stdvec(&old).unwrap();
        assert!(postcard::from_bytes::<MetadataState>(&raw).is_err());
        let state: MetadataState = postcard::from_bytes::<StateV1>(&raw).unwrap().into();
        assert_eq!(state.last_index, 7);
        assert_eq!(state.remote_segments.len(), 1);
    }

    #[test]
    fn snapshots_from_before_broker_http_addresses_load_without_them() {
        // The layout of StateV7, written with the field types it had.
        #[derive(Serialize)]
        struct Old {
            last_index: u64,
            topics: BTreeMap<String, TopicState>,
            producer_id_end: i64,
            offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
            remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
            remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
            group_protocol_types: BTreeMap<String, String>,
            cluster_id: Option<String>,
            brokers: BTreeMap<i32, BrokerState>,
            placements: BTreeMap<Uuid, BTreeMap<i32, PartitionPlacement>>,
            producer_id_blocks: BTreeMap<i32, (i64, i64)>,
            reassignments: BTreeMap<Uuid, BTreeMap<i32, Reassignment>>,
            broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
        }
        let broker = BrokerState {
            epoch: 3,
            incarnation: Uuid::from_u128(5),
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            fenced: false,
        };
        let old = Old {
            last_index: 12,
            topics: BTreeMap::new(),
            producer_id_end: 0,
            offsets: BTreeMap::new(),
            remote_segments: BTreeMap::new(),
            remote_splits: BTreeMap::new(),
            group_protocol_types: BTreeMap::new(),
            cluster_id: Some("c".into()),
            brokers: [(2, broker.clone())].into(),
            placements: BTreeMap::new(),
            producer_id_blocks: BTreeMap::new(),
            reassignments: BTreeMap::new(),
            broker_configs: [(-1, [("a".to_string(), "1".to_string())].into())].into(),
        };
        let raw = postcard::to_stdvec(&old).unwrap();
        let state = MetadataState::decode_snapshot(&raw).expect("decodes");
        assert_eq!(state.last_index, 12);
        assert_eq!(state.brokers[&2], broker);
        assert_eq!(state.broker_configs[&-1]["a"], "1");
        assert!(state.broker_http.is_empty());
        // And the current layout round-trips with them.
        let mut now = state.clone();
        now.broker_http.insert(2, "127.0.0.1:9644".into());
        let back = MetadataState::decode_snapshot(&postcard::to_stdvec(&now).unwrap()).unwrap();
        assert_eq!(back.broker_http[&2], "127.0.0.1:9644");
    }

    #[test]
    fn snapshots_from_before_security_load_without_it() {
        // The layout of StateV8: the current one without its last four fields.
        let mut state = MetadataState {
            last_index: 30,
            cluster_id: Some("c".into()),
            ..Default::default()
        };
        state.broker_http.insert(1, "127.0.0.1:9644".into());
        let mut raw = postcard::to_stdvec(&state).unwrap();
        // The new collections are empty: one zero length byte each at the end.
        assert_eq!(&raw[raw.len() - 4..], &[0, 0, 0, 0]);
        raw.truncate(raw.len() - 4);
        let old = MetadataState::decode_snapshot(&raw).expect("decodes");
        assert_eq!(old.last_index, 30);
        assert_eq!(old.broker_http[&1], "127.0.0.1:9644");
        // The current layout keeps them.
        state
            .scram_credentials
            .entry("alice".into())
            .or_default()
            .insert(
                "SCRAM-SHA-256".into(),
                StoredScramCredential {
                    salt: vec![1],
                    iterations: 4096,
                    stored_key: vec![2],
                    server_key: vec![3],
                },
            );
        let back = MetadataState::decode_snapshot(&postcard::to_stdvec(&state).unwrap()).unwrap();
        assert_eq!(back.scram_credentials, state.scram_credentials);
    }

    #[test]
    fn scram_credentials_are_set_replaced_and_removed() {
        let mut s = MetadataState::default();
        let set = |iterations| MetadataRecord::ScramCredentialSet {
            user: "alice".into(),
            mechanism: "SCRAM-SHA-512".into(),
            credential: Some(StoredScramCredential {
                salt: vec![9],
                iterations,
                stored_key: vec![1],
                server_key: vec![2],
            }),
        };
        s.apply(1, &set(4096));
        s.apply(2, &set(8192));
        assert_eq!(
            s.scram_credentials["alice"]["SCRAM-SHA-512"].iterations,
            8192
        );
        s.apply(
            3,
            &MetadataRecord::ScramCredentialSet {
                user: "alice".into(),
                mechanism: "SCRAM-SHA-512".into(),
                credential: None,
            },
        );
        assert!(s.scram_credentials.is_empty());
    }

    #[test]
    fn a_broker_http_address_belongs_to_the_start_that_advertised_it() {
        let mut s = MetadataState::default();
        let register = |incarnation: u128| MetadataRecord::BrokerRegistered {
            id: 1,
            incarnation: Uuid::from_u128(incarnation),
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        };
        let http = |incarnation: u128, addr: &str| MetadataRecord::BrokerHttpAdvertised {
            id: 1,
            incarnation: Uuid::from_u128(incarnation),
            http: addr.into(),
        };
        s.apply(1, &register(1));
        s.apply(2, &http(1, "127.0.0.1:9644"));
        assert_eq!(s.broker_http[&1], "127.0.0.1:9644");
        // The same start registering again keeps it.
        s.apply(3, &register(1));
        assert_eq!(s.broker_http[&1], "127.0.0.1:9644");
        // A new start forgets it until it advertises its own; a late one of the old start is
        // ignored.
        s.apply(4, &register(2));
        assert!(!s.broker_http.contains_key(&1));
        s.apply(5, &http(1, "127.0.0.1:1"));
        assert!(!s.broker_http.contains_key(&1));
        s.apply(6, &http(2, "127.0.0.1:9645"));
        assert_eq!(s.broker_http[&1], "127.0.0.1:9645");
    }

    #[test]
    fn snapshots_from_before_in_sync_sets_load_with_every_replica_in_sync() {
        #[derive(Serialize)]
        struct Old {
            last_index: u64,
            topics: BTreeMap<String, TopicState>,
            producer_id_end: i64,
            offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
            remote_segments: BTreeMap<Uuid, (String, RemoteLogSegmentMetadata)>,
            remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
            group_protocol_types: BTreeMap<String, String>,
            cluster_id: Option<String>,
            brokers: BTreeMap<i32, BrokerState>,
            placements: BTreeMap<Uuid, BTreeMap<i32, PlacementV1>>,
            producer_id_blocks: BTreeMap<i32, (i64, i64)>,
        }
        let id = Uuid::from_u128(9);
        let old = Old {
            last_index: 40,
            topics: BTreeMap::new(),
            producer_id_end: 5000,
            offsets: BTreeMap::new(),
            remote_segments: BTreeMap::new(),
            remote_splits: BTreeMap::new(),
            group_protocol_types: BTreeMap::new(),
            cluster_id: Some("c".into()),
            brokers: BTreeMap::new(),
            placements: [(
                id,
                [
                    (
                        0,
                        PlacementV1 {
                            replicas: vec![2, 1],
                            leader: 2,
                            leader_epoch: 4,
                        },
                    ),
                    (
                        1,
                        PlacementV1 {
                            replicas: vec![3],
                            leader: -1,
                            leader_epoch: 1,
                        },
                    ),
                ]
                .into(),
            )]
            .into(),
            producer_id_blocks: [(1, (0, 1000))].into(),
        };
        let raw = postcard::to_stdvec(&old).unwrap();
        let state = MetadataState::decode_snapshot(&raw).expect("decodes");
        assert_eq!(state.cluster_id.as_deref(), Some("c"));
        assert_eq!(state.producer_id_blocks[&1], (0, 1000));
        let p0 = state.placement(id, 0).expect("placed");
        assert_eq!(
            (p0.leader, p0.leader_epoch, p0.isr.clone()),
            (2, 4, vec![2, 1])
        );
        let p1 = state.placement(id, 1).expect("placed");
        assert_eq!((p1.leader, p1.isr.clone()), (-1, vec![3]));
    }
}
