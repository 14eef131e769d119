//! The broker's shared state: configuration, the topic registry with its partitions, and the
//! producer-id allocator. Protocol handlers reach everything through [`Broker`].
//!
//! Every topic change is first made durable in the metadata log (`<data>/__chronik/metadata/`),
//! then applied to the open partitions; at start the log's state decides which topics exist.
//! Partition logs live in `<data>/<topic>-<partition>/`.

pub mod disk_space;
pub mod partition;
pub mod producer_ids;
pub mod topics;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;
use crate::config::topic::TopicConfigs;
use crate::metadata::{MetadataRecord, MetadataStore};
pub use partition::Partition;
pub use topics::{Topic, TopicError};

const META_DIR: &str = "__chronik";
/// Records between metadata snapshots: bounds replay time at start.
const SNAPSHOT_EVERY: u64 = 50_000;

#[derive(Debug, Serialize, Deserialize)]
struct ClusterMeta {
    cluster_id: String,
    node_id: i32,
}

pub struct Broker {
    pub config: Config,
    pub cluster_id: String,
    pub node_id: i32,
    /// Host and port given to clients.
    pub advertised: (String, i32),
    data_dir: PathBuf,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion and config changes with their persistence.
    admin_lock: tokio::sync::Mutex<()>,
    pub metadata: Arc<MetadataStore>,
    pub producer_ids: producer_ids::ProducerIdAllocator,
    pub groups: crate::group::GroupCoordinator,
    pub remote: Option<Arc<crate::remote::RemoteLogManager>>,
    /// The indexer and query engine; `None` when `[search] enabled = false`.
    pub search: Option<Arc<crate::search::SearchManager>>,
    /// Refuses produce while the data directory is nearly full.
    pub disk_space: disk_space::DiskSpaceGuard,
}

