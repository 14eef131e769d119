//! Tiered storage seen from a client: sealed segments move to the remote tier, local copies go,
//! and fetches, offsets and timestamps below the local log start are served from the remote
//! tier — also after a restart and after the local disk is lost. Deleting records or the topic
//! removes the remote objects. One test body runs against a `file://` store and, when
//! `TIERING_TEST_S3_ENDPOINT` is set (tests/run.sh starts LocalStack and sets it), against a
//! real S3 server.

mod common;

use chronik_tiering::object_store::ObjectStore;
use chronik_tiering::{StoreOptions, open_store};
use futures::TryStreamExt;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// Where the remote tier of one test run lives.
#[derive(Clone)]
struct Remote {
    url: String,
    options: StoreOptions,
}

impl Remote {
    fn apply(&self, c: &mut chronik::Config) {
        c.tiering.interval_ms = 50;
        c.tiering.url = self.url.clone();
        c.tiering.endpoint = self.options.endpoint.clone().unwrap_or_default();
        c.tiering.region = self.options.region.clone().unwrap_or_default();
        c.tiering.allow_http = self.options.allow_http;
    }

    /// Every object key under the store URL.
    async fn objects(&self) -> Vec<String> {
        let store = open_store(&self.url, &self.options).expect("store");
        let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }
}

const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("remote.storage.enable", "true"),
    ("segment.bytes", "4096"),
    ("local.retention.bytes", "1"),
];

#[tokio::test]
async fn file_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Remote {
        url: format!("file://{}", dir.path().join("remote").display()),
        options: StoreOptions::default(),
    };
    tier_and_read_back(dir.path(), remote).await;
}

#[tokio::test]
async fn s3_store() {
    let Ok(endpoint) = std::env::var("TIERING_TEST_S3_ENDPOINT") else {
        eprintln!("note: s3_store skipped; set TIERING_TEST_S3_ENDPOINT (tests/run.sh does)");
        return;
    };
    s3_run(endpoint).await;
}

/// The same suite on moto's S3 server (`localstack/moto.sh start`).
#[tokio::test]
async fn moto_store() {
    let Ok(endpoint) = std::env::var("TIERING_TEST_MOTO_ENDPOINT") else {
        eprintln!("note: moto_store skipped; set TIERING_TEST_MOTO_ENDPOINT (tests/run.sh does)");
        return;
    };
    s3_run(endpoint).await;
}

async fn s3_run(endpoint: String) {
    let bucket = std::env::var("TIERING_TEST_S3_BUCKET").unwrap_or_else(|_| "chronik".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Remote {
        url: format!(
            "s3://{bucket}/broker-test-{}",
            uuid::Uuid::new_v4().simple()
        ),
        options: StoreOptions {
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            allow_http: true,
            ..Default::default()
        },
    };
    tier_and_read_back(dir.path(), remote).await;
}

async fn tier_and_read_back(dir: &std::path::Path, remote: Remote) {
    let tiered = |c: &mut chronik::Config| remote.apply(c);
    let broker = TestBroker::start_with(dir, tiered).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("tiered", 1, TOPIC_CONFIGS).await, 0);
    let t0 = now_ms() - 60_000;
    let mut expected = Vec::new();
    for i in 0..60i64 {
        let value = format!("record-{i:04}-{}", "x".repeat(300 + i as usize));
        let r = c
            .produce(
                "tiered",
                0,
                batch(&[value.as_bytes()], t0 + i * 1000, Compression::None),
                -1,
            )
            .await;
        assert_eq!((r.error_code, r.base_offset), (0, i));
        expected.push((i, value.into_bytes()));
    }
    // Sealed segments are copied and their local copies deleted.
    wait_until("local log start to move", async || {
        c.list_offset("tiered", 0, -4).await.offset > 20
    })
    .await;
    assert_eq!(
        c.list_offset("tiered", 0, -2).await.offset,
        0,
        "the log still starts at 0"
    );
    let tiered_end = c.list_offset("tiered", 0, -5).await.offset;
    assert!(tiered_end > 20, "latest tiered offset {tiered_end}");
    assert!(remote.objects().await.iter().any(|f| f.ends_with(".log")));
    assert_eq!(
        read_values(&mut c, "tiered", 0).await,
        expected,
        "remote + local read"
    );
    // Timestamps in the remote range resolve exactly.
    let r = c.list_offset("tiered", 0, t0 + 5_500).await;
    assert_eq!((r.offset, r.timestamp), (6, t0 + 6_000));
    broker.stop().await;

    // After a restart nothing changes.
    let broker = TestBroker::start_with(dir, tiered).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(read_values(&mut c, "tiered", 0).await, expected);
    broker.crash().await;

    // The local disk is lost; the metadata log survives: the remote range is still served and
    // new records continue after it instead of reusing offsets.
    let data = dir.join("tiered-0");
    std::fs::remove_dir_all(&data).expect("lose the local log");
    let broker = TestBroker::start_with(dir, tiered).await;
    let mut c = Client::connect(broker.addr).await;
    let remote_part = read_values(&mut c, "tiered", 0).await;
    assert!(
        remote_part.len() as i64 >= tiered_end,
        "served {} records",
        remote_part.len()
    );
    assert_eq!(&remote_part[..], &expected[..remote_part.len()]);
    let r = c
        .produce(
            "tiered",
            0,
            batch(&[b"after-loss"], now_ms(), Compression::None),
            -1,
        )
        .await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.base_offset,
        remote_part.len() as i64,
        "no offset is handed out twice"
    );

    // DeleteRecords removes remote segments below the new start; DeleteTopics removes the rest.
    let del = c
        .call(
            &DeleteRecordsRequest::default().with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("tiered")))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(30),
                    ]),
            ]),
            2,
        )
        .await;
    assert_eq!(del.topics[0].partitions[0].error_code, 0);
    let before = remote.objects().await.len();
    wait_until("remote segments below the start to go", async || {
        remote.objects().await.len() < before
    })
    .await;
    assert_eq!(c.list_offset("tiered", 0, -2).await.offset, 30);
    let part = c.fetch("tiered", 0, 10, 0, 1024).await;
    assert_eq!(
        part.error_code,
        kafka_protocol::error::ResponseError::OffsetOutOfRange.code()
    );
    let del = c
        .call(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(StrBytes::from_static_str("tiered"))]),
            5,
        )
        .await;
    assert_eq!(del.responses[0].error_code, 0);
    wait_until("every remote object of the topic to go", async || {
        remote.objects().await.is_empty()
    })
    .await;
    broker.stop().await;
}

