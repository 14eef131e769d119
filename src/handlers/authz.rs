//! Authorization of every API against the cluster's ACLs, with Kafka's rules and error codes.
//!
//! With `[authorization] enabled = false` the broker has no authorizer and each function here
//! hands the request straight to its handler (one branch). Otherwise the parts of a request the
//! principal may not touch are answered here with `TOPIC_AUTHORIZATION_FAILED`,
//! `GROUP_AUTHORIZATION_FAILED`, `CLUSTER_AUTHORIZATION_FAILED` or
//! `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, before anything about them is looked up (a
//! principal learns nothing of a topic it may not describe), and the handler serves the rest.
//! Fetch checks its topics itself (its response is encoded as it is read).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{code, msg};
use crate::broker::Broker;
use crate::protocol::RequestContext;
use crate::security::acl::{AclOperation as Op, Authorizer, CLUSTER_NAME, ResourceType as Res};

const DENIED: &str = "Authorization failed.";

/// The authorizer as one request sees it: `None` when authorization is off.
pub struct Authz<'a> {
    acls: Option<Arc<Authorizer>>,
    ctx: &'a RequestContext,
}

impl<'a> Authz<'a> {
    pub fn of(broker: &Broker, ctx: &'a RequestContext) -> Self {
        Self {
            acls: broker.acls.as_ref().map(|c| c.current()),
            ctx,
        }
    }

    /// Whether requests are checked at all.
    pub fn on(&self) -> bool {
        self.acls.is_some()
    }

    /// May the principal do `op` on the resource `name` of `rt`?
    pub fn may(&self, op: Op, rt: Res, name: &str) -> bool {
        match &self.acls {
            None => true,
            Some(a) => a.authorize(&self.ctx.principal, &self.ctx.acl_host, op, rt, name),
        }
    }

    pub fn topic(&self, op: Op, name: &str) -> bool {
        self.may(op, Res::Topic, name)
    }

    pub fn group(&self, op: Op, name: &str) -> bool {
        self.may(op, Res::Group, name)
    }

    pub fn cluster(&self, op: Op) -> bool {
        self.may(op, Res::Cluster, CLUSTER_NAME)
    }

    pub fn transactional_id(&self, op: Op, name: &str) -> bool {
        self.may(op, Res::TransactionalId, name)
    }

    /// May the principal do `op` on at least one resource of `rt` (KIP-679)?
    pub fn on_any(&self, op: Op, rt: Res) -> bool {
        match &self.acls {
            None => true,
            Some(a) => {
                a.authorize_by_resource_type(&self.ctx.principal, &self.ctx.acl_host, op, rt)
            }
        }
    }

