//! The dispatcher: the one place that knows which Kafka APIs this broker serves. It owns the
//! version table (and answers `ApiVersions` from it), each connection's session, request header
//! decoding and version checks, routing to the handler of each API family, and the per-request
//! metrics and slow-request log.
//!
//! Requests are decoded with the `kafka-protocol` crate. A request this broker cannot parse or
//! does not support ends the connection with a log line (as Kafka does); ApiVersions alone
//! answers unsupported versions with a v0 `UNSUPPORTED_VERSION` response so clients can
//! negotiate (KIP-511). Handlers never see raw bytes except record data.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

pub use super::session::Session;
use crate::broker::Broker;
use crate::network::{ConnectionInfo, Service};
use crate::protocol::{ProtocolError, RequestContext, Response, encode_response};

/// The APIs this broker serves and the versions it advertises. Nothing is listed that does not
/// work end to end.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// The broker's requests as the network layer sees them: frames in, response frames out.
pub struct Dispatcher {
    broker: Arc<Broker>,
}

impl Dispatcher {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }
}

impl Service for Dispatcher {
    type Session = Session;

    fn open(&self, conn: &ConnectionInfo) -> Session {
        Session::new(conn, self.broker.principal_of(conn))
    }

    fn closing(&self, session: &Session) -> bool {
        session.closing
    }

    fn take_throttle(&self, session: &mut Session) -> u64 {
        std::mem::take(&mut session.throttle_ms)
    }

    fn call<'a>(
        &'a self,
        session: &'a mut Session,
        frame: Bytes,
    ) -> BoxFuture<'a, Result<Option<Response>, ProtocolError>> {
        Box::pin(handle_frame(&self.broker, session, frame))
    }
}

/// The ApiVersions answer: every API of the table with its version range.
fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED_APIS
                .iter()
                .map(|&(k, lo, hi)| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(lo)
                        .with_max_version(hi)
                })
                .collect(),
        )
}

