//! Followers copy their leaders' logs with ordinary Kafka `Fetch` requests (v12: replica id,
//! current leader epoch, last fetched epoch), one connection and one task per leader broker,
//! each fetching every partition this broker follows from that leader.
//!
//! An answer's batches are appended as they are (offsets and epochs kept); its high watermark
//! becomes the follower's, capped at its own log end. A `DivergingEpoch` means this log went on
//! past the leader's history in some epoch: it is cut back to where that epoch ends on both
//! sides and fetching resumes there. A fetch below the leader's log start (the leader deleted
//! or tiered away what this follower lacks) starts the local log over at the leader's start.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Partition;
use crate::log::batch::split_stored_batches;
use crate::metadata::MetadataStore;

/// The Fetch version followers send: flexible, with `LastFetchedEpoch`, topics by name.
const FETCH_VERSION: i16 = 12;
/// How long a leader may hold a follower's fetch when it has nothing new.
const MAX_WAIT_MS: i32 = 500;
const MAX_BYTES: i32 = 64 << 20;
const PARTITION_MAX_BYTES: i32 = 8 << 20;
const BACKOFF: Duration = Duration::from_millis(200);

/// One partition this broker follows, and in which leader epoch.
#[derive(Clone)]
pub struct Followed {
    pub partition: Arc<Partition>,
    pub leader_epoch: i32,
}

struct LeaderTask {
    follows: watch::Sender<Vec<Followed>>,
    task: tokio::task::JoinHandle<()>,
}

/// The fetcher tasks of this broker, one per leader it follows partitions of.
pub struct Fetchers {
    me: i32,
    metadata: Arc<MetadataStore>,
    throttles: Arc<super::throttle::Throttles>,
    /// Addresses to reach leaders at instead of what they registered (`[cluster]
    /// broker_addresses`).
    overrides: Arc<BTreeMap<i32, String>>,
    tasks: Mutex<HashMap<i32, LeaderTask>>,
}

impl Fetchers {
    pub fn new(
        me: i32,
        metadata: Arc<MetadataStore>,
        throttles: Arc<super::throttle::Throttles>,
        overrides: BTreeMap<i32, String>,
    ) -> Self {
        Self {
            me,
            metadata,
            throttles,
            overrides: Arc::new(overrides),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Sets what this broker follows, by leader: tasks start for new leaders, stop for leaders
    /// it no longer follows anything of, and the others fetch the new set from their next
    /// round on. Needs a tokio runtime.
    pub fn set(&self, by_leader: BTreeMap<i32, Vec<Followed>>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime to run replica fetchers on");
            return;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|leader, t| {
            let keep = by_leader.contains_key(leader);
            if !keep {
                t.task.abort();
            }
            keep
        });
        for (leader, follows) in by_leader {
            match tasks.get(&leader) {
                Some(t) if !t.task.is_finished() => {
                    t.follows.send_replace(follows);
                }
                _ => {
                    let (tx, rx) = watch::channel(follows);
                    let task = runtime.spawn(fetch_from(
                        leader,
                        self.me,
                        self.metadata.clone(),
                        self.throttles.clone(),
                        self.overrides.get(&leader).cloned(),
                        rx,
                    ));
                    tasks.insert(leader, LeaderTask { follows: tx, task });
                }
            }
        }
    }

    /// Stops every fetcher (shutdown).
    pub fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (_, t) in tasks.drain() {
            t.task.abort();
        }
    }
}

