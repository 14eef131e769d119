//! `/metrics`: reads the broker's state into the gauges of [`crate::metrics`] and renders the
//! registry as Prometheus text.

use crate::broker::Broker;

pub fn render(broker: &Broker) -> String {
    let m = crate::metrics::get();
    m.partition_bytes.reset();
    m.partition_start.reset();
    m.partition_end.reset();
    m.remote_partition_bytes.reset();
    let mut offline = 0;
    for topic in broker.replicas.topics() {
        for p in topic.partitions() {
            offline += p.is_offline() as i64;
            let labels = [topic.name.as_str(), &p.index.to_string()];
            let (start, end) = p.offsets();
            m.partition_bytes
                .with_label_values(&labels)
                .set(p.size_bytes() as i64);
            m.partition_start.with_label_values(&labels).set(start);
            m.partition_end.with_label_values(&labels).set(end);
            if let Some(r) = &broker.remote {
                let remote: u64 = r
                    .segments(topic.id, p.index)
                    .iter()
                    .map(|m| m.segment_size_bytes)
                    .sum();
                m.remote_partition_bytes
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
        m.log_dir.with_label_values(&[what]).set(v);
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
            m.tiering.with_label_values(&[what]).set(v as i64);
        }
        for (op, s) in r.objects().store_metrics().operations() {
            m.store_requests
                .with_label_values(&[op])
                .set(s.requests as i64);
            m.store_errors.with_label_values(&[op]).set(s.errors as i64);
            m.store_bytes
                .with_label_values(&[op, "sent"])
                .set(s.bytes_sent as i64);
            m.store_bytes
                .with_label_values(&[op, "received"])
                .set(s.bytes_received as i64);
            m.store_latency
                .with_label_values(&[op])
                .set(s.latency_us as f64 / 1e6);
        }
        if let Some(c) = r.objects().cache() {
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
                m.cache.with_label_values(&[what]).set(v as i64);
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
            m.search
                .with_label_values(&[what])
                .set(v.load(Relaxed) as i64);
        }
        m.search_lag.set(s.lag());
    }
    m.groups.set(broker.groups.list().len() as i64);
    m.encode()
}
