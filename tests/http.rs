//! The admin HTTP port during a produce/consume/tiering run: `/metrics` counters move exactly as
//! they must, `/health` answers, and `/ready` turns unready when the data directory cannot be
//! written and ready again when it can.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::records::Compression;

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, "").await
}

/// The value of one sample line `name{labels} value`.
fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

struct Unwritable(std::path::PathBuf);

impl Unwritable {
    /// Makes the directory unwritable even for root (`chattr +i`), or, where the file system
    /// has no immutable flag, blocks the readiness probe's file with a directory of its name.
    fn new(dir: &std::path::Path) -> Self {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            std::fs::create_dir_all(dir.join(".ready-probe")).expect("block the probe");
        }
        Self(dir.to_path_buf())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(self.0.join(".ready-probe"));
    }
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::start_with_http(dir.path(), |c| c.tiering.interval_ms = 50).await;
    let (kafka, admin) = (broker.addr, broker.http.expect("http"));

    let (status, body) = get(admin, "/health").await;
    assert_eq!(status, 200);
    assert!(body.contains("ok"));

    let mut c = Client::connect(kafka).await;
    assert_eq!(
        c.create_topic(
            "http-metrics",
            1,
            &[
                ("remote.storage.enable", "true"),
                ("segment.bytes", "4096"),
                ("local.retention.bytes", "1")
            ]
        )
        .await,
        0
    );
    let mut produced = 0u64;
    for i in 0..40 {
        let value = format!("metric-{i}-{}", "z".repeat(400));
        let b = batch(&[value.as_bytes()], now_ms(), Compression::None);
        produced += b.len() as u64;
        assert_eq!(c.produce("http-metrics", 0, b, -1).await.error_code, 0);
    }
    let _ = read_values(&mut c, "http-metrics", 0).await;
    // Production has stopped: wait until every sealed segment is uploaded.
    wait_until("segments to be uploaded", async || {
        let (_, m) = get(admin, "/metrics").await;
        sample(&m, "chronik_tiering_counter{what=\"segments_uploaded\"}").unwrap_or(0.0) >= 2.0
            && sample(
                &m,
                "chronik_tiering_counter{what=\"segments_awaiting_upload\"}",
            ) == Some(0.0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, m) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&m, "chronik_topic_bytes_in_total{topic=\"http-metrics\"}"),
        Some(produced as f64),
        "bytes in equals what was produced"
    );
    assert!(
        sample(&m, "chronik_topic_bytes_out_total{topic=\"http-metrics\"}").unwrap_or(0.0) > 0.0
    );
    assert_eq!(
        sample(
            &m,
            "chronik_log_end_offset{partition=\"0\",topic=\"http-metrics\"}"
        ),
        Some(40.0)
    );
    assert!(m.contains("chronik_kafka_requests_total{api=\"Produce\""));
    // Upload counters agree with what is in the bucket.
    let uploaded = sample(&m, "chronik_tiering_counter{what=\"segments_uploaded\"}").unwrap_or(0.0);
    let mut logs = 0;
    let mut stack = vec![dir.path().join("remote")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                logs += 1;
            }
        }
    }
    assert_eq!(
        uploaded as usize, logs,
        "uploaded segments = .log objects in the bucket"
    );
    assert!(
        sample(&m, "chronik_object_store_requests_total{operation=\"put\"}").unwrap_or(0.0)
            >= uploaded
    );

    let (status, body) = get(admin, "/ready").await;
    assert_eq!(status, 200, "{body}");
    {
        let _guard = Unwritable::new(dir.path());
        let (status, body) = get(admin, "/ready").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("data_dir_writable"), "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = get(admin, "/ready").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "ready again once writable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.stop().await;
}
