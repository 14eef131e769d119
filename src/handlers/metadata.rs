//! Metadata and DescribeCluster: which brokers are live, which topics and partitions exist and
//! where their leader is. On a single node this broker leads every partition with itself as the
//! only replica; in a cluster the quorum's metadata says.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{cluster, code, topic_error_code};
use crate::broker::Broker;
use crate::protocol::RequestContext;
use crate::replica::{Topic, topic::validate_name};

fn topic_entry(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions = (0..topic.partition_count())
        .filter_map(|index| {
            let local = topic.partition(index);
            let l = cluster::leadership(broker, topic.id, index, local.as_deref())?;
            let error = if l.leader < 0 {
                code(ResponseError::LeaderNotAvailable)
            } else {
                0
            };
            Some(
                MetadataResponsePartition::default()
                    .with_error_code(error)
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(l.leader))
                    .with_leader_epoch(l.leader_epoch)
                    .with_replica_nodes(ids(&l.replicas))
                    .with_isr_nodes(ids(&l.in_sync))
                    .with_offline_replicas(ids(&l.offline)),
            )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}

fn error_entry(name: Option<&str>, id: uuid::Uuid, error: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
        .with_topic_id(id)
        .with_error_code(error)
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> MetadataResponse {
    let brokers = cluster::live_brokers(broker, &ctx.listener)
        .into_iter()
        .map(|e| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(e.id))
                .with_host(StrBytes::from_string(e.host))
                .with_port(e.port)
                .with_rack(e.rack.map(StrBytes::from_string))
        })
        .collect();
    // v0 uses an empty list for "all topics"; later versions use null.
    let wanted = match req.topics {
        None => None,
        Some(t) if t.is_empty() && ctx.version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create =
        broker.config.log.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match wanted {
        None => {
            for t in broker.replicas.topics() {
                topics.push(topic_entry(broker, &t));
            }
        }
        Some(requested) => {
            for rt in requested {
                let name = rt.name.as_ref().map(|n| n.0.to_string());
                let found = match &name {
                    Some(n) => broker.replicas.topic(n),
                    None => broker.replicas.topic_by_id(rt.topic_id),
                };
                if let Some(t) = found {
                    topics.push(topic_entry(broker, &t));
                    continue;
                }
                let Some(n) = name else {
                    topics.push(error_entry(
                        None,
                        rt.topic_id,
                        code(ResponseError::UnknownTopicId),
                    ));
                    continue;
                };
                if let Err(e) = validate_name(&n) {
                    topics.push(error_entry(Some(&n), rt.topic_id, topic_error_code(&e)));
                    continue;
                }
                if !auto_create {
                    topics.push(error_entry(
                        Some(&n),
                        rt.topic_id,
                        code(ResponseError::UnknownTopicOrPartition),
                    ));
                    continue;
                }
                match broker.replicas.auto_create(&n).await {
                    Ok(t) => {
                        tracing::info!(topic = %n, "auto-created topic");
                        topics.push(topic_entry(broker, &t));
                    }
                    Err(e) => topics.push(error_entry(Some(&n), rt.topic_id, topic_error_code(&e))),
                }
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(cluster::controller_id(broker)))
        .with_topics(topics)
}

pub async fn describe_cluster(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let brokers = cluster::live_brokers(broker, &ctx.listener)
        .into_iter()
        .map(|e| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(e.id))
                .with_host(StrBytes::from_string(e.host))
                .with_port(e.port)
                .with_rack(e.rack.map(StrBytes::from_string))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(cluster::controller_id(broker)))
        .with_brokers(brokers)
}

/// The metadata log's topic as Kafka's tools name it.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeQuorum: the controller quorum's leader, its term and every voter's progress, as
/// its leader reports them (`kafka-metadata-quorum describe --status / --replication`). A
/// single node is a quorum of one over its own metadata log.
pub async fn describe_quorum(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    use kafka_protocol::messages::describe_quorum_response::{
        Listener, Node, PartitionData, ReplicaState, TopicData,
    };
    let described = match broker.controller.get() {
        Some(c) => match c.describe_quorum(std::time::Duration::from_secs(5)).await {
            Ok(d) => Ok((d, c.voter_addresses())),
            Err(e) => Err(e.to_string()),
        },
        None => {
            let end = broker.metadata.read(|s| s.last_index) as i64 + 1;
            let now = crate::util::now_ms();
            Ok((
                crate::controller::QuorumDescription {
                    leader: broker.node_id as u64,
                    term: 1,
                    high_watermark: end,
                    voters: vec![crate::controller::VoterState {
                        node_id: broker.node_id as u64,
                        log_end_offset: end,
                        last_caught_up_ms: now,
                        last_fetch_ms: now,
                    }],
                    observers: Vec::new(),
                },
                Vec::new(),
            ))
        }
    };
    let (d, addresses) = match described {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "DescribeQuorum: no answer from the controller leader");
            return DescribeQuorumResponse::default()
                .with_error_code(code(ResponseError::NotLeaderOrFollower))
                .with_error_message(super::msg(e));
        }
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let known = t.topic_name.0.as_str() == METADATA_TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    if !known || p.partition_index != 0 {
                        return PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code(ResponseError::UnknownTopicOrPartition));
                    }
                    let states = |members: &[crate::controller::VoterState]| {
                        members
                            .iter()
                            .map(|v| {
                                ReplicaState::default()
                                    .with_replica_id(BrokerId(v.node_id as i32))
                                    .with_log_end_offset(v.log_end_offset)
                                    .with_last_fetch_timestamp(v.last_fetch_ms)
                                    .with_last_caught_up_timestamp(v.last_caught_up_ms)
                            })
                            .collect::<Vec<_>>()
                    };
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(d.leader as i32))
                        .with_leader_epoch(d.term as i32)
                        .with_high_watermark(d.high_watermark)
                        .with_current_voters(states(&d.voters))
                        .with_observers(states(&d.observers))
                })
                .collect();
            TopicData::default()
                .with_topic_name(t.topic_name)
                .with_partitions(partitions)
        })
        .collect();
    let resp = DescribeQuorumResponse::default().with_topics(topics);
    if ctx.version < 2 {
        return resp;
    }
    let nodes = addresses
        .into_iter()
        .filter_map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            Some(
                Node::default()
                    .with_node_id(BrokerId(id as i32))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(StrBytes::from_static_str("CONTROLLER"))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(port.parse().ok()?),
                    ]),
            )
        })
        .collect();
    resp.with_nodes(nodes)
}