/// Stops a LocalStack instance of this test's own when dropped.
struct LocalStack {
    port: u16,
}

impl LocalStack {
    fn script(name: &str, port: u16) -> bool {
        std::process::Command::new("bash")
            .arg(format!("{}/localstack/{name}", env!("CARGO_MANIFEST_DIR")))
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(port: u16) -> Self {
        assert!(
            Self::script("start.sh", port),
            "LocalStack did not start on {port}"
        );
        Self { port }
    }

    fn stop(&self) {
        assert!(
            Self::script("stop.sh", self.port),
            "LocalStack did not stop"
        );
    }

    fn restart(&self) {
        assert!(
            Self::script("start.sh", self.port),
            "LocalStack did not restart"
        );
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = Self::script("stop.sh", self.port);
    }
}

/// A real outage: the S3 server itself is stopped while records are produced, then started
/// again. Produce goes on, nothing that is not uploaded leaves local disk, and the uploads
/// catch up with no record lost.
#[tokio::test]
async fn s3_outage_by_stopping_localstack() {
    if std::env::var("TIERING_TEST_S3_ENDPOINT").is_err() {
        eprintln!("note: s3_outage skipped; set TIERING_TEST_S3_ENDPOINT (tests/run.sh does)");
        return;
    }
    let port = std::env::var("TIERING_TEST_OUTAGE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4577u16);
    let localstack = LocalStack::start(port);
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = Remote {
        url: format!("s3://chronik/outage-{}", uuid::Uuid::new_v4().simple()),
        options: StoreOptions {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: Some("us-east-1".into()),
            allow_http: true,
            ..Default::default()
        },
    };
    let tiered = |c: &mut chronik::Config| remote.apply(c);
    let broker = TestBroker::start_with(dir.path(), tiered).await;
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("outage", 1, TOPIC_CONFIGS).await, 0);
    localstack.stop();
    let t0 = now_ms() - 60_000;
    let mut expected = Vec::new();
    for i in 0..60i64 {
        let value = format!("outage-{i:04}-{}", "o".repeat(300 + i as usize));
        let r = c
            .produce(
                "outage",
                0,
                batch(&[value.as_bytes()], t0 + i * 1000, Compression::None),
                -1,
            )
            .await;
        assert_eq!(
            (r.error_code, r.base_offset),
            (0, i),
            "produce goes on during the outage"
        );
        expected.push((i, value.into_bytes()));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        c.list_offset("outage", 0, -4).await.offset,
        0,
        "nothing left local disk"
    );
    assert_eq!(
        c.list_offset("outage", 0, -5).await.offset,
        -1,
        "nothing is remote yet"
    );
    assert_eq!(read_values(&mut c, "outage", 0).await, expected);
    localstack.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while c.list_offset("outage", 0, -4).await.offset <= 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "uploads did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        read_values(&mut c, "outage", 0).await,
        expected,
        "no record lost"
    );
    assert!(remote.objects().await.iter().any(|f| f.ends_with(".log")));
    broker.stop().await;
}
