//! The broker's own Kafka client side: one request, one answer, on a connection to another
//! broker's (or this broker's) Kafka listener. Used by replica fetchers and by the remote-segment
//! metadata topic's producer and readers.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers larger than this end the connection.
const MAX_FRAME: usize = 256 << 20;

/// Opens a connection to `addr` (`host:port`), giving up after `timeout`.
pub async fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            )
        })??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Sends `request` as `version` and reads its answer (requests are not pipelined: the answer
/// must carry `correlation`).
pub async fn exchange<R>(
    stream: &mut TcpStream,
    correlation: i32,
    version: i16,
    client_id: &'static str,
    request: &R,
) -> std::io::Result<R::Response>
where
    R: Request + Encodable,
    R::Response: Decodable + HeaderVersion,
{
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .map_err(std::io::Error::other)?;
    request
        .encode(&mut body, version)
        .map_err(std::io::Error::other)?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    stream.write_all(&frame).await?;
    let len = stream.read_i32().await?;
    if len < 0 || len as usize > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("answer of {len} bytes"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).await?;
    let mut buf = Bytes::from(buf);
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
        .map_err(|e| bad(e.to_string()))?;
    if header.correlation_id != correlation {
        return Err(bad(format!(
            "answer to request {} while waiting for {correlation}",
            header.correlation_id
        )));
    }
    let response = R::Response::decode(&mut buf, version).map_err(|e| bad(e.to_string()))?;
    if buf.has_remaining() {
        return Err(bad(format!("{} bytes after the answer", buf.remaining())));
    }
    Ok(response)
}
