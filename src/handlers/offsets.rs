//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords: questions and changes about positions in
//! a partition's log.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::{code, epoch_error_code};
use crate::broker::Broker;
use crate::protocol::RequestContext;
use crate::replica::{FetchError, Partition};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The offset and timestamp ListOffsets answers for `timestamp` (a time or one of the special
/// values above), from whichever tier holds it.
async fn lookup(p: &Partition, timestamp: i64) -> Result<(i64, i64), FetchError> {
    let (start, _) = p.offsets();
    Ok(match timestamp {
        // Consumers see records below the high watermark (the log end on a single node).
        LATEST => (p.high_watermark(), -1),
        EARLIEST => (start, -1),
        EARLIEST_LOCAL => (p.local_log_start_offset(), -1),
        MAX_TIMESTAMP => p
            .max_timestamp_offset()
            .map_err(|e| FetchError::Storage(e.to_string()))?,
        // The highest offset copied to the remote tier, or -1 when nothing is.
        LATEST_TIERED => (p.last_tiered_offset(), -1),
        ts => p.offset_for_timestamp(ts).await?.unwrap_or((-1, -1)),
    })
}

pub async fn list_offsets(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.replicas.topic(t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for lp in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(lp.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let Some(p) = topic
                .as_ref()
                .and_then(|t| t.partition(lp.partition_index))
                .filter(|p| p.is_leader())
            else {
                partitions.push(r.with_error_code(not_here(&topic, lp.partition_index)));
                continue;
            };
            if let Err(e) = p.check_epoch(lp.current_leader_epoch) {
                partitions.push(r.with_error_code(epoch_error_code(e)));
                continue;
            }
            let unsupported = (lp.timestamp == MAX_TIMESTAMP && ctx.version < 7)
                || (lp.timestamp == EARLIEST_LOCAL && ctx.version < 8)
                || (lp.timestamp == LATEST_TIERED && ctx.version < 9)
                || lp.timestamp < LATEST_TIERED;
            if unsupported {
                partitions.push(r.with_error_code(code(ResponseError::UnsupportedVersion)));
                continue;
            }
            match lookup(&p, lp.timestamp).await {
                Ok((offset, ts)) => {
                    r = r.with_offset(offset).with_timestamp(ts);
                    if ctx.version >= 4 {
                        r = r.with_leader_epoch(p.leader_epoch());
                    }
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "offset lookup failed");
                    r = r.with_error_code(code(ResponseError::KafkaStorageError));
                }
            }
            partitions.push(r);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

pub async fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.replicas.topic(t.topic.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for op in t.partitions {
            let r = EpochEndOffset::default()
                .with_partition(op.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            let Some(p) = topic
                .as_ref()
                .and_then(|t| t.partition(op.partition))
                .filter(|p| p.is_leader())
            else {
                partitions.push(r.with_error_code(not_here(&topic, op.partition)));
                continue;
            };
            if let Err(e) = p.check_epoch(op.current_leader_epoch) {
                partitions.push(r.with_error_code(epoch_error_code(e)));
                continue;
            }
            let (epoch, end) = p.end_offset_for_epoch(op.leader_epoch);
            partitions.push(r.with_leader_epoch(epoch).with_end_offset(end));
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub async fn delete_records(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    // Partitions whose followers must drop the records too: (topic slot, partition slot, ...).
    let mut waits = Vec::new();
    for t in req.topics {
        let topic = broker.replicas.topic(t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for dp in t.partitions {
            let r = DeleteRecordsPartitionResult::default()
                .with_partition_index(dp.partition_index)
                .with_low_watermark(-1);
            let Some(p) = topic
                .as_ref()
                .and_then(|t| t.partition(dp.partition_index))
                .filter(|p| p.is_leader())
            else {
                partitions.push(r.with_error_code(not_here(&topic, dp.partition_index)));
                continue;
            };
            let hw = p.high_watermark();
            let target = if dp.offset == -1 { hw } else { dp.offset };
            if target < 0 || target > hw {
                partitions.push(r.with_error_code(code(ResponseError::OffsetOutOfRange)));
                continue;
            }
            match p.delete_records_before(target) {
                Ok(low) => {
                    if p.low_watermark() < low {
                        waits.push((topics.len(), partitions.len(), p.clone(), low));
                    }
                    partitions.push(r.with_low_watermark(low))
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "delete records failed");
                    partitions.push(r.with_error_code(code(ResponseError::KafkaStorageError)));
                }
            }
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    if !waits.is_empty() {
        // As Kafka: answered once every caught-up replica's log start passed the offset.
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
        let reached = futures::future::join_all(
            waits
                .iter()
                .map(|(_, _, p, low)| low_watermark_reaches(p, *low, deadline)),
        )
        .await;
        for ((t, slot, _, _), ok) in waits.iter().zip(reached) {
            if !ok {
                let r: &mut DeleteRecordsPartitionResult = &mut topics[*t].partitions[*slot];
                r.low_watermark = -1;
                r.error_code = code(ResponseError::RequestTimedOut);
            }
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Waits until the partition's low watermark reaches `low` (its followers took the leader's new
/// log start from their next fetch), or the deadline passes.
async fn low_watermark_reaches(
    p: &crate::replica::Partition,
    low: i64,
    deadline: tokio::time::Instant,
) -> bool {
    loop {
        if p.low_watermark() >= low {
            return true;
        }
        if !p.is_leader() || tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The error for a partition this broker does not hold: NOT_LEADER_OR_FOLLOWER when it exists
/// elsewhere in the cluster, UNKNOWN_TOPIC_OR_PARTITION otherwise.
fn not_here(topic: &Option<Arc<crate::replica::Topic>>, index: i32) -> i16 {
    match topic {
        Some(t) if super::cluster::led_elsewhere(None, index, t.partition_count()) => {
            code(ResponseError::NotLeaderOrFollower)
        }
        _ => code(ResponseError::UnknownTopicOrPartition),
    }
}
