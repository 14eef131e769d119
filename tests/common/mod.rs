//! A real broker in-process on 127.0.0.1:0 and a minimal raw Kafka client for wire-level tests.
//! The client is deliberately simple so tests can also send malformed bytes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub struct TestBroker {
    pub addr: SocketAddr,
    /// The admin HTTP port, when started with [`TestBroker::start_with_http`].
    pub http: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestBroker {
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, |_| {}).await
    }

    pub async fn start_with(data_dir: &Path, tweak: impl FnOnce(&mut chronik::Config)) -> Self {
        Self::start_with_store(data_dir, tweak, None).await
    }

    /// A broker whose remote tier is the given object store.
    pub async fn start_with_store(
        data_dir: &Path,
        tweak: impl FnOnce(&mut chronik::Config),
        store: Option<std::sync::Arc<dyn chronik_tiering::object_store::ObjectStore>>,
    ) -> Self {
        Self::launch(data_dir, tweak, store, false).await
    }

    /// A broker with its admin HTTP port (metrics, probes, search) on a free port.
    pub async fn start_with_http(
        data_dir: &Path,
        tweak: impl FnOnce(&mut chronik::Config),
    ) -> Self {
        Self::launch(data_dir, tweak, None, true).await
    }

    async fn launch(
        data_dir: &Path,
        tweak: impl FnOnce(&mut chronik::Config),
        store: Option<std::sync::Arc<dyn chronik_tiering::object_store::ObjectStore>>,
        with_http: bool,
    ) -> Self {
        // Broker logs show up in a failing test's output (RUST_LOG selects them).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = chronik::Config {
            data_dir: data_dir.to_path_buf(),
            ..Default::default()
        };
        config.kafka.listen = addr.to_string();
        // Many brokers run side by side in the test binaries: keep their caches small.
        config.cache.memory_bytes = 32 << 20;
        config.cache.disk_bytes = 96 << 20;
        tweak(&mut config);
        let (http, http_addr) = if with_http {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let a = l.local_addr().expect("addr");
            (Some(l), Some(a))
        } else {
            (None, None)
        };
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(chronik::serve_full(listener, http, config, store, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            http: http_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("serve");
        }
    }

    /// Stops without the clean close: the task is aborted like a killed process (the page
    /// cache keeps what was written, as after `kill -9`).
    pub async fn crash(mut self) {
        self.stop.take();
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self {
            stream,
            next_correlation: 1,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match tokio::time::timeout(Duration::from_secs(30), self.stream.read_exact(&mut size)).await
        {
            Ok(Ok(_)) => {}
            _ => return None,
        }
        let size = i32::from_be_bytes(size) as usize;
        let mut buf = vec![0u8; size];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// True once the broker has closed this connection.
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    pub fn encode<R: Request>(&mut self, req: &R, version: i16) -> Vec<u8> {
        self.encode_as(req, version, "wire-test")
    }

    /// A request frame whose header names `client_id`.
    pub fn encode_as<R: Request>(&mut self, req: &R, version: i16, client_id: &str) -> Vec<u8> {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("header");
        req.encode(&mut body, version).expect("body");
        let mut framed = Vec::with_capacity(body.len() + 4);
        framed.put_i32(body.len() as i32);
        framed.extend_from_slice(&body);
        framed
    }

    pub async fn send<R: Request>(&mut self, req: &R, version: i16) {
        let framed = self.encode(req, version);
        self.send_raw(&framed).await;
    }

    pub async fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response
    where
        R::Response: Decodable + HeaderVersion,
    {
        self.send(req, version).await;
        let mut frame = self.read_frame().await.expect("response");
        let _header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .expect("response header");
        let resp = R::Response::decode(&mut frame, version).expect("response body");
        assert!(!frame.has_remaining(), "trailing bytes in response");
        resp
    }

    pub async fn api_versions(&mut self) -> ApiVersionsResponse {
        self.call(&ApiVersionsRequest::default(), 3).await
    }

    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> i16 {
        let topic = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let resp = self
            .call(
                &CreateTopicsRequest::default()
                    .with_topics(vec![topic])
                    .with_timeout_ms(5000),
                7,
            )
            .await;
        resp.topics[0].error_code
    }

    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> produce_response::PartitionProduceResponse {
        let req = produce_request(topic, partition, records, acks);
        let resp = self.call(&req, 9).await;
        resp.responses[0].partition_responses[0].clone()
    }

    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        partition_max_bytes: i32,
    ) -> fetch_response::PartitionData {
        let req = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(partition_max_bytes),
                    ]),
            ]);
        let resp = self.call(&req, 11).await;
        resp.responses[0].partitions[0].clone()
    }

    pub async fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> list_offsets_response::ListOffsetsPartitionResponse {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let resp = self.call(&req, 9).await;
        resp.topics[0].partitions[0].clone()
    }
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// Encodes one batch of `values` with a real encoder.
pub fn batch(values: &[&[u8]], timestamp: i64, compression: Compression) -> Bytes {
    idempotent_batch(values, timestamp, compression, -1, -1, -1)
}

pub fn idempotent_batch(
    values: &[&[u8]],
    timestamp: i64,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if base_sequence < 0 {
                -1
            } else {
                base_sequence + i as i32
            },
            timestamp: timestamp + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads every record value from `from` to the log end through Fetch.
pub async fn read_values(c: &mut Client, topic: &str, from: i64) -> Vec<(i64, Vec<u8>)> {
    match try_read_values(c, topic, from).await {
        Ok(values) => values,
        Err((offset, code)) => panic!("fetch at {offset} failed with error {code}"),
    }
}

/// Reads partition 0 from `from` to the log end; a fetch error ends the read with the offset and
/// the error code.
pub async fn try_read_values(
    c: &mut Client,
    topic: &str,
    from: i64,
) -> Result<Vec<(i64, Vec<u8>)>, (i64, i16)> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = c.list_offset(topic, 0, -1).await.offset;
    let deadline = Instant::now() + Duration::from_secs(20);
    while offset < end && Instant::now() < deadline {
        let part = c.fetch(topic, 0, offset, 100, 64 * 1024).await;
        if part.error_code != 0 {
            return Err((offset, part.error_code));
        }
        let mut records = part.records.unwrap_or_default();
        for set in RecordBatchDecoder::decode_all(&mut records).expect("decode") {
            for r in set.records {
                if r.offset >= offset {
                    offset = r.offset + 1;
                    out.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()));
                }
            }
        }
    }
    Ok(out)
}

/// One HTTP/1.1 request to the admin port: (status, body).
pub async fn http_request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A free loopback port (for brokers started as processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Connects to a broker process on `port` once it accepts connections (at most 20 s).
pub async fn connect_port(port: u16) -> Client {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
        {
            drop(s);
            return Client::connect(addr).await;
        }
        assert!(Instant::now() < deadline, "broker did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