/// Handles one request frame. `Ok(None)` means no response is sent (produce with `acks=0`).
pub async fn handle_frame(
    broker: &Arc<Broker>,
    session: &mut Session,
    mut frame: Bytes,
) -> Result<Option<Response>, ProtocolError> {
    if session.exchange.as_ref().is_some_and(|e| e.raw) {
        // After a v0 handshake the client sends bare SASL tokens, no request header.
        return Ok(super::sasl::raw_token(broker, session, &frame));
    }
    let client_host = session.client_host.as_str();
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(api_key).map_err(|_| ProtocolError::UnknownApiKey(api_key))?;
    let sasl_api = matches!(
        api,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    );
    if !session.authenticated && !sasl_api {
        return Err(ProtocolError::Unauthenticated(api));
    }
    if session.expires.is_some_and(|e| Instant::now() >= e) && !sasl_api {
        return Err(ProtocolError::SessionExpired(api));
    }
    let supported = supported_range(api);
    let in_range = supported.is_some_and(|(lo, hi)| version >= lo && version <= hi);
    if api == ApiKey::ApiVersions && !in_range {
        // KIP-511: a client newer than the broker gets a v0 answer listing what is supported.
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let resp = api_versions(ResponseError::UnsupportedVersion.code());
        return encode_response(
            &RequestContext {
                api,
                version: 0,
                correlation_id,
                client_id: None,
                client_host: client_host.to_string(),
                listener: session.listener.name.clone(),
                principal: session.principal.clone(),
                acl_host: session.acl_host.clone(),
            },
            &resp,
        )
        .map(Some);
    }
    if !in_range {
        return Err(ProtocolError::UnsupportedVersion { api, version });
    }
    let malformed = |e: anyhow::Error| ProtocolError::Malformed {
        api,
        version,
        reason: e.to_string(),
    };
    let request_bytes = frame.len();
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(malformed)?;
    let ctx = RequestContext {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        client_host: client_host.to_string(),
        listener: session.listener.name.clone(),
        principal: session.principal.clone(),
        acl_host: session.acl_host.clone(),
    };
    let started = std::time::Instant::now();
    let mut quota = super::quotas::RequestQuota::new(&broker.quotas, &ctx, request_bytes);
    let result = match api {
        ApiKey::SaslHandshake => {
            let req = SaslHandshakeRequest::decode(&mut frame, version).map_err(malformed)?;
            let resp = super::sasl::handshake(broker, session, req, version);
            encode_response(&ctx, &resp).map(Some)
        }
        ApiKey::SaslAuthenticate => {
            let req = SaslAuthenticateRequest::decode(&mut frame, version).map_err(malformed)?;
            let resp = super::sasl::authenticate(broker, session, req);
            encode_response(&ctx, &resp).map(Some)
        }
        _ => route(broker, &ctx, frame, &mut quota).await,
    };
    session.throttle_ms = quota.finish();
    let elapsed = started.elapsed();
    // Long polls wait on purpose; any other request this slow is worth a line that names it.
    if api != ApiKey::Fetch
        && api != ApiKey::JoinGroup
        && api != ApiKey::SyncGroup
        && elapsed.as_millis() as u64 >= broker.config.kafka.slow_request_ms
    {
        tracing::warn!(
            request_id = %format!("{}:{}", ctx.client_id.as_deref().unwrap_or("-"), ctx.correlation_id),
            api = ?api,
            version,
            client_host = %ctx.client_host,
            elapsed_ms = elapsed.as_millis() as u64,
            "slow request"
        );
    }
    let m = crate::metrics::get();
    let name = format!("{api:?}");
    m.requests
        .with_label_values(&[name.as_str(), &version.to_string()])
        .inc();
    m.request_seconds
        .with_label_values(&[name.as_str()])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn route(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    mut frame: Bytes,
    quota: &mut super::quotas::RequestQuota<'_>,
) -> Result<Option<Response>, ProtocolError> {
    let (api, version) = (ctx.api, ctx.version);
    let malformed = |e: anyhow::Error| ProtocolError::Malformed {
        api,
        version,
        reason: e.to_string(),
    };
    let b = broker;
    macro_rules! route {
        ($req:ty, $handler:path) => {{
            let req = <$req>::decode(&mut frame, version).map_err(malformed)?;
            let mut resp = quota.run($handler(b, ctx, req)).await;
            resp.throttle_time_ms = quota.response_throttle_ms();
            encode_response(ctx, &resp).map(Some)
        }};
    }
    match api {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(&mut frame, version).map_err(malformed)?;
            encode_response(ctx, &api_versions(0)).map(Some)
        }
        ApiKey::Metadata => route!(MetadataRequest, super::authz::metadata),
        ApiKey::DescribeCluster => {
            route!(DescribeClusterRequest, super::authz::describe_cluster)
        }
        ApiKey::DescribeQuorum => {
            // The one response without a throttle field: a throttle only mutes the connection.
            let req = DescribeQuorumRequest::decode(&mut frame, version).map_err(malformed)?;
            let resp = quota.run(super::authz::describe_quorum(b, ctx, req)).await;
            encode_response(ctx, &resp).map(Some)
        }
        ApiKey::ElectLeaders => route!(ElectLeadersRequest, super::authz::elect_leaders),
        ApiKey::AlterPartitionReassignments => {
            route!(
                AlterPartitionReassignmentsRequest,
                super::authz::alter_partition_reassignments
            )
        }
        ApiKey::DescribeLogDirs => {
            route!(DescribeLogDirsRequest, super::authz::describe_log_dirs)
        }
        ApiKey::ListPartitionReassignments => {
            route!(
                ListPartitionReassignmentsRequest,
                super::authz::list_partition_reassignments
            )
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut frame, version).map_err(malformed)?;
            let acks = req.acks;
            let mut resp = quota.run(super::authz::produce(b, ctx, req)).await;
            quota.record_produce();
            resp.throttle_time_ms = quota.response_throttle_ms();
            if acks == 0 {
                // No response: a throttle only mutes the connection.
                return Ok(None);
            }
            encode_response(ctx, &resp).map(Some)
        }
        ApiKey::InitProducerId => {
            route!(InitProducerIdRequest, super::authz::init_producer_id)
        }
        ApiKey::Fetch => {
            let mut req = FetchRequest::decode(&mut frame, version).map_err(malformed)?;
            let replica_id = if version >= 15 {
                req.replica_state.replica_id.0
            } else {
                req.replica_id.0
            };
            // (With no quota configured at all, nothing needs telling apart.)
            let follower = replica_id >= 0
                && (quota.idle()
                    || replica_id != b.node_id
                        && b.replicas.is_clustered()
                        && b.metadata.read(|s| s.brokers.contains_key(&replica_id)));
            if follower {
                // A follower's replication (a broker of the cluster): no client quota applies.
                quota.exempt();
                return super::fetch::handle(b, ctx, req).await.map(Some);
            }
            if let Some(cap) = quota.fetch_bytes_cap() {
                // Kafka bounds a fetch by what the quota allows in its windows.
                req.max_bytes = req.max_bytes.min(cap);
                req.min_bytes = req.min_bytes.min(req.max_bytes);
            }
            let resp = quota.run(super::fetch::handle(b, ctx, req)).await?;
            let size = resp.len();
            quota.record_fetch(size);
            let throttle_ms = quota.response_throttle_ms();
            if throttle_ms == 0 {
                return Ok(Some(resp));
            }
            // Throttled: no records this time (and their bytes are not counted), as Kafka does.
            quota.unrecord_fetch(size);
            let out = crate::protocol::fetch_encoder::FetchOut {
                throttle_time_ms: throttle_ms,
                ..Default::default()
            };
            Ok(Some(crate::protocol::fetch_encoder::encode(
                ctx.correlation_id,
                version,
                &out,
            )))
        }
        ApiKey::ListOffsets => route!(ListOffsetsRequest, super::authz::list_offsets),
        ApiKey::OffsetForLeaderEpoch => {
            route!(
                OffsetForLeaderEpochRequest,
                super::authz::offset_for_leader_epoch
            )
        }
        ApiKey::DeleteRecords => route!(DeleteRecordsRequest, super::authz::delete_records),
        ApiKey::CreateTopics => route!(CreateTopicsRequest, super::authz::create_topics),
        ApiKey::DeleteTopics => route!(DeleteTopicsRequest, super::authz::delete_topics),
        ApiKey::CreatePartitions => {
            route!(CreatePartitionsRequest, super::authz::create_partitions)
        }
        ApiKey::DescribeConfigs => route!(DescribeConfigsRequest, super::authz::describe_configs),
        ApiKey::AlterConfigs => route!(AlterConfigsRequest, super::authz::alter_configs),
        ApiKey::IncrementalAlterConfigs => {
            route!(
                IncrementalAlterConfigsRequest,
                super::authz::incremental_alter_configs
            )
        }
        ApiKey::FindCoordinator => {
            route!(FindCoordinatorRequest, super::authz::find_coordinator)
        }
        ApiKey::JoinGroup => route!(JoinGroupRequest, super::authz::join_group),
        ApiKey::SyncGroup => route!(SyncGroupRequest, super::authz::sync_group),
        ApiKey::Heartbeat => route!(HeartbeatRequest, super::authz::heartbeat),
        ApiKey::LeaveGroup => route!(LeaveGroupRequest, super::authz::leave_group),
        ApiKey::OffsetCommit => route!(OffsetCommitRequest, super::authz::offset_commit),
        ApiKey::OffsetFetch => route!(OffsetFetchRequest, super::authz::offset_fetch),
        ApiKey::ListGroups => route!(ListGroupsRequest, super::authz::list_groups),
        ApiKey::DescribeGroups => route!(DescribeGroupsRequest, super::authz::describe_groups),
        ApiKey::DeleteGroups => route!(DeleteGroupsRequest, super::authz::delete_groups),
        ApiKey::OffsetDelete => route!(OffsetDeleteRequest, super::authz::offset_delete),
        ApiKey::CreateAcls => route!(CreateAclsRequest, super::acls::create_acls),
        ApiKey::DescribeAcls => route!(DescribeAclsRequest, super::acls::describe_acls),
        ApiKey::DeleteAcls => route!(DeleteAclsRequest, super::acls::delete_acls),
        ApiKey::DescribeUserScramCredentials => {
            route!(
                DescribeUserScramCredentialsRequest,
                super::authz::describe_user_scram_credentials
            )
        }
        ApiKey::AlterUserScramCredentials => {
            route!(
                AlterUserScramCredentialsRequest,
                super::authz::alter_user_scram_credentials
            )
        }
        ApiKey::DescribeClientQuotas => {
            route!(
                DescribeClientQuotasRequest,
                super::authz::describe_client_quotas
            )
        }
        ApiKey::AlterClientQuotas => {
            route!(AlterClientQuotasRequest, super::authz::alter_client_quotas)
        }
        _ => Err(ProtocolError::UnsupportedVersion { api, version }),
    }
}
