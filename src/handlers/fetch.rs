//! Fetch: reads whole batches from segment files and hands their file ranges to the network
//! layer, which sends them with `sendfile`. Long polls wait on the partitions' high-watermark
//! channels, so an append wakes a waiting consumer at once and an idle one costs nothing.
//!
//! Limits follow Kafka (KIP-74): `partition_max_bytes` per partition and `max_bytes` per
//! response, except that the first batch found is always returned whole so a consumer can make
//! progress past a batch larger than its limits.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use tokio::sync::watch;

use super::code;
use crate::broker::Broker;
use crate::protocol::fetch_encoder::{self, FetchOut, NodeOut, PartitionOut, RecordsOut, TopicOut};
use crate::protocol::{ProtocolError, RequestContext, Response};
use crate::replica::{FetchError, Partition, Reader, Records};

/// One requested partition, resolved.
struct Wanted {
    topic_slot: usize,
    partition_index: i32,
    partition: Option<Arc<Partition>>,
    fetch_offset: i64,
    partition_max_bytes: i32,
    /// Error decided before reading (unknown topic/partition, fenced epoch).
    error: Option<i16>,
    reader: Reader,
    /// Where a follower's log parts from this leader's: it truncates there, no records.
    diverging: Option<(i32, i64)>,
    /// With NOT_LEADER_OR_FOLLOWER: who leads, in which epoch (KIP-951).
    current_leader: Option<(i32, i32)>,
    /// A follower's copy this leader throttles (`leader.replication.throttled.*`).
    throttled: bool,
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: FetchRequest,
) -> Result<Response, ProtocolError> {
    let version = ctx.version;
    // Sessions (KIP-227) are declined: every fetch is a full one, which clients handle.
    let session_error = if req.session_id != 0 {
        Some(code(ResponseError::FetchSessionIdNotFound))
    } else if req.session_epoch > 0 {
        Some(code(ResponseError::InvalidFetchSessionEpoch))
    } else {
        None
    };
    if let Some(error_code) = session_error {
        let out = FetchOut {
            error_code,
            ..Default::default()
        };
        return Ok(fetch_encoder::encode(ctx.correlation_id, version, &out));
    }
    let read_committed = req.isolation_level == 1;
    // A broker following these partitions (Kafka's replica fetch): it reads up to the log end,
    // and its fetch offset tells this leader how far its copy reaches.
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let now_ms = crate::util::now_ms();
    // Authorization: a follower needs CLUSTER_ACTION on the cluster, a consumer READ on each
    // topic; refused partitions get TOPIC_AUTHORIZATION_FAILED (as Kafka answers both).
    let authz = super::authz::Authz::of(broker, ctx);
    let unchecked = !authz.on()
        || (replica_id >= 0 && authz.cluster(crate::security::acl::AclOperation::ClusterAction));
    let mut topics: Vec<TopicOut> = Vec::with_capacity(req.topics.len());
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut endpoints: Vec<NodeOut> = Vec::new();
    for ft in &req.topics {
        let by_id = version >= 13;
        let topic = if by_id {
            broker.replicas.topic_by_id(ft.topic_id)
        } else {
            broker.replicas.topic(ft.topic.0.as_str())
        };
        let denied = !unchecked
            && (replica_id >= 0
                || match &topic {
                    Some(t) => !authz.topic(crate::security::acl::AclOperation::Read, &t.name),
                    None => {
                        !by_id
                            && !authz.topic(
                                crate::security::acl::AclOperation::Read,
                                ft.topic.0.as_str(),
                            )
                    }
                });
        let slot = topics.len();
        topics.push(TopicOut {
            name: ft.topic.0.to_string(),
            topic_id: ft.topic_id,
            partitions: Vec::with_capacity(ft.partitions.len()),
        });
        for fp in &ft.partitions {
            let partition = topic.as_ref().and_then(|t| t.partition(fp.partition));
            let elsewhere = topic.as_ref().is_some_and(|t| {
                super::cluster::led_elsewhere(
                    partition.as_deref(),
                    fp.partition,
                    t.partition_count(),
                )
            });
            let elsewhere = elsewhere && !denied;
            let error = match (&topic, &partition) {
                _ if denied => Some(code(ResponseError::TopicAuthorizationFailed)),
                _ if elsewhere => Some(code(ResponseError::NotLeaderOrFollower)),
                (None, _) if by_id => Some(code(ResponseError::UnknownTopicId)),
                (None, _) | (_, None) => Some(code(ResponseError::UnknownTopicOrPartition)),
                (Some(_), Some(p)) => p
                    .check_epoch(fp.current_leader_epoch)
                    .err()
                    .map(super::epoch_error_code),
            };
            let mut current_leader = None;
            if elsewhere && let Some(t) = &topic {
                let (leader, epoch, at) =
                    super::cluster::current_leader(broker, t.id, fp.partition, &ctx.listener);
                current_leader = Some((leader, epoch));
                if let Some(e) = at
                    && !endpoints.iter().any(|n| n.node_id == e.id)
                {
                    endpoints.push(NodeOut {
                        node_id: e.id,
                        host: e.host,
                        port: e.port,
                        rack: e.rack,
                    });
                }
            }
            let follower = replica_id >= 0
                && partition
                    .as_ref()
                    .is_some_and(|p| p.has_follower(replica_id));
            let mut diverging = None;
            let mut throttled = false;
            let mut error = error;
            if follower
                && error.is_none()
                && let Some(p) = &partition
            {
                if fp.last_fetched_epoch >= 0 {
                    let (epoch, end) = p.end_offset_for_epoch(fp.last_fetched_epoch);
                    if epoch >= 0 && (epoch != fp.last_fetched_epoch || end < fp.fetch_offset) {
                        diverging = Some((epoch, end));
                    }
                }
                throttled = broker.replicas.throttles.leader.rate().is_some()
                    && topic.as_ref().is_some_and(|t| {
                        t.configs
                            .0
                            .get(crate::replica::throttle::LEADER_REPLICAS)
                            .is_some_and(|l| {
                                crate::replica::throttle::listed(l, fp.partition, broker.node_id)
                            })
                    })
                    && !p.isr().contains(&replica_id);
                if diverging.is_none() {
                    p.follower_fetched(replica_id, fp.fetch_offset, fp.log_start_offset, now_ms);
                    // Below this leader's local log the records are in the remote tier, which
                    // the follower reads itself: it starts its log at the remote end instead of
                    // copying history through here (KIP-405).
                    if fp.fetch_offset < p.local_log_start_offset()
                        && fp.fetch_offset >= p.log_start_offset()
                        && fp.fetch_offset <= p.last_tiered_offset()
                    {
                        error = Some(code(ResponseError::OffsetMovedToTieredStorage));
                    }
                }
            }
            wanted.push(Wanted {
                topic_slot: slot,
                partition_index: fp.partition,
                partition,
                fetch_offset: fp.fetch_offset,
                partition_max_bytes: fp.partition_max_bytes,
                error,
                reader: if follower {
                    Reader::Follower
                } else {
                    Reader::Consumer
                },
                diverging,
                current_leader,
                throttled,
            });
        }
    }

    // Subscribe before the first read so an append between read and wait is not missed.
    let mut watchers: Vec<watch::Receiver<i64>> = wanted
        .iter()
        .filter(|w| w.error.is_none())
        .filter_map(|w| {
            w.partition.as_ref().map(|p| match w.reader {
                Reader::Consumer => p.subscribe(),
                Reader::Follower => p.subscribe_log_end(),
            })
        })
        .collect();
    for w in &mut watchers {
        w.borrow_and_update();
    }
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    // After a timeout or a dropped sender, one more read answers with whatever is there.
    let mut last_read = false;
    loop {
        let (parts, total, any_error) = read_all(
            &wanted,
            req.max_bytes,
            read_committed,
            &broker.replicas.throttles.leader,
        )
        .await;
        let satisfied = total >= req.min_bytes.max(0) as usize;
        let now = tokio::time::Instant::now();
        if satisfied || any_error || last_read || now >= deadline || watchers.is_empty() {
            for (slot, p) in parts {
                topics[slot].partitions.push(p);
            }
            count_bytes_out(&topics);
            let out = FetchOut {
                topics,
                node_endpoints: endpoints,
                ..Default::default()
            };
            return Ok(fetch_encoder::encode(ctx.correlation_id, version, &out));
        }
        let changes = watchers.iter_mut().map(|w| Box::pin(w.changed()));
        match tokio::time::timeout_at(deadline, select_all(changes)).await {
            Ok((Ok(()), _, _)) => {}
            Ok((Err(_), _, _)) | Err(_) => {
                last_read = true;
                continue;
            }
        }
        for w in &mut watchers {
            w.borrow_and_update();
        }
    }
}

