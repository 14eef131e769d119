//! Replication throttles, as Kafka has them for catching up after a reassignment: a topic's
//! `leader.replication.throttled.replicas` and `follower.replication.throttled.replicas` name
//! the replicas (`partition:broker`, or `*`) whose copying is limited, and the brokers' dynamic
//! configs `leader.replication.throttled.rate` / `follower.replication.throttled.rate` the bytes
//! per second that a leader sends to them and a follower fetches for them, all throttled
//! replicas of a broker together. A replica in the in-sync set is never throttled.
//! `kafka-reassign-partitions --throttle` sets all four and `--verify` removes them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Whether replica `broker` of `partition` is in a `*.replication.throttled.replicas` list.
pub fn listed(list: &str, partition: i32, broker: i32) -> bool {
    list.split(',').map(str::trim).any(|e| {
        e == "*"
            || e.split_once(':').is_some_and(|(p, b)| {
                p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(broker)
            })
    })
}

/// A token bucket of bytes per second, shared by every throttled replica on one side of this
/// broker; it holds at most one second's worth.
#[derive(Default)]
pub struct Quota {
    /// Bytes per second; 0: no limit.
    rate: AtomicU64,
    bucket: Mutex<Option<(f64, Instant)>>,
}

impl Quota {
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// The rate, if one is set.
    pub fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    fn refill(&self, rate: u64) -> std::sync::MutexGuard<'_, Option<(f64, Instant)>> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, at) = b.unwrap_or((rate as f64, now));
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * rate as f64).min(rate as f64);
        *b = Some((tokens, now));
        b
    }

    /// Whether throttled replicas may take more bytes now (always, without a rate).
    pub fn available(&self) -> bool {
        match self.rate() {
            None => true,
            Some(rate) => self.refill(rate).is_some_and(|(t, _)| t > 0.0),
        }
    }

    /// Counts `bytes` a throttled replica took.
    pub fn record(&self, bytes: u64) {
        if let Some(rate) = self.rate()
            && let Some((t, _)) = self.refill(rate).as_mut()
        {
            *t -= bytes as f64;
        }
    }
}

/// This broker's two quotas, their rates kept current from the metadata.
#[derive(Default)]
pub struct Throttles {
    pub leader: Quota,
    pub follower: Quota,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_replicas_or_all() {
        assert!(listed("0:1,1:2", 1, 2));
        assert!(listed(" 0:1 , 1:2 ", 0, 1));
        assert!(!listed("0:1,1:2", 0, 2));
        assert!(listed("*", 7, 9));
        assert!(!listed("", 0, 1));
    }

    #[test]
    fn a_quota_lets_through_a_second_of_bytes_then_waits() {
        let q = Quota::default();
        assert!(q.available(), "no rate: no limit");
        q.set_rate(1000);
        assert!(q.available());
        q.record(1500);
        assert!(!q.available(), "over a second's worth taken");
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert!(q.available(), "refilled after 0.7 s at 1000 B/s");
    }
}
