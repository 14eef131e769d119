//! Search from a client's point of view: records of every codec become searchable within about
//! a second; the same queries give the same hits when the data has moved to the remote tier and
//! its local copies are gone (file:// always, LocalStack when `TIERING_TEST_S3_ENDPOINT` is set);
//! `kill -9` of the real broker while it indexes loses and duplicates nothing; bad requests get
//! clear 4xx answers; search can be turned on later through IncrementalAlterConfigs.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::{Value, json};

/// One synthetic record: a log line or a JSON order, with a key and a header.
fn record_value(i: i64) -> String {
    let services = ["billing", "search", "ingest", "auth"];
    if i % 3 == 0 {
        let status = ["paid", "failed", "refunded"][(i / 3 % 3) as usize];
        let country = ["de", "fr", "us", "jp"][(i % 4) as usize];
        json!({
            "order": {"id": i, "amount": i % 500},
            "status": status,
            "customer": {"country": country}
        })
        .to_string()
    } else {
        format!(
            "{} {} node-{} order-{} {}",
            services[(i % 4) as usize],
            ["disk full", "timeout", "ok", "retrying"][(i % 4) as usize],
            i % 13,
            i,
            if i % 10 == 0 { "ERROR" } else { "info" }
        )
    }
}

/// A batch of records `from..to` (offsets relative), all with keys and a `trace` header.
fn corpus_batch(from: i64, to: i64, t0: i64, compression: Compression) -> Bytes {
    let records: Vec<Record> = (from..to)
        .map(|i| {
            let mut headers = IndexMap::new();
            headers.insert(
                StrBytes::from_string("trace".into()),
                Some(Bytes::from(format!("t{i}"))),
            );
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i - from,
                sequence: -1,
                timestamp: t0 + i * 1000,
                key: if i % 5 == 0 {
                    None
                } else {
                    Some(Bytes::from(format!("k{i}")))
                },
                value: Some(Bytes::from(record_value(i))),
                headers,
            }
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
    .expect("encode");
    buf.freeze()
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

async fn search(http: SocketAddr, topic: &str, body: Value) -> (u16, Value) {
    let (status, text) = http_request(
        http,
        "POST",
        &format!("/topics/{topic}/_search"),
        &body.to_string(),
    )
    .await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, v)
}

async fn status(http: SocketAddr, topic: &str) -> Value {
    let (code, text) =
        http_request(http, "GET", &format!("/topics/{topic}/_search/status"), "").await;
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).expect("json")
}

