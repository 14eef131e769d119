//! Encodes Fetch responses so record data can follow the headers by `sendfile`.
//!
//! The generic encoder needs every record byte in memory; this one writes everything else into a
//! small buffer and leaves each partition's records as a file range, with all lengths computed up
//! front. Its output is byte-for-byte what `kafka-protocol` produces for the same response (see
//! the tests, which compare both for every supported version).

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::{Chunk, Response};
use crate::log::FileRegion;

/// The record data of one partition in a response.
#[derive(Debug, Clone)]
pub enum RecordsOut {
    /// No data: encoded as an empty record set, as Kafka does.
    Empty,
    File(FileRegion),
    /// Record data in memory, in pieces sent one after another (e.g. slices of cached chunks).
    Memory(Vec<Bytes>),
}

impl RecordsOut {
    pub fn len(&self) -> usize {
        match self {
            RecordsOut::Empty => 0,
            RecordsOut::File(f) => f.len as usize,
            RecordsOut::Memory(parts) => parts.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct PartitionOut {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `read_committed` fetches get an (empty) list of aborted transactions, others null.
    pub read_committed: bool,
    pub records: RecordsOut,
    /// `(epoch, end_offset)` where a follower's log parts from the leader's (v12+).
    pub diverging_epoch: Option<(i32, i64)>,
    /// `(leader_id, leader_epoch)` with `NOT_LEADER_OR_FOLLOWER` and fenced epochs (v12+,
    /// KIP-951).
    pub current_leader: Option<(i32, i32)>,
}

impl PartitionOut {
    pub fn new(partition_index: i32) -> Self {
        Self {
            partition_index,
            error_code: 0,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            read_committed: false,
            records: RecordsOut::Empty,
            diverging_epoch: None,
            current_leader: None,
        }
    }
}

/// A broker named by a `current_leader` (v16+, KIP-951).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOut {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TopicOut {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionOut>,
}

#[derive(Debug, Clone, Default)]
pub struct FetchOut {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<TopicOut>,
    pub node_endpoints: Vec<NodeOut>,
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        put_uvarint(buf, len as u64 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

fn put_string(buf: &mut BytesMut, flexible: bool, s: &str) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

/// Builds the response frame (size prefix included) for `version`.
pub fn encode(correlation_id: i32, version: i16, out: &FetchOut) -> Response {
    let flexible = version >= 12;
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // size, patched below
    buf.put_i32(correlation_id);
    if flexible {
        put_uvarint(&mut buf, 0); // response header tagged fields
    }
    buf.put_i32(out.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(out.error_code);
        buf.put_i32(out.session_id);
    }
    put_array_len(&mut buf, flexible, out.topics.len());
    let mut total = 0usize;
    for topic in &out.topics {
        if version >= 13 {
            buf.put_slice(topic.topic_id.as_bytes());
        } else {
            put_string(&mut buf, flexible, &topic.name);
        }
        put_array_len(&mut buf, flexible, topic.partitions.len());
        for p in &topic.partitions {
            buf.put_i32(p.partition_index);
            buf.put_i16(p.error_code);
            buf.put_i64(p.high_watermark);
            buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                buf.put_i64(p.log_start_offset);
            }
            // Aborted transactions: null, or an empty list for read_committed.
            match (p.read_committed, flexible) {
                (false, true) => put_uvarint(&mut buf, 0),
                (false, false) => buf.put_i32(-1),
                (true, f) => put_array_len(&mut buf, f, 0),
            }
            if version >= 11 {
                buf.put_i32(-1); // preferred read replica
            }
            let len = p.records.len();
            if flexible {
                put_uvarint(&mut buf, len as u64 + 1);
            } else {
                buf.put_i32(len as i32);
            }
            // Record data is never copied: a file range goes by `sendfile`, bytes from the
            // remote tier (slices of cached chunks) are written from where they are.
            if !p.records.is_empty() {
                let head = buf.split().freeze();
                total += head.len();
                chunks.push(Chunk::Bytes(head));
                total += p.records.len();
                match &p.records {
                    RecordsOut::Empty => {}
                    // A slice of a chunk in a memory file goes by `sendfile` too.
                    RecordsOut::Memory(parts) => {
                        chunks.extend(parts.iter().filter(|b| !b.is_empty()).map(|b| {
                            crate::shm::file_region(b).map_or(Chunk::Bytes(b.clone()), Chunk::File)
                        }))
                    }
                    RecordsOut::File(region) => chunks.push(Chunk::File(region.clone())),
                }
            }
            if flexible {
                // Partition tagged fields: 0 DivergingEpoch, 1 CurrentLeader.
                let tags = p.diverging_epoch.is_some() as u64 + p.current_leader.is_some() as u64;
                put_uvarint(&mut buf, tags);
                if let Some((epoch, end_offset)) = p.diverging_epoch {
                    put_uvarint(&mut buf, 0);
                    put_uvarint(&mut buf, 13);
                    buf.put_i32(epoch);
                    buf.put_i64(end_offset);
                    put_uvarint(&mut buf, 0);
                }
                if let Some((leader_id, leader_epoch)) = p.current_leader {
                    put_uvarint(&mut buf, 1);
                    put_uvarint(&mut buf, 9);
                    buf.put_i32(leader_id);
                    buf.put_i32(leader_epoch);
                    put_uvarint(&mut buf, 0);
                }
            }
        }
        if flexible {
            put_uvarint(&mut buf, 0); // topic tagged fields
        }
    }
    if flexible {
        // Top-level tagged fields: 0 NodeEndpoints (v16+).
        if version >= 16 && !out.node_endpoints.is_empty() {
            let mut nodes = BytesMut::new();
            put_array_len(&mut nodes, true, out.node_endpoints.len());
            for n in &out.node_endpoints {
                nodes.put_i32(n.node_id);
                put_string(&mut nodes, true, &n.host);
                nodes.put_i32(n.port);
                match &n.rack {
                    Some(r) => put_string(&mut nodes, true, r),
                    None => put_uvarint(&mut nodes, 0),
                }
                put_uvarint(&mut nodes, 0);
            }
            put_uvarint(&mut buf, 1);
            put_uvarint(&mut buf, 0);
            put_uvarint(&mut buf, nodes.len() as u64);
            buf.put_slice(&nodes);
        } else {
            put_uvarint(&mut buf, 0);
        }
    }
    total += buf.len();
    chunks.push(Chunk::Bytes(buf.freeze()));
    // Patch the frame size into the first chunk, which is always headers (small: record data
    // follows a header chunk of its own).
    let size = (total - 4) as i32;
    if let Some(Chunk::Bytes(first)) = chunks.first_mut() {
        let mut patched = BytesMut::from(&first[..]);
        patched[..4].copy_from_slice(&size.to_be_bytes());
        *first = patched.freeze();
    }
    Response { chunks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
        PartitionData,
    };
    use kafka_protocol::messages::{FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

    fn sample(read_committed: bool, records: Vec<Option<Bytes>>) -> FetchOut {
        FetchOut {
            throttle_time_ms: 3,
            error_code: 0,
            session_id: 0,
            node_endpoints: Vec::new(),
            topics: vec![TopicOut {
                name: "orders".into(),
                topic_id: Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788),
                partitions: records
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| PartitionOut {
                        partition_index: i as i32,
                        error_code: if i == 2 { 1 } else { 0 },
                        high_watermark: 100 + i as i64,
                        last_stable_offset: 100 + i as i64,
                        log_start_offset: i as i64,
                        read_committed,
                        records: r.map_or(RecordsOut::Empty, |b| RecordsOut::Memory(vec![b])),
                        diverging_epoch: None,
                        current_leader: None,
                    })
                    .collect(),
            }],
        }
    }

    fn reference(correlation_id: i32, version: i16, out: &FetchOut) -> Vec<u8> {
        let topics = out
            .topics
            .iter()
            .map(|t| {
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(p.error_code)
                                    .with_high_watermark(p.high_watermark)
                                    .with_last_stable_offset(p.last_stable_offset)
                                    .with_log_start_offset(p.log_start_offset)
                                    .with_aborted_transactions(if p.read_committed {
                                        Some(Vec::<AbortedTransaction>::new())
                                    } else {
                                        None
                                    })
                                    .with_preferred_read_replica((-1).into())
                                    .with_records(Some(match &p.records {
                                        RecordsOut::Memory(parts) => Bytes::from(parts.concat()),
                                        _ => Bytes::new(),
                                    }))
                                    .with_diverging_epoch(p.diverging_epoch.map_or_else(
                                        Default::default,
                                        |(e, o)| {
                                            EpochEndOffset::default()
                                                .with_epoch(e)
                                                .with_end_offset(o)
                                        },
                                    ))
                                    .with_current_leader(p.current_leader.map_or_else(
                                        Default::default,
                                        |(l, e)| {
                                            LeaderIdAndEpoch::default()
                                                .with_leader_id(l.into())
                                                .with_leader_epoch(e)
                                        },
                                    ))
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = FetchResponse::default()
            .with_throttle_time_ms(out.throttle_time_ms)
            .with_error_code(out.error_code)
            .with_session_id(out.session_id)
            .with_responses(topics)
            .with_node_endpoints(
                out.node_endpoints
                    .iter()
                    .map(|n| {
                        NodeEndpoint::default()
                            .with_node_id(n.node_id.into())
                            .with_host(StrBytes::from_string(n.host.clone()))
                            .with_port(n.port)
                            .with_rack(n.rack.clone().map(StrBytes::from_string))
                    })
                    .collect(),
            );
        let hv = FetchResponse::header_version(version);
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let mut body = BytesMut::new();
        header.encode(&mut body, hv).expect("header");
        resp.encode(&mut body, version).expect("body");
        let mut framed = BytesMut::new();
        framed.put_i32(body.len() as i32);
        framed.put_slice(&body);
        framed.to_vec()
    }

    fn flatten(r: &Response) -> Vec<u8> {
        let mut v = Vec::new();
        for c in &r.chunks {
            match c {
                Chunk::Bytes(b) => v.extend_from_slice(b),
                Chunk::File(_) => panic!("no files in this test"),
            }
        }
        v
    }

    #[test]
    fn matches_the_generic_encoder_for_every_version() {
        for version in 4..=17 {
            for read_committed in [false, true] {
                let out = sample(
                    read_committed,
                    vec![
                        Some(Bytes::from_static(b"0123456789")),
                        None,
                        Some(Bytes::from(vec![7u8; 300])),
                    ],
                );
                assert_eq!(
                    flatten(&encode(42, version, &out)),
                    reference(42, version, &out),
                    "version {version}, read_committed {read_committed}"
                );
            }
        }
    }

    #[test]
    fn tagged_fields_match_the_generic_encoder() {
        for version in 12..=17 {
            let mut out = sample(false, vec![None, Some(Bytes::from_static(b"abc")), None]);
            out.topics[0].partitions[0].diverging_epoch = Some((4, 1234));
            out.topics[0].partitions[1].current_leader = Some((3, 9));
            out.topics[0].partitions[2].diverging_epoch = Some((0, 0));
            out.topics[0].partitions[2].current_leader = Some((2, 1));
            out.node_endpoints = vec![
                NodeOut {
                    node_id: 3,
                    host: "127.0.0.1".into(),
                    port: 9094,
                    rack: Some("r1".into()),
                },
                NodeOut {
                    node_id: 2,
                    host: "localhost".into(),
                    port: 9093,
                    rack: None,
                },
            ];
            let mut expected = out.clone();
            if version < 16 {
                expected.node_endpoints.clear();
            }
            assert_eq!(
                flatten(&encode(7, version, &out)),
                reference(7, version, &expected),
                "version {version}"
            );
        }
    }

    #[test]
    fn memory_records_are_sent_from_where_they_are_not_copied() {
        let records = Bytes::from(vec![7u8; 1 << 20]);
        let out = sample(false, vec![Some(records.clone())]);
        let resp = encode(1, 16, &out);
        let shared = resp
            .chunks
            .iter()
            .filter(|c| matches!(c, Chunk::Bytes(b) if b.as_ptr() == records.as_ptr()))
            .count();
        assert_eq!(shared, 1, "the records chunk is the caller's buffer");
        let Chunk::Bytes(first) = &resp.chunks[0] else {
            panic!("first chunk holds the header")
        };
        assert!(first.len() < 256, "headers only: {}", first.len());
        assert_eq!(flatten(&resp), reference(1, 16, &out));

        // Records in several pieces (a range across cached chunks) are sent piece by piece.
        let mut out = sample(false, vec![None, None]);
        out.topics[0].partitions[0].records = RecordsOut::Memory(vec![
            Bytes::from_static(b"01234"),
            Bytes::new(),
            Bytes::from_static(b"56789"),
        ]);
        for version in 4..=17 {
            let resp = encode(3, version, &out);
            assert_eq!(
                flatten(&resp),
                reference(3, version, &out),
                "version {version}"
            );
        }
    }

    #[test]
    fn slices_of_shared_chunks_are_sent_as_file_ranges() {
        let data: Vec<u8> = (0..(256 << 10)).map(|i| (i % 253) as u8).collect();
        let shared = crate::shm::share(Bytes::from(data.clone()));
        let out = sample(false, vec![Some(shared.slice(100..200_000))]);
        let resp = encode(5, 16, &out);
        let regions: Vec<_> = resp
            .chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::File(r) => Some(r),
                Chunk::Bytes(_) => None,
            })
            .collect();
        assert_eq!(regions.len(), 1);
        assert_eq!((regions[0].position, regions[0].len), (100, 199_900));
        assert_eq!(resp.len(), reference(5, 16, &out).len());
    }

    #[test]
    fn file_regions_become_separate_chunks_with_the_right_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![9u8; 1000]).expect("write");
        let file = std::sync::Arc::new(std::fs::File::open(&path).expect("open"));
        let mut out = sample(false, vec![None]);
        out.topics[0].partitions[0].records = RecordsOut::File(FileRegion {
            file,
            position: 10,
            len: 500,
        });
        let resp = encode(1, 16, &out);
        assert_eq!(resp.chunks.len(), 3);
        let Chunk::Bytes(first) = &resp.chunks[0] else {
            panic!("first chunk holds the header")
        };
        let size = i32::from_be_bytes([first[0], first[1], first[2], first[3]]) as usize;
        assert_eq!(size + 4, resp.len());
    }
}