impl Broker {
    /// Opens the data directory: cluster identity, topics and every partition log.
    pub fn open(
        config: Config,
        bound: SocketAddr,
        cache: Option<chronik_cache::ChunkCache>,
        store_override: Option<Arc<dyn chronik_tiering::object_store::ObjectStore>>,
    ) -> io::Result<Arc<Self>> {
        let data_dir = config.data_dir.clone();
        let meta_dir = data_dir.join(META_DIR);
        std::fs::create_dir_all(&meta_dir)?;
        let meta_path = meta_dir.join("cluster.json");
        let meta = match std::fs::read(&meta_path) {
            Ok(raw) => serde_json::from_slice::<ClusterMeta>(&raw)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let meta = ClusterMeta {
                    cluster_id: random_cluster_id(),
                    node_id: config.node_id,
                };
                crate::util::write_atomically(&meta_path, &serde_json::to_vec_pretty(&meta)?)?;
                meta
            }
            Err(e) => return Err(e),
        };
        if meta.node_id != config.node_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "data directory belongs to node {} but node_id is {}",
                    meta.node_id, config.node_id
                ),
            ));
        }
        let started = std::time::Instant::now();
        let (metadata, report) = MetadataStore::open(&meta_dir.join("metadata"), SNAPSHOT_EVERY)?;
        let metadata = Arc::new(metadata);
        tracing::info!(
            snapshot_index = report.snapshot_index,
            records = report.records,
            truncated_bytes = report.truncated_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "metadata log replayed"
        );
        let producer_ids = producer_ids::ProducerIdAllocator::new(metadata.clone());
        let url = config.tiering.effective_url(&data_dir);
        let options = chronik_tiering::StoreOptions {
            endpoint: (!config.tiering.endpoint.is_empty())
                .then(|| config.tiering.endpoint.clone()),
            region: (!config.tiering.region.is_empty()).then(|| config.tiering.region.clone()),
            allow_http: config.tiering.allow_http,
            ..Default::default()
        };
        let store = match store_override {
            Some(s) => s,
            None => chronik_tiering::open_store(&url, &options)
                .map_err(|e| io::Error::other(format!("remote tier {url}: {e}")))?,
        };
        let remote = Arc::new(crate::remote::RemoteLogManager::new(
            store,
            metadata.clone(),
            meta.cluster_id.clone(),
            config.tiering.part_size_bytes as usize,
            cache,
        ));
        let topics = topics::open_topics(&metadata, &data_dir, &config)?;
        let advertised = config.advertised(bound);
        Ok(Arc::new(Self {
            cluster_id: meta.cluster_id,
            node_id: config.node_id,
            advertised,
            data_dir,
            topics: RwLock::new(topics),
            admin_lock: tokio::sync::Mutex::new(()),
            disk_space: disk_space::DiskSpaceGuard::new(
                &config.data_dir,
                config.log.min_free_bytes,
                config.log.min_free_percent,
            ),
            groups: crate::group::GroupCoordinator::new(metadata.clone(), config.group.clone()),
            remote: Some(remote),
            search: config
                .search
                .enabled
                .then(|| Arc::new(crate::search::SearchManager::new(config.search.clone()))),
            metadata,
            producer_ids,
            config,
        }))
    }

    /// The Kafka listener's limits from the configuration.
    pub fn listener_limits(&self) -> crate::network::Limits {
        crate::network::Limits {
            max_connections: self.config.kafka.max_connections,
            request_max_bytes: self.config.kafka.request_max_bytes,
            idle_timeout: std::time::Duration::from_millis(self.config.kafka.idle_timeout_ms),
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
        let _guard = self.admin_lock.lock().await;
        topics::validate_name(name)?;
        if self.topic(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        if let Some(other) = self
            .topics()
            .into_iter()
            .find(|t| topics::collides(&t.name, name))
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
        if partitions > topics::MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must not exceed {}",
                topics::MAX_PARTITIONS
            )));
        }
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
        topics::clear_partition_dirs(&self.data_dir, name, partitions)?;
        let topic = Topic::create(
            &self.data_dir,
            name,
            id,
            partitions,
            configs,
            log_config,
            &|_| None,
        )?;
        let topic = Arc::new(topic);
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), topic.clone());
        Ok(topic)
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
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        topic.delete_logs(&self.data_dir)?;
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
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic currently has {current} partitions, {count} would not be an increase"
            )));
        }
        if count > topics::MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must not exceed {}",
                topics::MAX_PARTITIONS
            )));
        }
        if validate_only {
            return Ok(());
        }
        self.metadata
            .append(vec![MetadataRecord::PartitionsCreated {
                id: topic.id,
                count,
            }])
            .await?;
        let grown = topic.with_partitions(&self.data_dir, count, &self.config.log)?;
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
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let log_config = configs.resolve(&self.config.log)?;
        if validate_only {
            return Ok(());
        }
        self.metadata
            .append(vec![MetadataRecord::TopicConfigsSet {
                id: topic.id,
                configs: configs.0.clone(),
            }])
            .await?;
        let updated = topic.with_configs(configs, log_config);
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(updated));
        Ok(())
    }

    /// Applies retention to every partition.
    pub fn enforce_retention(&self, now_ms: i64) {
        for topic in self.topics() {
            for p in topic.partitions() {
                p.enforce_retention(now_ms);
            }
        }
    }

    /// Runs time-based flushes that are due.
    pub fn flush_due(&self, now_ms: i64) {
        for topic in self.topics() {
            for p in topic.partitions() {
                p.flush_if_due(now_ms);
            }
        }
    }

    /// Flushes and closes every log and the metadata log cleanly (graceful shutdown).
    pub fn close(&self) {
        for topic in self.topics() {
            for p in topic.partitions() {
                p.close();
            }
        }
        self.metadata.close();
    }
}

fn random_cluster_id() -> String {
    // Kafka cluster ids are 22-character URL-safe base64 of a UUID.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}