/// Reads every wanted partition once within the response budget; the partition decides which
/// tier answers.
async fn read_all(
    wanted: &[Wanted],
    max_bytes: i32,
    read_committed: bool,
    throttle: &crate::replica::throttle::Quota,
) -> (Vec<(usize, PartitionOut)>, usize, bool) {
    let mut budget = max_bytes.max(0) as u64;
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut p = PartitionOut {
            read_committed,
            ..PartitionOut::new(w.partition_index)
        };
        p.current_leader = w.current_leader;
        match (&w.partition, w.error) {
            (partition, Some(e)) => {
                p.error_code = e;
                if e == code(ResponseError::OffsetMovedToTieredStorage)
                    && let Some(partition) = partition
                {
                    p.high_watermark = partition.high_watermark();
                    p.last_stable_offset = p.high_watermark;
                    p.log_start_offset = partition.log_start_offset();
                }
                any_error = true;
            }
            (Some(partition), None) if w.diverging.is_some() => {
                p.diverging_epoch = w.diverging;
                p.high_watermark = partition.high_watermark();
                p.last_stable_offset = p.high_watermark;
                p.log_start_offset = partition.log_start_offset();
                any_error = true;
            }
            (None, None) => {
                p.error_code = code(ResponseError::UnknownTopicOrPartition);
                any_error = true;
            }
            (Some(partition), None) if w.throttled && !throttle.available() => {
                // The leader's quota for throttled copies is spent: this round, none.
                p.high_watermark = partition.high_watermark();
                p.last_stable_offset = p.high_watermark;
                p.log_start_offset = partition.log_start_offset();
            }
            (Some(partition), None) => {
                let limit = (w.partition_max_bytes.max(0) as u64).min(budget) as u32;
                // Only the first data in the response may exceed the limits (KIP-74).
                let at_least_one = total == 0;
                match partition
                    .fetch_for(w.reader, w.fetch_offset, limit, at_least_one)
                    .await
                {
                    Ok(f) => {
                        p.high_watermark = f.high_watermark;
                        p.last_stable_offset = f.last_stable_offset;
                        p.log_start_offset = f.log_start_offset;
                        total += f.records.len();
                        budget = budget.saturating_sub(f.records.len() as u64);
                        if w.throttled {
                            throttle.record(f.records.len() as u64);
                        }
                        p.records = match f.records {
                            Records::None => RecordsOut::Empty,
                            Records::File(region) => RecordsOut::File(region),
                            Records::Memory(bytes) => RecordsOut::Memory(bytes),
                        };
                    }
                    Err(FetchError::OffsetOutOfRange {
                        log_start, log_end, ..
                    }) => {
                        p.error_code = code(ResponseError::OffsetOutOfRange);
                        p.high_watermark = log_end;
                        p.last_stable_offset = log_end;
                        p.log_start_offset = log_start;
                        any_error = true;
                    }
                    Err(FetchError::Storage(_)) => {
                        p.error_code = code(ResponseError::KafkaStorageError);
                        any_error = true;
                    }
                }
            }
        }
        out.push((w.topic_slot, p));
    }
    (out, total, any_error)
}

/// Counts the record bytes of an answered fetch per topic.
fn count_bytes_out(topics: &[TopicOut]) {
    let m = crate::metrics::get();
    for t in topics {
        let bytes: usize = t.partitions.iter().map(|p| p.records.len()).sum();
        if bytes > 0 {
            m.bytes_out
                .with_label_values(&[t.name.as_str()])
                .inc_by(bytes as u64);
        }
    }
}