    /// Kafka's authorized-operations bit field of a resource: bit `code` set for each
    /// operation the resource type supports that the principal may do.
    pub fn operations(&self, rt: Res, name: &str) -> i32 {
        supported_operations(rt)
            .iter()
            .filter(|op| self.may(**op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// The operations Kafka lists for a resource type in authorized-operations fields.
pub fn supported_operations(rt: Res) -> &'static [Op] {
    match rt {
        Res::Topic => &[
            Op::Read,
            Op::Write,
            Op::Create,
            Op::Describe,
            Op::Delete,
            Op::Alter,
            Op::DescribeConfigs,
            Op::AlterConfigs,
        ],
        Res::Group => &[Op::Read, Op::Describe, Op::Delete],
        Res::Cluster => &[
            Op::Create,
            Op::ClusterAction,
            Op::DescribeConfigs,
            Op::AlterConfigs,
            Op::IdempotentWrite,
            Op::Alter,
            Op::Describe,
        ],
        Res::TransactionalId => &[Op::Describe, Op::Write],
        Res::DelegationToken => &[Op::Describe],
        Res::User => &[Op::CreateTokens, Op::DescribeTokens],
        _ => &[],
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The name of the topic with this id, if there is one.
fn name_of_id(broker: &Broker, id: uuid::Uuid) -> Option<String> {
    broker.replicas.topic_by_id(id).map(|t| t.name.clone())
}

const TOPIC_DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;
const GROUP_DENIED: ResponseError = ResponseError::GroupAuthorizationFailed;
const CLUSTER_DENIED: ResponseError = ResponseError::ClusterAuthorizationFailed;
const TXN_DENIED: ResponseError = ResponseError::TransactionalIdAuthorizationFailed;

// ---------------------------------------------------------------------------------------------
// Produce and InitProducerId

pub async fn produce(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: ProduceRequest,
) -> ProduceResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::produce::handle(broker, ctx, req).await;
    }
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !a.transactional_id(Op::Write, t.0.as_str()));
    let mut denied = Vec::new();
    let mut allowed = Vec::with_capacity(req.topic_data.len());
    for td in std::mem::take(&mut req.topic_data) {
        let name = if ctx.version >= 13 {
            name_of_id(broker, td.topic_id)
        } else {
            Some(td.name.0.to_string())
        };
        // An unknown topic id is the handler's to report.
        let error = if txn_denied {
            Some(TXN_DENIED)
        } else {
            name.filter(|n| !a.topic(Op::Write, n))
                .map(|_| TOPIC_DENIED)
        };
        match error {
            Some(e) => denied.push(
                produce_response::TopicProduceResponse::default()
                    .with_name(td.name.clone())
                    .with_topic_id(td.topic_id)
                    .with_partition_responses(
                        td.partition_data
                            .iter()
                            .map(|p| {
                                produce_response::PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_error_code(code(e))
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(-1)
                                    .with_error_message(msg(DENIED))
                            })
                            .collect(),
                    ),
            ),
            None => allowed.push(td),
        }
    }
    req.topic_data = allowed;
    let mut resp = if req.topic_data.is_empty() {
        ProduceResponse::default()
    } else {
        super::produce::handle(broker, ctx, req).await
    };
    resp.responses.extend(denied);
    resp
}

pub async fn init_producer_id(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let a = Authz::of(broker, ctx);
    if a.on() {
        let error = match &req.transactional_id {
            Some(t) if !a.transactional_id(Op::Write, t.0.as_str()) => Some(TXN_DENIED),
            Some(_) => None,
            // An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
            None if !a.cluster(Op::IdempotentWrite) && !a.on_any(Op::Write, Res::Topic) => {
                Some(CLUSTER_DENIED)
            }
            None => None,
        };
        if let Some(e) = error {
            return InitProducerIdResponse::default()
                .with_error_code(code(e))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
        }
    }
    super::produce::init_producer_id(broker, ctx, req).await
}

// ---------------------------------------------------------------------------------------------
// Offsets

pub async fn list_offsets(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::offsets::list_offsets(broker, ctx, req).await;
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| a.topic(Op::Describe, t.name.0.as_str()));
    req.topics = allowed;
    let mut resp = super::offsets::list_offsets(broker, ctx, req).await;
    resp.topics.extend(denied.into_iter().map(|t| {
        list_offsets_response::ListOffsetsTopicResponse::default()
            .with_name(t.name)
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        list_offsets_response::ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code(TOPIC_DENIED))
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1)
                    })
                    .collect(),
            )
    }));
    resp
}

pub async fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::offsets::offset_for_leader_epoch(broker, ctx, req).await;
    }
    // A follower asks as a broker: that takes CLUSTER_ACTION on the cluster.
    let follower = req.replica_id.0 >= 0;
    let cluster_denied = follower && !a.cluster(Op::ClusterAction);
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| !cluster_denied && (follower || a.topic(Op::Describe, t.topic.0.as_str())));
    let error = if cluster_denied {
        CLUSTER_DENIED
    } else {
        TOPIC_DENIED
    };
    req.topics = allowed;
    let mut resp = super::offsets::offset_for_leader_epoch(broker, ctx, req).await;
    resp.topics.extend(denied.into_iter().map(|t| {
        offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
            .with_topic(t.topic)
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        offset_for_leader_epoch_response::EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_error_code(code(error))
                            .with_leader_epoch(-1)
                            .with_end_offset(-1)
                    })
                    .collect(),
            )
    }));
    resp
}