impl Drop for Fetchers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The loop of one leader's fetcher.
async fn fetch_from(
    leader: i32,
    me: i32,
    metadata: Arc<MetadataStore>,
    throttles: Arc<super::throttle::Throttles>,
    address: Option<String>,
    mut follows: watch::Receiver<Vec<Followed>>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut correlation = 0i32;
    loop {
        let set = follows.borrow_and_update().clone();
        if set.is_empty() {
            if follows.changed().await.is_err() {
                return;
            }
            continue;
        }
        if conn.is_none() {
            let addr = address.clone().or_else(|| {
                metadata.read(|s| {
                    s.brokers
                        .get(&leader)
                        .map(|b| format!("{}:{}", b.host, b.port))
                })
            });
            let Some(addr) = addr else {
                tokio::time::sleep(BACKOFF).await;
                continue;
            };
            match super::client::connect(&addr, Duration::from_secs(2)).await {
                Ok(s) => conn = Some(s),
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "replica fetcher cannot connect");
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        correlation = correlation.wrapping_add(1);
        let Some(stream) = conn.as_mut() else {
            continue;
        };
        // Throttled replicas (out of sync, named by their topic's follower list) sit a round
        // out while this broker's follower quota is spent.
        let throttled: Vec<(String, i32)> = if throttles.follower.rate().is_some() {
            metadata.read(|s| {
                set.iter()
                    .map(|f| &f.partition)
                    .filter(|p| {
                        s.topics
                            .get(&p.topic)
                            .and_then(|t| t.configs.get(super::throttle::FOLLOWER_REPLICAS))
                            .is_some_and(|l| super::throttle::listed(l, p.index, me))
                            && !p.isr().contains(&me)
                    })
                    .map(|p| (p.topic.clone(), p.index))
                    .collect()
            })
        } else {
            Vec::new()
        };
        let hold = !throttled.is_empty() && !throttles.follower.available();
        let asked: Vec<Followed> = set
            .iter()
            .filter(|f| {
                !hold
                    || !throttled
                        .iter()
                        .any(|(t, i)| *t == f.partition.topic && *i == f.partition.index)
            })
            .cloned()
            .collect();
        let size_of = |(t, i): &(String, i32)| {
            set.iter()
                .find(|f| f.partition.topic == *t && f.partition.index == *i)
                .map_or(0, |f| f.partition.size_bytes())
        };
        let sizes: Vec<u64> = throttled.iter().map(size_of).collect();
        let request = build_request(me, &asked);
        let answer = tokio::time::timeout(
            Duration::from_millis(MAX_WAIT_MS as u64) + Duration::from_secs(10),
            super::client::exchange(
                stream,
                correlation,
                FETCH_VERSION,
                "chronik-replica",
                &request,
            ),
        )
        .await;
        let response = match answer {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
                conn = None;
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
            Err(_) => {
                tracing::debug!(leader, "replica fetch timed out; reconnecting");
                conn = None;
                continue;
            }
        };
        let progressed = apply(leader, &set, response);
        if !throttled.is_empty() {
            // What the throttled replicas took counts against the quota: their logs grew by
            // the batches as fetched.
            let taken: u64 = throttled
                .iter()
                .zip(&sizes)
                .map(|(r, before)| size_of(r).saturating_sub(*before))
                .sum();
            throttles.follower.record(taken);
        }
        if !progressed {
            // Nothing to do until the metadata moves on (a new leader or epoch) or a moment
            // passes.
            tokio::select! {
                _ = follows.changed() => {}
                _ = tokio::time::sleep(BACKOFF) => {}
            }
        }
    }
}

fn build_request(me: i32, set: &[Followed]) -> FetchRequest {
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for f in set {
        let p = &f.partition;
        by_topic.entry(p.topic.as_str()).or_default().push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(p.log_end_offset())
                .with_last_fetched_epoch(p.last_fetched_epoch())
                .with_log_start_offset(p.log_start_offset())
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Applies a leader's answer to the followed partitions; whether any of them made progress
/// (or can fetch again at once).
fn apply(leader: i32, set: &[Followed], response: FetchResponse) -> bool {
    let now_ms = crate::util::now_ms();
    let mut progress = false;
    let by_key: HashMap<(&str, i32), &Followed> = set
        .iter()
        .map(|f| ((f.partition.topic.as_str(), f.partition.index), f))
        .collect();
    if response.error_code != 0 {
        tracing::debug!(leader, error = response.error_code, "replica fetch refused");
        return false;
    }
    for topic in &response.responses {
        for pd in &topic.partitions {
            let Some(f) = by_key.get(&(topic.topic.0.as_str(), pd.partition_index)) else {
                continue;
            };
            let p = &f.partition;
            if p.is_deleted() || p.is_leader() {
                continue;
            }
            let error = ResponseError::try_from_code(pd.error_code);
            match error {
                None => {}
                Some(ResponseError::OffsetOutOfRange) => {
                    let end = p.log_end_offset();
                    let result = if end < pd.log_start_offset {
                        tracing::info!(topic = %p.topic, partition = p.index, from = end, to = pd.log_start_offset, "follower log ends below the leader's log start; starting over there");
                        p.restart_at(pd.log_start_offset)
                    } else {
                        tracing::info!(topic = %p.topic, partition = p.index, from = end, to = pd.high_watermark, "follower log is ahead of its leader; cutting back to the leader's high watermark");
                        p.truncate_to(pd.high_watermark.max(0))
                    };
                    match result {
                        Ok(()) => progress = true,
                        Err(e) => {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "cannot reset follower log")
                        }
                    }
                    continue;
                }
                Some(ResponseError::OffsetMovedToTieredStorage) => {
                    let end = p.log_end_offset();
                    match p.restart_above_remote(pd.log_start_offset) {
                        Ok(Some(next)) => {
                            tracing::info!(topic = %p.topic, partition = p.index, from = end, to = next, "follower behind its leader's local log; continuing at the remote tier's end");
                            progress = true;
                        }
                        Ok(None) => {
                            tracing::warn!(topic = %p.topic, partition = p.index, "leader says the offset is in the remote tier, which this broker does not see");
                        }
                        Err(e) => {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "cannot restart follower log above the remote tier")
                        }
                    }
                    continue;
                }
                Some(e) => {
                    tracing::debug!(topic = %p.topic, partition = p.index, leader, error = ?e, "replica fetch error");
                    continue;
                }
            }
            if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
                let div = &pd.diverging_epoch;
                let (mine, my_end) = p.end_offset_for_epoch(div.epoch);
                let target = if mine >= 0 {
                    div.end_offset.min(my_end)
                } else {
                    div.end_offset
                };
                tracing::info!(topic = %p.topic, partition = p.index, epoch = div.epoch, leader_end = div.end_offset, to = target, "follower log diverges from its leader; truncating");
                match p.truncate_to(target.max(p.log_start_offset())) {
                    Ok(()) => progress = true,
                    Err(e) => {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "cannot truncate follower log")
                    }
                }
                continue;
            }
            let records = pd.records.clone().unwrap_or_default();
            if !records.is_empty() {
                match split_stored_batches(&records) {
                    Ok(batches) if !batches.is_empty() => {
                        match p.append_replicated(&batches, now_ms) {
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot append replicated batches");
                                continue;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, leader, error = %e, "damaged batch from the leader");
                        continue;
                    }
                }
            }
            p.follow_high_watermark(pd.high_watermark);
            if let Err(e) = p.follow_log_start(pd.log_start_offset) {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot move the follower's log start to the leader's");
            }
            // An empty answer after the leader's long poll: fetch again at once.
            progress = true;
        }
    }
    progress
}
