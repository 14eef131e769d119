//! Client quotas over the wire: AlterClientQuotas and DescribeClientQuotas with their error
//! codes, and throttling (throttle_time_ms in the response, then a muted connection) of
//! produce, fetch and request time, leaving other clients alone.

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::Compression;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One request with the given client id; the decoded response.
async fn call_as<R: Request>(c: &mut Client, client_id: &str, req: &R, version: i16) -> R::Response
where
    R::Response: Decodable + HeaderVersion,
{
    let framed = c.encode_as(req, version, client_id);
    c.send_raw(&framed).await;
    let mut frame = c.read_frame().await.expect("response");
    ResponseHeader::decode(&mut frame, R::Response::header_version(version)).expect("header");
    let resp = R::Response::decode(&mut frame, version).expect("body");
    assert!(!frame.has_remaining());
    resp
}

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<alter_client_quotas_request::EntityData> {
    parts
        .iter()
        .map(|(t, n)| {
            alter_client_quotas_request::EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(n.map(s))
        })
        .collect()
}

fn set(key: &str, value: f64) -> alter_client_quotas_request::OpData {
    alter_client_quotas_request::OpData::default()
        .with_key(s(key))
        .with_value(value)
}

fn entry(
    parts: &[(&str, Option<&str>)],
    ops: Vec<alter_client_quotas_request::OpData>,
) -> alter_client_quotas_request::EntryData {
    alter_client_quotas_request::EntryData::default()
        .with_entity(entity(parts))
        .with_ops(ops)
}

async fn alter(
    c: &mut Client,
    entries: Vec<alter_client_quotas_request::EntryData>,
    validate_only: bool,
) -> Vec<i16> {
    let req = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let resp = c.call(&req, 1).await;
    resp.entries.iter().map(|e| e.error_code).collect()
}

