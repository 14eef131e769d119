//! Writes the binary seed corpora of the fuzz targets from real encoders, so that the fuzzer
//! starts from inputs the broker accepts: request frames of every API this broker serves (at its
//! lowest and highest advertised version), record batches of every codec, metadata WAL files and
//! snapshots, the default broker config and every topic config. The text seeds (search queries,
//! example configs) come from `gen_text_corpus.py`.
//!
//!     cargo run --manifest-path tests/fuzz/Cargo.toml --bin gen-corpus -- tests/fuzz/corpus

// Linked for the coverage callbacks the instrumented build of the broker refers to (this binary
// is built by `cargo fuzz build` with the targets); libFuzzer itself never runs here.
extern crate libfuzzer_sys;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use chronik::metadata::record::{MetadataRecord, encode_frame};
use chronik::metadata::state::MetadataState;
use indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("corpus file");
}

/// One request as it travels on a connection: size, header, body.
fn frame<R: Request + Encodable + HeaderVersion>(
    req: &R,
    version: i16,
    correlation: i32,
) -> Vec<u8> {
    try_frame(req, version, correlation).expect("request encodes")
}

/// `frame`, or `None` when the request has a field its version cannot carry.
fn try_frame<R: Request + Encodable + HeaderVersion>(
    req: &R,
    version: i16,
    correlation: i32,
) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("fuzz-seed")));
    let mut body = BytesMut::new();
    header.encode(&mut body, R::header_version(version)).ok()?;
    req.encode(&mut body, version).ok()?;
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    Some(out)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

fn group(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A batch of `n` records with keys, text or JSON values and headers.
fn batch(n: usize, compression: Compression, producer: Option<(i64, i16, i32)>) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let mut headers = IndexMap::new();
            if i % 2 == 0 {
                headers.insert(s("trace"), Some(Bytes::from(format!("t{i}"))));
                headers.insert(s("empty"), None);
            }
            let value = if i % 3 == 0 {
                format!(
                    r#"{{"level":"error","code":{i},"user":{{"id":{i},"name":"n{i}"}},"ok":true}}"#
                )
            } else {
                format!("error: disk full on node {i}")
            };
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if seq < 0 { -1 } else { seq + i as i32 },
                timestamp: 1_700_000_000_000 + i as i64,
                key: (i % 4 != 3).then(|| Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(value)),
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
    .expect("batch encodes");
    buf.freeze()
}

const CODECS: [(Compression, &str); 5] = [
    (Compression::None, "none"),
    (Compression::Gzip, "gzip"),
    (Compression::Snappy, "snappy"),
    (Compression::Lz4, "lz4"),
    (Compression::Zstd, "zstd"),
];

