//! The cluster metadata that replaying the log rebuilds: topics, producer-id reservations and
//! committed group offsets. Applying a record is deterministic and never fails, so every replica
//! of the log reaches the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use chronik_tiering::{RemoteLogSegmentMetadata, RemoteSegmentState, RemoteSplitMetadata};

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
    /// segment id → the search split of that remote segment. New fields go last: snapshots
    /// written before a field existed are read through [`StateV1`].
    pub remote_splits: BTreeMap<Uuid, RemoteSplitMetadata>,
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
            remote_splits: BTreeMap::new(),
        }
    }
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

    /// Search splits of one partition's readable remote segments, oldest first.
    pub fn remote_splits_of(&self, topic_id: Uuid, partition: i32) -> Vec<RemoteSplitMetadata> {
        self.remote_segments_of(topic_id, partition)
            .iter()
            .filter_map(|m| self.remote_splits.get(&m.segment_id).cloned())
            .collect()
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
                    self.remote_splits.remove(&segment.segment_id);
                } else {
                    self.remote_segments
                        .insert(segment.segment_id, (topic.clone(), segment.clone()));
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
}
