//! Where the states of remote segments (KIP-405) and their search splits are kept:
//!
//! - a single node keeps them in its metadata log ([`MetadataStore`]);
//! - a cluster keeps them in the partitions of the internal topic `__remote_log_metadata`
//!   (implemented above, in `remote::metadata_topic`), each user partition's in one of them, so
//!   the controller quorum carries only the cluster's shape.
//!
//! Readers go through [`RemoteSegmentStore`]'s lookups; they see the union of every place a
//! state may still be (a cluster that kept them in its metadata log before moves them over).

use std::collections::BTreeMap;
use std::io;

use chronik_tiering::{RemoteLogSegmentMetadata, RemoteSplitMetadata};
use futures::future::BoxFuture;
use uuid::Uuid;

use super::{MetadataRecord, MetadataState, MetadataStore};

pub trait RemoteSegmentStore: Send + Sync {
    /// Makes `records` (`RemoteSegmentUpdated` and `RemoteSplitAdded`, all of one partition)
    /// durable, then visible to the lookups of this broker.
    fn append(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, io::Result<()>>;

    /// Runs `f` over each state that may hold remote segments, the authoritative one first.
    fn read_each(&self, f: &mut dyn FnMut(&MetadataState));

    /// Runs `f` over the authoritative state only: where new states are appended.
    fn read_own(&self, f: &mut dyn FnMut(&MetadataState));

    /// Whether this broker sees every recorded state of the partition's segments, so it may
    /// decide what to upload or delete.
    fn ready(&self, _topic_id: Uuid, _partition: i32) -> bool {
        true
    }
}

impl RemoteSegmentStore for MetadataStore {
    fn append(&self, records: Vec<MetadataRecord>) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move { MetadataStore::append(self, records).await.map(|_| ()) })
    }

    fn read_each(&self, f: &mut dyn FnMut(&MetadataState)) {
        self.read(|s| f(s))
    }

    fn read_own(&self, f: &mut dyn FnMut(&MetadataState)) {
        self.read(|s| f(s))
    }
}

impl dyn RemoteSegmentStore {
    /// Readable remote segments of one partition, oldest first.
    pub fn segments_of(&self, topic_id: Uuid, partition: i32) -> Vec<RemoteLogSegmentMetadata> {
        let mut by_id: BTreeMap<Uuid, RemoteLogSegmentMetadata> = BTreeMap::new();
        self.read_each(&mut |s| {
            for m in s.remote_segments_of(topic_id, partition) {
                by_id.entry(m.segment_id).or_insert(m);
            }
        });
        let mut all: Vec<_> = by_id.into_values().collect();
        all.sort_by_key(|m| (m.base_offset, m.segment_id));
        all
    }

    /// The first readable remote segment of a partition that ends at or after `offset`.
    pub fn segment_for(
        &self,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
    ) -> Option<RemoteLogSegmentMetadata> {
        let mut best: Option<RemoteLogSegmentMetadata> = None;
        self.read_each(&mut |s| {
            if let Some(m) = s.remote_segment_for(topic_id, partition, offset)
                && best.as_ref().is_none_or(|b| m.base_offset < b.base_offset)
            {
                best = Some(m);
            }
        });
        best
    }

    /// The `[start, next)` offsets the remote tier holds of a partition, if any.
    pub fn range(&self, topic_id: Uuid, partition: i32) -> Option<(i64, i64)> {
        let segs = self.segments_of(topic_id, partition);
        Some((segs.first()?.base_offset, segs.last()?.end_offset + 1))
    }

    /// Search splits of one partition's readable remote segments, oldest first.
    pub fn splits_of(&self, topic_id: Uuid, partition: i32) -> Vec<RemoteSplitMetadata> {
        let mut by_id: BTreeMap<Uuid, RemoteSplitMetadata> = BTreeMap::new();
        self.read_each(&mut |s| {
            for split in s.remote_splits_of(topic_id, partition) {
                by_id.entry(split.segment_id).or_insert(split);
            }
        });
        let mut all: Vec<_> = by_id.into_values().collect();
        all.sort_by_key(|s| (s.base_offset, s.segment_id));
        all
    }

    /// Every segment in the authoritative state (any state), with its topic's name.
    pub fn all_own(&self) -> Vec<(String, RemoteLogSegmentMetadata)> {
        let mut out = Vec::new();
        self.read_own(&mut |s| out.extend(s.remote_segments.values().cloned()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronik_tiering::RemoteSegmentState;

    /// Two places, as a cluster has while old states move into its internal topic.
    struct TwoPlaces(MetadataState, MetadataState);

    impl RemoteSegmentStore for TwoPlaces {
        fn append(&self, _records: Vec<MetadataRecord>) -> BoxFuture<'_, io::Result<()>> {
            Box::pin(async { Err(io::Error::other("read-only in this test")) })
        }

        fn read_each(&self, f: &mut dyn FnMut(&MetadataState)) {
            f(&self.0);
            f(&self.1);
        }

        fn read_own(&self, f: &mut dyn FnMut(&MetadataState)) {
            f(&self.0);
        }
    }

    fn finished(id: u128, base: i64) -> MetadataRecord {
        let m = RemoteLogSegmentMetadata {
            topic_id: Uuid::from_u128(1),
            partition: 0,
            segment_id: Uuid::from_u128(id),
            base_offset: base,
            end_offset: base + 9,
            max_timestamp_ms: 5,
            segment_size_bytes: 100,
            leader_epoch: 0,
            state: RemoteSegmentState::CopySegmentStarted,
        };
        MetadataRecord::RemoteSegmentUpdated {
            topic: "t".into(),
            segment: RemoteLogSegmentMetadata {
                state: RemoteSegmentState::CopySegmentFinished,
                ..m
            },
        }
    }

    fn started(id: u128, base: i64) -> MetadataRecord {
        match finished(id, base) {
            MetadataRecord::RemoteSegmentUpdated { topic, segment } => {
                MetadataRecord::RemoteSegmentUpdated {
                    topic,
                    segment: RemoteLogSegmentMetadata {
                        state: RemoteSegmentState::CopySegmentStarted,
                        ..segment
                    },
                }
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn lookups_see_both_places_once_each() {
        let (mut own, mut old) = (MetadataState::default(), MetadataState::default());
        // Segment 1 is in both places (moved, not yet dropped from the old one), 2 only in the
        // old one, 3 only in the new one.
        for (id, base) in [(1, 0), (2, 10)] {
            old.apply(0, &started(id, base));
            old.apply(1, &finished(id, base));
        }
        for (id, base) in [(1, 0), (3, 20)] {
            own.apply(2, &started(id, base));
            own.apply(3, &finished(id, base));
        }
        let store: Box<dyn RemoteSegmentStore> = Box::new(TwoPlaces(own, old));
        let t = Uuid::from_u128(1);
        let ids: Vec<u128> = store
            .segments_of(t, 0)
            .iter()
            .map(|m| m.segment_id.as_u128())
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(store.range(t, 0), Some((0, 30)));
        assert_eq!(store.segment_for(t, 0, 12).map(|m| m.base_offset), Some(10));
        assert_eq!(store.segment_for(t, 0, 25).map(|m| m.base_offset), Some(20));
        assert_eq!(store.segment_for(t, 0, 30), None);
        let own_ids: Vec<u128> = store
            .all_own()
            .iter()
            .map(|(_, m)| m.segment_id.as_u128())
            .collect();
        assert_eq!(
            own_ids,
            vec![1, 3],
            "only the authoritative place is cleaned up"
        );
    }
}