pub async fn delete_records(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::offsets::delete_records(broker, ctx, req).await;
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| a.topic(Op::Delete, t.name.0.as_str()));
    req.topics = allowed;
    let mut resp = super::offsets::delete_records(broker, ctx, req).await;
    resp.topics.extend(denied.into_iter().map(|t| {
        delete_records_response::DeleteRecordsTopicResult::default()
            .with_name(t.name)
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        delete_records_response::DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1)
                            .with_error_code(code(TOPIC_DENIED))
                    })
                    .collect(),
            )
    }));
    resp
}

// ---------------------------------------------------------------------------------------------
// Metadata and the cluster

pub async fn metadata(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: MetadataRequest,
) -> MetadataResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::metadata::handle(broker, ctx, req).await;
    }
    let v = ctx.version;
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && v == 0,
    };
    let cluster_ops = v >= 8 && req.include_cluster_authorized_operations;
    let topic_ops = v >= 8 && req.include_topic_authorized_operations;
    let mut denied = Vec::new();
    let mut emptied = false;
    if !all && let Some(requested) = req.topics.take() {
        let auto_create =
            broker.config.log.auto_create_topics && (v < 4 || req.allow_auto_topic_creation);
        let may_create_any = auto_create && a.cluster(Op::Create);
        let mut allowed = Vec::with_capacity(requested.len());
        for t in requested {
            let name = match &t.name {
                Some(n) => Some(n.0.to_string()),
                None => name_of_id(broker, t.topic_id),
            };
            let Some(name) = name else {
                allowed.push(t); // an unknown id: the handler says so
                continue;
            };
            let ok = a.topic(Op::Describe, &name)
                && (!auto_create
                    || may_create_any
                    || broker.replicas.topic(&name).is_some()
                    || a.topic(Op::Create, &name));
            if ok {
                allowed.push(t);
            } else {
                denied.push(
                    metadata_response::MetadataResponseTopic::default()
                        .with_error_code(code(TOPIC_DENIED))
                        .with_name(t.name.clone())
                        .with_topic_id(t.topic_id)
                        .with_is_internal(false),
                );
            }
        }
        // v0 reads an empty list as "every topic".
        emptied = allowed.is_empty();
        req.topics = Some(allowed);
    }
    let mut resp = if emptied && v == 0 {
        let mut r = super::metadata::handle(broker, ctx, req).await;
        r.topics.clear();
        r
    } else {
        super::metadata::handle(broker, ctx, req).await
    };
    if all {
        // Topics the principal may not describe are left out of "every topic".
        resp.topics.retain(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| a.topic(Op::Describe, n.0.as_str()))
        });
    }
    if topic_ops {
        for t in resp.topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(n) = &t.name {
                t.topic_authorized_operations = a.operations(Res::Topic, n.0.as_str());
            }
        }
    }
    resp.topics.extend(denied);
    if cluster_ops {
        resp.cluster_authorized_operations = if a.cluster(Op::Describe) {
            a.operations(Res::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    }
    resp
}

pub async fn describe_cluster(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let a = Authz::of(broker, ctx);
    let include = req.include_cluster_authorized_operations;
    let mut resp = super::metadata::describe_cluster(broker, ctx, req).await;
    if a.on() && include {
        resp.cluster_authorized_operations = if a.cluster(Op::Describe) {
            a.operations(Res::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    }
    resp
}

pub async fn describe_quorum(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let a = Authz::of(broker, ctx);
    if !a.cluster(Op::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(code(CLUSTER_DENIED))
            .with_error_message(msg(DENIED));
    }
    super::metadata::describe_quorum(broker, ctx, req).await
}

pub async fn describe_log_dirs(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let a = Authz::of(broker, ctx);
    if !a.cluster(Op::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(code(CLUSTER_DENIED));
    }
    super::metadata::describe_log_dirs(broker, ctx, req).await
}

pub async fn elect_leaders(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let a = Authz::of(broker, ctx);
    if !a.cluster(Op::Alter) {
        let results = req
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                elect_leaders_response::ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(
                        t.partitions
                            .iter()
                            .map(|p| {
                                elect_leaders_response::PartitionResult::default()
                                    .with_partition_id(*p)
                                    .with_error_code(code(CLUSTER_DENIED))
                                    .with_error_message(msg(DENIED))
                            })
                            .collect(),
                    )
            })
            .collect();
        // v0 has no top-level error code.
        let top = if ctx.version >= 1 {
            code(CLUSTER_DENIED)
        } else {
            0
        };
        return ElectLeadersResponse::default()
            .with_error_code(top)
            .with_replica_election_results(results);
    }
    super::cluster::elect_leaders(broker, ctx, req).await
}

pub async fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let a = Authz::of(broker, ctx);
    if !a.cluster(Op::Alter) {
        let responses = req
            .topics
            .into_iter()
            .map(|t| {
                alter_partition_reassignments_response::ReassignableTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code(CLUSTER_DENIED))
                                    .with_error_message(msg(DENIED))
                            })
                            .collect(),
                    )
            })
            .collect();
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(code(CLUSTER_DENIED))
            .with_error_message(msg(DENIED))
            .with_responses(responses);
    }
    super::reassign::alter(broker, ctx, req).await
}

