//! What a partition's leader knows of its followers: how far each one's log reaches (its LEO,
//! learnt from its fetches), when it was last caught up, and from that the high watermark and
//! the changes of the in-sync set it should ask the controller for. Pure bookkeeping: the
//! partition holds it under a lock and acts on what it returns.
//!
//! A follower is *caught up* at a fetch that asks for the leader's log end, or for at least the
//! log end the leader had at that follower's previous fetch (it then had everything that was
//! there when it last asked). It leaves the in-sync set when it was not caught up for
//! `replica.lag.time.max.ms`, and joins again once it fetches at or above the high watermark
//! and has reached the current leader epoch's first offset.

use std::collections::BTreeMap;

/// This broker's part in a partition of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Copies the log of `leader` (-1: the partition has no leader now).
    Follower {
        leader: i32,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// The follower's log end offset as its last fetch showed it; -1 before its first fetch.
    leo: i64,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end at the follower's last fetch.
    leader_end_at_last_fetch: i64,
    /// The follower's log start as its last fetch showed it; -1 unknown.
    log_start: i64,
}

/// The replica set of a partition as the leader (or a follower) sees it.
#[derive(Debug, Clone)]
pub struct ReplicaSet {
    pub role: Role,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    /// An in-sync set proposed to the controller and not seen back yet.
    pub pending_isr: Option<Vec<i32>>,
    me: i32,
    progress: BTreeMap<i32, Progress>,
}

impl ReplicaSet {
    /// A single node's partition: it is its own whole in-sync set.
    pub fn alone(me: i32) -> Self {
        Self {
            role: Role::Leader,
            leader_epoch: 0,
            replicas: vec![me],
            isr: vec![me],
            partition_epoch: 0,
            pending_isr: None,
            me,
            progress: BTreeMap::new(),
        }
    }

