//! Micro-benchmarks of the broker's hot paths: validating a produced batch and assigning its
//! offset, finding a batch through the offset index, and decoding/encoding requests and
//! responses. Run: `cargo bench --bench hot_paths`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use chronik::log::batch::{split_batches, stored_prefix};
use chronik::log::{LogConfig, PartitionLog};
use chronik::protocol::fetch_encoder::{self, FetchOut, PartitionOut, RecordsOut, TopicOut};

/// A producer batch of `n` records of 1 KiB, as a client would send it.
fn producer_batch(n: usize, compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![(i % 251) as u8; 1024])),
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
    .expect("encode");
    buf.freeze()
}

fn batch_validation(c: &mut Criterion) {
    let batch = producer_batch(16, Compression::None);
    let mut g = c.benchmark_group("produce");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("validate_16x1KiB_batch_crc32c", |b| {
        b.iter(|| split_batches(black_box(&batch)).expect("valid"))
    });
    g.bench_function("rewrite_prefix_for_offset", |b| {
        b.iter(|| stored_prefix(black_box(&batch), black_box(123_456), 0))
    });
    // Whole append path into a real log (page cache), 16 KiB batches.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default(), 0).expect("open");
    let parsed = split_batches(&producer_batch(16, Compression::None)).expect("valid");
    // Non-idempotent copy so repeated appends are not treated as retries.
    let plain = {
        let raw = producer_batch(16, Compression::None).to_vec();
        let mut b = raw.clone();
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        split_batches(&Bytes::from(b)).expect("valid")
    };
    drop(parsed);
    g.bench_function("append_16x1KiB_batch_to_log", |b| {
        b.iter(|| {
            log.append(black_box(&plain), 1_700_000_000_000)
                .expect("append")
        })
    });
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 256 << 20,
        ..Default::default()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config, 0).expect("open");
    let raw = producer_batch(4, Compression::None).to_vec();
    let mut b = raw;
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = split_batches(&Bytes::from(b)).expect("valid");
    for _ in 0..20_000 {
        log.append(&batch, 1_700_000_000_000).expect("append");
    }
    let end = log.log_end_offset();
    let mut g = c.benchmark_group("fetch");
    let mut i = 0i64;
    g.bench_function("find_batch_and_bounds_in_80MiB_log", |bch| {
        bch.iter(|| {
            i = (i + 7919) % end;
            log.read(black_box(i), 1 << 20, true).expect("read")
        })
    });
    g.bench_function("offset_for_timestamp", |bch| {
        bch.iter(|| {
            log.offset_for_timestamp(black_box(1_700_000_000_002))
                .expect("lookup")
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let batch = producer_batch(16, Compression::Lz4);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("bench")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ]);
    let mut encoded = BytesMut::new();
    req.encode(&mut encoded, 9).expect("encode");
    let encoded = encoded.freeze();
    let mut g = c.benchmark_group("protocol");
    g.bench_function("decode_produce_v9", |b| {
        b.iter(|| ProduceRequest::decode(&mut black_box(encoded.clone()), 9).expect("decode"))
    });
    let out = FetchOut {
        topics: vec![TopicOut {
            name: "bench".into(),
            topic_id: uuid::Uuid::nil(),
            partitions: (0..16)
                .map(|i| PartitionOut {
                    high_watermark: 1_000_000,
                    last_stable_offset: 1_000_000,
                    log_start_offset: 0,
                    records: RecordsOut::Empty,
                    ..PartitionOut::new(i)
                })
                .collect(),
        }],
        ..Default::default()
    };
    g.bench_function("encode_fetch_response_16_partitions_v16", |b| {
        b.iter(|| fetch_encoder::encode(1, 16, black_box(&out)))
    });
    g.finish();
}

criterion_group!(benches, batch_validation, index_lookup, codec);
criterion_main!(benches);
