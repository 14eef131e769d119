//! Typed metadata records and their on-disk frame.
//!
//! A frame is `length: u32 | crc32c: u32 | index: u64 | payload`, big-endian, where `length`
//! counts the index and the payload and the CRC covers them too. The payload is the record in
//! `postcard` encoding. Records name topics by name and id and never mention local paths or a
//! node's own identity, so the same log can later be the replicated log of a controller quorum.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    TopicCreated {
        name: String,
        id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        id: Uuid,
    },
    PartitionsCreated {
        id: Uuid,
        count: i32,
    },
    TopicConfigsSet {
        id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// Producer ids below `end` may have been handed out.
    ProducerIdsReserved {
        end: i64,
    },
    OffsetCommitted {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<String>,
        commit_ms: i64,
    },
    OffsetDeleted {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupDeleted {
        group: String,
    },
    /// A remote segment changed state (KIP-405's RemoteLogSegmentMetadata); the topic name is
    /// kept so its objects can be found even after the topic is gone.
    RemoteSegmentUpdated {
        topic: String,
        segment: chronik_tiering::RemoteLogSegmentMetadata,
    },
    /// A search split was uploaded next to a remote segment (appended with the segment's
    /// COPY_SEGMENT_FINISHED, so a finished segment always knows its split). New variants go
    /// last: older logs must keep decoding.
    RemoteSplitAdded {
        split: chronik_tiering::RemoteSplitMetadata,
    },
    /// A consumer group's protocol type (`consumer`, `connect`, ...), set by its first join:
    /// kept while the group is empty and across restarts, as Kafka keeps it in its group
    /// metadata, so an empty group is never mistaken for a simple (offsets-only) one.
    GroupProtocolTypeSet {
        group: String,
        protocol_type: String,
    },
    /// The cluster's id, proposed once by the first controller leader of a new quorum; later
    /// ones are ignored, so every node of the cluster answers with the same id.
    ClusterIdSet {
        cluster_id: String,
    },
    /// A broker (re)joined: its epoch is the index of this record. Replaces what an earlier
    /// registration of the same id said; the broker starts fenced until its first heartbeat.
    BrokerRegistered {
        id: i32,
        /// Random per process start: tells a restart from a repeated registration.
        incarnation: Uuid,
        host: String,
        port: i32,
        rack: Option<String>,
    },
    /// The broker of this epoch may (or may no longer) lead partitions: fenced after a session
    /// timeout without heartbeats or at a controlled shutdown, unfenced by a heartbeat.
    BrokerFenced {
        id: i32,
        epoch: i64,
        fenced: bool,
    },
    /// Where partitions of a topic live: their replicas (the first one the preferred leader)
    /// and who leads them in which epoch. Creating a topic or partitions places them; a fenced
    /// or returning broker moves leaderships.
    PartitionsPlaced {
        id: Uuid,
        placements: Vec<(i32, PlacementV1)>,
    },
    /// A block of `size` producer ids for broker `broker`, taken at the current end: brokers of a
    /// cluster reserve from one sequence and never hand out the same id.
    ProducerIdBlockTaken {
        broker: i32,
        size: i64,
    },
    /// Replicas, in-sync replicas and leadership of partitions of a topic, each as a whole:
    /// placing, electing, and the leaders' in-sync set changes (Kafka's `AlterPartition`) all
    /// write this record. (Logs from before replication hold `PartitionsPlaced`, whose every
    /// replica counts as in sync.)
    PartitionsSet {
        id: Uuid,
        partitions: Vec<(i32, PartitionPlacement)>,
    },
    /// A partition leader changes its in-sync set (Kafka's `AlterPartition`): applied only if
    /// `leader` still leads in `leader_epoch` and the partition is still at `partition_epoch`
    /// (see `MetadataState::alter_isr`); the partition epoch then moves on by one.
    IsrAltered {
        id: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// A partition reassignment starts, moves on, finishes or is cancelled (Kafka's
    /// `AlterPartitionReassignments`): the partition becomes `placement` — only if that is newer
    /// than the current one by partition epoch, as with `PartitionsSet` — and its reassignment
    /// becomes `reassignment` (`None`: none in progress).
    PartitionReassigned {
        id: Uuid,
        partition: i32,
        placement: PartitionPlacement,
        reassignment: Option<Reassignment>,
    },
    /// The dynamic configs of broker `broker` (-1: the default of every broker), as a whole
    /// (IncrementalAlterConfigs on a broker resource; today the replication throttle rates).
    BrokerConfigsSet {
        broker: i32,
        configs: BTreeMap<String, String>,
    },
    /// A cluster moved these remote segments (and their splits) into the internal topic
    /// `__remote_log_metadata`: the metadata log forgets them, their objects stay.
    RemoteSegmentsMoved {
        segments: Vec<Uuid>,
    },
    /// The admin HTTP address (`host:port`) of the broker registration `incarnation` of broker
    /// `id`, proposed right after its `BrokerRegistered`: other brokers ask it for the part of a
    /// search that only the partition's leader has. Its own variant (not a field of
    /// `BrokerRegistered`) so that logs written before it keep decoding.
    BrokerHttpAdvertised {
        id: i32,
        incarnation: Uuid,
        http: String,
    },
    /// Every Kafka listener of the broker registration `incarnation` of broker `id`, proposed
    /// right after its `BrokerRegistered`: clients are told the address of the listener their
    /// request came in on.
    BrokerListenersAdvertised {
        id: i32,
        incarnation: Uuid,
        listeners: Vec<ListenerEndpoint>,
    },
    /// The SCRAM credential of `user` for `mechanism` (`SCRAM-SHA-256`, `SCRAM-SHA-512`):
    /// set, replaced, or removed with `None`.
    ScramCredentialSet {
        user: String,
        mechanism: String,
        credential: Option<StoredScramCredential>,
    },
    /// ACL bindings added (CreateAcls); one already present is kept once.
    AclsCreated {
        acls: Vec<crate::security::acl::AclBinding>,
    },
    /// ACL bindings removed (DeleteAcls): exactly these, as the filters matched them.
    AclsDeleted {
        acls: Vec<crate::security::acl::AclBinding>,
    },
    /// Client quotas set or removed (AlterClientQuotas).
    ClientQuotasAltered {
        changes: Vec<crate::security::quota::QuotaChange>,
    },
}

/// A broker's Kafka listener as clients are told about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    pub name: String,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: String,
    pub host: String,
    pub port: i32,
}

/// A salted SCRAM credential (RFC 5802): what the broker needs to check a proof, never the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// A partition reassignment in progress: while the replicas being added catch up, the partition
/// has the target replicas followed by those being removed (Kafka's `addingReplicas` and
/// `removingReplicas`). The target is the replicas without `removing`; before it began the
/// partition had the replicas without `adding`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Replicas and leadership of one partition as `PartitionsPlaced` recorded them, before
/// in-sync sets existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementV1 {
    pub replicas: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// Replicas, in-sync replicas and leadership of one partition in a cluster. A single node has
/// none: it leads every partition it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// The brokers that hold the partition; the first is its preferred leader.
    pub replicas: Vec<i32>,
    /// The in-sync replicas (ISR): the leader and the followers that have every committed
    /// record. Only they may become leader (unless unclean election is allowed), and the high
    /// watermark waits for them all.
    pub isr: Vec<i32>,
    /// The broker that leads it; -1: none (no in-sync replica is live).
    pub leader: i32,
    pub leader_epoch: i32,
    /// Moves with every change of the partition (leader or ISR): a leader's ISR change is
    /// refused unless it was made against the current one.
    pub partition_epoch: i32,
}