    /// Takes the metadata's view of the partition. Progress of followers is kept across an
    /// ISR change in the same leader epoch and forgotten at a new epoch (followers must show
    /// their log to a new leader again).
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        role: Role,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        partition_epoch: i32,
        now_ms: i64,
    ) {
        if role != self.role || leader_epoch != self.leader_epoch {
            self.progress.clear();
            self.pending_isr = None;
        }
        self.role = role;
        self.leader_epoch = leader_epoch;
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        if self.pending_isr.as_deref() == Some(isr) || partition_epoch != self.partition_epoch {
            self.pending_isr = None;
        }
        self.partition_epoch = partition_epoch;
        for r in replicas.iter().copied().filter(|r| *r != self.me) {
            // A follower starts as caught up now: a new leader gives everyone the full lag time
            // to show up before it asks to drop them.
            self.progress.entry(r).or_insert(Progress {
                leo: -1,
                last_caught_up_ms: now_ms,
                last_fetch_ms: now_ms,
                leader_end_at_last_fetch: -1,
                log_start: -1,
            });
        }
        self.progress.retain(|r, _| replicas.contains(r));
    }

    /// This broker's id (the replica sets of a cluster name it among the others).
    pub fn set_me(&mut self, me: i32) {
        self.me = me;
    }

    /// Whether the in-sync set is this broker alone (the high watermark is its log end).
    pub fn is_alone(&self) -> bool {
        self.role == Role::Leader && self.isr.len() <= 1
    }

    /// Whether `replica` is a follower of this partition.
    pub fn is_replica(&self, replica: i32) -> bool {
        replica != self.me && self.replicas.contains(&replica)
    }

    /// A follower fetched at `fetch_offset` while the leader's log ended at `leader_end`.
    pub fn fetched(&mut self, replica: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let Some(p) = self.progress.get_mut(&replica) else {
            return;
        };
        if fetch_offset >= leader_end {
            p.last_caught_up_ms = now_ms;
        } else if p.leader_end_at_last_fetch >= 0 && fetch_offset >= p.leader_end_at_last_fetch {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.leo = fetch_offset;
        p.leader_end_at_last_fetch = leader_end;
        p.last_fetch_ms = now_ms;
    }

    /// Notes the log start a follower's fetch carried.
    pub fn fetched_log_start(&mut self, replica: i32, log_start: i64) {
        if let Some(p) = self.progress.get_mut(&replica) {
            p.log_start = log_start;
        }
    }

    /// The smallest log start among this leader (`leader_start`) and the in-sync followers caught
    /// up to `high_watermark` (Kafka's low watermark): records below it are gone from every replica
    /// that could lead. A caught-up follower whose log start is not known yet holds it at -1.
    pub fn low_watermark(&self, leader_start: i64, high_watermark: i64) -> i64 {
        self.replicas
            .iter()
            .filter(|r| **r != self.me && self.isr.contains(r))
            .filter_map(|r| self.progress.get(r))
            .filter(|p| p.leo >= high_watermark)
            .map(|p| p.log_start)
            .fold(leader_start, i64::min)
    }

    /// The high watermark the in-sync set allows: the smallest log end among its members
    /// (`leader_end` for this broker). `None` while a member's log end is unknown.
    pub fn high_watermark(&self, leader_end: i64) -> Option<i64> {
        let mut hw = leader_end;
        for r in &self.isr {
            if *r == self.me {
                continue;
            }
            let leo = self.progress.get(r).map_or(-1, |p| p.leo);
            if leo < 0 {
                return None;
            }
            hw = hw.min(leo);
        }
        Some(hw)
    }

    /// Members of the in-sync set that are caught up within `max_lag_ms` (the leader always):
    /// what the in-sync set will be once the controller has dropped the laggards. An `acks=all`
    /// append is refused below `min.insync.replicas` of these even while the controller cannot
    /// be reached to shrink the set (two of three brokers down).
    pub fn caught_up_in_sync(&self, max_lag_ms: i64, now_ms: i64) -> i64 {
        if self.role != Role::Leader {
            return self.isr.len() as i64;
        }
        self.isr
            .iter()
            .filter(|r| {
                **r == self.me
                    || self
                        .progress
                        .get(r)
                        .is_some_and(|p| now_ms.saturating_sub(p.last_caught_up_ms) <= max_lag_ms)
            })
            .count() as i64
    }

    /// The in-sync set to ask the controller for, if it should change: members not caught up
    /// for `max_lag_ms` leave; replicas at or above the high watermark that reached
    /// `epoch_start` (the current leader epoch's first offset) join.
    pub fn wanted_isr(
        &self,
        high_watermark: i64,
        epoch_start: i64,
        max_lag_ms: i64,
        now_ms: i64,
    ) -> Option<Vec<i32>> {
        if self.role != Role::Leader || self.pending_isr.is_some() {
            return None;
        }
        let mut next: Vec<i32> = Vec::with_capacity(self.replicas.len());
        for r in &self.replicas {
            if *r == self.me {
                next.push(*r);
                continue;
            }
            let Some(p) = self.progress.get(r) else {
                continue;
            };
            let keep = if self.isr.contains(r) {
                now_ms.saturating_sub(p.last_caught_up_ms) <= max_lag_ms
            } else {
                p.leo >= high_watermark && p.leo >= epoch_start
            };
            if keep {
                next.push(*r);
            }
        }
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut sorted = next.clone();
        sorted.sort_unstable();
        (sorted != current).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_of(replicas: &[i32], isr: &[i32]) -> ReplicaSet {
        let mut s = ReplicaSet::alone(1);
        s.update(Role::Leader, 1, replicas, isr, 0, 0);
        s
    }

    #[test]
    fn low_watermark_waits_for_caught_up_followers() {
        let mut s = leader_of(&[1, 2, 3], &[1, 2, 3]);
        s.fetched(2, 10, 10, 5);
        s.fetched(3, 4, 10, 5);
        // Follower 2 caught up but its log start is not known yet; 3 lags and does not count.
        assert_eq!(s.low_watermark(6, 10), -1);
        s.fetched_log_start(2, 0);
        assert_eq!(s.low_watermark(6, 10), 0);
        s.fetched_log_start(2, 6);
        assert_eq!(s.low_watermark(6, 10), 6);
        s.fetched(3, 10, 10, 6);
        s.fetched_log_start(3, 2);
        assert_eq!(s.low_watermark(6, 10), 2);
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower() {
        let mut s = leader_of(&[1, 2, 3], &[1, 2, 3]);
        assert_eq!(s.high_watermark(10), None, "followers not seen yet");
        s.fetched(2, 10, 10, 5);
        assert_eq!(s.high_watermark(10), None);
        s.fetched(3, 7, 10, 5);
        assert_eq!(s.high_watermark(10), Some(7));
        s.fetched(3, 10, 10, 6);
        assert_eq!(s.high_watermark(12), Some(10));
        // A follower outside the ISR does not hold it back.
        let mut s = leader_of(&[1, 2, 3], &[1, 2]);
        s.fetched(2, 12, 12, 1);
        assert_eq!(s.high_watermark(12), Some(12));
    }

    #[test]
    fn followers_silent_past_the_lag_time_no_longer_count_as_in_sync() {
        let mut s = leader_of(&[1, 2, 3], &[1, 2, 3]);
        s.fetched(2, 10, 10, 1_000);
        s.fetched(3, 10, 10, 1_000);
        assert_eq!(s.caught_up_in_sync(500, 1_400), 3);
        s.fetched(2, 10, 10, 1_600);
        assert_eq!(s.caught_up_in_sync(500, 1_700), 2, "3 silent for 700 ms");
        assert_eq!(
            s.caught_up_in_sync(500, 2_200),
            1,
            "only the leader is left"
        );
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_join() {
        let mut s = leader_of(&[1, 2, 3], &[1, 2, 3]);
        s.fetched(2, 100, 100, 1_000);
        s.fetched(3, 50, 100, 1_000);
        assert_eq!(
            s.wanted_isr(50, 0, 30_000, 20_000),
            None,
            "within the lag time"
        );
        // Follower 3 keeps fetching but never reaches what the leader had at its last fetch.
        s.fetched(2, 200, 200, 31_500);
        s.fetched(3, 60, 200, 31_500);
        assert_eq!(s.wanted_isr(60, 0, 30_000, 31_500), Some(vec![1, 2]));
        s.pending_isr = Some(vec![1, 2]);
        assert_eq!(
            s.wanted_isr(60, 0, 30_000, 31_500),
            None,
            "one change at a time"
        );
        s.update(Role::Leader, 1, &[1, 2, 3], &[1, 2], 1, 31_600);
        assert!(s.pending_isr.is_none(), "seen back");
        // It catches up: at or above the high watermark and in the current epoch.
        s.fetched(3, 200, 210, 32_000);
        assert_eq!(s.wanted_isr(200, 150, 30_000, 32_000), Some(vec![1, 2, 3]));
        assert_eq!(
            s.wanted_isr(200, 205, 30_000, 32_000),
            None,
            "not in this epoch yet"
        );
    }

    #[test]
    fn a_follower_that_had_everything_at_its_last_fetch_counts_as_caught_up() {
        let mut s = leader_of(&[1, 2], &[1, 2]);
        s.fetched(2, 100, 100, 1_000);
        // Appends keep the leader ahead, but the follower always reaches the previous end.
        for k in 1..100 {
            s.fetched(2, 100 + k * 10, 110 + k * 10, 1_000 + k * 1_000);
        }
        assert_eq!(s.wanted_isr(0, 0, 30_000, 100_000), None);
    }

    #[test]
    fn a_new_epoch_forgets_follower_progress() {
        let mut s = leader_of(&[1, 2], &[1, 2]);
        s.fetched(2, 100, 100, 1);
        assert_eq!(s.high_watermark(100), Some(100));
        s.update(Role::Leader, 2, &[1, 2], &[1, 2], 1, 2);
        assert_eq!(s.high_watermark(100), None);
    }
}
