//! Prometheus metrics of the broker, named `chronik_<subsystem>_<what>_<unit>`.
//!
//! Counters and histograms updated on the request path live in one process-wide registry;
//! values that are state rather than events (partition sizes and offsets, the remote tier's
//! counters, the cache, groups) are gauges that the admin HTTP server fills from the broker's
//! state when `/metrics` is scraped (`http::metrics`). This module imports nothing of the
//! broker's, so every layer can count.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub bytes_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub connections: IntGauge,
    pub security: IntCounterVec,
    pub partition_bytes: IntGaugeVec,
    pub partition_start: IntGaugeVec,
    pub partition_end: IntGaugeVec,
    pub remote_partition_bytes: IntGaugeVec,
    pub tiering: IntGaugeVec,
    pub store_requests: IntGaugeVec,
    pub store_errors: IntGaugeVec,
    pub store_bytes: IntGaugeVec,
    pub store_latency: prometheus::GaugeVec,
    pub cache: IntGaugeVec,
    pub groups: IntGauge,
    pub throttle_ms: IntGauge,
    pub under_replicated: IntGauge,
    /// Search query latency (observed by the search API).
    pub search_query_seconds: prometheus::Histogram,
    pub search: IntGaugeVec,
    pub search_lag: IntGauge,
    pub log_dir: IntGaugeVec,
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
            security: counter(
                "chronik_security_events_total",
                "TLS handshakes and SASL authentications that failed or succeeded, by what.",
                &["what"],
            ),
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
                "The latest throttle time a client quota gave (ms); 0 a quota window after the last.",
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
            .register(Box::new(m.security.clone()))
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

    /// Everything in the registry as Prometheus text.
    pub fn encode(&self) -> String {
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
