//! The consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups and OffsetDelete.
//! This broker coordinates every group itself.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{cluster, code, msg};
use crate::broker::Broker;
use crate::group::{JoinRequest, OffsetToCommit, SyncRequest};
use crate::protocol::RequestContext;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub async fn find_coordinator(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if ctx.version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    let mut answers = Vec::with_capacity(keys.len());
    for key in &keys {
        let answer = if req.key_type != 0 {
            Err((
                code(ResponseError::InvalidRequest),
                msg("transactions are not supported by this broker"),
            ))
        } else if key.is_empty() {
            Err((
                code(ResponseError::InvalidGroupId),
                msg("group id must not be empty"),
            ))
        } else {
            cluster::coordinator_of(broker, key.as_str(), &ctx.listener)
                .await
                .map_err(|c| (c, msg("the group's coordinator is not available")))
        };
        answers.push(answer);
    }
    if ctx.version >= 4 {
        let coordinators = keys
            .iter()
            .zip(answers)
            .map(|(k, answer)| {
                let c = find_coordinator_response::Coordinator::default().with_key(k.clone());
                match answer {
                    Ok(e) => c
                        .with_node_id(BrokerId(e.id))
                        .with_host(s(e.host))
                        .with_port(e.port),
                    Err((error, message)) => c
                        .with_error_code(error)
                        .with_error_message(message)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match answers.pop().expect("one key below v4") {
        Ok(e) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(e.id))
            .with_host(s(e.host))
            .with_port(e.port),
        Err((error, message)) => {
            let resp = FindCoordinatorResponse::default().with_error_code(error);
            let resp = if ctx.version >= 1 {
                resp.with_error_message(message)
            } else {
                resp
            };
            resp.with_node_id(BrokerId(-1)).with_port(-1)
        }
    }
}

pub async fn join_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let not_here = cluster::coordinator_error(broker, req.group_id.0.as_str());
    if not_here != 0 {
        return JoinGroupResponse::default()
            .with_error_code(not_here)
            .with_generation_id(-1);
    }
    // v0 had no rebalance timeout: it equals the session timeout.
    let rebalance = if ctx.version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance.max(0) as u64),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let r = broker.groups.join(req.group_id.0.as_str(), join).await;
    let members = r
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            let m = join_group_response::JoinGroupResponseMember::default()
                .with_member_id(s(id))
                .with_metadata(meta);
            if ctx.version >= 5 {
                m.with_group_instance_id(inst.map(s))
            } else {
                m
            }
        })
        .collect();
    // The protocol name is nullable only from v7.
    let protocol_name = match r.protocol_name {
        None if ctx.version < 7 => Some(String::new()),
        other => other,
    };
    let resp = JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_name(protocol_name.map(s))
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id))
        .with_members(members);
    if ctx.version >= 7 {
        resp.with_protocol_type(r.protocol_type.map(s))
    } else {
        resp
    }
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let not_here = cluster::coordinator_error(broker, req.group_id.0.as_str());
    if not_here != 0 {
        return SyncGroupResponse::default().with_error_code(not_here);
    }
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(|t| t.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|n| n.to_string()),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let r = broker.groups.sync(req.group_id.0.as_str(), sync).await;
    let resp = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_assignment(r.assignment);
    if ctx.version >= 5 {
        resp.with_protocol_type(r.protocol_type.map(s))
            .with_protocol_name(r.protocol_name.map(s))
    } else {
        resp
    }
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let not_here = cluster::coordinator_error(broker, req.group_id.0.as_str());
    if not_here != 0 {
        return HeartbeatResponse::default().with_error_code(not_here);
    }
    HeartbeatResponse::default().with_error_code(broker.groups.heartbeat(
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        req.group_instance_id.as_ref().map(|i| i.as_str()),
        req.generation_id,
    ))
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let not_here = cluster::coordinator_error(broker, req.group_id.0.as_str());
    if not_here != 0 {
        return LeaveGroupResponse::default().with_error_code(not_here);
    }
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match broker.groups.leave(req.group_id.0.as_str(), &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(codes) if ctx.version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(codes)
                .map(|((m, i), c)| {
                    leave_group_response::MemberResponse::default()
                        .with_member_id(s(m))
                        .with_group_instance_id(i.map(s))
                        .with_error_code(c)
                })
                .collect(),
        ),
        Ok(codes) => {
            LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0))
        }
    }
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            offsets.push(OffsetToCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let not_here = cluster::coordinator_error(broker, req.group_id.0.as_str());
    // Partitions may live on other brokers of a cluster: the topic's partition count decides.
    let valid = |topic: &str, partition: i32| {
        broker
            .replicas
            .topic(topic)
            .is_some_and(|t| (0..t.partition_count()).contains(&partition))
    };
    let result = if not_here != 0 {
        Ok(Vec::new())
    } else {
        broker
            .groups
            .commit(
                req.group_id.0.as_str(),
                req.generation_id_or_member_epoch,
                req.member_id.as_str(),
                req.group_instance_id.as_ref().map(|i| i.as_str()),
                offsets,
                valid,
            )
            .await
    };
    let mut codes = match result {
        _ if not_here != 0 => {
            let n: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
            vec![not_here; n].into_iter()
        }
        Ok(c) => c.into_iter(),
        Err(e) => {
            let n: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
            vec![e.code(); n].into_iter()
        }
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(0))
                })
                .collect();
            offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// (partition, offset, leader epoch, metadata, error) of one committed offset.
