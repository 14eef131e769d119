//! Where partitions live in a cluster and who leads them: placing new partitions across the
//! live brokers, and moving leaderships when brokers are fenced or come back. Pure functions of
//! the metadata state; the broker that creates a topic and the controller that fences brokers
//! propose what they return.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::record::PartitionPlacement;
use super::state::{BrokerState, MetadataState};

/// The internal topic whose partition leaders coordinate consumer groups.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

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
                    replicas,
                    leader_epoch: 0,
                },
            )
        })
        .collect())
}

/// The leadership changes the state needs: every partition whose leader is not a live broker
/// gets the first live replica as leader (or none), in a new leader epoch. Partitions of the
/// offsets topic hold no records yet (committed offsets live in the metadata log), so when none
/// of their replicas is live they move to the live broker leading least.
pub fn elect(state: &MetadataState) -> Vec<(Uuid, Vec<(i32, PartitionPlacement)>)> {
    let live = |id: i32| state.brokers.get(&id).is_some_and(|b| !b.fenced);
    let offsets_id = state.topics.get(OFFSETS_TOPIC).map(|t| t.id);
    let mut counts = leader_counts(state);
    let mut changes = Vec::new();
    for (topic_id, of_topic) in &state.placements {
        let mut moved = Vec::new();
        for (partition, p) in of_topic {
            if p.leader >= 0 && live(p.leader) {
                continue;
            }
            let mut next = p.clone();
            match p.replicas.iter().copied().find(|r| live(*r)) {
                Some(r) => next.leader = r,
                None if Some(*topic_id) == offsets_id => {
                    let target = live_brokers(state)
                        .into_iter()
                        .map(|(id, _)| id)
                        .min_by_key(|id| (counts.get(id).copied().unwrap_or(0), *id));
                    match target {
                        Some(t) => {
                            next.leader = t;
                            next.replicas = vec![t];
                        }
                        None => next.leader = -1,
                    }
                }
                None => next.leader = -1,
            }
            if next.leader == p.leader && next.replicas == p.replicas {
                continue;
            }
            next.leader_epoch = p.leader_epoch + 1;
            if let Some(c) = counts.get_mut(&p.leader) {
                *c = c.saturating_sub(1);
            }
            *counts.entry(next.leader).or_insert(0) += 1;
            moved.push((*partition, next));
        }
        if !moved.is_empty() {
            changes.push((*topic_id, moved));
        }
    }
    changes
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
    fn a_fenced_leader_hands_over_and_offsets_partitions_move() {
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
            replicas,
            leader_epoch: 0,
        };
        s.apply(
            12,
            &MetadataRecord::PartitionsPlaced {
                id,
                placements: vec![(0, placement(vec![1, 2])), (1, placement(vec![1]))],
            },
        );
        s.apply(
            13,
            &MetadataRecord::PartitionsPlaced {
                id: offsets,
                placements: vec![(0, placement(vec![1]))],
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
        assert_eq!(t[1].1.leader, -1, "no live replica: no leader");
        assert_eq!(changes[&offsets][0].1.replicas, vec![2], "offsets move");
    }

    #[test]
    fn groups_map_to_partitions_as_in_kafka() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(offsets_partition("hello", 50), 99_162_322 % 50);
        assert!((0..50).contains(&offsets_partition("négatif-ünïcode", 50)));
    }
}