/// Waits until every partition is searchable up to its high watermark (and `extra` holds).
async fn wait_indexed(http: SocketAddr, topic: &str, extra: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(http, topic).await;
        let parts = s["partitions"].as_array().cloned().unwrap_or_default();
        if !parts.is_empty() && parts.iter().all(|p| p["lag"] == 0 && extra(p)) {
            return;
        }
        assert!(Instant::now() < deadline, "not indexed in time: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every (partition, offset) the query matches, in offset order, paging with search_after.
async fn all_hits(http: SocketAddr, topic: &str, query: &Value) -> (u64, Vec<(i64, i64)>) {
    let mut out = Vec::new();
    let mut after: Option<Value> = None;
    let mut total;
    loop {
        let mut body = json!({"query": query, "size": 5000, "sort": [{"offset": "asc"}]});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let (code, v) = search(http, topic, body).await;
        assert_eq!(code, 200, "{query}: {v}");
        total = v["total"].as_u64().expect("total");
        let hits = v["hits"].as_array().cloned().unwrap_or_default();
        if hits.is_empty() {
            break;
        }
        for h in &hits {
            out.push((
                h["partition"].as_i64().expect("p"),
                h["offset"].as_i64().expect("o"),
            ));
        }
        after = Some(hits.last().expect("hit")["sort"].clone());
    }
    (total, out)
}

fn queries() -> Vec<Value> {
    vec![
        json!({"match_all": {}}),
        json!({"match": {"value": "disk full"}}),
        json!({"match": {"value": {"query": "disk full", "operator": "and"}}}),
        json!({"match_phrase": {"value": "order 121"}}),
        json!({"match": {"key": "k77"}}),
        json!({"term": {"json.status": "paid"}}),
        json!({"term": {"json.order.id": 300}}),
        json!({"term": {"json.customer.country": "jp"}}),
        json!({"term": {"partition": 1}}),
        json!({"range": {"json.order.amount": {"gte": 100, "lt": 120}}}),
        json!({"range": {"offset": {"gt": 50, "lte": 90}}}),
        json!({"term": {"offset": 42}}),
        json!({"query_string": {"query": "offset:42 OR (partition:1 AND offset:[7 TO 9])"}}),
        json!({"match": {"headers.trace": "t42"}}),
        json!({"query_string": {"query": "value:error AND value:billing"}}),
        json!({"query_string": {"query": "\"node 7\" -timeout"}}),
        json!({"bool": {"must": [{"match": {"value": "ingest"}}], "must_not": [{"match": {"value": "error"}}], "filter": [{"range": {"offset": {"lt": 400}}}]}}),
        json!({"bool": {"should": [{"term": {"json.status": "refunded"}}, {"match": {"value": "retrying"}}]}}),
    ]
}

/// The same data in a plain and a tiered topic answers every query identically, and a query's
/// hits are what a scan of the records finds.
async fn same_hits_both_tiers(dir: &std::path::Path, tier: impl Fn(&mut chronik::Config) + Copy) {
    let broker = TestBroker::start_with_http(dir, |c| {
        c.search.commit_interval_ms = 100;
        tier(c);
    })
    .await;
    let (kafka, http) = (broker.addr, broker.http.expect("http"));
    let mut c = Client::connect(kafka).await;
    let base = [("search.enabled", "true"), ("retention.ms", "-1")];
    assert_eq!(c.create_topic("plain", 2, &base).await, 0);
    let mut tiered_cfg = base.to_vec();
    tiered_cfg.extend([
        ("remote.storage.enable", "true"),
        ("segment.bytes", "16384"),
        ("local.retention.bytes", "1"),
    ]);
    assert_eq!(c.create_topic("tiered", 2, &tiered_cfg).await, 0);
    let t0 = now_ms() - 86_400_000;
    let per_partition = 1500i64;
    for p in 0..2 {
        let mut i = 0;
        let mut n = 0;
        while i < per_partition {
            let end = (i + 50).min(per_partition);
            let codec = CODECS[n % CODECS.len()];
            n += 1;
            for topic in ["plain", "tiered"] {
                let r = c
                    .produce(
                        topic,
                        p,
                        corpus_batch(p as i64 * 10_000 + i, p as i64 * 10_000 + end, t0, codec),
                        -1,
                    )
                    .await;
                assert_eq!((r.error_code, r.base_offset), (0, i), "{topic}-{p}");
            }
            i = end;
        }
    }
    wait_indexed(http, "plain", |_| true).await;
    // Sealed segments of the tiered topic went up with their splits and left local disk.
    wait_indexed(http, "tiered", |p| {
        p["remote_splits"].as_u64() > Some(3) && p["local_splits"] == 0
    })
    .await;
    assert!(
        c.list_offset("tiered", 0, -4).await.offset > 300,
        "local log start moved"
    );
    for q in queries() {
        let (pt, plain) = all_hits(http, "plain", &q).await;
        let (tt, tiered) = all_hits(http, "tiered", &q).await;
        assert_eq!(pt as usize, plain.len(), "{q}: total vs hits");
        assert_eq!((pt, &plain), (tt, &tiered), "{q}: plain vs tiered");
        assert!(pt > 0, "{q} matches something");
    }
    // A scan agrees on two of them.
    let scan = |pred: &dyn Fn(i64) -> bool| -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for p in 0..2i64 {
            for i in 0..per_partition {
                if pred(p * 10_000 + i) {
                    out.push((p, i));
                }
            }
        }
        out.sort_by_key(|&(p, o)| (o, p));
        out
    };
    let (_, hits) = all_hits(http, "tiered", &json!({"term": {"json.status": "paid"}})).await;
    assert_eq!(
        hits,
        scan(&|i| record_value(i).contains("\"status\":\"paid\""))
    );
    let (_, hits) = all_hits(
        http,
        "tiered",
        &json!({"range": {"json.order.amount": {"gte": 100, "lt": 120}}}),
    )
    .await;
    assert_eq!(
        hits,
        scan(&|i| i % 3 == 0 && (100..120).contains(&(i % 500)))
    );
    // A hit carries the record as produced; a null key is null.
    let (_, v) = search(
        http,
        "tiered",
        json!({"query": {"term": {"offset": 5}}, "partitions": [1], "size": 1}),
    )
    .await;
    let h = &v["hits"][0];
    assert_eq!(h["value"], record_value(10_005));
    assert_eq!(h["key"], Value::Null);
    assert_eq!(h["headers"], json!([{"key": "trace", "value": "t10005"}]));
    assert_eq!(h["timestamp"], t0 + 10_005 * 1000);
    // A time window prunes splits and returns only records inside it.
    let from = t0 + 200 * 1000;
    let to = t0 + 260 * 1000;
    let (_, v) = search(
        http,
        "tiered",
        json!({"time": {"from": from, "to": to}, "size": 0, "partitions": [0]}),
    )
    .await;
    assert_eq!(v["total"], 60, "{v}");
    assert!(v["splits"]["pruned"].as_u64() > Some(0), "{v}");

    // Freshness: a new record is found soon after its acknowledgement.
    let started = Instant::now();
    let r = c
        .produce(
            "tiered",
            0,
            batch(&[b"a freshly written needle"], now_ms(), Compression::None),
            -1,
        )
        .await;
    assert_eq!(r.error_code, 0);
    loop {
        let (_, v) = search(
            http,
            "tiered",
            json!({"query": {"match": {"value": "needle"}}}),
        )
        .await;
        if v["total"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never searchable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "freshness: searchable {} ms after the ack",
        started.elapsed().as_millis()
    );
    broker.stop().await;
}

#[tokio::test]
async fn same_hits_after_moving_to_the_remote_tier_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", dir.path().join("remote").display());
    let data = dir.path().join("data");
    same_hits_both_tiers(&data, |c| {
        c.tiering.interval_ms = 50;
        c.tiering.url = url.clone();
    })
    .await;
}

#[tokio::test]
async fn same_hits_after_moving_to_the_remote_tier_localstack() {
    let Ok(endpoint) = std::env::var("TIERING_TEST_S3_ENDPOINT") else {
        eprintln!("note: skipped; set TIERING_TEST_S3_ENDPOINT (tests/run.sh does)");
        return;
    };
    let bucket = std::env::var("TIERING_TEST_S3_BUCKET").unwrap_or_else(|_| "chronik".into());
    let url = format!(
        "s3://{bucket}/search-test-{}",
        uuid::Uuid::new_v4().simple()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    same_hits_both_tiers(dir.path(), |c| {
        c.tiering.interval_ms = 50;
        c.tiering.url = url.clone();
        c.tiering.endpoint = endpoint.clone();
        c.tiering.region = "us-east-1".into();
        c.tiering.allow_http = true;
    })
    .await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_search_can_be_turned_on_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with_http(dir.path(), |_| {}).await;
    let (kafka, http) = (broker.addr, broker.http.expect("http"));
    let mut c = Client::connect(kafka).await;
    assert_eq!(c.create_topic("later", 1, &[]).await, 0);
    let r = c
        .produce(
            "later",
            0,
            batch(
                &[b"first words", b"second words"],
                now_ms(),
                Compression::Gzip,
            ),
            -1,
        )
        .await;
    assert_eq!(r.error_code, 0);

    let err = |v: &Value| v["error"]["type"].as_str().unwrap_or("").to_string();
    let (code, v) = search(http, "nope", json!({})).await;
    assert_eq!((code, err(&v).as_str()), (404, "unknown_topic"), "{v}");
    let (code, v) = search(http, "later", json!({})).await;
    assert_eq!((code, err(&v).as_str()), (400, "search_disabled"), "{v}");

    // Turned on through IncrementalAlterConfigs, as any admin tool does it.
    let resp = c
        .call(
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("later"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("search.enabled"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("true"))),
                    ]),
            ]),
            1,
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    wait_indexed(http, "later", |_| true).await;
    let (code, v) = search(
        http,
        "later",
        json!({"query": {"match": {"value": "words"}}}),
    )
    .await;
    assert_eq!((code, v["total"].as_u64()), (200, Some(2)), "{v}");

    for (body, kind) in [
        ("{not json", "parse_error"),
        (
            r#"{"query": {"query_string": {"query": "value:(unclosed"}}}"#,
            "parse_error",
        ),
        (r#"{"query": {"fuzzy": {"value": "x"}}}"#, "bad_request"),
        (r#"{"query": {"match": {"nofield": "x"}}}"#, "bad_request"),
        (r#"{"size": 9000, "from": 2000}"#, "bad_request"),
        (r#"{"sort": [{"value": "asc"}]}"#, "bad_request"),
        (
            r#"{"query": {"range": {"timestamp": {"gte": "yesterday"}}}}"#,
            "bad_request",
        ),
    ] {
        let (code, text) = http_request(http, "POST", "/topics/later/_search", body).await;
        let v: Value = serde_json::from_str(&text).expect("json error body");
        assert_eq!((code, err(&v).as_str()), (400, kind), "{body}: {v}");
        assert!(
            !v["error"]["reason"].as_str().unwrap_or("").is_empty(),
            "{v}"
        );
        // The broker keeps answering good queries.
        let (code, v) = search(
            http,
            "later",
            json!({"query": {"match": {"value": "first"}}}),
        )
        .await;
        assert_eq!((code, v["total"].as_u64()), (200, Some(1)));
    }
    // The query-string form of GET.
    let (code, text) = http_request(http, "GET", "/topics/later/_search?q=second&size=1", "").await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("second words"), "{text}");
    broker.stop().await;
}

/// The broker process, killed when the test ends however it ends (a failed assertion must not
/// leave a broker running).
struct Broker(Child);

impl Broker {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &std::path::Path, port: u16, http: u16) -> Broker {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chronik"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{http}"))
        .env("CHRONIK_SEARCH_COMMIT_INTERVAL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("CHRONIK_") {
            cmd.env_remove(k);
        }
    }
    Broker(cmd.spawn().expect("spawn chronik"))
}