type OffsetRow = (i32, i64, i32, Option<String>, i16);

/// One group's answer: every requested partition (or all committed ones).
fn fetch_group(
    broker: &Broker,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> (i16, Vec<(TopicName, Vec<OffsetRow>)>) {
    if group.is_empty() {
        return (code(ResponseError::InvalidGroupId), Vec::new());
    }
    let not_here = cluster::coordinator_error(broker, group);
    if not_here != 0 {
        let topics = wanted
            .unwrap_or_default()
            .into_iter()
            .map(|(t, parts)| {
                let rows = parts.iter().map(|p| (*p, -1, -1, None, not_here)).collect();
                (t, rows)
            })
            .collect();
        return (not_here, topics);
    }
    let pending = require_stable && broker.groups.is_rebalancing(group);
    let committed = broker.groups.committed(group);
    let lookup = |t: &str, p: i32| -> OffsetRow {
        if pending {
            return (p, -1, -1, None, code(ResponseError::UnstableOffsetCommit));
        }
        match committed.get(&(t.to_string(), p)) {
            Some(o) => (p, o.offset, o.leader_epoch, o.metadata.clone(), 0),
            None => (p, -1, -1, Some(String::new()), 0),
        }
    };
    let topics = match wanted {
        Some(w) => w
            .into_iter()
            .map(|(t, parts)| {
                let rows = parts.iter().map(|p| lookup(t.0.as_str(), *p)).collect();
                (t, rows)
            })
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
            for (t, p) in committed.keys() {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    let rows = parts.iter().map(|p| lookup(&t, *p)).collect();
                    (TopicName(s(t)), rows)
                })
                .collect()
        }
    };
    (0, topics)
}

pub async fn offset_fetch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let (error, topics) = fetch_group(broker, g.group_id.0.as_str(), wanted, req.require_stable);
                offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(error)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(name, rows)| {
                                offset_fetch_response::OffsetFetchResponseTopics::default()
                                    .with_name(name)
                                    .with_partitions(
                                        rows.into_iter()
                                            .map(|(p, o, e, m, c)| {
                                                offset_fetch_response::OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(o)
                                                    .with_committed_leader_epoch(e)
                                                    .with_metadata(m.map(s))
                                                    .with_error_code(c)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let (error, topics) = fetch_group(broker, req.group_id.0.as_str(), wanted, req.require_stable);
    let topics = topics
        .into_iter()
        .map(|(name, rows)| {
            offset_fetch_response::OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    rows.into_iter()
                        .map(|(p, o, e, m, c)| {
                            let r = offset_fetch_response::OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_metadata(m.map(s))
                                .with_error_code(c);
                            if ctx.version >= 5 {
                                r.with_committed_leader_epoch(e)
                            } else {
                                r
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    let resp = OffsetFetchResponse::default().with_topics(topics);
    if ctx.version >= 2 {
        resp.with_error_code(error)
    } else {
        resp
    }
}

pub async fn list_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(id, _, _)| cluster::is_coordinator(broker, id))
        .filter(|(_, _, st)| states.is_empty() || states.contains(&st.name().to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|(id, ptype, st)| {
            let g = list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s(ptype));
            let g = if ctx.version >= 4 {
                g.with_group_state(s(st.name()))
            } else {
                g
            };
            if ctx.version >= 5 {
                g.with_group_type(s("classic"))
            } else {
                g
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|gid| {
            if gid.0.is_empty() {
                return describe_groups_response::DescribedGroup::default()
                    .with_group_id(gid)
                    .with_error_code(code(ResponseError::InvalidGroupId));
            }
            let not_here = cluster::coordinator_error(broker, gid.0.as_str());
            if not_here != 0 {
                return describe_groups_response::DescribedGroup::default()
                    .with_group_id(gid)
                    .with_error_code(not_here);
            }
            let d = broker.groups.describe(gid.0.as_str());
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    let dm = describe_groups_response::DescribedGroupMember::default()
                        .with_member_id(s(m.member_id))
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment);
                    if ctx.version >= 4 {
                        dm.with_group_instance_id(m.instance_id.map(s))
                    } else {
                        dm
                    }
                })
                .collect();
            describe_groups_response::DescribedGroup::default()
                .with_group_id(gid)
                .with_group_state(s(d.state.name()))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        let c = if g.0.is_empty() {
            code(ResponseError::InvalidGroupId)
        } else if !cluster::is_coordinator(broker, g.0.as_str()) {
            code(ResponseError::NotCoordinator)
        } else {
            broker.groups.delete_group(g.0.as_str()).await
        };
        results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(c),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let not_here = cluster::coordinator_error(broker, req.group_id.0.as_str());
    if not_here != 0 {
        return OffsetDeleteResponse::default().with_error_code(not_here);
    }
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    if req.group_id.0.is_empty() {
        return OffsetDeleteResponse::default()
            .with_error_code(code(ResponseError::InvalidGroupId));
    }
    match broker
        .groups
        .delete_offsets(req.group_id.0.as_str(), &partitions)
        .await
    {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(codes) => {
            let mut codes = codes.into_iter();
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    offset_delete_response::OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(codes.next().unwrap_or(0))
                                })
                                .collect(),
                        )
                        .with_name(t.name)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
