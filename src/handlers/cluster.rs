//! The cluster as handlers answer about it: which brokers are live, who is the active
//! controller, who leads a partition, and what a request for a partition this broker does not
//! lead is told. On a single node the answers are this broker for everything.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::Broker;
use crate::metadata::MetadataRecord;
use crate::metadata::placement;
use crate::metadata::placement::ElectionRefused;
use crate::protocol::RequestContext;
use crate::replica::Partition;

/// A broker as clients are told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Replicas and leadership of one partition as Metadata reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// Replicas on live brokers (one replica per partition so far: the leader, when live).
    pub in_sync: Vec<i32>,
    pub offline: Vec<i32>,
}

/// The address of `listener` among `endpoints`, else `fallback` (the registered inter-broker
/// address: a broker registered before it advertised its listeners).
fn listener_address(
    endpoints: Option<&Vec<crate::metadata::ListenerEndpoint>>,
    listener: &str,
    fallback: (&str, i32),
) -> (String, i32) {
    endpoints
        .and_then(|all| all.iter().find(|e| e.name == listener))
        .map(|e| (e.host.clone(), e.port))
        .unwrap_or_else(|| (fallback.0.to_string(), fallback.1))
}

/// Broker `id` of the cluster's metadata as clients of `listener` are told about it.
fn registered_endpoint(
    s: &crate::metadata::MetadataState,
    id: i32,
    b: &crate::metadata::BrokerState,
    listener: &str,
) -> Endpoint {
    let (host, port) = listener_address(s.broker_listeners.get(&id), listener, (&b.host, b.port));
    Endpoint {
        id,
        host,
        port,
        rack: b.rack.clone(),
    }
}

/// Every live broker, this one first when it is live, with the address of `listener` (the
/// listener the asking client came in on).
pub fn live_brokers(broker: &Broker, listener: &str) -> Vec<Endpoint> {
    if !broker.replicas.is_clustered() {
        let rack = broker.config.cluster.rack.trim();
        let (host, port) = listener_address(
            broker.listeners.get(),
            listener,
            (&broker.advertised.0, broker.advertised.1),
        );
        return vec![Endpoint {
            id: broker.node_id,
            host,
            port,
            rack: (!rack.is_empty()).then(|| rack.to_string()),
        }];
    }
    broker.metadata.read(|s| {
        placement::live_brokers(s)
            .into_iter()
            .map(|(id, b)| registered_endpoint(s, id, b, listener))
            .collect()
    })
}

/// The endpoint of broker `id` on `listener`, live or not.
pub fn endpoint(broker: &Broker, id: i32, listener: &str) -> Option<Endpoint> {
    if !broker.replicas.is_clustered() {
        return live_brokers(broker, listener)
            .into_iter()
            .find(|e| e.id == id);
    }
    broker.metadata.read(|s| {
        s.brokers
            .get(&id)
            .map(|b| registered_endpoint(s, id, b, listener))
    })
}

/// The controller id clients are told: the active controller when it is a live broker, else
/// this broker. Clients send admin requests to "the controller" through its Kafka listener, which
/// a controller-only node does not have (Kafka answers with a live broker in that case too); any
/// broker takes them and proposes to the quorum.
pub fn controller_id(broker: &Broker) -> i32 {
    let Some(c) = broker.controller.get() else {
        return broker.node_id;
    };
    let leader = c.status().leader.map(|l| l as i32);
    let live = |id: i32| {
        broker
            .metadata
            .read(|s| s.brokers.get(&id).is_some_and(|b| !b.fenced))
    };
    match leader {
        Some(l) if live(l) => l,
        _ => broker.node_id,
    }
}