pub async fn list_partition_reassignments(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let a = Authz::of(broker, ctx);
    if !a.cluster(Op::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(code(CLUSTER_DENIED))
            .with_error_message(msg(DENIED));
    }
    super::reassign::list(broker, ctx, req).await
}

// ---------------------------------------------------------------------------------------------
// Topics and configs

pub async fn create_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::topics::create_topics(broker, ctx, req).await;
    }
    let on_cluster = a.cluster(Op::Create);
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| on_cluster || a.topic(Op::Create, t.name.0.as_str()));
    req.topics = allowed;
    let mut resp = super::topics::create_topics(broker, ctx, req).await;
    // Configs of a created topic are shown only to who may describe them.
    for t in resp.topics.iter_mut() {
        if t.error_code == 0 && !a.topic(Op::DescribeConfigs, t.name.0.as_str()) {
            t.topic_config_error_code = code(TOPIC_DENIED);
            t.configs = None;
        }
    }
    resp.topics.extend(denied.into_iter().map(|t| {
        create_topics_response::CreatableTopicResult::default()
            .with_name(t.name)
            .with_error_code(code(TOPIC_DENIED))
            .with_error_message(msg(DENIED))
            .with_topic_config_error_code(code(TOPIC_DENIED))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    }));
    resp
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::topics::delete_topics(broker, ctx, req).await;
    }
    let mut denied = Vec::new();
    let deny = |name: Option<TopicName>, id: uuid::Uuid| {
        delete_topics_response::DeletableTopicResult::default()
            .with_name(name)
            .with_topic_id(id)
            .with_error_code(code(TOPIC_DENIED))
            .with_error_message(msg(DENIED))
    };
    if ctx.version < 6 {
        let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topic_names)
            .into_iter()
            .partition(|n| a.topic(Op::Delete, n.0.as_str()));
        req.topic_names = allowed;
        denied.extend(
            refused
                .into_iter()
                .map(|n| deny(Some(n), uuid::Uuid::nil())),
        );
    } else {
        let mut allowed = Vec::new();
        for t in std::mem::take(&mut req.topics) {
            let name = match &t.name {
                Some(n) => Some(n.0.to_string()),
                None => name_of_id(broker, t.topic_id),
            };
            match name {
                Some(n) if !a.topic(Op::Delete, &n) => denied.push(deny(t.name, t.topic_id)),
                _ => allowed.push(t),
            }
        }
        req.topics = allowed;
    }
    let mut resp = super::topics::delete_topics(broker, ctx, req).await;
    resp.responses.extend(denied);
    resp
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::topics::create_partitions(broker, ctx, req).await;
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| a.topic(Op::Alter, t.name.0.as_str()));
    req.topics = allowed;
    let mut resp = super::topics::create_partitions(broker, ctx, req).await;
    resp.results.extend(denied.into_iter().map(|t| {
        create_partitions_response::CreatePartitionsTopicResult::default()
            .with_name(t.name)
            .with_error_code(code(TOPIC_DENIED))
            .with_error_message(msg(DENIED))
    }));
    resp
}