fn produce(name: &str, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

fn requests(dir: &Path) {
    let t = "fuzz-topic";
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic(t))
                .with_num_partitions(2)
                .with_replication_factor(1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("60000"))),
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("search.enabled"))
                        .with_value(Some(s("true"))),
                ]),
        ]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic(t))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 16),
                ]),
        ]);
    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic(t))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(1)
                        .with_timestamp(1_700_000_000_000),
                ]),
        ]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(t))),
    ]));
    let config_resource = |rt: i8| {
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(rt)
            .with_resource_name(s(if rt == 2 { t } else { "1" }))
    };
    let describe_configs = DescribeConfigsRequest::default()
        .with_resources(vec![config_resource(2), config_resource(4)]);
    let alter_configs = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(t))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.bytes"))
                    .with_value(Some(s("1048576"))),
            ]),
    ]);
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(t))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_config_operation(0)
                    .with_value(Some(s("delete"))),
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("segment.ms"))
                    .with_config_operation(1),
            ]),
    ]);
    let create_partitions = CreatePartitionsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic(t))
                .with_count(3),
        ]);
    let delete_records = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic(t))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(1),
                ]),
        ]);
    let leader_epoch = OffsetForLeaderEpochRequest::default().with_topics(vec![
        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(topic(t))
            .with_partitions(vec![
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(0),
            ]),
    ]);
    let g = "fuzz-group";
    let protocol_metadata = Bytes::from_static(&[
        0, 1, 0, 0, 0, 1, 0, 10, b'f', b'u', b'z', b'z', b'-', b't', b'o', b'p', b'i', b'c', 0, 0,
        0, 0,
    ]);
    let join = JoinGroupRequest::default()
        .with_group_id(group(g))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(protocol_metadata),
        ]);
    let sync = SyncGroupRequest::default()
        .with_group_id(group(g))
        .with_generation_id(1)
        .with_member_id(s("member-1"))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")));
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(group(g))
        .with_generation_id(1)
        .with_member_id(s("member-1"));
    let leave = LeaveGroupRequest::default()
        .with_group_id(group(g))
        .with_member_id(s("member-1"))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s("member-1")),
        ]);
    let commit = OffsetCommitRequest::default()
        .with_group_id(group(g))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic(t))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(3)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ]);
    let offset_fetch = OffsetFetchRequest::default()
        .with_group_id(group(g))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic(t))
                .with_partition_indexes(vec![0, 1]),
        ]))
        .with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(group(g))
                .with_topics(None),
        ]);
    let find = FindCoordinatorRequest::default()
        .with_key(s(g))
        .with_coordinator_keys(vec![s(g)]);
    let describe_groups = DescribeGroupsRequest::default().with_groups(vec![group(g)]);
    let delete_groups = DeleteGroupsRequest::default().with_groups_names(vec![group(g)]);
    let offset_delete = OffsetDeleteRequest::default()
        .with_group_id(group(g))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic(t))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(0),
                ]),
        ]);
    let delete_topics = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic(t)])
        .with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_name(Some(topic(t))),
        ]);
    let init_pid = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);

    // Every served API at its lowest and highest advertised version; a version's encoder
    // refuses fields that version lacks, so each is tried and skipped when it does not encode.
    let mut n = 0;
    let mut one = |name: &str, versions: (i16, i16), f: &dyn Fn(i16) -> Option<Vec<u8>>| {
        for v in [versions.0, versions.1] {
            if let Some(bytes) = f(v) {
                write(dir, &format!("{name}-v{v}"), &bytes);
                n += 1;
            }
        }
    };
    macro_rules! seed {
        ($name:expr, $key:expr, $req:expr) => {{
            let range = chronik::handlers::dispatch::supported_range($key).expect("served api");
            one($name, range, &|v| try_frame(&$req, v, 7));
        }};
    }
    seed!(
        "api-versions",
        ApiKey::ApiVersions,
        ApiVersionsRequest::default()
            .with_client_software_name(s("fuzz"))
            .with_client_software_version(s("1.0"))
    );
    seed!("metadata", ApiKey::Metadata, metadata);
    seed!(
        "metadata-all",
        ApiKey::Metadata,
        MetadataRequest::default().with_topics(None)
    );
    seed!("create-topics", ApiKey::CreateTopics, create);
    seed!(
        "produce",
        ApiKey::Produce,
        produce(t, batch(3, Compression::None, None), -1)
    );
    seed!("fetch", ApiKey::Fetch, fetch);
    seed!("list-offsets", ApiKey::ListOffsets, list_offsets);
    seed!(
        "describe-configs",
        ApiKey::DescribeConfigs,
        describe_configs
    );
    seed!("alter-configs", ApiKey::AlterConfigs, alter_configs);
    seed!(
        "incremental-alter-configs",
        ApiKey::IncrementalAlterConfigs,
        incremental
    );
    seed!(
        "create-partitions",
        ApiKey::CreatePartitions,
        create_partitions
    );
    seed!("delete-records", ApiKey::DeleteRecords, delete_records);
    seed!(
        "offset-for-leader-epoch",
        ApiKey::OffsetForLeaderEpoch,
        leader_epoch
    );
    seed!(
        "describe-cluster",
        ApiKey::DescribeCluster,
        DescribeClusterRequest::default()
    );
    seed!("init-producer-id", ApiKey::InitProducerId, init_pid);
    seed!("find-coordinator", ApiKey::FindCoordinator, find);
    seed!("join-group", ApiKey::JoinGroup, join);
    seed!("sync-group", ApiKey::SyncGroup, sync);
    seed!("heartbeat", ApiKey::Heartbeat, heartbeat);
    seed!("leave-group", ApiKey::LeaveGroup, leave);
    seed!("offset-commit", ApiKey::OffsetCommit, commit);
    seed!("offset-fetch", ApiKey::OffsetFetch, offset_fetch);
    seed!(
        "list-groups",
        ApiKey::ListGroups,
        ListGroupsRequest::default()
    );
    seed!("describe-groups", ApiKey::DescribeGroups, describe_groups);
    seed!("delete-groups", ApiKey::DeleteGroups, delete_groups);
    seed!("offset-delete", ApiKey::OffsetDelete, offset_delete);
    seed!("delete-topics", ApiKey::DeleteTopics, delete_topics);

    // Whole conversations: create, write with each codec (one idempotent), read back.
    for (codec, cname) in CODECS {
        let mut conv = frame(&create, 7, 1);
        let producer = (cname == "zstd").then_some((1000, 0, 0));
        conv.extend(frame(&produce(t, batch(5, codec, producer), -1), 9, 2));
        conv.extend(frame(&fetch, 12, 3));
        write(dir, &format!("conversation-{cname}"), &conv);
        n += 1;
    }
    let mut acks0 = frame(&produce(t, batch(2, Compression::Lz4, None), 0), 9, 1);
    acks0.extend(frame(&list_offsets, 7, 2));
    write(dir, "produce-acks0-then-list-offsets", &acks0);
    // An ApiVersions newer than the broker: answered with v0 UNSUPPORTED_VERSION.
    let mut future = frame(&ApiVersionsRequest::default(), 3, 9);
    future[6..8].copy_from_slice(&99i16.to_be_bytes());
    write(dir, "api-versions-future", &future);
    println!("request_frame: {} seeds", n + 2);
}

