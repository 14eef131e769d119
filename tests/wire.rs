//! The broker seen from a socket: bad input of every kind, the precise error codes, and the
//! guarantees clients rely on (long polls woken by appends, fetch limits, offsets, retries).
//! Every bad-input test also checks that the broker still serves a fresh connection.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

async fn still_serves(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr).await;
    let v = c.api_versions().await;
    assert_eq!(v.error_code, 0);
    assert!(v.api_keys.iter().any(|k| k.api_key == 0));
}

#[tokio::test]
async fn garbage_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    // Random bodies behind real API keys: each must be answered or closed, never crash.
    for api_key in [0i16, 1, 2, 3, 18, 19, 20, 32, 44] {
        for seed in 0..5u32 {
            let mut v = Vec::new();
            v.put_i32(200);
            v.put_i16(api_key);
            v.put_i16((seed % 4) as i16);
            v.extend((0..196u32).map(|i| ((i + seed) * 7919 % 251) as u8));
            let mut c = Client::connect(broker.addr).await;
            c.send_raw(&v).await;
            let _ = c.read_frame().await;
            still_serves(broker.addr).await;
        }
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        ("huge size", (i32::MAX).to_be_bytes().to_vec()),
        ("tiny size", 2i32.to_be_bytes().to_vec()),
        ("unknown api key", {
            let mut v = Vec::new();
            v.put_i32(10);
            v.put_i16(9999);
            v.put_i16(0);
            v.put_i32(1);
            v.put_i16(-1);
            v
        }),
        ("body that does not decode", {
            let mut v = Vec::new();
            v.put_i32(14);
            v.put_i16(3); // Metadata
            v.put_i16(1);
            v.put_i32(1);
            v.put_i16(-1);
            v.put_i32(1_000_000); // a topic array longer than the frame
            v
        }),
    ];
    for (name, bytes) in cases {
        let mut c = Client::connect(broker.addr).await;
        c.send_raw(&bytes).await;
        assert!(c.is_closed().await, "{name}: connection must be closed");
        still_serves(broker.addr).await;
    }
    // A truncated frame followed by a hang-up.
    let mut c = Client::connect(broker.addr).await;
    let mut v = Vec::new();
    v.put_i32(100);
    v.put_slice(&[0u8; 10]);
    c.send_raw(&v).await;
    drop(c);
    still_serves(broker.addr).await;
    broker.stop().await;
}

#[tokio::test]
async fn unsupported_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    // ApiVersions newer than the broker: a v0 answer with UNSUPPORTED_VERSION and the list.
    let mut c = Client::connect(broker.addr).await;
    let mut v = Vec::new();
    v.put_i32(10);
    v.put_i16(18);
    v.put_i16(99);
    v.put_i32(77);
    v.put_i16(-1);
    c.send_raw(&v).await;
    let mut frame = c.read_frame().await.expect("answer");
    let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    assert_eq!(correlation, 77);
    let _ = frame.split_to(4);
    let resp = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0)
        .expect("v0 body");
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    assert!(resp.api_keys.iter().any(|k| k.api_key == 1));
    // Any other API at a version that is not advertised closes the connection.
    let mut c = Client::connect(broker.addr).await;
    let framed = c.encode(&MetadataRequest::default(), 0);
    let mut framed = framed;
    framed[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&framed).await;
    assert!(c.is_closed().await);
    still_serves(broker.addr).await;
    broker.stop().await;
}

#[tokio::test]
async fn bad_records_get_precise_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(
        c.create_topic("bad-records", 1, &[("max.message.bytes", "2000")])
            .await,
        0
    );

    let good = batch(&[b"hello", b"world"], now_ms(), Compression::None);
    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let r = c.produce("bad-records", 0, Bytes::from(corrupt), -1).await;
    assert_eq!(r.error_code, ResponseError::CorruptMessage.code());

    let big = vec![b'x'; 5000];
    let r = c
        .produce(
            "bad-records",
            0,
            batch(&[&big], now_ms(), Compression::None),
            -1,
        )
        .await;
    assert_eq!(r.error_code, ResponseError::MessageTooLarge.code());

    let mut truncated = good.to_vec();
    truncated.truncate(good.len() - 4);
    let r = c
        .produce("bad-records", 0, Bytes::from(truncated), -1)
        .await;
    assert_eq!(r.error_code, ResponseError::CorruptMessage.code());

    let r = c.produce("bad-records", 7, good.clone(), -1).await;
    assert_eq!(r.error_code, ResponseError::UnknownTopicOrPartition.code());

    let r = c.produce("bad-records", 0, good.clone(), 2).await;
    assert_eq!(r.error_code, ResponseError::InvalidRequiredAcks.code());

    // Nothing refused was stored; the good batch lands at offset 0.
    let r = c.produce("bad-records", 0, good.clone(), -1).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let end = c.list_offset("bad-records", 0, -1).await;
    assert_eq!(end.offset, 2);
    still_serves(broker.addr).await;
    broker.stop().await;
}

