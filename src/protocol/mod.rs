//! The Kafka wire format shared by the dispatcher, the handlers and the network layer: a
//! request's identity, response frames (bytes and file ranges) and their encoding, and why a
//! request can end its connection. Which APIs exist and where they go is the dispatcher's
//! (`handlers::dispatch`); this module knows no handler and no broker state.

pub mod fetch_encoder;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion};

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
    /// A request other than ApiVersions and the SASL exchange on a SASL listener before the
    /// connection authenticated.
    #[error("{0:?} before SASL authentication")]
    Unauthenticated(ApiKey),
    /// A request after the authenticated session's lifetime ran out without re-authentication
    /// (KIP-368).
    #[error("{0:?} after the SASL session expired; the client did not re-authenticate")]
    SessionExpired(ApiKey),
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
    /// The name of the listener the request came in on.
    pub listener: std::sync::Arc<str>,
    /// Who sent it: `User:name`, `User:ANONYMOUS` on listeners without authentication.
    pub principal: std::sync::Arc<str>,
    /// The client's address as ACL hosts are written (`10.0.0.1`, `0:0:0:0:0:0:0:1`).
    pub acl_host: std::sync::Arc<str>,
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