/// Who leads partition `index` of topic `id`; `local` is the partition when this broker holds
/// it (a single node's answer comes from it).
pub fn leadership(
    broker: &Broker,
    id: Uuid,
    index: i32,
    local: Option<&Partition>,
) -> Option<Leadership> {
    if !broker.replicas.is_clustered() {
        let p = local?;
        return Some(Leadership {
            leader: broker.node_id,
            leader_epoch: p.leader_epoch(),
            replicas: vec![broker.node_id],
            in_sync: vec![broker.node_id],
            offline: Vec::new(),
        });
    }
    broker.metadata.read(|s| {
        let p = s.placements.get(&id)?.get(&index)?;
        let live = |b: &i32| s.brokers.get(b).is_some_and(|b| !b.fenced);
        Some(Leadership {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            replicas: p.replicas.clone(),
            in_sync: p.isr.clone(),
            offline: p.replicas.iter().copied().filter(|b| !live(b)).collect(),
        })
    })
}

/// Where a client should go for a partition this broker does not lead: the leader's id and
/// epoch (-1, -1 when unknown) and its endpoint (KIP-951).
pub fn current_leader(
    broker: &Broker,
    id: Uuid,
    index: i32,
    listener: &str,
) -> (i32, i32, Option<Endpoint>) {
    match leadership(broker, id, index, None) {
        Some(l) if l.leader >= 0 => (
            l.leader,
            l.leader_epoch,
            endpoint(broker, l.leader, listener),
        ),
        Some(l) => (-1, l.leader_epoch, None),
        None => (-1, -1, None),
    }
}

/// Whether partition `index` of a topic with `count` partitions exists but is not served
/// here: it lives on another broker, or this broker holds it without leading it.
pub fn led_elsewhere(local: Option<&Partition>, index: i32, count: i32) -> bool {
    match local {
        Some(p) => !p.is_leader(),
        None => (0..count).contains(&index),
    }
}