/// The error for a config resource the principal may not `topic_op`/`cluster_op`, if any:
/// topics need it on the topic, brokers and broker loggers on the cluster.
fn config_denial(a: &Authz<'_>, resource_type: i8, name: &str, op: Op) -> Option<ResponseError> {
    match resource_type {
        2 => (!a.topic(op, name)).then_some(TOPIC_DENIED),
        4 | 8 => (!a.cluster(op)).then_some(CLUSTER_DENIED),
        _ => None,
    }
}

pub async fn describe_configs(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::configs::describe(broker, ctx, req).await;
    }
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for r in std::mem::take(&mut req.resources) {
        match config_denial(
            &a,
            r.resource_type,
            r.resource_name.as_str(),
            Op::DescribeConfigs,
        ) {
            Some(e) => denied.push(
                describe_configs_response::DescribeConfigsResult::default()
                    .with_error_code(code(e))
                    .with_error_message(msg(DENIED))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name),
            ),
            None => allowed.push(r),
        }
    }
    req.resources = allowed;
    let mut resp = super::configs::describe(broker, ctx, req).await;
    resp.results.extend(denied);
    resp
}

pub async fn alter_configs(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::configs::alter(broker, ctx, req).await;
    }
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for r in std::mem::take(&mut req.resources) {
        match config_denial(
            &a,
            r.resource_type,
            r.resource_name.as_str(),
            Op::AlterConfigs,
        ) {
            Some(e) => denied.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code(e))
                    .with_error_message(msg(DENIED))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name),
            ),
            None => allowed.push(r),
        }
    }
    req.resources = allowed;
    let mut resp = super::configs::alter(broker, ctx, req).await;
    resp.responses.extend(denied);
    resp
}

pub async fn incremental_alter_configs(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::configs::incremental_alter(broker, ctx, req).await;
    }
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for r in std::mem::take(&mut req.resources) {
        match config_denial(
            &a,
            r.resource_type,
            r.resource_name.as_str(),
            Op::AlterConfigs,
        ) {
            Some(e) => denied.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code(e))
                    .with_error_message(msg(DENIED))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name),
            ),
            None => allowed.push(r),
        }
    }
    req.resources = allowed;
    let mut resp = super::configs::incremental_alter(broker, ctx, req).await;
    resp.responses.extend(denied);
    resp
}

// ---------------------------------------------------------------------------------------------
// Groups

pub async fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::groups::find_coordinator(broker, ctx, req).await;
    }
    // Groups need DESCRIBE on the group, transactional ids DESCRIBE on the id.
    let denial = |key: &str| match req.key_type {
        0 => (!a.group(Op::Describe, key)).then_some(GROUP_DENIED),
        1 => (!a.transactional_id(Op::Describe, key)).then_some(TXN_DENIED),
        _ => None,
    };
    if ctx.version < 4 {
        if let Some(e) = denial(req.key.as_str()) {
            // v0 has no error message.
            return FindCoordinatorResponse::default()
                .with_error_code(code(e))
                .with_error_message(if ctx.version >= 1 { msg(DENIED) } else { None })
                .with_node_id(BrokerId(-1))
                .with_host(s(""))
                .with_port(-1);
        }
        return super::groups::find_coordinator(broker, ctx, req).await;
    }
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.coordinator_keys)
        .into_iter()
        .partition(|k| denial(k.as_str()).is_none());
    let denied: Vec<_> = refused
        .into_iter()
        .map(|k| {
            let e = denial(k.as_str()).unwrap_or(GROUP_DENIED);
            find_coordinator_response::Coordinator::default()
                .with_key(k)
                .with_node_id(BrokerId(-1))
                .with_host(s(""))
                .with_port(-1)
                .with_error_code(code(e))
                .with_error_message(msg(DENIED))
        })
        .collect();
    let mut resp = if allowed.is_empty() {
        FindCoordinatorResponse::default()
    } else {
        req.coordinator_keys = allowed;
        super::groups::find_coordinator(broker, ctx, req).await
    };
    resp.coordinators.extend(denied);
    resp
}

