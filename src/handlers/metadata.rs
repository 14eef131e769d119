//! Metadata and DescribeCluster: which topics and partitions exist and where their leader is.
//! On a single node this broker leads every partition with itself as the only replica.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{code, topic_error_code};
use crate::broker::Broker;
use crate::protocol::RequestContext;
use crate::replica::{Topic, topic::validate_name};

fn topic_entry(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id);
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
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
    let (host, port) = broker.advertised.clone();
    let brokers = vec![
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
    ];
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
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics)
}

pub async fn describe_cluster(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = broker.advertised.clone();
    DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.node_id))
                .with_host(StrBytes::from_string(host))
                .with_port(port),
        ])
}
