//! Partition reassignments (KIP-455): `AlterPartitionReassignments` starts, redirects or cancels
//! them and `ListPartitionReassignments` shows those in progress — what
//! `kafka-reassign-partitions` uses. Starting one is a metadata record; new replicas then copy
//! the leader like any follower, and the controller finishes the reassignment once they are all
//! in sync (`placement::finished_reassignments`). On a single node a partition can only be
//! "moved" to the node itself.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{code, msg};
use crate::broker::Broker;
use crate::metadata::placement::{self, ReassignRefused};
use crate::metadata::record::PartitionPlacement;
use crate::metadata::{MetadataRecord, MetadataState};
use crate::protocol::RequestContext;

/// How often a reassignment computed against a state that changed before it applied (an
/// election or an in-sync change came first) is computed again.
const ATTEMPTS: usize = 3;

type Outcome = Result<(), (ResponseError, String)>;

fn refused(e: ReassignRefused) -> (ResponseError, String) {
    match e {
        ReassignRefused::UnknownPartition => (
            ResponseError::UnknownTopicOrPartition,
            "unknown topic or partition".into(),
        ),
        ReassignRefused::NoReassignment => (
            ResponseError::NoReassignmentInProgress,
            "no reassignment of this partition is in progress".into(),
        ),
        ReassignRefused::InvalidReplicas(why) => (ResponseError::InvalidReplicaAssignment, why),
        ReassignRefused::ReplicationFactorChange => (
            ResponseError::InvalidReplicationFactor,
            "the new replicas change the replication factor, which this request does not allow"
                .into(),
        ),
    }
}

/// One partition's reassignment against `state`: the record to propose and the partition as it
/// makes it (to see afterwards whether it applied).
fn plan(
    state: &MetadataState,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_rf_change: bool,
) -> Result<(MetadataRecord, PartitionPlacement), ReassignRefused> {
    let t = state
        .topics
        .get(topic)
        .ok_or(ReassignRefused::UnknownPartition)?;
    let (placement, reassignment) =
        placement::reassign(state, t.id, partition, target, allow_rf_change)?;
    Ok((
        MetadataRecord::PartitionReassigned {
            id: t.id,
            partition,
            placement: placement.clone(),
            reassignment,
        },
        placement,
    ))
}

/// The single node's answer: its partitions live on it, and only there.
fn single_node(broker: &Broker, topic: &str, partition: i32, target: Option<&[i32]>) -> Outcome {
    let known = broker.metadata.read(|s| {
        s.topics
            .get(topic)
            .is_some_and(|t| partition < t.partitions)
    }) && partition >= 0;
    if !known {
        return Err(refused(ReassignRefused::UnknownPartition));
    }
    match target {
        None => Err(refused(ReassignRefused::NoReassignment)),
        Some([one]) if *one == broker.node_id => Ok(()),
        Some(_) => Err(refused(ReassignRefused::InvalidReplicas(format!(
            "this single node is broker {} and holds every partition alone",
            broker.node_id
        )))),
    }
}

pub async fn alter(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // (topic, partition, target) in request order.
    let asked: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; asked.len()];
    if !broker.replicas.is_clustered() {
        for (i, (topic, p, target)) in asked.iter().enumerate() {
            outcomes[i] = Some(single_node(broker, topic, *p, target.as_deref()));
        }
    }
    for _ in 0..ATTEMPTS {
        let mut planned = Vec::new();
        let mut records = Vec::new();
        broker.metadata.read(|s| {
            for (i, (topic, p, target)) in asked.iter().enumerate() {
                if outcomes[i].is_some() {
                    continue;
                }
                match plan(
                    s,
                    topic,
                    *p,
                    target.as_deref(),
                    req.allow_replication_factor_change,
                ) {
                    Ok((record, placement)) => {
                        records.push(record);
                        planned.push((i, placement));
                    }
                    Err(e) => outcomes[i] = Some(Err(refused(e))),
                }
            }
        });
        if records.is_empty() {
            break;
        }
        if let Err(e) = broker.metadata.append(records).await {
            tracing::warn!(error = %e, "partition reassignments were not committed");
            for (i, _) in planned {
                outcomes[i] = Some(Err((ResponseError::RequestTimedOut, e.to_string())));
            }
            break;
        }
        // A record computed against a state that changed before it applied is dropped; the
        // next attempt computes it again (proposing the same reassignment twice is harmless).
        broker.metadata.read(|s| {
            for (i, placement) in &planned {
                let (topic, p, _) = &asked[*i];
                let applied = s
                    .topics
                    .get(topic)
                    .and_then(|t| s.placement(t.id, *p))
                    .is_some_and(|pl| pl == placement);
                if applied {
                    outcomes[*i] = Some(Ok(()));
                }
            }
        });
    }
    let mut responses: Vec<ReassignableTopicResponse> = Vec::new();
    for ((topic, p, target), outcome) in asked.into_iter().zip(outcomes) {
        let outcome = outcome.unwrap_or_else(|| {
            Err((
                ResponseError::RequestTimedOut,
                "the partition kept changing while the reassignment was proposed; try again".into(),
            ))
        });
        let mut r = ReassignablePartitionResponse::default().with_partition_index(p);
        match outcome {
            Ok(()) => {
                tracing::info!(topic = %topic, partition = p, target = ?target, "partition reassignment accepted")
            }
            Err((e, message)) => {
                r = r.with_error_code(code(e)).with_error_message(msg(message));
            }
        }
        match responses.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(r),
            None => responses.push(
                ReassignableTopicResponse::default()
                    .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                        topic,
                    )))
                    .with_partitions(vec![r]),
            ),
        }
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

pub async fn list(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let topics = broker.metadata.read(|s| {
        let mut out = Vec::new();
        for t in s.topics.values() {
            let wanted: Option<Vec<i32>> = match &req.topics {
                None => None,
                Some(list) => match list.iter().find(|w| w.name.0.as_str() == t.name) {
                    Some(w) => Some(w.partition_indexes.clone()),
                    None => continue,
                },
            };
            let Some(ongoing) = s.reassignments.get(&t.id) else {
                continue;
            };
            let partitions: Vec<OngoingPartitionReassignment> = ongoing
                .iter()
                .filter(|(p, _)| wanted.as_ref().is_none_or(|w| w.contains(p)))
                .filter_map(|(p, r)| {
                    let pl = s.placement(t.id, *p)?;
                    Some(
                        OngoingPartitionReassignment::default()
                            .with_partition_index(*p)
                            .with_replicas(ids(&pl.replicas))
                            .with_adding_replicas(ids(&r.adding))
                            .with_removing_replicas(ids(&r.removing)),
                    )
                })
                .collect();
            if !partitions.is_empty() {
                out.push(
                    OngoingTopicReassignment::default()
                        .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                            t.name.clone(),
                        )))
                        .with_partitions(partitions),
                );
            }
        }
        out
    });
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