/// `kill -9` while records are being indexed (and segments sealed into splits): after each
/// restart indexing resumes, and in the end every offset is in the index exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_indexing_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, http_port) = (free_port(), free_port());
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
    let mut child = spawn(dir.path(), port, http_port);
    let mut c = connect_port(port).await;
    assert_eq!(
        c.create_topic(
            "crashy",
            2,
            &[
                ("search.enabled", "true"),
                ("segment.bytes", "65536"),
                ("retention.ms", "-1")
            ]
        )
        .await,
        0
    );
    let t0 = now_ms() - 86_400_000;
    let mut next = [0i64; 2];
    for round in 0..3 {
        // Produce for a while, then kill the broker in the middle of it.
        let kill_after = Duration::from_millis(700 + 300 * round);
        let started = Instant::now();
        let mut n = 0usize;
        while started.elapsed() < kill_after {
            let p = (n % 2) as i32;
            let from = next[p as usize];
            let r = c
                .produce(
                    "crashy",
                    p,
                    corpus_batch(from, from + 40, t0, CODECS[n % CODECS.len()]),
                    -1,
                )
                .await;
            assert_eq!((r.error_code, r.base_offset), (0, from));
            next[p as usize] += 40;
            n += 1;
        }
        child.kill();
        child = spawn(dir.path(), port, http_port);
        c = connect_port(port).await;
    }
    // Wait for the HTTP port, then for the indexer to catch up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(http).await.is_err() {
        assert!(Instant::now() < deadline, "http port did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_indexed(http, "crashy", |_| true).await;
    let s = status(http, "crashy").await;
    for p in 0..2 {
        assert_eq!(s["partitions"][p]["high_watermark"], next[p], "{s}");
    }
    let (total, hits) = all_hits(http, "crashy", &json!({"match_all": {}})).await;
    let mut want: Vec<(i64, i64)> = (0..2i64)
        .flat_map(|p| (0..next[p as usize]).map(move |o| (p, o)))
        .collect();
    want.sort_by_key(|&(p, o)| (o, p));
    assert_eq!(total as usize, want.len());
    assert_eq!(hits, want, "every offset exactly once");
    assert!(
        s["partitions"][0]["local_splits"].as_u64() > Some(0),
        "segments were sealed into splits: {s}"
    );
    child.kill();
}
