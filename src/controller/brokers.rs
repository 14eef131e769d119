//! What the active controller does for brokers: hears their heartbeats, fences a broker silent
//! for the session timeout (its partitions get new leaders), unfences it when it is heard again,
//! takes leaderships away from a broker that shuts down, and reports on the quorum's voters.
//!
//! Heartbeats are not Raft entries: the leader keeps when it last heard each broker in memory,
//! and only its decisions (fenced, unfenced, new leaders) go into the log. A new leader starts
//! by assuming it heard every broker just now, so a controller failover never fences anyone.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metadata::placement;
use crate::metadata::{MetadataRecord, MetadataState};

/// A heartbeat's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The broker is fenced: it leads nothing until a heartbeat unfences it.
    pub fenced: bool,
    /// The quorum knows a newer registration of this broker id, or none: register again.
    pub stale: bool,
}

/// One voter as the leader sees it (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterState {
    pub node_id: u64,
    /// One past the last entry known to be on this voter, or -1.
    pub log_end_offset: i64,
    /// When its log last matched the leader's end (ms since the epoch), or -1.
    pub last_caught_up_ms: i64,
    /// When it last acknowledged new entries (ms since the epoch), or -1.
    pub last_fetch_ms: i64,
}

/// The quorum as its leader reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader: u64,
    pub term: u64,
    /// One past the last committed entry.
    pub high_watermark: i64,
    pub voters: Vec<VoterState>,
    /// Broker-only nodes following the log without a vote.
    pub observers: Vec<VoterState>,
}

/// The leader's memory of brokers and voters.
#[derive(Default)]
pub struct Liveness {
    /// The term this memory belongs to: a new term starts afresh.
    term: u64,
    /// broker id → (epoch, when last heard).
    heard: HashMap<i32, (i64, Instant)>,
    /// Registrations that shut down: their heartbeats do not unfence them.
    shut_down: HashSet<(i32, i64)>,
    /// voter → (matched index, when it changed, when it last matched the leader's end).
    voters: HashMap<u64, (Option<u64>, i64, i64)>,
    /// When leaders were last moved back to preferred replicas.
    last_rebalance: Option<Instant>,
}