#[tokio::test]
async fn topic_administration_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    for bad in ["", "..", "has space", "slash/name", &"x".repeat(250)] {
        assert_eq!(
            c.create_topic(bad, 1, &[]).await,
            ResponseError::InvalidTopicException.code(),
            "{bad:?}"
        );
    }
    for (k, v) in [
        ("retention.ms", "soon"),
        ("no.such.config", "1"),
        ("cleanup.policy", "shred"),
        ("segment.bytes", "1"),
    ] {
        assert_eq!(
            c.create_topic("cfg", 1, &[(k, v)]).await,
            ResponseError::InvalidConfig.code(),
            "{k}={v}"
        );
    }
    assert_eq!(c.create_topic("ok", 2, &[]).await, 0);
    assert_eq!(
        c.create_topic("ok", 2, &[]).await,
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        c.create_topic("zero", 0, &[]).await,
        ResponseError::InvalidPartitions.code()
    );
    // Produce to a topic after it was deleted.
    let r = c
        .produce("ok", 1, batch(&[b"a"], now_ms(), Compression::None), -1)
        .await;
    assert_eq!(r.error_code, 0);
    let del = c
        .call(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(StrBytes::from_static_str("ok"))]),
            5,
        )
        .await;
    assert_eq!(del.responses[0].error_code, 0);
    let r = c
        .produce("ok", 1, batch(&[b"a"], now_ms(), Compression::None), -1)
        .await;
    assert_eq!(r.error_code, ResponseError::UnknownTopicOrPartition.code());
    still_serves(broker.addr).await;
    broker.stop().await;
}

#[tokio::test]
async fn long_poll_is_woken_by_an_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("poll", 1, &[]).await, 0);
    let addr = broker.addr;
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut p = Client::connect(addr).await;
        p.produce("poll", 0, batch(&[b"wake"], now_ms(), Compression::None), 1)
            .await
    });
    let started = Instant::now();
    // Far longer than the test needs: only an append can end this wait early.
    let part = c.fetch("poll", 0, 0, 20_000, 1 << 20).await;
    let waited = started.elapsed();
    assert_eq!(producer.await.expect("join").error_code, 0);
    assert_eq!(part.error_code, 0);
    let mut records = part.records.expect("records");
    let set = RecordBatchDecoder::decode(&mut records).expect("decode");
    assert_eq!(set.records[0].value.as_deref(), Some(&b"wake"[..]));
    assert!(waited < Duration::from_secs(15), "fetch waited {waited:?}");
    // With data already there, a long poll answers at once.
    let started = Instant::now();
    let part = c.fetch("poll", 0, 0, 20_000, 1 << 20).await;
    assert!(part.records.is_some_and(|r| !r.is_empty()));
    assert!(started.elapsed() < Duration::from_secs(15));
    broker.stop().await;
}

#[tokio::test]
async fn fetch_respects_limits_and_returns_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("limits", 1, &[]).await, 0);
    let value = vec![b'v'; 1000];
    let mut sizes = Vec::new();
    for _ in 0..10 {
        let b = batch(&[&value], now_ms(), Compression::None);
        sizes.push(b.len());
        assert_eq!(c.produce("limits", 0, b, -1).await.error_code, 0);
    }
    let part = c.fetch("limits", 0, 0, 0, 3 * sizes[0] as i32 + 10).await;
    let records = part.records.expect("records");
    assert_eq!(
        records.len(),
        3 * sizes[0],
        "whole batches within the limit"
    );
    assert_eq!(part.high_watermark, 10);
    // A limit below one batch still returns that batch so the consumer progresses.
    let part = c.fetch("limits", 0, 4, 0, 10).await;
    let mut records = part.records.expect("records");
    assert_eq!(records.len(), sizes[0]);
    let set = RecordBatchDecoder::decode(&mut records).expect("decode");
    assert_eq!(set.records[0].offset, 4);
    // Past the end: OFFSET_OUT_OF_RANGE with the real bounds.
    let part = c.fetch("limits", 0, 11, 0, 1000).await;
    assert_eq!(part.error_code, ResponseError::OffsetOutOfRange.code());
    assert_eq!(part.high_watermark, 10);
    broker.stop().await;
}

