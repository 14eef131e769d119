//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{code, msg, topic_error_code};
use crate::broker::Broker;
use crate::config::topic::TopicConfigs;
use crate::protocol::RequestContext;
use crate::replica::TopicError;

fn failed(name: TopicName, error: i16, message: String) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(name)
        .with_error_code(error)
        .with_error_message(msg(message))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

pub async fn create_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        if duplicates.contains(&name) {
            results.push(failed(
                t.name,
                code(ResponseError::InvalidRequest),
                format!("topic '{name}' appears more than once in the request"),
            ));
            continue;
        }
        let mut partitions = t.num_partitions;
        let mut replication = t.replication_factor;
        if !t.assignments.is_empty() {
            if partitions != -1 || replication != -1 {
                results.push(failed(
                    t.name,
                    code(ResponseError::InvalidRequest),
                    "both partition count/replication factor and replica assignments were given"
                        .into(),
                ));
                continue;
            }
            let bad = t
                .assignments
                .iter()
                .enumerate()
                .any(|(i, a)| a.partition_index != i as i32);
            if bad {
                results.push(failed(
                    t.name,
                    code(ResponseError::InvalidReplicaAssignment),
                    "replica assignments must name partitions 0..n in order".into(),
                ));
                continue;
            }
            partitions = t.assignments.len() as i32;
            replication = t.assignments[0].broker_ids.len() as i16;
        }
        if let Some(c) = t.configs.iter().find(|c| c.value.is_none()) {
            results.push(failed(
                t.name,
                code(ResponseError::InvalidConfig),
                format!(
                    "null value is not allowed for topic config {}",
                    c.name.as_str()
                ),
            ));
            continue;
        }
        let configs = match TopicConfigs::from_pairs(
            t.configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str()))),
        ) {
            Ok(c) => c,
            Err(e) => {
                let e = TopicError::Config(e);
                results.push(failed(t.name, topic_error_code(&e), e.to_string()));
                continue;
            }
        };
        let created = if t.assignments.is_empty() {
            broker
                .replicas
                .create_topic(&name, partitions, replication, configs, req.validate_only)
                .await
        } else {
            let assignment = t
                .assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect();
            broker
                .replicas
                .create_assigned_topic(&name, assignment, configs, req.validate_only)
                .await
        };
        match created {
            Ok(topic) => {
                if !req.validate_only {
                    tracing::info!(topic = %name, partitions = topic.partition_count(), "created topic");
                }
                let described = topic
                    .configs
                    .describe(&broker.config.log)
                    .into_iter()
                    .map(|d| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(d.name))
                            .with_value(Some(StrBytes::from_string(d.value)))
                            .with_config_source(d.source.code())
                    })
                    .collect();
                results.push(
                    CreatableTopicResult::default()
                        .with_name(t.name)
                        .with_topic_id(topic.id)
                        .with_num_partitions(topic.partition_count())
                        // -1 asked for the default, one replica.
                        .with_replication_factor(replication.max(1))
                        .with_configs((ctx.version >= 5).then_some(described)),
                );
            }
            Err(e) => {
                if matches!(e, TopicError::Io(_)) {
                    tracing::error!(topic = %name, error = %e, "topic creation failed");
                }
                results.push(failed(t.name, topic_error_code(&e), e.to_string()));
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; earlier versions by name only.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let name = match name {
            Some(n) => Some(n),
            None => broker.replicas.topic_by_id(id).map(|t| t.name.clone()),
        };
        let r = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        let Some(name) = name else {
            responses.push(
                r.with_error_code(code(ResponseError::UnknownTopicId))
                    .with_error_message(msg(format!("unknown topic id {id}"))),
            );
            continue;
        };
        match broker.replicas.delete_topic(&name).await {
            Ok(deleted_id) => {
                tracing::info!(topic = %name, "deleted topic");
                responses.push(r.with_topic_id(deleted_id));
            }
            Err(e) => responses.push(
                r.with_error_code(topic_error_code(&e))
                    .with_error_message(msg(e.to_string())),
            ),
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if let Some(assignments) = &t.assignments
            && assignments
                .iter()
                .any(|a| a.broker_ids.iter().map(|b| b.0).ne([broker.node_id]))
        {
            results.push(
                r.with_error_code(code(ResponseError::InvalidReplicaAssignment))
                    .with_error_message(msg(format!(
                        "new partitions can only be placed on broker {}",
                        broker.node_id
                    ))),
            );
            continue;
        }
        match broker
            .replicas
            .create_partitions(&name, t.count, req.validate_only)
            .await
        {
            Ok(()) => results.push(r),
            Err(e) => results.push(
                r.with_error_code(topic_error_code(&e))
                    .with_error_message(msg(e.to_string())),
            ),
        }
    }
    CreatePartitionsResponse::default().with_results(results)
}
