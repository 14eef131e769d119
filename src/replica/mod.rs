//! The replica layer: every partition this broker holds, as the [`Partition`] contract, and the
//! registry of topics that opens, grows, reconfigures and deletes them.
//!
//! Everything above (handlers, the remote log manager, search, groups) reaches partitions
//! through [`ReplicaManager`]; nothing here knows about requests, the remote tier's objects or
//! search. The remote tier plugs in from above through [`RemoteTier`], so that a partition's
//! one read can hide which tier answers.
//!
//! Every topic change is first made durable in the metadata log, then applied to the open
//! partitions; at start the log's state decides which topics exist. Partition logs live in
//! `<data>/<topic>-<partition>/`.

pub mod client;
pub mod disk_space;
pub mod epoch;
pub mod fetcher;
pub mod internal_log;
pub mod partition;
pub mod replication;
pub mod throttle;
pub mod topic;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::config::Config;
use crate::config::topic::TopicConfigs;
use crate::metadata::{MetadataRecord, MetadataStore};
// The types of the partition contract that come from the log below.
pub use crate::log::batch::{BatchError, BatchHeader, split_batches};
pub use crate::log::producer_state::ProducerError;
pub use crate::log::{AppendError, AppendInfo};
pub use disk_space::DiskSpaceGuard;
pub use partition::{
    CommitWait, EpochError, FetchError, Fetched, IsrChange, Partition, Reader, Records,
};
pub use replication::Role;
pub use topic::{Topic, TopicError};

/// Reads of the remote tier, as partitions need them. Implemented by the remote log manager,
/// which sits above this layer.
pub trait RemoteTier: Send + Sync {
    /// Whole batches at `offset` (at most `max_bytes`, at least one when `at_least_one`), as
    /// pieces in order (slices of cached chunks; joined, they are the batches).
    fn read<'a>(
        &'a self,
        topic: &'a str,
        topic_id: Uuid,
        partition: i32,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
    ) -> BoxFuture<'a, io::Result<Option<Vec<Bytes>>>>;

    /// The first remote record at or after `timestamp` below offset `below`.
    fn offset_for_timestamp<'a>(
        &'a self,
        topic: &'a str,
        topic_id: Uuid,
        partition: i32,
        timestamp: i64,
        below: i64,
    ) -> BoxFuture<'a, io::Result<Option<(i64, i64)>>>;

    /// One past the last offset in the remote tier, if it holds any.
    fn next_offset(&self, topic_id: Uuid, partition: i32) -> Option<i64> {
        self.range(topic_id, partition).map(|(_, next)| next)
    }

    /// The `[start, next)` offsets the remote tier holds of a partition, if any.
    fn range(&self, topic_id: Uuid, partition: i32) -> Option<(i64, i64)>;
}

/// Where partitions find the remote tier once the broker has wired it in. Held weakly: the
/// remote tier holds the replica manager, and the broker owns both.
#[derive(Default)]
pub struct TierSlot(OnceLock<Weak<dyn RemoteTier>>);

impl TierSlot {
    pub fn get(&self) -> Option<Arc<dyn RemoteTier>> {
        self.0.get()?.upgrade()
    }
}

pub struct ReplicaManager {
    config: Config,
    data_dir: PathBuf,
    metadata: Arc<MetadataStore>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion and config changes with their persistence.
    admin_lock: tokio::sync::Mutex<()>,
    tier: Arc<TierSlot>,
    /// In a cluster (`[cluster] voters`): partitions are placed on brokers, this one holds and
    /// leads those the metadata gives it, and every change reaches it through [`Self::reconcile`].
    clustered: bool,
    /// Serialises reconciliations.
    reconcile_lock: std::sync::Mutex<u64>,
    /// Copies the partitions this broker follows from their leaders (in a cluster).
    fetchers: fetcher::Fetchers,
    /// Replication throttles of this broker (its rates follow the metadata).
    pub throttles: Arc<throttle::Throttles>,
}

