//! `chronik brokers`: asks one node of a cluster for its Metadata and prints the brokers it
//! lists, the controller id and the cluster id. Scripts (deploy/local-cluster.sh) use it to wait
//! until a cluster is up, so it needs nothing but a TCP socket: one Metadata v12 request for no
//! topics, sent without an ApiVersions round first (every supported version of the broker takes
//! v12; docs/compatibility.md).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use serde_json::json;

/// The Metadata version asked for: flexible (request header v2, response header v1), with the
/// cluster id and controller id, and without the topic-id lookups of v13's error code.
pub const METADATA_VERSION: i16 = 12;

/// The largest answer accepted: a Metadata response for no topics is a few hundred bytes per
/// broker, so anything near this is not a Kafka answer.
const MAX_FRAME: usize = 16 << 20;

const CORRELATION_ID: i32 = 1;

/// One broker as the Metadata response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEntry {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// What `chronik brokers` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub brokers: Vec<BrokerEntry>,
    pub controller_id: i32,
    pub cluster_id: Option<String>,
}

/// The whole request frame: length prefix, header v2 and a Metadata v12 body asking for no
/// topic (an empty list, not null: the answer carries the brokers and nothing else).
pub fn request_frame() -> Result<Vec<u8>, String> {
    let header = RequestHeader::default()
        .with_request_api_key(MetadataRequest::KEY)
        .with_request_api_version(METADATA_VERSION)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("chronik-brokers")));
    let body = MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false);
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, MetadataRequest::header_version(METADATA_VERSION))
        .map_err(|e| format!("encoding the request header: {e}"))?;
    body.encode(&mut buf, METADATA_VERSION)
        .map_err(|e| format!("encoding the Metadata request: {e}"))?;
    let mut frame = Vec::with_capacity(buf.len() + 4);
    frame.put_i32(buf.len() as i32);
    frame.extend_from_slice(&buf);
    Ok(frame)
}

/// Decodes a response frame (without its length prefix) into the cluster view.
pub fn parse_response(frame: Bytes) -> Result<ClusterView, String> {
    let mut frame = frame;
    let header = ResponseHeader::decode(
        &mut frame,
        MetadataResponse::header_version(METADATA_VERSION),
    )
    .map_err(|e| format!("malformed response header: {e}"))?;
    if header.correlation_id != CORRELATION_ID {
        return Err(format!(
            "the answer is for request {}, not {CORRELATION_ID}",
            header.correlation_id
        ));
    }
    let resp = MetadataResponse::decode(&mut frame, METADATA_VERSION)
        .map_err(|e| format!("malformed Metadata response: {e}"))?;
    if frame.has_remaining() {
        return Err(format!(
            "{} unexpected bytes after the Metadata response",
            frame.remaining()
        ));
    }
    if resp.error_code != 0 {
        return Err(format!(
            "the broker answered error code {}",
            resp.error_code
        ));
    }
    let mut brokers: Vec<BrokerEntry> = resp
        .brokers
        .iter()
        .map(|b| BrokerEntry {
            node_id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.node_id);
    Ok(ClusterView {
        brokers,
        controller_id: resp.controller_id.0,
        cluster_id: resp.cluster_id.map(|c| c.to_string()),
    })
}

fn resolve(bootstrap: &str) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = bootstrap
        .to_socket_addrs()
        .map_err(|e| format!("{bootstrap}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{bootstrap}: no address"));
    }
    Ok(addrs)
}

