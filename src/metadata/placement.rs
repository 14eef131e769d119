//! Where partitions live in a cluster and who leads them: placing new partitions across the
//! live brokers, and moving leaderships when brokers are fenced or come back. Pure functions of
//! the metadata state; the broker that creates a topic and the controller that fences brokers
//! propose what they return.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::record::{MetadataRecord, PartitionPlacement, Reassignment};
use super::state::{BrokerState, MetadataState};

/// The internal topic whose partition leaders coordinate consumer groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The internal topic a cluster keeps the states of remote segments in.
pub const REMOTE_LOG_METADATA_TOPIC: &str = "__remote_log_metadata";

/// The brokers that may lead and hold partitions: registered and not fenced.
pub fn live_brokers(state: &MetadataState) -> Vec<(i32, &BrokerState)> {
    state
        .brokers
        .iter()
        .filter(|(_, b)| !b.fenced)
        .map(|(id, b)| (*id, b))
        .collect()
}

/// How many partitions each broker leads now.
pub fn leader_counts(state: &MetadataState) -> HashMap<i32, usize> {
    let mut counts = HashMap::new();
    for of_topic in state.placements.values() {
        for p in of_topic.values() {
            *counts.entry(p.leader).or_insert(0) += 1;
        }
    }
    counts
}

/// The live brokers in placement order: racks take turns (rack A's first broker, rack B's
/// first, …, then each rack's second), so consecutive brokers sit in different racks whenever
/// there are several; brokers without a rack form one group of their own.
fn rack_alternating(state: &MetadataState) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for (id, b) in live_brokers(state) {
        by_rack.entry(b.rack.as_deref()).or_default().push(id);
    }
    let mut out = Vec::new();
    let mut round = 0;
    loop {
        let before = out.len();
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
        if out.len() == before {
            return out;
        }
        round += 1;
    }
}