/// Where group `group` is coordinated: the leader of its `__consumer_offsets` partition (made
/// on first use, placed across the live brokers). A single node coordinates every group.
pub async fn coordinator_of(broker: &Broker, group: &str, listener: &str) -> Result<Endpoint, i16> {
    use kafka_protocol::error::ResponseError;
    if !broker.replicas.is_clustered() {
        return live_brokers(broker, listener)
            .into_iter()
            .next()
            .ok_or(ResponseError::CoordinatorNotAvailable.code());
    }
    if broker.replicas.topic(placement::OFFSETS_TOPIC).is_none()
        && broker
            .metadata
            .read(|s| !s.topics.contains_key(placement::OFFSETS_TOPIC))
    {
        match broker
            .replicas
            .create_topic(
                placement::OFFSETS_TOPIC,
                broker.config.cluster.offsets_partitions,
                // Committed offsets live in it: as many replicas as there are brokers, up to 3.
                broker
                    .metadata
                    .read(|s| placement::live_brokers(s).len())
                    .clamp(1, 3) as i16,
                Default::default(),
                false,
            )
            .await
        {
            Ok(_) | Err(crate::replica::TopicError::AlreadyExists(_)) => {
                tracing::info!(
                    partitions = broker.config.cluster.offsets_partitions,
                    "created the group coordinators' topic {}",
                    placement::OFFSETS_TOPIC
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot create {}", placement::OFFSETS_TOPIC);
                return Err(ResponseError::CoordinatorNotAvailable.code());
            }
        }
    }
    let leader = broker.metadata.read(|s| {
        let t = s.topics.get(placement::OFFSETS_TOPIC)?;
        let p = placement::offsets_partition(group, t.partitions);
        s.placements.get(&t.id)?.get(&p).map(|p| p.leader)
    });
    match leader {
        Some(l) if l >= 0 => {
            endpoint(broker, l, listener).ok_or(ResponseError::CoordinatorNotAvailable.code())
        }
        _ => Err(ResponseError::CoordinatorNotAvailable.code()),
    }
}

/// Whether this broker coordinates `group` now (always on a single node): it leads the group's
/// offsets partition and has taken that leadership up.
pub fn is_coordinator(broker: &Broker, group: &str) -> bool {
    if !broker.replicas.is_clustered() {
        return true;
    }
    let Some(topic) = broker.replicas.topic(placement::OFFSETS_TOPIC) else {
        return false;
    };
    let p = placement::offsets_partition(group, topic.partition_count());
    topic.partition(p).is_some_and(|p| p.is_leader())
}

/// NOT_COORDINATOR for a group another broker coordinates, COORDINATOR_LOAD_IN_PROGRESS while
/// this one reads the group's offsets partition, else 0.
pub fn coordinator_error(broker: &Broker, group: &str) -> i16 {
    if is_coordinator(broker, group) {
        broker.groups.readiness(group)
    } else {
        kafka_protocol::error::ResponseError::NotCoordinator.code()
    }
}

/// ElectLeaders (`kafka-leader-election`): preferred elections move leadership to each asked
/// partition's first replica when it is live and in sync; unclean ones give a partition without
/// a live leader any live replica. Elections are proposed together, each against the partition
/// epoch it was computed from (a change that landed first wins), and answered from the state
/// that results. A single node leads everything already: `ELECTION_NOT_NEEDED`.
pub async fn elect_leaders(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let preferred = ctx.version == 0 || req.election_type == 0;
    let error = |code: ResponseError, message: &str| {
        PartitionResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    };
    // The asked partitions by topic name (None: every partition of every topic).
    let asked: Vec<(String, Vec<i32>)> = match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect(),
        None => broker.metadata.read(|s| {
            s.topics
                .values()
                .map(|t| (t.name.clone(), (0..t.partitions).collect()))
                .collect()
        }),
    };
    // (topic, partition, the topic id and the leader proposed, or why none is)
    type Planned = (String, i32, Result<(Uuid, i32), ElectionRefused>);
    let mut plans: Vec<Planned> = Vec::new();
    let mut records = Vec::new();
    broker.metadata.read(|s| {
        for (name, partitions) in &asked {
            for p in partitions {
                let outcome = match s.topics.get(name) {
                    None => Err(ElectionRefused::UnknownPartition),
                    Some(_) if !broker.replicas.is_clustered() => Err(ElectionRefused::NotNeeded),
                    Some(t) => placement::elect_leader(s, t.id, *p, preferred).map(|next| {
                        let leader = next.leader;
                        records.push(MetadataRecord::PartitionsSet {
                            id: t.id,
                            partitions: vec![(*p, next)],
                        });
                        (t.id, leader)
                    }),
                };
                plans.push((name.clone(), *p, outcome));
            }
        }
    });
    let mut failed = None;
    if !records.is_empty()
        && let Err(e) = broker.metadata.append(records).await
    {
        tracing::warn!(error = %e, "leader elections were not committed");
        failed = Some(e.to_string());
    }
    let mut by_topic: Vec<ReplicaElectionResult> = Vec::new();
    for (name, p, outcome) in plans {
        let mut result = match outcome {
            Ok((id, leader)) => match &failed {
                Some(e) => error(ResponseError::RequestTimedOut, e),
                None => {
                    let now = broker
                        .metadata
                        .read(|s| s.placement(id, p).map(|pl| pl.leader));
                    if now == Some(leader) {
                        PartitionResult::default()
                    } else {
                        error(
                            ResponseError::ElectionNotNeeded,
                            "another change of the partition came first; look again",
                        )
                    }
                }
            },
            Err(ElectionRefused::UnknownPartition) => error(
                ResponseError::UnknownTopicOrPartition,
                "unknown topic or partition",
            ),
            Err(ElectionRefused::NotNeeded) => error(
                ResponseError::ElectionNotNeeded,
                if preferred {
                    "the preferred replica leads already"
                } else {
                    "the partition has a live leader"
                },
            ),
            Err(ElectionRefused::PreferredNotAvailable) => error(
                ResponseError::PreferredLeaderNotAvailable,
                "the preferred replica is not live or not in sync",
            ),
            Err(ElectionRefused::NoEligibleLeader) => error(
                ResponseError::EligibleLeadersNotAvailable,
                "no live replica can lead",
            ),
        };
        result.partition_id = p;
        match by_topic.iter_mut().find(|t| t.topic.0.as_str() == name) {
            Some(t) => t.partition_result.push(result),
            None => by_topic.push(
                ReplicaElectionResult::default()
                    .with_topic(kafka_protocol::messages::TopicName(StrBytes::from_string(
                        name,
                    )))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(by_topic)
}
