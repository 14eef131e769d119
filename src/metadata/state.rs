//! The cluster metadata that replaying the log rebuilds: topics, producer-id reservations and
//! committed group offsets. Applying a record is deterministic and never fails, so every replica
//! of the log reaches the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use chronik_tiering::{RemoteLogSegmentMetadata, RemoteSegmentState};

use super::record::MetadataRecord;

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
}

impl MetadataState {
    /// Readable remote segments of one partition, oldest first.
    pub fn remote_segments_of(
        &self,
        topic_id: Uuid,
        partition: i32,
    ) -> Vec<RemoteLogSegmentMetadata> {
        let mut out: Vec<RemoteLogSegmentMetadata> = self
            .remote_segments
            .values()
            .map(|(_, m)| m)
            .filter(|m| m.topic_id == topic_id && m.partition == partition && m.state.is_readable())
            .cloned()
            .collect();
        out.sort_by_key(|m| m.base_offset);
        out
    }
}

impl MetadataState {
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
                if let Some(name) = name {
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
                }
            }
            MetadataRecord::TopicConfigsSet { id, configs } => {
                if let Some(t) = self.topic_by_id(*id) {
                    t.configs = configs.clone();
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
            }
            MetadataRecord::RemoteSegmentUpdated { topic, segment } => {
                if segment.state == RemoteSegmentState::DeleteSegmentFinished {
                    self.remote_segments.remove(&segment.segment_id);
                } else {
                    self.remote_segments
                        .insert(segment.segment_id, (topic.clone(), segment.clone()));
                }
            }
        }
    }
}