impl Liveness {
    /// Starts afresh when `term` is new: every broker counts as heard now.
    pub fn enter_term(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.heard.clear();
            self.voters.clear();
        }
    }

    /// A heartbeat from `broker` in registration `epoch`.
    pub fn heard(&mut self, state: &MetadataState, broker: i32, epoch: i64) -> HeartbeatReply {
        match state.brokers.get(&broker) {
            Some(b) if b.epoch == epoch => {
                self.heard.insert(broker, (epoch, Instant::now()));
                HeartbeatReply {
                    fenced: b.fenced,
                    stale: false,
                }
            }
            _ => HeartbeatReply {
                fenced: true,
                stale: true,
            },
        }
    }

    /// The registration `epoch` of `broker` is shutting down.
    pub fn shutting_down(&mut self, broker: i32, epoch: i64) {
        self.shut_down.insert((broker, epoch));
    }

    /// The records the state needs now: fence brokers silent for `session`, unfence those heard
    /// again, new leaders for partitions whose leader is not live.
    /// `rebalance`: how often leaderships go back to their preferred replicas (`None`: never).
    pub fn duties(
        &mut self,
        state: &MetadataState,
        session: Duration,
        rebalance: Option<Duration>,
    ) -> Vec<MetadataRecord> {
        let now = Instant::now();
        let mut next = state.clone();
        let mut records = Vec::new();
        for (id, b) in &state.brokers {
            let heard = match self.heard.get(id) {
                Some((epoch, at)) if *epoch == b.epoch => *at,
                // A registration not heard from yet (or a new leader's first look) starts its
                // clock now.
                _ => {
                    self.heard.insert(*id, (b.epoch, now));
                    now
                }
            };
            let silent = now.duration_since(heard) > session;
            let leaving = self.shut_down.contains(&(*id, b.epoch));
            let fence = silent || leaving;
            if fence != b.fenced {
                if fence {
                    tracing::warn!(
                        broker = id,
                        epoch = b.epoch,
                        silent_ms = now.duration_since(heard).as_millis() as u64,
                        shutdown = leaving,
                        "fencing broker"
                    );
                } else {
                    tracing::info!(broker = id, epoch = b.epoch, "unfencing broker");
                }
                records.push(MetadataRecord::BrokerFenced {
                    id: *id,
                    epoch: b.epoch,
                    fenced: fence,
                });
                if let Some(nb) = next.brokers.get_mut(id) {
                    nb.fenced = fence;
                }
            }
        }
        let elected = placement::elect(&next);
        let due = rebalance.is_some_and(|every| {
            self.last_rebalance
                .is_none_or(|at| now.duration_since(at) >= every)
        });
        if elected.is_empty() && due {
            // Only on a quiet round: elections after fencing come first.
            self.last_rebalance = Some(now);
            for (id, placements) in placement::preferred_elections(&next) {
                tracing::info!(topic_id = %id, partitions = placements.len(), "moving leaderships back to preferred replicas");
                records.push(MetadataRecord::PartitionsSet {
                    id,
                    partitions: placements,
                });
            }
        }
        for (id, placements) in elected {
            records.push(MetadataRecord::PartitionsSet {
                id,
                partitions: placements,
            });
        }
        // A reassignment whose new replicas all caught up finishes (one that an election above
        // changed too is dropped as stale when applied, and finishes in the next round).
        records.extend(placement::finished_reassignments(&next));
        records
    }

    /// Notes what each voter matched (from the leader's replication view).
    pub fn observe_voters(&mut self, matched: &[(u64, Option<u64>)], leader_end: Option<u64>) {
        let now = crate::util::now_ms();
        for (voter, m) in matched {
            let entry = self.voters.entry(*voter).or_insert((None, -1, -1));
            if entry.0 != *m {
                entry.0 = *m;
                entry.1 = now;
            }
            if m.is_some() && *m >= leader_end {
                entry.1 = now;
                entry.2 = now;
            }
        }
    }

    /// The voters' states for DescribeQuorum.
    pub fn voter_states(&self, matched: &[(u64, Option<u64>)]) -> Vec<VoterState> {
        matched
            .iter()
            .map(|(voter, m)| {
                let (_, fetch, caught_up) =
                    self.voters.get(voter).copied().unwrap_or((None, -1, -1));
                VoterState {
                    node_id: *voter,
                    log_end_offset: m.map(|i| i as i64 + 1).unwrap_or(-1),
                    last_caught_up_ms: caught_up,
                    last_fetch_ms: fetch,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn registered(ids: &[i32]) -> MetadataState {
        let mut s = MetadataState::default();
        for (i, id) in ids.iter().enumerate() {
            s.apply(
                i as u64 + 1,
                &MetadataRecord::BrokerRegistered {
                    id: *id,
                    incarnation: Uuid::new_v4(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                    rack: None,
                },
            );
        }
        s
    }

    #[test]
    fn silent_brokers_are_fenced_and_heard_ones_unfenced() {
        let mut s = registered(&[1, 2]);
        let mut l = Liveness::default();
        l.enter_term(1);
        assert!(
            l.duties(&s, Duration::from_millis(50), None).is_empty(),
            "all just heard"
        );
        std::thread::sleep(Duration::from_millis(80));
        let e1 = s.brokers[&1].epoch;
        let e2 = s.brokers[&2].epoch;
        assert!(!l.heard(&s, 1, e1).stale);
        let records = l.duties(&s, Duration::from_millis(50), None);
        assert_eq!(
            records,
            vec![MetadataRecord::BrokerFenced {
                id: 2,
                epoch: e2,
                fenced: true
            }]
        );
        for (i, r) in records.iter().enumerate() {
            s.apply(100 + i as u64, r);
        }
        assert!(l.heard(&s, 2, e2).fenced);
        let records = l.duties(&s, Duration::from_millis(50), None);
        assert_eq!(
            records,
            vec![MetadataRecord::BrokerFenced {
                id: 2,
                epoch: e2,
                fenced: false
            }]
        );
        assert!(l.heard(&s, 2, e2 - 1).stale, "an old registration");
        // A shutdown fences at once, and heartbeats do not undo it.
        for (i, r) in records.iter().enumerate() {
            s.apply(200 + i as u64, r);
        }
        l.shutting_down(1, e1);
        l.heard(&s, 1, e1);
        let records = l.duties(&s, Duration::from_secs(60), None);
        assert!(records.contains(&MetadataRecord::BrokerFenced {
            id: 1,
            epoch: e1,
            fenced: true
        }));
    }

    #[test]
    fn a_new_term_starts_every_clock_again() {
        let s = registered(&[1]);
        let mut l = Liveness::default();
        l.enter_term(1);
        l.duties(&s, Duration::from_millis(30), None);
        std::thread::sleep(Duration::from_millis(50));
        l.enter_term(2);
        assert!(l.duties(&s, Duration::from_millis(30), None).is_empty());
    }
}