async fn describe(
    c: &mut Client,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> DescribeClientQuotasResponse {
    let req = DescribeClientQuotasRequest::default()
        .with_components(
            components
                .iter()
                .map(|(t, m, n)| {
                    describe_client_quotas_request::ComponentData::default()
                        .with_entity_type(s(t))
                        .with_match_type(*m)
                        .with_match(n.map(s))
                })
                .collect(),
        )
        .with_strict(strict);
    c.call(&req, 1).await
}

#[tokio::test]
async fn alter_and_describe_with_kafka_error_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start(dir.path()).await;
    let mut c = Client::connect(broker.addr).await;
    let versions = c.api_versions().await;
    for key in [48i16, 49] {
        let v = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key)
            .expect("advertised");
        assert_eq!((v.min_version, v.max_version), (0, 1));
    }
    // validate_only changes nothing.
    let codes = alter(
        &mut c,
        vec![entry(
            &[("client-id", Some("c1"))],
            vec![set("producer_byte_rate", 1000.0)],
        )],
        true,
    )
    .await;
    assert_eq!(codes, vec![0]);
    let d = describe(&mut c, &[("client-id", 2, None)], false).await;
    assert_eq!(d.entries.as_ref().map(Vec::len), Some(0));
    // Valid and invalid entries in one request: each gets its own answer.
    let codes = alter(
        &mut c,
        vec![
            entry(
                &[("client-id", Some("c1"))],
                vec![set("producer_byte_rate", 1000.0)],
            ),
            entry(&[("user", None)], vec![set("consumer_byte_rate", 5000.0)]),
            entry(&[("client-id", Some("c2"))], vec![set("no_such_key", 1.0)]),
            entry(
                &[("client-id", Some("c3"))],
                vec![set("producer_byte_rate", 1.5)],
            ),
            entry(
                &[("client-id", Some("c4"))],
                vec![set("request_percentage", -1.0)],
            ),
            entry(&[("ip", Some("1.2.3.4"))], vec![set("ip_rate", 1.0)]),
            entry(
                &[("group", Some("g"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            entry(&[], vec![set("producer_byte_rate", 1.0)]),
            entry(&[("user", Some(""))], vec![set("producer_byte_rate", 1.0)]),
        ],
        false,
    )
    .await;
    assert_eq!(codes, vec![0, 0, 42, 42, 42, 42, 42, 42, 42]);
    // The same entity twice in one request is refused in both entries.
    let codes = alter(
        &mut c,
        vec![
            entry(
                &[("user", Some("u")), ("client-id", Some("x"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            entry(
                &[("client-id", Some("x")), ("user", Some("u"))],
                vec![set("consumer_byte_rate", 1.0)],
            ),
        ],
        false,
    )
    .await;
    assert_eq!(codes, vec![42, 42]);
    // Describe: exact, default, any, strict.
    let d = describe(&mut c, &[("client-id", 0, Some("c1"))], true).await;
    assert_eq!(d.error_code, 0);
    let entries = d.entries.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].values[0].key.as_str(), "producer_byte_rate");
    assert_eq!(entries[0].values[0].value, 1000.0);
    let d = describe(&mut c, &[("user", 1, None)], false).await;
    let entries = d.entries.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entity[0].entity_name, None);
    let d = describe(&mut c, &[], false).await;
    assert_eq!(d.entries.map(|e| e.len()), Some(2));
    // A bad filter fails the whole request.
    let d = describe(&mut c, &[("user", 0, None)], false).await;
    assert_eq!(d.error_code, 42);
    assert!(d.entries.is_none());
    let d = describe(&mut c, &[("group", 2, None)], false).await;
    assert_eq!(d.error_code, 35);
    // Removal.
    let codes = alter(
        &mut c,
        vec![entry(
            &[("client-id", Some("c1"))],
            vec![
                alter_client_quotas_request::OpData::default()
                    .with_key(s("producer_byte_rate"))
                    .with_remove(true),
            ],
        )],
        false,
    )
    .await;
    assert_eq!(codes, vec![0]);
    let d = describe(&mut c, &[("client-id", 0, Some("c1"))], false).await;
    assert_eq!(d.entries.map(|e| e.len()), Some(0));
    broker.stop().await;
}

fn produce_of(topic: &str, bytes: usize) -> ProduceRequest {
    let value = vec![b'q'; bytes];
    produce_request(
        topic,
        0,
        batch(&[value.as_slice()], now_ms(), Compression::None),
        1,
    )
}

/// Windows of 100 ms: a rate is measured over about 1 s, so throttles are short.
fn small_windows(c: &mut chronik::Config) {
    c.quota.window_size_ms = 100;
}

#[tokio::test]
async fn produce_over_quota_is_throttled_and_its_connection_muted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with(dir.path(), small_windows).await;
    let mut admin = Client::connect(broker.addr).await;
    assert_eq!(admin.create_topic("q", 1, &[]).await, 0);
    let codes = alter(
        &mut admin,
        vec![entry(
            &[("client-id", Some("slow"))],
            vec![set("producer_byte_rate", 10_000.0)],
        )],
        false,
    )
    .await;
    assert_eq!(codes, vec![0]);
    let mut slow = Client::connect(broker.addr).await;
    // 30 KB over a span of ~1 s against 10 KB/s: about 2 s of throttle.
    let resp = call_as(&mut slow, "slow", &produce_of("q", 30_000), 9).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    let throttle = resp.throttle_time_ms;
    assert!((1_500..=2_600).contains(&throttle), "throttle {throttle}");
    // The metric shows the throttle.
    let text = chronik::metrics::get().encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("chronik_kafka_throttle_time_ms ") && !l.ends_with(" 0")),
        "{}",
        text.lines()
            .filter(|l| l.contains("throttle"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Another client is neither throttled nor slowed.
    let mut fast = Client::connect(broker.addr).await;
    let started = Instant::now();
    let resp = call_as(&mut fast, "fast", &produce_of("q", 30_000), 9).await;
    assert_eq!(resp.throttle_time_ms, 0);
    assert!(started.elapsed() < Duration::from_millis(500));
    // The throttled connection reads its next request only once the throttle is over.
    let started = Instant::now();
    let v: ApiVersionsResponse =
        call_as(&mut slow, "slow", &ApiVersionsRequest::default(), 3).await;
    assert_eq!(v.error_code, 0);
    let waited = started.elapsed().as_millis() as i32;
    assert!(waited >= throttle - 200, "waited {waited} ms of {throttle}");
    // acks=0: no response, but the connection is muted all the same.
    let mut quiet = Client::connect(broker.addr).await;
    let mut req = produce_of("q", 30_000);
    req.acks = 0;
    let header = RequestHeader::default()
        .with_request_api_key(ProduceRequest::KEY)
        .with_request_api_version(9)
        .with_correlation_id(1)
        .with_client_id(Some(s("slow")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ProduceRequest::header_version(9))
        .expect("header");
    req.encode(&mut body, 9).expect("body");
    let mut framed = Vec::new();
    framed.put_i32(body.len() as i32);
    framed.extend_from_slice(&body);
    quiet.send_raw(&framed).await;
    let started = Instant::now();
    let _: ApiVersionsResponse =
        call_as(&mut quiet, "slow", &ApiVersionsRequest::default(), 3).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1_000),
        "acks=0 connection not muted: {:?}",
        started.elapsed()
    );
    broker.stop().await;
}

#[tokio::test]
async fn fetch_over_quota_returns_no_records_and_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with(dir.path(), small_windows).await;
    let mut admin = Client::connect(broker.addr).await;
    assert_eq!(admin.create_topic("f", 1, &[]).await, 0);
    for _ in 0..20 {
        let r = admin
            .produce(
                "f",
                0,
                batch(&[&[b'v'; 5_000][..]], now_ms(), Compression::None),
                1,
            )
            .await;
        assert_eq!(r.error_code, 0);
    }
    let codes = alter(
        &mut admin,
        vec![entry(
            &[("client-id", Some("reader"))],
            vec![set("consumer_byte_rate", 20_000.0)],
        )],
        false,
    )
    .await;
    assert_eq!(codes, vec![0]);
    let fetch = |offset: i64| {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(TopicName(s("f")))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(10 << 20),
                    ]),
            ])
    };
    let mut reader = Client::connect(broker.addr).await;
    // The quota allows 20 KB/s × 1 s in its windows: a fetch returns about that much, not 100 KB.
    let first: FetchResponse = call_as(&mut reader, "reader", &fetch(0), 11).await;
    let got = first.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Bytes::len);
    assert!(got > 0 && got < 40_000, "first fetch {got} bytes");
    // Reading on at once goes over the quota: throttled, and no records.
    let mut throttled = None;
    for _ in 0..5 {
        let r: FetchResponse = call_as(&mut reader, "reader", &fetch(1), 11).await;
        if r.throttle_time_ms > 0 {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("a throttled fetch");
    assert!(
        r.responses.is_empty(),
        "a throttled fetch carries no records"
    );
    // Another client reads everything at once.
    let mut other = Client::connect(broker.addr).await;
    let r: FetchResponse = call_as(&mut other, "other", &fetch(0), 11).await;
    assert_eq!(r.throttle_time_ms, 0);
    let all = r.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Bytes::len);
    assert!(all >= 100_000, "unthrottled fetch {all} bytes");
    broker.stop().await;
}

#[tokio::test]
async fn request_percentage_throttles_every_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with(dir.path(), small_windows).await;
    let mut admin = Client::connect(broker.addr).await;
    // A tiny share of a thread: a few requests take a client over it.
    let codes = alter(
        &mut admin,
        vec![entry(
            &[("client-id", Some("busy"))],
            vec![set("request_percentage", 0.001)],
        )],
        false,
    )
    .await;
    assert_eq!(codes, vec![0]);
    let mut busy = Client::connect(broker.addr).await;
    let mut throttle = 0;
    for _ in 0..50 {
        let r: MetadataResponse = call_as(
            &mut busy,
            "busy",
            &MetadataRequest::default().with_topics(None),
            12,
        )
        .await;
        if r.throttle_time_ms > 0 {
            throttle = r.throttle_time_ms;
            break;
        }
    }
    // Capped at one window (100 ms here).
    assert!((1..=100).contains(&throttle), "throttle {throttle}");
    // ApiVersions is exempt.
    let v: ApiVersionsResponse =
        call_as(&mut busy, "busy", &ApiVersionsRequest::default(), 3).await;
    assert_eq!(v.throttle_time_ms, 0);
    broker.stop().await;
}
