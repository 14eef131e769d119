//! Produce and InitProducerId.
//!
//! Batches are validated (sizes, magic, CRC32C, record counts) before the partition lock is
//! taken, then appended as received. A partition's failure is reported with its precise Kafka
//! error and never counts as a success: an error code of 0 always means the data is in the log.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    BrokerId, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{cluster, code, msg};
use crate::broker::Broker;
use crate::protocol::RequestContext;
use crate::replica::{
    AppendError, AppendInfo, BatchError, CommitWait, Partition, ProducerError, split_batches,
};

fn batch_error_code(e: &BatchError) -> i16 {
    code(match e {
        BatchError::Truncated(..)
        | BatchError::InvalidLength(_)
        | BatchError::CrcMismatch { .. } => ResponseError::CorruptMessage,
        BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        BatchError::InvalidRecordCount { .. } | BatchError::ControlBatch => {
            ResponseError::InvalidRecord
        }
        BatchError::UnknownCompression(_) => ResponseError::UnsupportedCompressionType,
    })
}

fn append_error_code(e: &AppendError) -> i16 {
    match e {
        AppendError::Batch(b) => batch_error_code(b),
        AppendError::TooLarge { .. } => code(ResponseError::MessageTooLarge),
        AppendError::Producer(ProducerError::OutOfOrder { .. }) => {
            code(ResponseError::OutOfOrderSequenceNumber)
        }
        AppendError::Producer(ProducerError::StaleEpoch { .. }) => {
            code(ResponseError::InvalidProducerEpoch)
        }
        AppendError::InvalidTimestamp { .. } => code(ResponseError::InvalidTimestamp),
        AppendError::Io(_) | AppendError::Offline(_) => code(ResponseError::KafkaStorageError),
    }
}

fn partition_error(index: i32, error: i16, message: String) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(msg(message))
}