#[tokio::test]
async fn offsets_by_time_and_the_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("times", 1, &[]).await, 0);
    let t0 = now_ms() - 10_000;
    for i in 0..5 {
        // Each batch holds three records with timestamps t, t+1, t+2.
        let r = c
            .produce(
                "times",
                0,
                batch(&[b"a", b"b", b"c"], t0 + i * 100, Compression::Lz4),
                -1,
            )
            .await;
        assert_eq!(r.base_offset, i * 3);
    }
    assert_eq!(
        c.list_offset("times", 0, -1).await.offset,
        15,
        "latest is past the last batch"
    );
    assert_eq!(c.list_offset("times", 0, -2).await.offset, 0);
    let r = c.list_offset("times", 0, t0 + 201).await;
    assert_eq!(
        (r.offset, r.timestamp),
        (7, t0 + 201),
        "the first record at or after the time"
    );
    let r = c.list_offset("times", 0, t0 + 10_000).await;
    assert_eq!(r.offset, -1, "no record that late: -1, never the log end");
    let r = c.list_offset("times", 0, -3).await;
    assert_eq!((r.offset, r.timestamp), (14, t0 + 402));
    broker.stop().await;
}

#[tokio::test]
async fn idempotent_retries_and_gaps_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("idem", 1, &[]).await, 0);
    let init = c
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let b0 = idempotent_batch(&[b"a", b"b"], now_ms(), Compression::None, pid, 0, 0);
    let b1 = idempotent_batch(&[b"c"], now_ms(), Compression::None, pid, 0, 2);
    assert_eq!(c.produce("idem", 0, b0.clone(), -1).await.base_offset, 0);
    assert_eq!(c.produce("idem", 0, b1.clone(), -1).await.base_offset, 2);
    // A retry of the first batch returns its original offset and writes nothing.
    let r = c.produce("idem", 0, b0.clone(), -1).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert_eq!(c.list_offset("idem", 0, -1).await.offset, 3);
    broker.crash().await;

    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    let r = c.produce("idem", 0, b1.clone(), -1).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 2),
        "retry recognised after a crash"
    );
    let gap = idempotent_batch(&[b"x"], now_ms(), Compression::None, pid, 0, 9);
    let r = c.produce("idem", 0, gap, -1).await;
    assert_eq!(r.error_code, ResponseError::OutOfOrderSequenceNumber.code());
    let next = idempotent_batch(&[b"d"], now_ms(), Compression::None, pid, 0, 3);
    assert_eq!(c.produce("idem", 0, next, -1).await.base_offset, 3);
    // A new producer id is never one handed out before the restart.
    let init = c
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await;
    assert!(init.producer_id.0 > pid);
    broker.stop().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_but_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("fire", 1, &[]).await, 0);
    let req = produce_request("fire", 0, batch(&[b"x"], now_ms(), Compression::Gzip), 0);
    c.send(&req, 9).await;
    // The next response on this connection belongs to the next request.
    let end = c.list_offset("fire", 0, -1).await;
    assert_eq!(end.offset, 1);
    broker.stop().await;
}

#[tokio::test]
async fn topics_and_configs_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(
        c.create_topic("keep", 3, &[("retention.ms", "123456")])
            .await,
        0
    );
    for p in 0..3 {
        let r = c
            .produce(
                "keep",
                p,
                batch(&[b"1", b"2"], now_ms(), Compression::Snappy),
                -1,
            )
            .await;
        assert_eq!(r.error_code, 0);
    }
    broker.stop().await;
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    let md = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "keep"))
        .expect("topic kept");
    assert_eq!(t.partitions.len(), 3);
    let d = c
        .call(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("keep"))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
            ]),
            4,
        )
        .await;
    assert_eq!(d.results[0].configs.len(), 1);
    assert_eq!(
        d.results[0].configs[0].value.as_ref().map(|v| v.as_str()),
        Some("123456")
    );
    for p in 0..3 {
        assert_eq!(c.list_offset("keep", p, -1).await.offset, 2);
    }
    broker.stop().await;
}