fn batches(dir: &Path) {
    for (codec, name) in CODECS {
        let mut one = vec![0u8];
        one.extend_from_slice(&batch(6, codec, None));
        write(dir, &format!("{name}-6-records"), &one);
    }
    // Two batches back to back, the second idempotent; and the CRC-fixing mode.
    let mut two = vec![1u8];
    two.extend_from_slice(&batch(2, Compression::Gzip, None));
    two.extend_from_slice(&batch(3, Compression::Snappy, Some((7, 1, 100))));
    write(dir, "gzip-then-snappy-idempotent", &two);
    println!("record_batch: 6 seeds");
}

fn wal(dir: &Path) {
    let id = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let segment = chronik_tiering::RemoteLogSegmentMetadata {
        topic_id: id,
        partition: 0,
        segment_id: Uuid::from_u128(7),
        base_offset: 0,
        end_offset: 99,
        max_timestamp_ms: 1_700_000_000_000,
        segment_size_bytes: 4096,
        leader_epoch: 0,
        state: chronik_tiering::RemoteSegmentState::CopySegmentFinished,
    };
    let records = vec![
        MetadataRecord::TopicCreated {
            name: "orders".into(),
            id,
            partitions: 2,
            configs: BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
        },
        MetadataRecord::PartitionsCreated { id, count: 3 },
        MetadataRecord::TopicConfigsSet {
            id,
            configs: BTreeMap::from([("search.enabled".to_string(), "true".to_string())]),
        },
        MetadataRecord::ProducerIdsReserved { end: 1000 },
        MetadataRecord::OffsetCommitted {
            group: "g".into(),
            topic: "orders".into(),
            partition: 1,
            offset: 42,
            leader_epoch: 0,
            metadata: Some("m".into()),
            commit_ms: 1_700_000_000_000,
        },
        MetadataRecord::RemoteSegmentUpdated {
            topic: "orders".into(),
            segment: segment.clone(),
        },
        MetadataRecord::RemoteSplitAdded {
            split: chronik_tiering::RemoteSplitMetadata {
                topic_id: id,
                partition: 0,
                segment_id: segment.segment_id,
                base_offset: 0,
                next_offset: 100,
                min_timestamp_ms: 1_699_999_999_000,
                max_timestamp_ms: 1_700_000_000_000,
                docs: 100,
                size_bytes: 9000,
                footer_bytes: 700,
            },
        },
        MetadataRecord::OffsetDeleted {
            group: "g".into(),
            topic: "orders".into(),
            partition: 1,
        },
        MetadataRecord::GroupDeleted { group: "g".into() },
        MetadataRecord::TopicDeleted { id },
    ];
    // Mode 0: the WAL file as the broker writes it (and a torn copy).
    let mut file = vec![0u8];
    for (i, r) in records.iter().enumerate() {
        encode_frame(&mut file, i as u64 + 1, r).expect("frame");
    }
    write(dir, "raw-every-record", &file);
    write(dir, "raw-torn", &file[..file.len() - 5]);
    // Mode 1: the payloads alone, framed by the target with valid CRCs.
    let chunk = |out: &mut Vec<u8>, payload: &[u8]| {
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
    };
    let mut framed = vec![1u8];
    for r in &records {
        chunk(&mut framed, &postcard::to_stdvec(r).expect("postcard"));
    }
    write(dir, "payloads-every-record", &framed);
    // Mode 3: a snapshot of the state after the first six records, then the rest.
    let mut state = MetadataState::default();
    for (i, r) in records.iter().take(6).enumerate() {
        state.apply(i as u64 + 1, r);
    }
    let mut snap = vec![3u8];
    chunk(&mut snap, &postcard::to_stdvec(&state).expect("postcard"));
    for r in records.iter().skip(6) {
        chunk(&mut snap, &postcard::to_stdvec(r).expect("postcard"));
    }
    write(dir, "snapshot-then-payloads", &snap);
    // Mode 5: explicit indexes, with a gap.
    let mut indexed = vec![5u8];
    for (i, r) in records.iter().take(4).enumerate() {
        let mut p = (if i == 3 { 9u64 } else { i as u64 + 1 })
            .to_be_bytes()
            .to_vec();
        p.extend_from_slice(&postcard::to_stdvec(r).expect("postcard"));
        chunk(&mut indexed, &p);
    }
    write(dir, "indexed-with-gap", &indexed);
    println!("metadata_wal: 5 seeds");
}

fn configs(dir: &Path) {
    let mut default = vec![0u8];
    default.extend_from_slice(chronik_fuzz::to_toml(&chronik::Config::default()).as_bytes());
    write(dir, "broker-default", &default);
    let defaults = chronik::Config::default().log;
    let mut topic_all = vec![2u8];
    for d in chronik::config::topic::TopicConfigs::default().describe(&defaults) {
        topic_all.extend_from_slice(format!("{}={}\n", d.name, d.value).as_bytes());
    }
    write(dir, "topic-every-default", &topic_all);
    println!("config: 2 seeds (more from gen_text_corpus.py)");
}

fn main() {
    let root: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tests/fuzz/corpus"));
    requests(&root.join("request_frame"));
    batches(&root.join("record_batch"));
    wal(&root.join("metadata_wal"));
    configs(&root.join("config"));
}