fn partition_ok(index: i32, info: AppendInfo) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(info.base_offset)
        .with_log_append_time_ms(info.log_append_time)
        .with_log_start_offset(info.log_start_offset)
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> ProduceResponse {
    let now = crate::util::now_ms();
    let acks_valid = matches!(req.acks, -1..=1);
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Endpoints of the leaders named in NOT_LEADER_OR_FOLLOWER answers (KIP-951).
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    let mut waits: Vec<Waiting> = Vec::new();
    for td in req.topic_data {
        let by_id = ctx.version >= 13;
        let topic = if by_id {
            broker.replicas.topic_by_id(td.topic_id)
        } else {
            broker.replicas.topic(td.name.0.as_str())
        };
        let mut partitions = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            let index = pd.index;
            if !acks_valid {
                partitions.push(partition_error(
                    index,
                    code(ResponseError::InvalidRequiredAcks),
                    format!("acks must be -1, 0 or 1, not {}", req.acks),
                ));
                continue;
            }
            if req.transactional_id.is_some() {
                partitions.push(partition_error(
                    index,
                    code(ResponseError::InvalidRecord),
                    "transactions are not supported by this broker".into(),
                ));
                continue;
            }
            let Some(topic) = &topic else {
                let e = if by_id {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                partitions.push(partition_error(index, code(e), "unknown topic".into()));
                continue;
            };
            let local = topic.partition(index);
            if cluster::led_elsewhere(local.as_deref(), index, topic.partition_count()) {
                let (leader, epoch, at) =
                    cluster::current_leader(broker, topic.id, index, &ctx.listener);
                if let Some(e) = at
                    && !endpoints.iter().any(|n: &NodeEndpoint| n.node_id.0 == e.id)
                {
                    endpoints.push(
                        NodeEndpoint::default()
                            .with_node_id(BrokerId(e.id))
                            .with_host(StrBytes::from_string(e.host))
                            .with_port(e.port)
                            .with_rack(e.rack.map(StrBytes::from_string)),
                    );
                }
                partitions.push(
                    partition_error(
                        index,
                        code(ResponseError::NotLeaderOrFollower),
                        format!(
                            "broker {} does not lead {}-{index}; broker {leader} does",
                            broker.node_id, topic.name
                        ),
                    )
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(epoch),
                    ),
                );
                continue;
            }
            let Some(partition) = local else {
                partitions.push(partition_error(
                    index,
                    code(ResponseError::UnknownTopicOrPartition),
                    format!("topic {} has no partition {index}", topic.name),
                ));
                continue;
            };
            let records = pd.records.unwrap_or_default();
            if records.is_empty() {
                partitions.push(partition_error(
                    index,
                    code(ResponseError::InvalidRecord),
                    "produce request holds no record batch".into(),
                ));
                continue;
            }
            let batches = match split_batches(&records) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(topic = %topic.name, partition = index, error = %e, "refused batch");
                    partitions.push(partition_error(index, batch_error_code(&e), e.to_string()));
                    continue;
                }
            };
            if batches.iter().any(|(h, _)| h.is_transactional()) {
                partitions.push(partition_error(
                    index,
                    code(ResponseError::InvalidRecord),
                    "transactional batches are not supported by this broker".into(),
                ));
                continue;
            }
            let min_isr = if req.acks == -1 {
                topic.configs.min_insync_replicas(&broker.config.log)
            } else {
                1
            };
            if req.acks == -1 {
                let isr = in_sync_count(broker, &partition, topic.id, index);
                if isr < min_isr {
                    partitions.push(partition_error(
                        index,
                        code(ResponseError::NotEnoughReplicas),
                        format!(
                            "{isr} in-sync replica{} of {}-{index}, min.insync.replicas is {min_isr}",
                            if isr == 1 { "" } else { "s" },
                            topic.name
                        ),
                    ));
                    continue;
                }
            }
            if let Err(message) = broker.disk_space.admit(records.len() as u64) {
                partitions.push(partition_error(
                    index,
                    code(ResponseError::KafkaStorageError),
                    message,
                ));
                continue;
            }
            match partition.append(&batches, now) {
                Ok(info) => {
                    if !info.duplicate {
                        crate::metrics::get()
                            .bytes_in
                            .with_label_values(&[topic.name.as_str()])
                            .inc_by(records.len() as u64);
                    }
                    let target = info.last_offset + 1;
                    if req.acks == -1
                        && (partition.high_watermark() < target || partition.isr_count() < min_isr)
                    {
                        // acks=all: answered once every in-sync replica has the batch.
                        waits.push(Waiting {
                            topic: responses.len(),
                            slot: partitions.len(),
                            partition: partition.clone(),
                            target,
                            min_isr,
                        });
                    }
                    partitions.push(partition_ok(index, info))
                }
                Err(e) => {
                    let c = if partition.is_deleted() {
                        code(ResponseError::UnknownTopicOrPartition)
                    } else {
                        append_error_code(&e)
                    };
                    if matches!(e, AppendError::Io(_) | AppendError::Offline(_))
                        && !partition.is_deleted()
                    {
                        tracing::error!(topic = %topic.name, partition = index, error = %e, "append failed");
                        // A full disk is noticed at once, not at the next poll.
                        broker.disk_space.poll();
                    }
                    partitions.push(partition_error(index, c, e.to_string()));
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_topic_id(td.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if !waits.is_empty() {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
        let outcomes = futures::future::join_all(
            waits
                .iter()
                .map(|w| await_replication(&w.partition, w.target, w.min_isr, deadline)),
        )
        .await;
        for (w, outcome) in waits.iter().zip(outcomes) {
            if let Err((error, message)) = outcome {
                let r = &mut responses[w.topic].partition_responses[w.slot];
                *r = partition_error(r.index, code(error), message);
            }
        }
    }
    ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(endpoints)
}

/// How many replicas are in sync, as the partition and the applied metadata agree: the
/// metadata can show a shrunk in-sync set a moment before the partition takes it, and a client
/// that saw it there must not get an `acks=all` append through. Members silent for longer than
/// `replica_lag_time_max_ms` do not count, even before the controller drops them (it may be
/// out of reach).
fn in_sync_count(broker: &Broker, partition: &Partition, topic: Uuid, index: i32) -> i64 {
    // Never more than the partition's in-sync set; one look at it (a lock, unless alone).
    let max_lag = broker.config.cluster.replica_lag_time_max_ms as i64;
    let local = partition.caught_up_in_sync(max_lag, crate::util::now_ms());
    if local <= 1 {
        return local;
    }
    broker
        .metadata
        .read(|s| {
            s.placements
                .get(&topic)
                .and_then(|m| m.get(&index))
                .map(|p| p.isr.len() as i64)
        })
        .map_or(local, |listed| local.min(listed))
}

/// An `acks=all` append waiting for the in-sync replicas.
struct Waiting {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    target: i64,
    min_isr: i64,
}

/// Waits until the high watermark passes `target` (every in-sync replica has the records). The
/// records stay in the log whatever this answers: a producer that retries may write them twice
/// unless it is idempotent, as with Kafka.
async fn await_replication(
    p: &Partition,
    target: i64,
    min_isr: i64,
    deadline: tokio::time::Instant,
) -> Result<(), (ResponseError, String)> {
    match p.wait_committed(target, min_isr, deadline).await {
        CommitWait::Committed => Ok(()),
        CommitWait::NotLeader => Err((
            ResponseError::NotLeaderOrFollower,
            "leadership moved before the in-sync replicas had the records".into(),
        )),
        CommitWait::TooFewInSync(isr) => Err((
            ResponseError::NotEnoughReplicasAfterAppend,
            format!("the in-sync set shrank to {isr}, below min.insync.replicas {min_isr}"),
        )),
        CommitWait::TimedOut => Err((
            ResponseError::RequestTimedOut,
            "the in-sync replicas did not all get the records in time".into(),
        )),
    }
}

pub async fn init_producer_id(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        tracing::warn!(
            "refused InitProducerId with a transactional id: transactions are not supported"
        );
        return InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::InvalidRequest))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // Without a transactional id Kafka always hands out a fresh id at epoch 0.
    match broker.producer_ids.next().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot persist producer id block");
            InitProducerIdResponse::default()
                .with_error_code(code(ResponseError::KafkaStorageError))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