impl ReplicaManager {
    /// Opens every topic the metadata log holds.
    pub fn open(config: &Config, metadata: Arc<MetadataStore>) -> io::Result<Self> {
        let tier = Arc::new(TierSlot::default());
        let home = topic::Home {
            data_dir: &config.data_dir,
            tier: &tier,
        };
        let clustered = !config.cluster.voters.is_empty();
        let node = config.node_id;
        let placements = metadata.read(|s| s.placements.clone());
        let hosted = |t: &crate::metadata::TopicState, p: i32| {
            !clustered || hosts(&placements, t.id, p, node)
        };
        let topics = topic::open_topics(&metadata, home, config, &hosted)?;
        let manager_metadata = metadata.clone();
        let throttles = Arc::new(throttle::Throttles::default());
        let manager = Self {
            config: config.clone(),
            data_dir: config.data_dir.clone(),
            metadata,
            topics: RwLock::new(topics),
            admin_lock: tokio::sync::Mutex::new(()),
            tier,
            clustered,
            reconcile_lock: std::sync::Mutex::new(0),
            throttles: throttles.clone(),
            fetchers: fetcher::Fetchers::new(
                node,
                manager_metadata,
                throttles,
                config
                    .cluster
                    .broker_address_map()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
                    .into_iter()
                    .map(|(id, a)| (id as i32, a))
                    .collect(),
            ),
        };
        if clustered {
            manager.reconcile()?;
        }
        Ok(manager)
    }

