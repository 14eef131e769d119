//! The Kafka wire protocol at the broker's edge: request header decoding, version checks against
//! what `ApiVersions` advertises, routing to handlers, and response framing.
//!
//! Requests are decoded with the `kafka-protocol` crate. A request this broker cannot parse or
//! does not support ends the connection with a log line (as Kafka does); ApiVersions alone
//! answers unsupported versions with a v0 `UNSUPPORTED_VERSION` response so clients can
//! negotiate. Handlers never see raw bytes except record data.

pub mod fetch_encoder;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::broker::Broker;
use crate::handlers;
use crate::log::FileRegion;

/// A piece of a response frame: bytes built in memory or a file range sent with `sendfile`.
#[derive(Debug)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileRegion),
}

/// A whole response frame, size prefix included.
#[derive(Debug)]
pub struct Response {
    pub chunks: Vec<Chunk>,
}

impl Response {
    pub fn len(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| match c {
                Chunk::Bytes(b) => b.len(),
                Chunk::File(f) => f.len as usize,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a request ends its connection instead of getting a response.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} version {version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

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
];

pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// The identity of a request, for responses and logs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// `/ip` of the client, as Kafka reports it in group descriptions.
    pub client_host: String,
}

/// Handles one request frame. `Ok(None)` means no response is sent (produce with `acks=0`).
pub async fn handle_frame(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    client_host: &str,
) -> Result<Option<Response>, ProtocolError> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(api_key).map_err(|_| ProtocolError::UnknownApiKey(api_key))?;
    let supported = supported_range(api);
    let in_range = supported.is_some_and(|(lo, hi)| version >= lo && version <= hi);
    if api == ApiKey::ApiVersions && !in_range {
        // KIP-511: a client newer than the broker gets a v0 answer listing what is supported.
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let resp = handlers::api_versions::unsupported_version_response();
        return encode_response(
            &RequestContext {
                api,
                version: 0,
                correlation_id,
                client_id: None,
                client_host: client_host.to_string(),
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
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(malformed)?;
    let ctx = RequestContext {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        client_host: client_host.to_string(),
    };
    let started = std::time::Instant::now();
    let result = route(broker, &ctx, frame).await;
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
            let resp = $handler(b, ctx, req).await;
            encode_response(ctx, &resp).map(Some)
        }};
    }
    match api {
        ApiKey::ApiVersions => route!(ApiVersionsRequest, handlers::api_versions::handle),
        ApiKey::Metadata => route!(MetadataRequest, handlers::metadata::handle),
        ApiKey::DescribeCluster => {
            route!(DescribeClusterRequest, handlers::metadata::describe_cluster)
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut frame, version).map_err(malformed)?;
            let acks = req.acks;
            let resp = handlers::produce::handle(b, ctx, req).await;
            if acks == 0 {
                return Ok(None);
            }
            encode_response(ctx, &resp).map(Some)
        }
        ApiKey::InitProducerId => {
            route!(InitProducerIdRequest, handlers::produce::init_producer_id)
        }
        ApiKey::Fetch => {
            let req = FetchRequest::decode(&mut frame, version).map_err(malformed)?;
            handlers::fetch::handle(b, ctx, req).await.map(Some)
        }
        ApiKey::ListOffsets => route!(ListOffsetsRequest, handlers::offsets::list_offsets),
        ApiKey::OffsetForLeaderEpoch => {
            route!(
                OffsetForLeaderEpochRequest,
                handlers::offsets::offset_for_leader_epoch
            )
        }
        ApiKey::DeleteRecords => route!(DeleteRecordsRequest, handlers::offsets::delete_records),
        ApiKey::CreateTopics => route!(CreateTopicsRequest, handlers::topics::create_topics),
        ApiKey::DeleteTopics => route!(DeleteTopicsRequest, handlers::topics::delete_topics),
        ApiKey::CreatePartitions => {
            route!(CreatePartitionsRequest, handlers::topics::create_partitions)
        }
        ApiKey::DescribeConfigs => route!(DescribeConfigsRequest, handlers::configs::describe),
        ApiKey::AlterConfigs => route!(AlterConfigsRequest, handlers::configs::alter),
        ApiKey::IncrementalAlterConfigs => {
            route!(
                IncrementalAlterConfigsRequest,
                handlers::configs::incremental_alter
            )
        }
        ApiKey::FindCoordinator => {
            route!(FindCoordinatorRequest, handlers::groups::find_coordinator)
        }
        ApiKey::JoinGroup => route!(JoinGroupRequest, handlers::groups::join_group),
        ApiKey::SyncGroup => route!(SyncGroupRequest, handlers::groups::sync_group),
        ApiKey::Heartbeat => route!(HeartbeatRequest, handlers::groups::heartbeat),
        ApiKey::LeaveGroup => route!(LeaveGroupRequest, handlers::groups::leave_group),
        ApiKey::OffsetCommit => route!(OffsetCommitRequest, handlers::groups::offset_commit),
        ApiKey::OffsetFetch => route!(OffsetFetchRequest, handlers::groups::offset_fetch),
        ApiKey::ListGroups => route!(ListGroupsRequest, handlers::groups::list_groups),
        ApiKey::DescribeGroups => route!(DescribeGroupsRequest, handlers::groups::describe_groups),
        ApiKey::DeleteGroups => route!(DeleteGroupsRequest, handlers::groups::delete_groups),
        ApiKey::OffsetDelete => route!(OffsetDeleteRequest, handlers::groups::offset_delete),
        _ => Err(ProtocolError::UnsupportedVersion { api, version }),
    }
}

/// Encodes a response with its header into one frame.
pub fn encode_response<R: Encodable + HeaderVersion>(
    ctx: &RequestContext,
    resp: &R,
) -> Result<Response, ProtocolError> {
    let err = |e: anyhow::Error| ProtocolError::Encode {
        api: ctx.api,
        version: ctx.version,
        reason: e.to_string(),
    };
    let header_version = R::header_version(ctx.version);
    let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
    let size = header.compute_size(header_version).map_err(err)?
        + resp.compute_size(ctx.version).map_err(err)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version).map_err(err)?;
    resp.encode(&mut buf, ctx.version).map_err(err)?;
    Ok(Response {
        chunks: vec![Chunk::Bytes(buf.freeze())],
    })
}