impl From<PlacementV1> for PartitionPlacement {
    fn from(v: PlacementV1) -> Self {
        // Before replication every replica held all there was (one replica per partition).
        Self {
            isr: v.replicas.clone(),
            replicas: v.replicas,
            leader: v.leader,
            leader_epoch: v.leader_epoch,
            partition_epoch: v.leader_epoch,
        }
    }
}

pub const FRAME_HEADER: usize = 16;
/// Frames above this size are treated as corruption on replay.
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot encode metadata record: {0}")]
    Encode(postcard::Error),
}

/// Appends a frame holding `payload` at `index` to `out` (the Raft log's entries use these
/// frames with their own payload encoding).
pub fn encode_raw_frame(out: &mut Vec<u8>, index: u64, payload: &[u8]) {
    let len = (8 + payload.len()) as u32;
    let mut crc = crc32c::crc32c(&index.to_be_bytes());
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The index and payload of the whole, CRC-valid frame at the start of `buf`, with the frame's
/// size; `None` when the buffer ends inside a frame or the frame is damaged.
pub fn decode_raw_frame(buf: &[u8]) -> Option<(u64, &[u8], usize)> {
    if buf.len() < FRAME_HEADER {
        return None;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if !(8..=MAX_FRAME).contains(&len) || buf.len() < 8 + len {
        return None;
    }
    let body = &buf[8..8 + len];
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let mut idx = [0u8; 8];
    idx.copy_from_slice(&body[..8]);
    Some((u64::from_be_bytes(idx), &body[8..], 8 + len))
}

/// Appends the frame of `record` at `index` to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    index: u64,
    record: &MetadataRecord,
) -> Result<(), RecordError> {
    let payload = postcard::to_stdvec(record).map_err(RecordError::Encode)?;
    let mut body = Vec::with_capacity(8 + payload.len());
    body.extend_from_slice(&index.to_be_bytes());
    body.extend_from_slice(&payload);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// What reading a frame at the start of `buf` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid frame and its total size.
    Record(u64, MetadataRecord, usize),
    /// The buffer ends inside a frame, or the frame is corrupt: the log ends before it.
    Torn,
}

pub fn decode_frame(buf: &[u8]) -> Decoded {
    let Some((index, payload, size)) = decode_raw_frame(buf) else {
        return Decoded::Torn;
    };
    match postcard::from_bytes::<MetadataRecord>(payload) {
        Ok(r) => Decoded::Record(index, r, size),
        Err(_) => Decoded::Torn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let rec = MetadataRecord::OffsetCommitted {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            offset: 42,
            leader_epoch: 0,
            metadata: Some("m".into()),
            commit_ms: 7,
        };
        let mut buf = Vec::new();
        encode_frame(&mut buf, 9, &rec).expect("encode");
        match decode_frame(&buf) {
            Decoded::Record(i, r, n) => {
                assert_eq!((i, n), (9, buf.len()));
                assert_eq!(r, rec);
            }
            Decoded::Torn => panic!("valid frame"),
        }
        for cut in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..cut]), Decoded::Torn, "cut at {cut}");
        }
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode_frame(&bad), Decoded::Torn);
    }

    #[test]
    fn records_written_before_broker_http_addresses_still_decode() {
        // postcard bytes of `BrokerRegistered { id: 2, incarnation: 0…01, host: "h", port: 9092,
        // rack: None }` and `BrokerConfigsSet { broker: -1, configs: {} }` as logs hold them: the
        // variant index, then the fields in order.
        let mut registered = vec![12u8, 4, 16];
        registered.extend_from_slice(&1u128.to_be_bytes());
        registered.extend_from_slice(&[1, b'h', 0x88, 0x8e, 0x01, 0]);
        let r: MetadataRecord = postcard::from_bytes(&registered).expect("decodes");
        assert_eq!(
            r,
            MetadataRecord::BrokerRegistered {
                id: 2,
                incarnation: Uuid::from_u128(1),
                host: "h".into(),
                port: 9092,
                rack: None,
            }
        );
        let configs: MetadataRecord = postcard::from_bytes(&[19, 1, 0]).expect("decodes");
        assert_eq!(
            configs,
            MetadataRecord::BrokerConfigsSet {
                broker: -1,
                configs: BTreeMap::new(),
            }
        );
        // The new records come after every older one.
        let moved = MetadataRecord::RemoteSegmentsMoved {
            segments: Vec::new(),
        };
        assert_eq!(postcard::to_stdvec(&moved).unwrap()[0], 20);
        let http = MetadataRecord::BrokerHttpAdvertised {
            id: 2,
            incarnation: Uuid::from_u128(1),
            http: "h:1".into(),
        };
        let raw = postcard::to_stdvec(&http).unwrap();
        assert_eq!(raw[0], 21);
        assert_eq!(postcard::from_bytes::<MetadataRecord>(&raw).unwrap(), http);
        let listeners = MetadataRecord::BrokerListenersAdvertised {
            id: 2,
            incarnation: Uuid::from_u128(1),
            listeners: vec![ListenerEndpoint {
                name: "SASL_SSL".into(),
                protocol: "SASL_SSL".into(),
                host: "h".into(),
                port: 9093,
            }],
        };
        let raw = postcard::to_stdvec(&listeners).unwrap();
        assert_eq!(raw[0], 22);
        assert_eq!(
            postcard::from_bytes::<MetadataRecord>(&raw).unwrap(),
            listeners
        );
        let scram = MetadataRecord::ScramCredentialSet {
            user: "alice".into(),
            mechanism: "SCRAM-SHA-256".into(),
            credential: None,
        };
        assert_eq!(postcard::to_stdvec(&scram).unwrap()[0], 23);
        let acls = MetadataRecord::AclsCreated { acls: Vec::new() };
        assert_eq!(postcard::to_stdvec(&acls).unwrap()[0], 24);
        let acls = MetadataRecord::AclsDeleted { acls: Vec::new() };
        assert_eq!(postcard::to_stdvec(&acls).unwrap()[0], 25);
        let quotas = MetadataRecord::ClientQuotasAltered {
            changes: Vec::new(),
        };
        assert_eq!(postcard::to_stdvec(&quotas).unwrap()[0], 26);
    }
}