/// DescribeLogDirs: this broker's one log directory (the data directory) with the size of every
/// partition it holds, leader or follower, and the file system's total and usable bytes
/// (`kafka-log-dirs`, and `kafka-reassign-partitions`, which asks where replicas live).
pub async fn describe_log_dirs(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: kafka_protocol::messages::DescribeLogDirsRequest,
) -> kafka_protocol::messages::DescribeLogDirsResponse {
    use kafka_protocol::messages::describe_log_dirs_response::{
        DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
    };
    let wanted: Option<std::collections::HashMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut topics = Vec::new();
    for t in broker.replicas.topics() {
        let asked = match &wanted {
            None => None,
            Some(w) => match w.get(&t.name) {
                Some(ps) => Some(ps),
                None => continue,
            },
        };
        let partitions: Vec<DescribeLogDirsPartition> = t
            .partitions()
            .iter()
            .filter(|p| asked.is_none_or(|ps| ps.contains(&p.index)))
            .map(|p| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index)
                    .with_partition_size(p.size_bytes() as i64)
                    .with_offset_lag((p.high_watermark() - p.log_end_offset()).max(0))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    let dir = broker.config.data_dir.clone();
    let (total, usable) = match nix::sys::statvfs::statvfs(&dir) {
        Ok(s) => (
            (s.blocks() as i64).saturating_mul(s.fragment_size() as i64),
            (s.blocks_available() as i64).saturating_mul(s.fragment_size() as i64),
        ),
        Err(_) => (-1, -1),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    kafka_protocol::messages::DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_string(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total)
            .with_usable_bytes(usable),
    ])
}
