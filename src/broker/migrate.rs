//! Moving a single node's data directory into a cluster: the first start of a node with
//! `[cluster] voters` whose data directory still holds its own single-node metadata log.
//!
//! Its topics (with their ids, so the partition directories stay theirs), their remote
//! segments and search splits, committed offsets, group protocol types and the producer-id
//! high mark are proposed to the controller quorum; every partition of those topics is placed
//! on this broker alone, which leads it. Committed offsets then move on into
//! `__consumer_offsets` when their partition is first loaded. The single-node log is kept,
//! renamed to `metadata.migrated`, so the move happens once.
//!
//! Refused, with the reason, when the cluster already has a topic of the same name with
//! another id, or when the directory has remote segments and the cluster's id differs from the
//! node's own (its objects live under its own id's prefix in the bucket).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::metadata::record::{MetadataRecord, PartitionPlacement};
use crate::metadata::{MetadataState, MetadataStore, ReplicatedLog};
use chronik_tiering::RemoteLogSegmentMetadata;

/// Proposals are sent in pieces of this many records.
const CHUNK: usize = 500;

/// Whether `dir` holds a single-node metadata log with anything in it.
pub fn holds_single_node_metadata(dir: &Path) -> io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snapshot-")
            || (name.starts_with("wal-") && entry.metadata()?.len() > 0)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Where the single-node log goes once moved.
fn migrated_dir(dir: &Path) -> PathBuf {
    dir.with_file_name("metadata.migrated")
}

/// The records that bring `legacy` into a cluster whose state is `quorum`, with this broker
/// (`node`) holding and leading every partition of the moved topics.
pub fn records(
    legacy: &MetadataState,
    quorum: &MetadataState,
    node: i32,
    legacy_cluster_id: &str,
) -> Result<Vec<MetadataRecord>, String> {
    if !legacy.remote_segments.is_empty()
        && quorum
            .cluster_id
            .as_deref()
            .is_some_and(|c| c != legacy_cluster_id)
    {
        return Err(format!(
            "this data directory has segments in the remote tier under cluster id {legacy_cluster_id}, \
             but the cluster's id is {}; start this node first when forming the cluster (its id \
             becomes the cluster's), or start the cluster on empty data directories",
            quorum.cluster_id.as_deref().unwrap_or("-")
        ));
    }
    let mut out = Vec::new();
    for t in legacy.topics.values() {
        match quorum.topics.get(&t.name) {
            Some(q) if q.id == t.id => continue,
            Some(q) => {
                return Err(format!(
                    "topic {} exists in the cluster with id {} and here with id {}",
                    t.name, q.id, t.id
                ));
            }
            None => {}
        }
        out.push(MetadataRecord::TopicCreated {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions,
            configs: t.configs.clone(),
        });
        out.push(MetadataRecord::PartitionsSet {
            id: t.id,
            partitions: (0..t.partitions)
                .map(|p| {
                    (
                        p,
                        PartitionPlacement {
                            replicas: vec![node],
                            isr: vec![node],
                            leader: node,
                            leader_epoch: 0,
                            partition_epoch: 0,
                        },
                    )
                })
                .collect(),
        });
    }
    for (topic, segment) in legacy.remote_segments.values() {
        if quorum.remote_segments.contains_key(&segment.segment_id) {
            continue;
        }
        // The quorum takes a segment's states only in their order: its copy starts, then it is
        // in whatever state it reached.
        if segment.state != chronik_tiering::RemoteSegmentState::CopySegmentStarted {
            out.push(MetadataRecord::RemoteSegmentUpdated {
                topic: topic.clone(),
                segment: RemoteLogSegmentMetadata {
                    state: chronik_tiering::RemoteSegmentState::CopySegmentStarted,
                    ..segment.clone()
                },
            });
        }
        out.push(MetadataRecord::RemoteSegmentUpdated {
            topic: topic.clone(),
            segment: segment.clone(),
        });
        if let Some(split) = legacy.remote_splits.get(&segment.segment_id) {
            out.push(MetadataRecord::RemoteSplitAdded {
                split: split.clone(),
            });
        }
    }
    for (group, offsets) in &legacy.offsets {
        for ((topic, partition), o) in offsets {
            out.push(MetadataRecord::OffsetCommitted {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
                commit_ms: o.commit_ms,
            });
        }
    }
    for (group, protocol_type) in &legacy.group_protocol_types {
        out.push(MetadataRecord::GroupProtocolTypeSet {
            group: group.clone(),
            protocol_type: protocol_type.clone(),
        });
    }
    if legacy.producer_id_end > quorum.producer_id_end {
        out.push(MetadataRecord::ProducerIdsReserved {
            end: legacy.producer_id_end,
        });
    }
    Ok(out)
}

