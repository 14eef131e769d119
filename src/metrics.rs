//! Prometheus metrics of the broker, named `chronik_<subsystem>_<what>_<unit>`.
//!
//! Counters and histograms updated on the request path live in one process-wide registry;
//! values that are state rather than events (partition sizes and offsets, the remote tier's
//! counters, the cache, groups) are read from the broker when `/metrics` is scraped.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::broker::Broker;

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub bytes_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub connections: IntGauge,
    partition_bytes: IntGaugeVec,
    partition_start: IntGaugeVec,
    partition_end: IntGaugeVec,
    remote_partition_bytes: IntGaugeVec,
    tiering: IntGaugeVec,
    store_requests: IntGaugeVec,
    store_errors: IntGaugeVec,
    store_bytes: IntGaugeVec,
    store_latency: prometheus::GaugeVec,
    cache: IntGaugeVec,
    groups: IntGauge,
    throttle_ms: IntGauge,
    under_replicated: IntGauge,
    /// Search query latency (observed by the search API).
    pub search_query_seconds: prometheus::Histogram,
    search: IntGaugeVec,
    search_lag: IntGauge,
    log_dir: IntGaugeVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            requests: counter(
                "chronik_kafka_requests_total",
                "Kafka requests handled, by API and version.",
                &["api", "version"],
            ),
            request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "chronik_kafka_request_duration_seconds",
                    "Time to handle a Kafka request, by API.",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
                ]),
                &["api"],
            )
            .expect("valid metric"),
            bytes_in: counter(
                "chronik_topic_bytes_in_total",
                "Record bytes appended, by topic.",
                &["topic"],
            ),
            bytes_out: counter(
                "chronik_topic_bytes_out_total",
                "Record bytes returned by fetches, by topic.",
                &["topic"],
            ),
            connections: IntGauge::new("chronik_network_connections", "Open Kafka connections.")
                .expect("valid metric"),
            partition_bytes: gauge(
                "chronik_log_partition_size_bytes",
                "Bytes of a partition on local disk.",
                &["topic", "partition"],
            ),
            partition_start: gauge(
                "chronik_log_start_offset",
                "Log start offset of a partition.",
                &["topic", "partition"],
            ),
            partition_end: gauge(
                "chronik_log_end_offset",
                "Log end offset (high watermark) of a partition.",
                &["topic", "partition"],
            ),
            remote_partition_bytes: gauge(
                "chronik_tiering_partition_remote_size_bytes",
                "Bytes of a partition in the remote tier.",
                &["topic", "partition"],
            ),
            tiering: gauge(
                "chronik_tiering_counter",
                "Remote tier counters (uploads, deletions, remote reads, backlog, read-ahead).",
                &["what"],
            ),
            store_requests: gauge(
                "chronik_object_store_requests_total",
                "Object store requests, by operation.",
                &["operation"],
            ),
            store_errors: gauge(
                "chronik_object_store_errors_total",
                "Failed object store requests, by operation.",
                &["operation"],
            ),
            store_bytes: gauge(
                "chronik_object_store_bytes_total",
                "Bytes sent to and received from the object store.",
                &["operation", "direction"],
            ),
            cache: gauge(
                "chronik_cache_counter",
                "Chunk cache counters (hits per tier, misses, fetches, memory bytes).",
                &["what"],
            ),
            groups: IntGauge::new(
                "chronik_group_count",
                "Consumer groups known to the coordinator.",
            )
            .expect("valid metric"),
            store_latency: prometheus::GaugeVec::new(
                Opts::new(
                    "chronik_object_store_latency_seconds_total",
                    "Summed object store request latency, by operation.",
                ),
                &["operation"],
            )
            .expect("valid metric"),
            throttle_ms: IntGauge::new(
                "chronik_kafka_throttle_time_ms",
                "Throttle time given to clients (no quotas yet: 0).",
            )
            .expect("valid metric"),
            under_replicated: IntGauge::new(
                "chronik_partition_under_replicated",
                "Under-replicated partitions (one node: 0).",
            )
            .expect("valid metric"),
            search_query_seconds: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "chronik_search_query_duration_seconds",
                    "Search query latency, over every split a query opens.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )
            .expect("valid metric"),
            search: gauge(
                "chronik_search_counter",
                "Search counters (records and bytes indexed, commits, splits sealed, queries, \
                 errors, remote splits opened) and the indexer's state (records it has not \
                 read, 1 while it also runs on spill_cpus).",
                &["what"],
            ),
            search_lag: IntGauge::new(
                "chronik_search_index_lag_records",
                "Records committed to the log but not yet searchable, over all searchable topics.",
            )
            .expect("valid metric"),
            log_dir: gauge(
                "chronik_log_dir_space",
                "The data directory's free-space guard: free_bytes (estimated between polls), \
                 floor_bytes, below_floor (1 while produce is refused), produce_refused (since \
                 start), offline_partitions (refusing appends after a write failure).",
                &["what"],
            ),
            registry,
        };
        for c in [&m.requests, &m.bytes_in, &m.bytes_out] {
            m.registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        m.registry
            .register(Box::new(m.request_seconds.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.connections.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.groups.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.store_latency.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.throttle_ms.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.under_replicated.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.search_query_seconds.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.search_lag.clone()))
            .expect("unique metric");
        for g in [
            &m.partition_bytes,
            &m.partition_start,
            &m.partition_end,
            &m.remote_partition_bytes,
            &m.tiering,
            &m.store_requests,
            &m.store_errors,
            &m.store_bytes,
            &m.cache,
            &m.search,
            &m.log_dir,
        ] {
            m.registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
        }
        m
    }

    /// Reads the broker's state into the gauges and renders everything as Prometheus text.
    pub fn render(&self, broker: &Broker) -> String {
        self.partition_bytes.reset();
        self.partition_start.reset();
        self.partition_end.reset();
        self.remote_partition_bytes.reset();
        let mut offline = 0;
        for topic in broker.topics() {
            for p in topic.partitions() {
                offline += p.is_offline() as i64;
                let labels = [topic.name.as_str(), &p.index.to_string()];
                let (start, end) = p.offsets();
                self.partition_bytes
                    .with_label_values(&labels)
                    .set(p.size_bytes() as i64);
                self.partition_start.with_label_values(&labels).set(start);
                self.partition_end.with_label_values(&labels).set(end);
                if let Some(r) = &broker.remote {
                    let remote: u64 = r
                        .segments(topic.id, p.index)
                        .iter()
                        .map(|m| m.segment_size_bytes)
                        .sum();
                    self.remote_partition_bytes
                        .with_label_values(&labels)
                        .set(remote as i64);
                }
            }
        }
        let space = &broker.disk_space;
        for (what, v) in [
            ("free_bytes", space.free_bytes().min(i64::MAX as u64) as i64),
            ("floor_bytes", space.floor_bytes() as i64),
            ("below_floor", space.is_low() as i64),
            ("produce_refused", space.refused() as i64),
            ("offline_partitions", offline),
        ] {
            self.log_dir.with_label_values(&[what]).set(v);
        }
        if let Some(r) = &broker.remote {
            let t = r.metrics();
            for (what, v) in [
                ("segments_uploaded", t.segments_uploaded),
                ("bytes_uploaded", t.bytes_uploaded),
                ("upload_errors", t.upload_errors),
                ("segments_deleted", t.segments_deleted),
                ("remote_reads", t.remote_reads),
                ("remote_read_bytes", t.remote_read_bytes),
                ("segments_awaiting_upload", t.segments_awaiting_upload),
                ("bytes_awaiting_upload", t.bytes_awaiting_upload),
                ("readahead_issued", t.readahead_issued),
                ("readahead_used", t.readahead_used),
            ] {
                self.tiering.with_label_values(&[what]).set(v as i64);
            }
            for (op, s) in r.store_metrics().operations() {
                self.store_requests
                    .with_label_values(&[op])
                    .set(s.requests as i64);
                self.store_errors
                    .with_label_values(&[op])
                    .set(s.errors as i64);
                self.store_bytes
                    .with_label_values(&[op, "sent"])
                    .set(s.bytes_sent as i64);
                self.store_bytes
                    .with_label_values(&[op, "received"])
                    .set(s.bytes_received as i64);
                self.store_latency
                    .with_label_values(&[op])
                    .set(s.latency_us as f64 / 1e6);
            }
            if let Some(c) = r.cache() {
                let s = c.stats();
                for (what, v) in [
                    ("memory_hits", s.memory_hits),
                    ("disk_hits", s.disk_hits),
                    ("misses", s.misses),
                    ("fetches", s.fetches),
                    ("fetch_errors", s.fetch_errors),
                    ("memory_bytes", c.memory_usage_bytes() as u64),
                    ("memory_capacity_bytes", c.memory_capacity_bytes() as u64),
                ] {
                    self.cache.with_label_values(&[what]).set(v as i64);
                }
            }
        }
        if let Some(s) = &broker.search {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &s.metrics;
            for (what, v) in [
                ("records_indexed", &c.docs_indexed),
                ("bytes_indexed", &c.bytes_indexed),
                ("commits", &c.commits),
                ("splits_sealed", &c.splits_sealed),
                ("index_errors", &c.index_errors),
                ("queries", &c.queries),
                ("query_errors", &c.query_errors),
                ("remote_splits_opened", &c.remote_splits_opened),
                ("unread_records", &c.unread),
                ("spilled", &c.spilled),
            ] {
                self.search
                    .with_label_values(&[what])
                    .set(v.load(Relaxed) as i64);
            }
            self.search_lag.set(s.lag(broker));
        }
        self.groups.set(broker.groups.list().len() as i64);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}