fn exchange(addr: SocketAddr, frame: &[u8], deadline: Instant) -> Result<Bytes, String> {
    let left = |what: &str| {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{addr}: timed out {what}"))
    };
    let mut stream = TcpStream::connect_timeout(&addr, left("connecting")?)
        .map_err(|e| format!("{addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(left("sending")?))
        .and_then(|_| stream.write_all(frame))
        .map_err(|e| format!("{addr}: sending the request: {e}"))?;
    let mut size = [0u8; 4];
    stream
        .set_read_timeout(Some(left("waiting for the answer")?))
        .and_then(|_| stream.read_exact(&mut size))
        .map_err(|e| format!("{addr}: reading the answer: {e}"))?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > MAX_FRAME {
        return Err(format!(
            "{addr}: answer of {size} bytes: not a Kafka broker?"
        ));
    }
    let mut body = vec![0u8; size as usize];
    stream
        .set_read_timeout(Some(left("reading the answer")?))
        .and_then(|_| stream.read_exact(&mut body))
        .map_err(|e| format!("{addr}: reading the answer: {e}"))?;
    Ok(Bytes::from(body))
}

/// Asks `bootstrap` (`host:port`) for the brokers it knows, trying each address the name
/// resolves to until one answers, all within `timeout`.
pub fn fetch(bootstrap: &str, timeout: Duration) -> Result<ClusterView, String> {
    let deadline = Instant::now() + timeout;
    let frame = request_frame()?;
    let mut last = String::new();
    for addr in resolve(bootstrap)? {
        match exchange(addr, &frame, deadline)
            .and_then(|f| parse_response(f).map_err(|e| format!("{addr}: {e}")))
        {
            Ok(view) => return Ok(view),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One line per broker (`node_id host:port rack`, `-` for no rack), then the controller and
/// the cluster id.
pub fn text(view: &ClusterView) -> String {
    let mut out = String::new();
    for b in &view.brokers {
        out.push_str(&format!(
            "{} {}:{} {}\n",
            b.node_id,
            b.host,
            b.port,
            b.rack.as_deref().unwrap_or("-")
        ));
    }
    out.push_str(&format!("controller_id {}\n", view.controller_id));
    out.push_str(&format!(
        "cluster_id {}\n",
        view.cluster_id.as_deref().unwrap_or("-")
    ));
    out
}

pub fn to_json(view: &ClusterView) -> serde_json::Value {
    json!({
        "brokers": view.brokers.iter().map(|b| json!({
            "node_id": b.node_id,
            "host": b.host,
            "port": b.port,
            "rack": b.rack,
        })).collect::<Vec<_>>(),
        "controller_id": view.controller_id,
        "cluster_id": view.cluster_id,
    })
}

/// `chronik brokers`: prints the view, or returns why there is none.
pub fn run(bootstrap: &str, as_json: bool, timeout: Duration) -> Result<(), String> {
    let view = fetch(bootstrap, timeout)?;
    if as_json {
        println!("{}", to_json(&view));
    } else {
        print!("{}", text(&view));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::{ApiKey, BrokerId};
    use std::net::TcpListener;

    fn answer(brokers: &[(i32, &str, i32, Option<&str>)]) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(
                brokers
                    .iter()
                    .map(|(id, host, port, rack)| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(*id))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(*port)
                            .with_rack(rack.map(|r| StrBytes::from_string(r.to_string())))
                    })
                    .collect(),
            )
            .with_controller_id(BrokerId(2))
            .with_cluster_id(Some(StrBytes::from_static_str("abc")))
    }

    fn response_frame(resp: &MetadataResponse, correlation_id: i32) -> Vec<u8> {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, MetadataResponse::header_version(METADATA_VERSION))
            .unwrap();
        resp.encode(&mut buf, METADATA_VERSION).unwrap();
        let mut out = Vec::new();
        out.put_i32(buf.len() as i32);
        out.extend_from_slice(&buf);
        out
    }

    #[test]
    fn the_request_is_metadata_v12_for_no_topics() {
        let frame = request_frame().unwrap();
        let mut b = Bytes::from(frame);
        let len = b.get_i32() as usize;
        assert_eq!(len, b.remaining());
        let header = RequestHeader::decode(&mut b, 2).unwrap();
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 12);
        let req = MetadataRequest::decode(&mut b, 12).unwrap();
        assert_eq!(req.topics, Some(Vec::new()));
        assert!(!req.allow_auto_topic_creation);
        assert!(!b.has_remaining());
    }

    #[test]
    fn an_answer_becomes_sorted_lines_and_json() {
        let resp = answer(&[(3, "h3", 9094, None), (1, "h1", 9092, Some("r1"))]);
        let mut frame = Bytes::from(response_frame(&resp, CORRELATION_ID));
        frame.advance(4);
        let view = parse_response(frame).unwrap();
        assert_eq!(view.brokers.len(), 2);
        assert_eq!(
            text(&view),
            "1 h1:9092 r1\n3 h3:9094 -\ncontroller_id 2\ncluster_id abc\n"
        );
        let j = to_json(&view);
        assert_eq!(j["brokers"][0]["node_id"], 1);
        assert_eq!(j["brokers"][1]["rack"], serde_json::Value::Null);
        assert_eq!(j["controller_id"], 2);
        assert_eq!(j["cluster_id"], "abc");
    }

    #[test]
    fn an_answer_to_another_request_is_refused() {
        let mut frame = Bytes::from(response_frame(&answer(&[]), 7));
        frame.advance(4);
        assert!(parse_response(frame).unwrap_err().contains("request 7"));
    }

    #[test]
    fn asks_a_server_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut size = [0u8; 4];
            s.read_exact(&mut size).unwrap();
            let mut req = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut req).unwrap();
            let header = RequestHeader::decode(&mut Bytes::from(req), 2).unwrap();
            let resp = answer(&[(1, "127.0.0.1", 9092, None)]);
            s.write_all(&response_frame(&resp, header.correlation_id))
                .unwrap();
        });
        let view = fetch(&addr.to_string(), Duration::from_secs(5)).unwrap();
        server.join().unwrap();
        assert_eq!(view.brokers[0].node_id, 1);
        assert_eq!(view.brokers[0].port, 9092);
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_port_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let e = fetch(&addr.to_string(), Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{e}");
        drop(listener);
        assert!(fetch(&addr.to_string(), Duration::from_secs(2)).is_err());
        assert!(fetch("no-port-here", Duration::from_secs(1)).is_err());
    }
}