/// Moves the single-node metadata log in `dir` into the quorum behind `log`, if there is one.
pub async fn migrate(
    dir: &Path,
    log: Arc<dyn ReplicatedLog>,
    node: i32,
    legacy_cluster_id: &str,
) -> io::Result<()> {
    if !holds_single_node_metadata(dir)? {
        return Ok(());
    }
    let legacy = {
        let (store, _) = MetadataStore::open(dir, u64::MAX)?;
        let state = store.read(|s| s.clone());
        store.close();
        state
    };
    let quorum = MetadataStore::replicated(log);
    let records = quorum
        .read(|q| records(&legacy, q, node, legacy_cluster_id))
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot move {} into the cluster: {e}", dir.display()),
            )
        })?;
    let total = records.len();
    for chunk in records.chunks(CHUNK) {
        quorum.append(chunk.to_vec()).await?;
    }
    std::fs::rename(dir, migrated_dir(dir))?;
    tracing::info!(
        topics = legacy.topics.len(),
        remote_segments = legacy.remote_segments.len(),
        groups = legacy.offsets.len(),
        records = total,
        "moved this node's single-node metadata into the cluster (kept as metadata.migrated)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn topics_move_with_their_ids_and_conflicts_are_refused() {
        let mut legacy = MetadataState::default();
        let id = Uuid::new_v4();
        legacy.apply(
            1,
            &MetadataRecord::TopicCreated {
                name: "orders".into(),
                id,
                partitions: 2,
                configs: Default::default(),
            },
        );
        legacy.apply(
            2,
            &MetadataRecord::OffsetCommitted {
                group: "g".into(),
                topic: "orders".into(),
                partition: 1,
                offset: 7,
                leader_epoch: 0,
                metadata: None,
                commit_ms: 5,
            },
        );
        legacy.apply(3, &MetadataRecord::ProducerIdsReserved { end: 4000 });
        let quorum = MetadataState::default();
        let out = records(&legacy, &quorum, 3, "c").expect("records");
        let mut moved = quorum.clone();
        for (i, r) in out.iter().enumerate() {
            moved.apply(10 + i as u64, r);
        }
        assert_eq!(moved.topics["orders"].id, id);
        let p = moved.placement(id, 1).expect("placed");
        assert_eq!((p.leader, p.isr.clone()), (3, vec![3]));
        assert_eq!(moved.offsets["g"][&("orders".to_string(), 1)].offset, 7);
        assert_eq!(moved.producer_id_end, 4000);
        // Moving again adds no topic twice.
        let again = records(&legacy, &moved, 3, "c").expect("records");
        assert!(
            !again
                .iter()
                .any(|r| matches!(r, MetadataRecord::TopicCreated { .. }))
        );
        // A topic of the same name and another id in the cluster stops the move.
        let mut other = MetadataState::default();
        other.apply(
            1,
            &MetadataRecord::TopicCreated {
                name: "orders".into(),
                id: Uuid::new_v4(),
                partitions: 1,
                configs: Default::default(),
            },
        );
        assert!(records(&legacy, &other, 3, "c").is_err());
    }
}