pub async fn join_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    if !Authz::of(broker, ctx).group(Op::Read, req.group_id.0.as_str()) {
        let r = JoinGroupResponse::default()
            .with_error_code(code(GROUP_DENIED))
            .with_generation_id(-1);
        return if ctx.version >= 7 {
            r.with_protocol_name(None)
        } else {
            r
        };
    }
    super::groups::join_group(broker, ctx, req).await
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    if !Authz::of(broker, ctx).group(Op::Read, req.group_id.0.as_str()) {
        return SyncGroupResponse::default().with_error_code(code(GROUP_DENIED));
    }
    super::groups::sync_group(broker, ctx, req).await
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    if !Authz::of(broker, ctx).group(Op::Read, req.group_id.0.as_str()) {
        return HeartbeatResponse::default().with_error_code(code(GROUP_DENIED));
    }
    super::groups::heartbeat(broker, ctx, req).await
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if !Authz::of(broker, ctx).group(Op::Read, req.group_id.0.as_str()) {
        return LeaveGroupResponse::default().with_error_code(code(GROUP_DENIED));
    }
    super::groups::leave_group(broker, ctx, req).await
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::groups::offset_commit(broker, ctx, req).await;
    }
    let group_ok = a.group(Op::Read, req.group_id.0.as_str());
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| group_ok && a.topic(Op::Read, t.name.0.as_str()));
    let error = if group_ok { TOPIC_DENIED } else { GROUP_DENIED };
    let denied: Vec<_> = refused
        .into_iter()
        .map(|t| {
            offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            offset_commit_response::OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(error))
                        })
                        .collect(),
                )
        })
        .collect();
    // A commit of nothing is still the handler's (it checks the member); one whose every
    // topic was refused is answered here.
    let nothing_left = allowed.is_empty() && !denied.is_empty();
    let mut resp = if !group_ok || nothing_left {
        OffsetCommitResponse::default()
    } else {
        req.topics = allowed;
        super::groups::offset_commit(broker, ctx, req).await
    };
    resp.topics.extend(denied);
    resp
}

/// Splits OffsetFetch topics into those the principal may describe and the answers for the
/// others (TOPIC_AUTHORIZATION_FAILED on each requested partition).
fn offset_fetch_denied_partitions(
    partitions: &[i32],
) -> Vec<offset_fetch_response::OffsetFetchResponsePartitions> {
    partitions
        .iter()
        .map(|p| {
            offset_fetch_response::OffsetFetchResponsePartitions::default()
                .with_partition_index(*p)
                .with_committed_offset(-1)
                .with_committed_leader_epoch(-1)
                .with_metadata(Some(s("")))
                .with_error_code(code(TOPIC_DENIED))
        })
        .collect()
}