/// Places partitions `first..first + count` with `replication_factor` replicas each on the
/// live brokers: replicas of one partition on distinct brokers (and racks, while there are
/// racks left), leaders spread so that the brokers leading least so far lead first.
pub fn place(
    state: &MetadataState,
    first: i32,
    count: i32,
    replication_factor: usize,
) -> Result<Vec<(i32, PartitionPlacement)>, String> {
    let order = rack_alternating(state);
    if replication_factor == 0 || replication_factor > order.len() {
        return Err(format!(
            "replication factor {replication_factor} is larger than the {} live broker{}",
            order.len(),
            if order.len() == 1 { "" } else { "s" }
        ));
    }
    let counts = leader_counts(state);
    // Start at the broker that leads least (ties: its position), then go round.
    let start = (0..order.len())
        .min_by_key(|i| (counts.get(&order[*i]).copied().unwrap_or(0), *i))
        .unwrap_or(0);
    let n = order.len();
    Ok((0..count)
        .map(|k| {
            let lead = (start + k as usize) % n;
            let replicas: Vec<i32> = (0..replication_factor)
                .map(|r| order[(lead + r) % n])
                .collect();
            (
                first + k,
                PartitionPlacement {
                    leader: replicas[0],
                    isr: replicas.clone(),
                    replicas,
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            )
        })
        .collect())
}

/// Partitions `first..` with the replicas given for each (CreateTopics' or CreatePartitions'
/// assignments): every broker registered, none twice in a partition, the first the leader.
pub fn assigned(
    state: &MetadataState,
    first: i32,
    assignment: &[Vec<i32>],
) -> Result<Vec<(i32, PartitionPlacement)>, String> {
    let mut out = Vec::with_capacity(assignment.len());
    for (k, replicas) in assignment.iter().enumerate() {
        let partition = first + k as i32;
        if replicas.is_empty() {
            return Err(format!("partition {partition} has no replicas"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = replicas.iter().find(|r| !seen.insert(**r)) {
            return Err(format!("partition {partition} names broker {d} twice"));
        }
        if let Some(u) = replicas.iter().find(|r| !state.brokers.contains_key(r)) {
            return Err(format!(
                "partition {partition}: broker {u} is not registered"
            ));
        }
        out.push((
            partition,
            PartitionPlacement {
                leader: replicas[0],
                isr: replicas.clone(),
                replicas: replicas.clone(),
                leader_epoch: 0,
                partition_epoch: 0,
            },
        ));
    }
    Ok(out)
}

/// The leadership and in-sync changes the state needs. Fenced brokers leave the in-sync sets
/// (unless they are the last member); a partition whose leader is not live gets the first live
/// in-sync replica in replica order as leader, in a new leader epoch. With no live in-sync
/// replica the partition has no leader and keeps its last in-sync set, so only a replica with
/// every committed record can lead it again — unless its topic allows unclean election
/// (`unclean.leader.election.enable`), when any live replica takes over.
pub fn elect(state: &MetadataState) -> Vec<(Uuid, Vec<(i32, PartitionPlacement)>)> {
    let live = |id: i32| state.brokers.get(&id).is_some_and(|b| !b.fenced);
    let unclean: std::collections::HashSet<Uuid> = state
        .topics
        .values()
        .filter(|t| {
            t.configs
                .get("unclean.leader.election.enable")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
        .map(|t| t.id)
        .collect();
    let mut changes = Vec::new();
    for (topic_id, of_topic) in &state.placements {
        let mut moved = Vec::new();
        for (partition, p) in of_topic {
            let mut next = p.clone();
            let live_isr: Vec<i32> = p.isr.iter().copied().filter(|r| live(*r)).collect();
            if !live_isr.is_empty() {
                next.isr = live_isr.clone();
                if !(p.leader >= 0 && live_isr.contains(&p.leader)) {
                    next.leader = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| live_isr.contains(r))
                        .unwrap_or(live_isr[0]);
                }
            } else if let Some(r) = p.replicas.iter().copied().find(|r| live(*r))
                && unclean.contains(topic_id)
            {
                next.leader = r;
                next.isr = vec![r];
            } else {
                next.leader = -1;
            }
            if next == *p {
                continue;
            }
            if next.leader != p.leader {
                next.leader_epoch = p.leader_epoch + 1;
            }
            next.partition_epoch = p.partition_epoch + 1;
            moved.push((*partition, next));
        }
        if !moved.is_empty() {
            changes.push((*topic_id, moved));
        }
    }
    changes
}

/// Why an election asked for (`ElectLeaders`) was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionRefused {
    UnknownPartition,
    /// The wanted leader leads already (preferred), or the partition has a live leader
    /// (unclean): `ELECTION_NOT_NEEDED`.
    NotNeeded,
    /// The preferred replica is not live or not in sync: `PREFERRED_LEADER_NOT_AVAILABLE`.
    PreferredNotAvailable,
    /// No live replica could lead: `ELIGIBLE_LEADERS_NOT_AVAILABLE`.
    NoEligibleLeader,
}

/// The partition as an election asked for makes it: `preferred` moves leadership to the first
/// replica when it is live and in sync; otherwise (unclean) a partition without a live leader
/// gets the first live in-sync replica, or failing that any live replica, whose log then is the
/// partition's (records only the others had are lost, as Kafka's unclean election loses them).
pub fn elect_leader(
    state: &MetadataState,
    topic_id: Uuid,
    partition: i32,
    preferred: bool,
) -> Result<PartitionPlacement, ElectionRefused> {
    let live = |id: i32| state.brokers.get(&id).is_some_and(|b| !b.fenced);
    let p = state
        .placement(topic_id, partition)
        .ok_or(ElectionRefused::UnknownPartition)?;
    let mut next = p.clone();
    if preferred {
        let first = *p
            .replicas
            .first()
            .ok_or(ElectionRefused::UnknownPartition)?;
        if p.leader == first {
            return Err(ElectionRefused::NotNeeded);
        }
        if !live(first) || !p.isr.contains(&first) {
            return Err(ElectionRefused::PreferredNotAvailable);
        }
        next.leader = first;
    } else {
        if p.leader >= 0 && live(p.leader) {
            return Err(ElectionRefused::NotNeeded);
        }
        let in_sync = p
            .replicas
            .iter()
            .copied()
            .find(|r| live(*r) && p.isr.contains(r));
        match in_sync.or_else(|| p.replicas.iter().copied().find(|r| live(*r))) {
            Some(r) => {
                if !p.isr.contains(&r) {
                    next.isr = vec![r];
                }
                next.leader = r;
            }
            None => return Err(ElectionRefused::NoEligibleLeader),
        }
    }
    next.leader_epoch = p.leader_epoch + 1;
    next.partition_epoch = p.partition_epoch + 1;
    Ok(next)
}

/// Preferred-leader elections for every partition whose first replica is live, in sync and not
/// leading (automatic leader rebalancing after brokers come back).
pub fn preferred_elections(state: &MetadataState) -> Vec<(Uuid, Vec<(i32, PartitionPlacement)>)> {
    let mut out = Vec::new();
    for (topic_id, of_topic) in &state.placements {
        let moved: Vec<(i32, PartitionPlacement)> = of_topic
            .keys()
            .filter_map(|p| {
                elect_leader(state, *topic_id, *p, true)
                    .ok()
                    .map(|n| (*p, n))
            })
            .collect();
        if !moved.is_empty() {
            out.push((*topic_id, moved));
        }
    }
    out
}

/// Moves every leadership of `broker` to another live replica (a controlled shutdown), as if it
/// were fenced already.
pub fn move_away(
    state: &MetadataState,
    broker: i32,
) -> Vec<(Uuid, Vec<(i32, PartitionPlacement)>)> {
    let mut without = state.clone();
    if let Some(b) = without.brokers.get_mut(&broker) {
        b.fenced = true;
    }
    elect(&without)
}

/// Why a partition reassignment was refused (the `AlterPartitionReassignments` errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassignRefused {
    UnknownPartition,
    /// A cancellation with nothing in progress (`NO_REASSIGNMENT_IN_PROGRESS`).
    NoReassignment,
    /// `INVALID_REPLICA_ASSIGNMENT`, with the reason.
    InvalidReplicas(String),
    /// The target has another number of replicas and the request does not allow that
    /// (`INVALID_REPLICATION_FACTOR`).
    ReplicationFactorChange,
}

/// The partition as a reassignment to `target` makes it (`None`: cancel the one in progress),
/// with the reassignment it leaves in progress. The replicas become the target followed by the
/// replicas being removed; a target whose every replica is in sync already finishes at once, and
/// a new target for a partition being reassigned starts again from its replicas before.
pub fn reassign(
    state: &MetadataState,
    topic_id: Uuid,
    partition: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
) -> Result<(PartitionPlacement, Option<Reassignment>), ReassignRefused> {
    let p = state
        .placement(topic_id, partition)
        .ok_or(ReassignRefused::UnknownPartition)?;
    let current = state
        .reassignments
        .get(&topic_id)
        .and_then(|m| m.get(&partition));
    let original: Vec<i32> = match current {
        Some(r) => p
            .replicas
            .iter()
            .copied()
            .filter(|x| !r.adding.contains(x))
            .collect(),
        None => p.replicas.clone(),
    };
    let Some(target) = target else {
        if current.is_none() {
            return Err(ReassignRefused::NoReassignment);
        }
        if !p.isr.iter().any(|r| original.contains(r)) {
            return Err(ReassignRefused::InvalidReplicas(
                "no replica from before the reassignment is in sync; let it finish".into(),
            ));
        }
        return Ok((finish(state, p, &original), None));
    };
    if target.is_empty() {
        return Err(ReassignRefused::InvalidReplicas("no replicas given".into()));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(d) = target.iter().find(|r| !seen.insert(**r)) {
        return Err(ReassignRefused::InvalidReplicas(format!(
            "broker {d} is named twice"
        )));
    }
    if let Some(unknown) = target.iter().find(|r| !state.brokers.contains_key(r)) {
        return Err(ReassignRefused::InvalidReplicas(format!(
            "broker {unknown} is not registered"
        )));
    }
    if !allow_replication_factor_change && target.len() != original.len() {
        return Err(ReassignRefused::ReplicationFactorChange);
    }
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut next = p.clone();
    next.replicas = target.iter().chain(&removing).copied().collect();
    next.isr.retain(|r| next.replicas.contains(r));
    if target.iter().all(|r| next.isr.contains(r)) {
        return Ok((finish(state, &next, target), None));
    }
    next.partition_epoch = p.partition_epoch + 1;
    Ok((next, Some(Reassignment { adding, removing })))
}

/// The partition with exactly `replicas` (a reassignment finished or reverted): the in-sync set
/// keeps its members among them, and if the leader is not one of them the first live in-sync
/// replica leads, in a new leader epoch.
fn finish(state: &MetadataState, p: &PartitionPlacement, replicas: &[i32]) -> PartitionPlacement {
    let live = |id: i32| state.brokers.get(&id).is_some_and(|b| !b.fenced);
    let mut next = p.clone();
    next.replicas = replicas.to_vec();
    next.isr.retain(|r| replicas.contains(r));
    if !replicas.contains(&p.leader) {
        next.leader = replicas
            .iter()
            .copied()
            .find(|r| live(*r) && next.isr.contains(r))
            .unwrap_or(-1);
        next.leader_epoch = p.leader_epoch + 1;
    }
    next.partition_epoch = p.partition_epoch + 1;
    next
}

/// Records finishing every reassignment whose target replicas are all in sync now (the
/// controller's duty; the replicas being removed then leave the partition).
pub fn finished_reassignments(state: &MetadataState) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for (topic_id, of_topic) in &state.reassignments {
        for (partition, r) in of_topic {
            let Some(p) = state.placement(*topic_id, *partition) else {
                continue;
            };
            let target: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|x| !r.removing.contains(x))
                .collect();
            if target.iter().all(|t| p.isr.contains(t)) {
                out.push(MetadataRecord::PartitionReassigned {
                    id: *topic_id,
                    partition: *partition,
                    placement: finish(state, p, &target),
                    reassignment: None,
                });
            }
        }
    }
    out
}

/// Java's `String.hashCode` of a group id: clients and Kafka's tools expect the same group to
/// map to the same offsets partition as in Kafka.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The offsets partition of a group (Kafka's `abs(hashCode) % partitions`).
pub fn offsets_partition(group: &str, partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (java_string_hash(group) & 0x7fff_ffff) % partitions
}

/// The partition of `__remote_log_metadata` (of `partitions`) that holds the remote segment
/// states of one user partition.
pub fn remote_metadata_partition(topic_id: Uuid, partition: i32, partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (java_string_hash(&format!("{topic_id}:{partition}")) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataRecord;

    fn state_with(brokers: &[(i32, Option<&str>)]) -> MetadataState {
        let mut s = MetadataState::default();
        for (index, (id, rack)) in (1..).zip(brokers) {
            s.apply(
                index,
                &MetadataRecord::BrokerRegistered {
                    id: *id,
                    incarnation: Uuid::new_v4(),
                    host: "127.0.0.1".into(),
                    port: 9091 + id,
                    rack: rack.map(str::to_string),
                },
            );
        }
        s
    }

    #[test]
    fn a_reassignment_adds_first_removes_when_in_sync_and_can_be_cancelled() {
        let mut s = state_with(&[(1, None), (2, None), (3, None), (4, None)]);
        let id = Uuid::new_v4();
        s.apply(
            10,
            &MetadataRecord::TopicCreated {
                name: "t".into(),
                id,
                partitions: 1,
                configs: Default::default(),
            },
        );
        let start = PartitionPlacement {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        s.apply(
            11,
            &MetadataRecord::PartitionsSet {
                id,
                partitions: vec![(0, start.clone())],
            },
        );
        let record = |s: &MetadataState, target: Option<&[i32]>| {
            let (placement, reassignment) = reassign(s, id, 0, target, false).expect("reassign");
            MetadataRecord::PartitionReassigned {
                id,
                partition: 0,
                placement,
                reassignment,
            }
        };
        // Move 1 (the leader) to 4: 4 joins first, 1 stays until 4 is in sync.
        let r = record(&s, Some(&[4, 2, 3]));
        s.apply(12, &r);
        let p = s.placement(id, 0).expect("placed").clone();
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
        assert_eq!(
            s.reassignments[&id][&0],
            Reassignment {
                adding: vec![4],
                removing: vec![1]
            }
        );
        assert!(
            finished_reassignments(&s).is_empty(),
            "4 is not in sync yet"
        );
        assert_eq!(
            reassign(&s, id, 0, Some(&[4, 2]), false),
            Err(ReassignRefused::ReplicationFactorChange)
        );
        assert!(matches!(
            reassign(&s, id, 0, Some(&[4, 9, 3]), false),
            Err(ReassignRefused::InvalidReplicas(_))
        ));
        // Cancelled: back to 1, 2 and 3 (in the order they have now, as Kafka reverts), and 1
        // still leads.
        let mut cancelled = s.clone();
        cancelled.apply(13, &record(&cancelled, None));
        let p = cancelled.placement(id, 0).expect("placed");
        assert_eq!((p.replicas.clone(), p.leader), (vec![2, 3, 1], 1));
        assert!(cancelled.reassignments.is_empty());
        assert_eq!(
            reassign(&cancelled, id, 0, None, false),
            Err(ReassignRefused::NoReassignment)
        );
        // 4 catches up and joins the ISR: the controller finishes, 1 leaves and 4 leads.
        let epoch = s.placement(id, 0).expect("placed").partition_epoch;
        s.apply(
            13,
            &MetadataRecord::IsrAltered {
                id,
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                partition_epoch: epoch,
                isr: vec![1, 2, 3, 4],
            },
        );
        let done = finished_reassignments(&s);
        assert_eq!(done.len(), 1);
        s.apply(14, &done[0]);
        let p = s.placement(id, 0).expect("placed");
        assert_eq!(p.replicas, vec![4, 2, 3]);
        assert!(!p.isr.contains(&1) && p.isr.len() == 3, "{p:?}");
        assert_eq!((p.leader, p.leader_epoch), (4, 1));
        assert!(s.reassignments.is_empty());
        // A target already in sync (a new order) finishes at once.
        s.apply(15, &record(&s, Some(&[2, 3, 4])));
        assert_eq!(
            s.placement(id, 0).map(|p| p.replicas.clone()),
            Some(vec![2, 3, 4])
        );
        assert!(s.reassignments.is_empty());
    }

    #[test]
    fn leaders_spread_and_replicas_are_distinct() {
        let s = state_with(&[(1, None), (2, None), (3, None)]);
        let placed = place(&s, 0, 6, 2).expect("place");
        let mut leaders = HashMap::new();
        for (_, p) in &placed {
            assert_eq!(p.replicas.len(), 2);
            assert_ne!(p.replicas[0], p.replicas[1]);
            assert_eq!(p.leader, p.replicas[0]);
            *leaders.entry(p.leader).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        assert!(place(&s, 0, 1, 4).is_err(), "more replicas than brokers");
    }

    #[test]
    fn replicas_go_to_different_racks() {
        let s = state_with(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        let rack = |id: i32| s.brokers[&id].rack.clone();
        for (_, p) in place(&s, 0, 8, 2).expect("place") {
            assert_ne!(rack(p.replicas[0]), rack(p.replicas[1]), "{p:?}");
        }
    }

    #[test]
    fn a_fenced_leader_hands_over_to_an_in_sync_replica() {
        let mut s = state_with(&[(1, None), (2, None)]);
        let id = Uuid::new_v4();
        let offsets = Uuid::new_v4();
        s.apply(
            10,
            &MetadataRecord::TopicCreated {
                name: "t".into(),
                id,
                partitions: 2,
                configs: Default::default(),
            },
        );
        s.apply(
            11,
            &MetadataRecord::TopicCreated {
                name: OFFSETS_TOPIC.into(),
                id: offsets,
                partitions: 1,
                configs: Default::default(),
            },
        );
        let placement = |replicas: Vec<i32>| PartitionPlacement {
            leader: replicas[0],
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        s.apply(
            12,
            &MetadataRecord::PartitionsSet {
                id,
                partitions: vec![(0, placement(vec![1, 2])), (1, placement(vec![1]))],
            },
        );
        s.apply(
            13,
            &MetadataRecord::PartitionsSet {
                id: offsets,
                partitions: vec![(0, placement(vec![1]))],
            },
        );
        assert!(
            elect(&s).is_empty(),
            "nothing to do while every leader is live"
        );
        let epoch = s.brokers[&1].epoch;
        s.apply(
            14,
            &MetadataRecord::BrokerFenced {
                id: 1,
                epoch,
                fenced: true,
            },
        );
        let changes: BTreeMap<Uuid, Vec<(i32, PartitionPlacement)>> =
            elect(&s).into_iter().collect();
        let t = &changes[&id];
        assert_eq!(t[0].1.leader, 2, "the live replica leads");
        assert_eq!(t[0].1.leader_epoch, 1);
        assert_eq!(t[0].1.isr, vec![2], "the fenced broker left the ISR");
        assert_eq!(t[1].1.leader, -1, "no live replica: no leader");
        assert_eq!(
            t[1].1.isr,
            vec![1],
            "the last in-sync replica stays for a clean return"
        );
        assert_eq!(
            changes[&offsets][0].1.leader, -1,
            "offsets partitions wait too: they hold the offsets"
        );
        for (p, next) in t {
            s.apply(
                15,
                &MetadataRecord::PartitionsSet {
                    id,
                    partitions: vec![(*p, next.clone())],
                },
            );
        }
        // Broker 2 (in sync) may not be taken out by a stale request, nor broker 1 (fenced) added.
        let p0 = s.placement(id, 0).cloned().expect("placed");
        assert_eq!(
            s.alter_isr(id, 0, 2, p0.leader_epoch, p0.partition_epoch - 1, &[2]),
            Err(crate::metadata::state::AlterIsrError::StaleVersion {
                sent: p0.partition_epoch - 1,
                current: p0.partition_epoch
            })
        );
        assert_eq!(
            s.alter_isr(id, 0, 2, p0.leader_epoch, p0.partition_epoch, &[1, 2]),
            Err(crate::metadata::state::AlterIsrError::Ineligible(1))
        );
        assert_eq!(
            s.alter_isr(id, 0, 1, p0.leader_epoch, p0.partition_epoch, &[1, 2]),
            Err(crate::metadata::state::AlterIsrError::NotLeader)
        );
        // Broker 1 comes back: the leaderless partition it was the last in-sync member of is
        // its again, and the leader of partition 0 may take it back into the ISR.
        s.apply(
            16,
            &MetadataRecord::BrokerFenced {
                id: 1,
                epoch,
                fenced: false,
            },
        );
        let changes: BTreeMap<Uuid, Vec<(i32, PartitionPlacement)>> =
            elect(&s).into_iter().collect();
        assert_eq!(
            changes[&id],
            vec![(
                1,
                PartitionPlacement {
                    leader: 1,
                    leader_epoch: 2,
                    partition_epoch: 2,
                    ..placement(vec![1])
                }
            )]
        );
        let grown = s
            .alter_isr(id, 0, 2, p0.leader_epoch, p0.partition_epoch, &[2, 1])
            .expect("grow");
        assert_eq!(grown.isr, vec![1, 2], "kept in replica order");
        assert_eq!(grown.partition_epoch, p0.partition_epoch + 1);
    }

    #[test]
    fn a_restarted_broker_leaves_in_sync_sets_and_hands_over_its_leaderships() {
        let mut s = state_with(&[(1, None), (2, None), (3, None)]);
        let id = Uuid::new_v4();
        s.apply(
            10,
            &MetadataRecord::TopicCreated {
                name: "t".into(),
                id,
                partitions: 3,
                configs: Default::default(),
            },
        );
        let p = |replicas: Vec<i32>, isr: Vec<i32>| PartitionPlacement {
            leader: isr[0],
            replicas,
            isr,
            leader_epoch: 4,
            partition_epoch: 6,
        };
        s.apply(
            11,
            &MetadataRecord::PartitionsSet {
                id,
                partitions: vec![
                    (0, p(vec![1, 2, 3], vec![1, 2, 3])),
                    (1, p(vec![2, 1, 3], vec![2, 1])),
                    (2, p(vec![1, 3], vec![1])),
                ],
            },
        );
        // A repeated registration of the same process changes nothing.
        let incarnation = s.brokers[&1].incarnation;
        let again = MetadataRecord::BrokerRegistered {
            id: 1,
            incarnation,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        };
        s.apply(12, &again);
        assert_eq!(s.placement(id, 0).map(|p| p.leader), Some(1));
        // A new process: out of the ISRs it shares, leaderships handed over.
        s.apply(
            13,
            &MetadataRecord::BrokerRegistered {
                id: 1,
                incarnation: Uuid::new_v4(),
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            },
        );
        let p0 = s.placement(id, 0).cloned().expect("p0");
        assert_eq!(
            (p0.leader, p0.leader_epoch, p0.isr.clone()),
            (2, 5, vec![2, 3])
        );
        assert_eq!(p0.partition_epoch, 7);
        let p1 = s.placement(id, 1).cloned().expect("p1");
        assert_eq!(
            (p1.leader, p1.leader_epoch, p1.isr.clone()),
            (2, 4, vec![2])
        );
        let p2 = s.placement(id, 2).cloned().expect("p2");
        assert_eq!(
            (p2.leader, p2.isr.clone()),
            (1, vec![1]),
            "the last in-sync replica stays"
        );
    }

    #[test]
    fn preferred_and_unclean_elections_on_request() {
        let mut s = state_with(&[(1, None), (2, None), (3, None)]);
        let id = Uuid::new_v4();
        s.apply(
            10,
            &MetadataRecord::TopicCreated {
                name: "t".into(),
                id,
                partitions: 2,
                configs: Default::default(),
            },
        );
        let placed = |leader, isr: Vec<i32>| PartitionPlacement {
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch: 3,
            partition_epoch: 3,
        };
        s.apply(
            11,
            &MetadataRecord::PartitionsSet {
                id,
                partitions: vec![(0, placed(2, vec![1, 2, 3])), (1, placed(2, vec![2, 3]))],
            },
        );
        let back = elect_leader(&s, id, 0, true).expect("preferred");
        assert_eq!(
            (back.leader, back.leader_epoch, back.partition_epoch),
            (1, 4, 4)
        );
        assert_eq!(
            elect_leader(&s, id, 1, true),
            Err(ElectionRefused::PreferredNotAvailable),
            "broker 1 is not in sync"
        );
        assert_eq!(
            elect_leader(&s, id, 1, false),
            Err(ElectionRefused::NotNeeded)
        );
        assert_eq!(preferred_elections(&s), vec![(id, vec![(0, back.clone())])]);
        s.apply(
            12,
            &MetadataRecord::PartitionsSet {
                id,
                partitions: vec![(0, back)],
            },
        );
        assert_eq!(
            elect_leader(&s, id, 0, true),
            Err(ElectionRefused::NotNeeded)
        );
        assert!(preferred_elections(&s).is_empty());
        // Leader and ISR of partition 1 gone: an unclean election takes broker 1.
        for b in [2, 3] {
            let epoch = s.brokers[&b].epoch;
            s.apply(
                13,
                &MetadataRecord::BrokerFenced {
                    id: b,
                    epoch,
                    fenced: true,
                },
            );
        }
        let unclean = elect_leader(&s, id, 1, false).expect("unclean");
        assert_eq!((unclean.leader, unclean.isr.clone()), (1, vec![1]));
        // A stale change does not overwrite a newer one.
        let mut newer = s.placement(id, 1).cloned().expect("p1");
        newer.partition_epoch += 1;
        newer.isr = vec![2];
        s.apply(
            14,
            &MetadataRecord::PartitionsSet {
                id,
                partitions: vec![(1, newer.clone())],
            },
        );
        let stale = PartitionPlacement {
            partition_epoch: newer.partition_epoch,
            ..unclean
        };
        s.apply(
            15,
            &MetadataRecord::PartitionsSet {
                id,
                partitions: vec![(1, stale)],
            },
        );
        assert_eq!(s.placement(id, 1), Some(&newer));
    }

    #[test]
    fn unclean_election_only_when_the_topic_allows_it() {
        let mut s = state_with(&[(1, None), (2, None)]);
        for (name, unclean) in [("clean", "false"), ("unclean", "true")] {
            let id = Uuid::new_v4();
            s.apply(
                10,
                &MetadataRecord::TopicCreated {
                    name: name.into(),
                    id,
                    partitions: 1,
                    configs: [(
                        "unclean.leader.election.enable".to_string(),
                        unclean.to_string(),
                    )]
                    .into(),
                },
            );
            s.apply(
                11,
                &MetadataRecord::PartitionsSet {
                    id,
                    partitions: vec![(
                        0,
                        PartitionPlacement {
                            replicas: vec![1, 2],
                            isr: vec![1],
                            leader: 1,
                            leader_epoch: 3,
                            partition_epoch: 5,
                        },
                    )],
                },
            );
        }
        let epoch = s.brokers[&1].epoch;
        s.apply(
            12,
            &MetadataRecord::BrokerFenced {
                id: 1,
                epoch,
                fenced: true,
            },
        );
        let changes: BTreeMap<Uuid, Vec<(i32, PartitionPlacement)>> =
            elect(&s).into_iter().collect();
        let by_name = |n: &str| changes[&s.topics[n].id][0].1.clone();
        assert_eq!(
            (by_name("clean").leader, by_name("clean").isr),
            (-1, vec![1])
        );
        assert_eq!(
            (by_name("unclean").leader, by_name("unclean").isr),
            (2, vec![2])
        );
        assert_eq!(by_name("unclean").leader_epoch, 4);
    }

    #[test]
    fn groups_map_to_partitions_as_in_kafka() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(offsets_partition("hello", 50), 99_162_322 % 50);
        assert!((0..50).contains(&offsets_partition("négatif-ünïcode", 50)));
    }
}
