//! Remote log segment metadata, as KIP-405 describes it.
//!
//! A record of this type goes into the metadata WAL at each state change, and the broker may
//! delete its local copy of a segment only after `CopySegmentFinished` is durable there.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TieringError;

/// Life cycle of one segment in the remote tier (Kafka's `RemoteLogSegmentState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RemoteSegmentState {
    CopySegmentStarted,
    CopySegmentFinished,
    DeleteSegmentStarted,
    DeleteSegmentFinished,
}

impl RemoteSegmentState {
    /// The transitions Kafka allows: a copy either finishes or is abandoned by deleting what was
    /// uploaded; a delete, once started, only finishes. Repeating a state is allowed so that
    /// replaying a record twice is harmless.
    pub fn can_transition_to(self, next: RemoteSegmentState) -> bool {
        use RemoteSegmentState::*;
        self == next
            || matches!(
                (self, next),
                (CopySegmentStarted, CopySegmentFinished)
                    | (CopySegmentStarted, DeleteSegmentStarted)
                    | (CopySegmentFinished, DeleteSegmentStarted)
                    | (DeleteSegmentStarted, DeleteSegmentFinished)
            )
    }

    /// Whether readers may serve fetches from the segment in this state.
    pub fn is_readable(self) -> bool {
        self == RemoteSegmentState::CopySegmentFinished
    }
}

/// One segment in the remote tier: which records it holds and where it is in its life cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLogSegmentMetadata {
    pub topic_id: Uuid,
    pub partition: i32,
    /// Unique per upload attempt; part of every object key of the segment.
    pub segment_id: Uuid,
    pub base_offset: i64,
    /// Offset of the last record in the segment (inclusive, as in Kafka).
    pub end_offset: i64,
    /// Largest record timestamp in the segment, in milliseconds since the epoch.
    pub max_timestamp_ms: i64,
    /// Size of the `.log` object in bytes.
    pub segment_size_bytes: u64,
    /// Leader epoch of the broker that uploaded the segment.
    pub leader_epoch: i32,
    pub state: RemoteSegmentState,
}

/// The search split uploaded next to a remote segment: enough to decide without a request
/// whether a query needs it, and to read its footer with one ranged GET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSplitMetadata {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The segment the split indexes; the split object shares its key stem.
    pub segment_id: Uuid,
    pub base_offset: i64,
    /// One past the last offset the split covers.
    pub next_offset: i64,
    /// Smallest and largest record timestamp in the split (`-1` when it holds no records).
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub docs: u64,
    /// Size of the `.split` object.
    pub size_bytes: u64,
    /// Bytes at the end of the object holding the hotcache and the footer.
    pub footer_bytes: u64,
}

impl RemoteLogSegmentMetadata {
    /// The same segment in state `next`, if the life cycle allows it.
    pub fn with_state(&self, next: RemoteSegmentState) -> Result<Self, TieringError> {
        if !self.state.can_transition_to(next) {
            return Err(TieringError::InvalidStateTransition {
                from: self.state,
                to: next,
            });
        }
        Ok(Self {
            state: next,
            ..self.clone()
        })
    }

    /// Whether the segment holds `offset`.
    pub fn contains_offset(&self, offset: i64) -> bool {
        (self.base_offset..=self.end_offset).contains(&offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RemoteSegmentState::*;

    fn sample() -> RemoteLogSegmentMetadata {
        RemoteLogSegmentMetadata {
            topic_id: Uuid::from_u128(1),
            partition: 2,
            segment_id: Uuid::from_u128(3),
            base_offset: 100,
            end_offset: 199,
            max_timestamp_ms: 1_700_000_000_000,
            segment_size_bytes: 4096,
            leader_epoch: 5,
            state: CopySegmentStarted,
        }
    }

    #[test]
    fn serde_round_trip_uses_kafka_state_names() {
        let meta = sample();
        let json = serde_json::to_string(&meta).unwrap();
        assert!(json.contains("\"COPY_SEGMENT_STARTED\""), "{json}");
        let back: RemoteLogSegmentMetadata = serde_json::from_str(&json).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn life_cycle_moves_forward_only() {
        let finished = sample().with_state(CopySegmentFinished).unwrap();
        assert!(finished.state.is_readable());
        let deleting = finished.with_state(DeleteSegmentStarted).unwrap();
        assert!(deleting.with_state(CopySegmentFinished).is_err());
        let deleted = deleting.with_state(DeleteSegmentFinished).unwrap();
        assert!(deleted.with_state(CopySegmentStarted).is_err());
        // An abandoned copy goes straight to deletion.
        assert!(sample().with_state(DeleteSegmentStarted).is_ok());
        assert!(sample().with_state(DeleteSegmentFinished).is_err());
    }

    #[test]
    fn offsets_are_inclusive_at_both_ends() {
        let meta = sample();
        assert!(meta.contains_offset(100));
        assert!(meta.contains_offset(199));
        assert!(!meta.contains_offset(200));
        assert!(!meta.contains_offset(99));
    }
}