pub async fn offset_fetch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::groups::offset_fetch(broker, ctx, req).await;
    }
    if ctx.version < 8 {
        let group = req.group_id.0.to_string();
        if !a.group(Op::Describe, &group) {
            let mut resp = OffsetFetchResponse::default();
            if ctx.version >= 2 {
                resp.error_code = code(GROUP_DENIED);
            } else {
                // v0-1 have no top-level error: each requested partition carries it.
                resp.topics = req
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        offset_fetch_response::OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(s("")))
                                            .with_error_code(code(GROUP_DENIED))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
            return resp;
        }
        let all = req.topics.is_none();
        let mut denied = Vec::new();
        if let Some(topics) = req.topics.take() {
            let (allowed, refused): (Vec<_>, Vec<_>) = topics
                .into_iter()
                .partition(|t| a.topic(Op::Describe, t.name.0.as_str()));
            denied = refused;
            req.topics = Some(allowed);
        }
        let mut resp = super::groups::offset_fetch(broker, ctx, req).await;
        if all {
            resp.topics
                .retain(|t| a.topic(Op::Describe, t.name.0.as_str()));
        }
        resp.topics.extend(denied.into_iter().map(|t| {
            offset_fetch_response::OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    offset_fetch_denied_partitions(&t.partition_indexes)
                        .into_iter()
                        .map(|p| {
                            offset_fetch_response::OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(p.metadata)
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
        }));
        return resp;
    }
    // v8+: several groups, each with its topics (or all of them).
    let mut denied_groups = Vec::new();
    let mut denied_topics: Vec<(GroupId, Vec<offset_fetch_request::OffsetFetchRequestTopics>)> =
        Vec::new();
    let mut all_topics: Vec<GroupId> = Vec::new();
    let mut allowed = Vec::new();
    for mut g in std::mem::take(&mut req.groups) {
        if !a.group(Op::Describe, g.group_id.0.as_str()) {
            denied_groups.push(
                offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(code(GROUP_DENIED)),
            );
            continue;
        }
        match g.topics.take() {
            None => all_topics.push(g.group_id.clone()),
            Some(topics) => {
                let (ok, refused): (Vec<_>, Vec<_>) = topics
                    .into_iter()
                    .partition(|t| a.topic(Op::Describe, t.name.0.as_str()));
                if !refused.is_empty() {
                    denied_topics.push((g.group_id.clone(), refused));
                }
                g.topics = Some(ok);
            }
        }
        allowed.push(g);
    }
    let mut resp = if allowed.is_empty() {
        OffsetFetchResponse::default()
    } else {
        req.groups = allowed;
        super::groups::offset_fetch(broker, ctx, req).await
    };
    for g in resp.groups.iter_mut() {
        if all_topics.contains(&g.group_id) {
            g.topics
                .retain(|t| a.topic(Op::Describe, t.name.0.as_str()));
        }
        if let Some((_, refused)) = denied_topics.iter().find(|(id, _)| *id == g.group_id) {
            g.topics.extend(refused.iter().map(|t| {
                offset_fetch_response::OffsetFetchResponseTopics::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(offset_fetch_denied_partitions(&t.partition_indexes))
            }));
        }
    }
    resp.groups.extend(denied_groups);
    resp
}

pub async fn list_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let a = Authz::of(broker, ctx);
    let mut resp = super::groups::list_groups(broker, ctx, req).await;
    // DESCRIBE on the cluster lists every group; otherwise only those it may describe.
    if a.on() && !a.cluster(Op::Describe) {
        resp.groups
            .retain(|g| a.group(Op::Describe, g.group_id.0.as_str()));
    }
    resp
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::groups::describe_groups(broker, ctx, req).await;
    }
    let include_ops = ctx.version >= 3 && req.include_authorized_operations;
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups)
        .into_iter()
        .partition(|g| a.group(Op::Describe, g.0.as_str()));
    let mut resp = if allowed.is_empty() {
        DescribeGroupsResponse::default()
    } else {
        req.groups = allowed;
        super::groups::describe_groups(broker, ctx, req).await
    };
    if include_ops {
        for g in resp.groups.iter_mut() {
            g.authorized_operations = a.operations(Res::Group, g.group_id.0.as_str());
        }
    }
    let message = if ctx.version >= 6 { msg(DENIED) } else { None };
    resp.groups.extend(refused.into_iter().map(|g| {
        describe_groups_response::DescribedGroup::default()
            .with_error_code(code(GROUP_DENIED))
            .with_error_message(message.clone())
            .with_group_id(g)
            .with_authorized_operations(i32::MIN)
    }));
    resp
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::groups::delete_groups(broker, ctx, req).await;
    }
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.groups_names)
        .into_iter()
        .partition(|g| a.group(Op::Delete, g.0.as_str()));
    let mut resp = if allowed.is_empty() {
        DeleteGroupsResponse::default()
    } else {
        req.groups_names = allowed;
        super::groups::delete_groups(broker, ctx, req).await
    };
    resp.results.extend(refused.into_iter().map(|g| {
        delete_groups_response::DeletableGroupResult::default()
            .with_group_id(g)
            .with_error_code(code(GROUP_DENIED))
    }));
    resp
}