    /// Whether partitions are placed by a controller quorum (and may live on other brokers).
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Makes the open topics and partitions match the metadata (in a cluster): topics created
    /// or deleted elsewhere, partitions placed on or moved off this broker, configs, and which
    /// partitions this broker leads in which epoch. Cheap when the topology did not change.
    pub fn reconcile(&self) -> io::Result<()> {
        let mut seen = self
            .reconcile_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let node = self.config.node_id;
        let (leader_rate, follower_rate) = self.metadata.read(|s| {
            let rate = |key| {
                s.broker_config(node, key)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            (rate(throttle::LEADER_RATE), rate(throttle::FOLLOWER_RATE))
        });
        self.throttles.leader.set_rate(leader_rate);
        self.throttles.follower.set_rate(follower_rate);
        let version = self.metadata.read(|s| s.topology_version.0);
        if version == *seen && version != 0 {
            return Ok(());
        }
        let (topics, placements) = self
            .metadata
            .read(|s| (s.topics.clone(), s.placements.clone()));
        let current = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut next: HashMap<String, Arc<Topic>> = HashMap::new();
        for t in topics.values() {
            let id = t.id;
            let hosted = |p: i32| hosts(&placements, id, p, node);
            let remote = |p: i32| match self.tier.get() {
                Some(tier) => tier.range(id, p),
                None => self.metadata.read(|s| s.remote_range(id, p)),
            };
            let configs = TopicConfigs(t.configs.clone());
            let log_config = configs
                .resolve(&self.config.log)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let topic = match current.get(&t.name) {
                Some(old) if old.id == id => {
                    let mut topic = old.clone();
                    if topic.configs != configs {
                        topic = Arc::new(topic.with_configs(configs, log_config.clone()));
                    }
                    let held: Vec<i32> = topic.partitions().iter().map(|p| p.index).collect();
                    let wanted: Vec<i32> = (0..t.partitions).filter(|p| hosted(*p)).collect();
                    if held != wanted || topic.partition_count() != t.partitions {
                        topic = Arc::new(topic.with_hosted(
                            self.home(),
                            &log_config,
                            topic::Layout {
                                count: t.partitions,
                                hosted: &hosted,
                                remote: &remote,
                            },
                        )?);
                    }
                    topic
                }
                other => {
                    if let Some(old) = other {
                        tracing::info!(topic = %old.name, "topic was replaced; removing the old one's logs");
                        old.delete_logs()?;
                    }
                    Arc::new(Topic::create(
                        self.home(),
                        &t.name,
                        id,
                        configs,
                        log_config,
                        topic::Layout {
                            count: t.partitions,
                            hosted: &hosted,
                            remote: &remote,
                        },
                    )?)
                }
            };
            next.insert(t.name.clone(), topic);
        }
        for (name, old) in &current {
            if next.get(name).is_none_or(|t| t.id != old.id) && !topics.contains_key(name) {
                tracing::info!(topic = %name, "topic was deleted; removing its logs");
                old.delete_logs()?;
            }
        }
        let mut follows: std::collections::BTreeMap<i32, Vec<fetcher::Followed>> =
            Default::default();
        for t in next.values() {
            for p in t.partitions() {
                let placement = placements.get(&t.id).and_then(|m| m.get(&p.index));
                let Some(pl) = placement else {
                    if p.is_leader() {
                        p.resign();
                        tracing::info!(topic = %t.name, partition = p.index, "no longer leading partition");
                    }
                    continue;
                };
                let role = if pl.leader == node {
                    Role::Leader
                } else {
                    Role::Follower { leader: pl.leader }
                };
                let was_leader = p.is_leader();
                let was_epoch = p.leader_epoch();
                p.set_replicas(
                    node,
                    role,
                    pl.leader_epoch,
                    &pl.replicas,
                    &pl.isr,
                    pl.partition_epoch,
                )?;
                match role {
                    Role::Leader if !was_leader || was_epoch < pl.leader_epoch => {
                        tracing::info!(topic = %t.name, partition = p.index, epoch = pl.leader_epoch, isr = ?pl.isr, "leading partition");
                    }
                    Role::Follower { leader } => {
                        if was_leader {
                            tracing::info!(topic = %t.name, partition = p.index, leader, epoch = pl.leader_epoch, "following partition");
                        }
                        if leader >= 0 {
                            follows.entry(leader).or_default().push(fetcher::Followed {
                                partition: p.clone(),
                                leader_epoch: pl.leader_epoch,
                            });
                        }
                    }
                    Role::Leader => {}
                }
            }
        }
        self.fetchers.set(follows);
        *self.topics.write().unwrap_or_else(|e| e.into_inner()) = next;
        *seen = version;
        Ok(())
    }

    /// Wires in the remote tier; partitions read through it from then on. Once only.
    pub fn set_remote_tier(&self, remote: &Arc<dyn RemoteTier>) {
        if self.tier.0.set(Arc::downgrade(remote)).is_err() {
            tracing::warn!("the remote tier was wired in twice; keeping the first");
        }
    }

    fn home(&self) -> topic::Home<'_> {
        topic::Home {
            data_dir: &self.data_dir,
            tier: &self.tier,
        }
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Where a partition's log (and its search index) live.
    pub fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(partition::dir_name(topic, index))
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic)?.partition(index)
    }

    /// Creates a topic. With `validate_only` everything is checked but nothing is created.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: TopicConfigs,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        self.create_topic_as(
            name,
            partitions,
            Replicas::Factor(replication_factor),
            configs,
            validate_only,
        )
        .await
    }

    /// `create_topic` with the replicas of each partition given (CreateTopics' assignments):
    /// partition `i` on `assignment[i]`, its first broker the preferred leader.
    pub async fn create_assigned_topic(
        &self,
        name: &str,
        assignment: Vec<Vec<i32>>,
        configs: TopicConfigs,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let partitions = assignment.len() as i32;
        if !self.clustered {
            let me = self.config.node_id;
            if assignment.iter().any(|a| a.as_slice() != [me]) {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "this single node is broker {me}: every partition is on it alone"
                )));
            }
            return self
                .create_topic(name, partitions, 1, configs, validate_only)
                .await;
        }
        self.create_topic_as(
            name,
            partitions,
            Replicas::Assigned(assignment),
            configs,
            validate_only,
        )
        .await
    }

    async fn create_topic_as(
        &self,
        name: &str,
        partitions: i32,
        replicas: Replicas,
        configs: TopicConfigs,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.admin_lock.lock().await;
        topic::validate_name(name)?;
        if self.topic(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        if let Some(other) = self
            .topics()
            .into_iter()
            .find(|t| topic::collides(&t.name, name))
        {
            return Err(TopicError::InvalidName(format!(
                "topic '{name}' collides with existing topic '{}'",
                other.name
            )));
        }
        let partitions = if partitions == -1 {
            self.config.log.num_partitions
        } else {
            partitions
        };
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(
                "number of partitions must be larger than 0".into(),
            ));
        }
        if partitions > topic::MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must not exceed {}",
                topic::MAX_PARTITIONS
            )));
        }
        if self.clustered {
            return self
                .create_placed_topic(name, partitions, replicas, configs, validate_only)
                .await;
        }
        let Replicas::Factor(replication_factor) = replicas else {
            return Err(TopicError::InvalidReplicaAssignment(
                "replica assignments need a cluster".into(),
            ));
        };
        if replication_factor != -1 && replication_factor != 1 {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is larger than the 1 available broker"
            )));
        }
        let log_config = configs.resolve(&self.config.log)?;
        if validate_only {
            return Ok(Arc::new(Topic::new_unopened(name, partitions, configs)));
        }
        let id = Uuid::new_v4();
        self.metadata
            .append(vec![MetadataRecord::TopicCreated {
                name: name.to_string(),
                id,
                partitions,
                configs: configs.0.clone(),
            }])
            .await?;
        // Leftovers of an older topic of the same name must not become this topic's data.
        topic::clear_partition_dirs(&self.data_dir, name, partitions)?;
        let created = Topic::create(
            self.home(),
            name,
            id,
            configs,
            log_config,
            topic::Layout {
                count: partitions,
                hosted: &|_| true,
                remote: &|_| None,
            },
        )?;
        let created = Arc::new(created);
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), created.clone());
        Ok(created)
    }

    /// `create_topic` in a cluster: the partitions are placed on the live brokers and the topic
    /// exists once the quorum committed it; each broker then opens its own partitions.
    async fn create_placed_topic(
        &self,
        name: &str,
        partitions: i32,
        replicas: Replicas,
        configs: TopicConfigs,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let placed = match replicas {
            Replicas::Factor(replication_factor) => {
                let rf = if replication_factor == -1 {
                    1
                } else {
                    replication_factor
                };
                if rf < 1 {
                    return Err(TopicError::InvalidReplicationFactor(format!(
                        "replication factor must be larger than 0, not {rf}"
                    )));
                }
                self.metadata
                    .read(|s| crate::metadata::placement::place(s, 0, partitions, rf as usize))
                    .map_err(TopicError::InvalidReplicationFactor)?
            }
            Replicas::Assigned(assignment) => self
                .metadata
                .read(|s| crate::metadata::placement::assigned(s, 0, &assignment))
                .map_err(TopicError::InvalidReplicaAssignment)?,
        };
        configs.resolve(&self.config.log)?;
        if validate_only {
            return Ok(Arc::new(Topic::new_unopened(name, partitions, configs)));
        }
        let id = Uuid::new_v4();
        self.metadata
            .append(vec![
                MetadataRecord::TopicCreated {
                    name: name.to_string(),
                    id,
                    partitions,
                    configs: configs.0.clone(),
                },
                MetadataRecord::PartitionsSet {
                    id,
                    partitions: placed,
                },
            ])
            .await?;
        if self.metadata.read(|s| s.topics.get(name).map(|t| t.id)) != Some(id) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        self.reconcile()?;
        self.topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))
    }

    /// Creates a topic with broker defaults if auto-creation is on and the name is valid.
    pub async fn auto_create(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        match self
            .create_topic(name, -1, -1, TopicConfigs::default(), false)
            .await
        {
            Err(TopicError::AlreadyExists(_)) => self
                .topic(name)
                .ok_or_else(|| TopicError::UnknownTopic(name.to_string())),
            other => other,
        }
    }

    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let _guard = self.admin_lock.lock().await;
        let id = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?
            .id;
        self.metadata
            .append(vec![MetadataRecord::TopicDeleted { id }])
            .await?;
        if self.clustered {
            self.reconcile()?;
            return Ok(id);
        }
        let removed = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        removed.delete_logs()?;
        Ok(id)
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.admin_lock.lock().await;
        let existing = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let current = existing.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic currently has {current} partitions, {count} would not be an increase"
            )));
        }
        if count > topic::MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must not exceed {}",
                topic::MAX_PARTITIONS
            )));
        }
        if validate_only {
            return Ok(());
        }
        if self.clustered {
            // New partitions get as many replicas as the topic's first partition has.
            let placed = self
                .metadata
                .read(|s| {
                    let rf = s.placement(existing.id, 0).map_or(1, |p| p.replicas.len());
                    crate::metadata::placement::place(s, current, count - current, rf)
                })
                .map_err(TopicError::InvalidReplicationFactor)?;
            self.metadata
                .append(vec![
                    MetadataRecord::PartitionsCreated {
                        id: existing.id,
                        count,
                    },
                    MetadataRecord::PartitionsSet {
                        id: existing.id,
                        partitions: placed,
                    },
                ])
                .await?;
            self.reconcile()?;
            return Ok(());
        }
        self.metadata
            .append(vec![MetadataRecord::PartitionsCreated {
                id: existing.id,
                count,
            }])
            .await?;
        let grown = existing.with_partitions(self.home(), count, &self.config.log)?;
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(grown));
        Ok(())
    }

    /// Replaces a topic's explicit configs (already validated) and applies them to its logs.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: TopicConfigs,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.admin_lock.lock().await;
        let existing = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let log_config = configs.resolve(&self.config.log)?;
        if validate_only {
            return Ok(());
        }
        self.metadata
            .append(vec![MetadataRecord::TopicConfigsSet {
                id: existing.id,
                configs: configs.0.clone(),
            }])
            .await?;
        if self.clustered {
            self.reconcile()?;
            return Ok(());
        }
        let updated = existing.with_configs(configs, log_config);
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(updated));
        Ok(())
    }

    /// Every partition this broker holds.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.topics()
            .iter()
            .flat_map(|t| t.partitions().to_vec())
            .collect()
    }

    /// Applies retention to every partition.
    pub fn enforce_retention(&self, now_ms: i64) {
        for p in self.partitions() {
            p.enforce_retention(now_ms);
        }
    }

    /// Runs time-based flushes that are due.
    pub fn flush_due(&self, now_ms: i64) {
        for p in self.partitions() {
            p.flush_if_due(now_ms);
        }
    }

    /// Flushes and closes every log cleanly (graceful shutdown).
    pub fn close(&self) {
        self.fetchers.stop();
        for p in self.partitions() {
            p.close();
        }
    }
}

/// Whether the placement of a topic's partition names `node` among its replicas.
fn hosts(
    placements: &std::collections::BTreeMap<
        Uuid,
        std::collections::BTreeMap<i32, crate::metadata::PartitionPlacement>,
    >,
    topic: Uuid,
    partition: i32,
    node: i32,
) -> bool {
    placements
        .get(&topic)
        .and_then(|m| m.get(&partition))
        .is_some_and(|p| p.replicas.contains(&node))
}

/// How a new topic's partitions get their replicas.
enum Replicas {
    /// This many (-1: the default), placed across the live brokers.
    Factor(i16),
    /// Exactly these, partition by partition.
    Assigned(Vec<Vec<i32>>),
}