pub async fn offset_delete(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        return super::groups::offset_delete(broker, ctx, req).await;
    }
    if !a.group(Op::Delete, req.group_id.0.as_str()) {
        return OffsetDeleteResponse::default().with_error_code(code(GROUP_DENIED));
    }
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| a.topic(Op::Read, t.name.0.as_str()));
    req.topics = allowed;
    let mut resp = super::groups::offset_delete(broker, ctx, req).await;
    resp.topics.extend(refused.into_iter().map(|t| {
        offset_delete_response::OffsetDeleteResponseTopic::default()
            .with_name(t.name)
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        offset_delete_response::OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code(TOPIC_DENIED))
                    })
                    .collect(),
            )
    }));
    resp
}

// ---------------------------------------------------------------------------------------------
// SCRAM users: describing them needs DESCRIBE on the cluster, changing them ALTER (as Kafka).

pub async fn describe_user_scram_credentials(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let a = Authz::of(broker, ctx);
    if a.on() && !a.cluster(Op::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(code(CLUSTER_DENIED))
            .with_error_message(msg(DENIED));
    }
    super::scram::describe(broker, ctx, req).await
}

pub async fn alter_user_scram_credentials(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let a = Authz::of(broker, ctx);
    if a.on() && !a.cluster(Op::Alter) {
        let mut users: Vec<StrBytes> = Vec::new();
        for name in req
            .deletions
            .iter()
            .map(|d| &d.name)
            .chain(req.upsertions.iter().map(|u| &u.name))
        {
            if !users.contains(name) {
                users.push(name.clone());
            }
        }
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .into_iter()
                .map(|user| {
                    alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default(
                    )
                    .with_user(user)
                    .with_error_code(code(CLUSTER_DENIED))
                    .with_error_message(msg(DENIED))
                })
                .collect(),
        );
    }
    super::scram::alter(broker, ctx, req).await
}

// ---------------------------------------------------------------------------------------------
// Client quotas: describing them needs DESCRIBE_CONFIGS on the cluster, changing them
// ALTER_CONFIGS (as Kafka).

pub async fn describe_client_quotas(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let a = Authz::of(broker, ctx);
    if a.on() && !a.cluster(Op::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(code(CLUSTER_DENIED))
            .with_error_message(msg(DENIED));
    }
    super::quotas::describe(broker, ctx, req).await
}

pub async fn alter_client_quotas(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let a = Authz::of(broker, ctx);
    if a.on() && !a.cluster(Op::AlterConfigs) {
        return AlterClientQuotasResponse::default().with_entries(
            req.entries
                .into_iter()
                .map(|e| {
                    alter_client_quotas_response::EntryData::default()
                        .with_entity(
                            e.entity
                                .into_iter()
                                .map(|c| {
                                    alter_client_quotas_response::EntityData::default()
                                        .with_entity_type(c.entity_type)
                                        .with_entity_name(c.entity_name)
                                })
                                .collect(),
                        )
                        .with_error_code(code(CLUSTER_DENIED))
                        .with_error_message(msg(DENIED))
                })
                .collect(),
        );
    }
    super::quotas::alter(broker, ctx, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_operations_bits() {
        // Kafka sets bit `code` of each operation: READ(3) DESCRIBE(8) DELETE(6) for groups.
        let bits = supported_operations(Res::Group)
            .iter()
            .fold(0i32, |b, op| b | (1 << op.code()));
        assert_eq!(bits, (1 << 3) | (1 << 8) | (1 << 6));
        assert!(!supported_operations(Res::Topic).contains(&Op::All));
    }
}
