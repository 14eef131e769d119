//! Topics: names, ids, partitions and explicit configs, and the registry file that keeps them.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use super::TierSlot;
use super::partition::Partition;
use crate::config::Config;
use crate::config::LogDefaults;
use crate::config::topic::{TopicConfigError, TopicConfigs};
use crate::log::LogConfig;
use crate::metadata::{MetadataStore, TopicState};

/// Kafka's limit: a topic name plus `-<partition>` must stay a valid file name.
pub const MAX_NAME_LEN: usize = 249;
/// A guard against requests that would create absurd numbers of directories.
pub const MAX_PARTITIONS: i32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error(transparent)]
    Config(#[from] TopicConfigError),
    #[error("storage error: {0}")]
    Io(#[from] io::Error),
}

pub fn validate_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::InvalidName(
            "topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(TopicError::InvalidName(
            "topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(TopicError::InvalidName(format!(
            "topic name is illegal, it can't be longer than {MAX_NAME_LEN} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(TopicError::InvalidName(format!(
            "topic name '{name}' is illegal, it contains '{c}'; valid characters are ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Kafka refuses names that differ only by '.' versus '_' (they collide in metric names).
pub fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

/// Where a topic's partitions live: the data directory, and the remote tier they read through.
#[derive(Clone, Copy)]
pub struct Home<'a> {
    pub data_dir: &'a Path,
    pub tier: &'a Arc<TierSlot>,
}

/// Which partitions of a topic this broker opens, and what the remote tier holds of each.
pub struct Layout<'a> {
    /// The topic's partition count.
    pub count: i32,
    /// Whether this broker holds a partition (all of them on a single node).
    pub hosted: &'a dyn Fn(i32) -> bool,
    /// The `[start, next)` offsets the remote tier holds of a partition.
    pub remote: &'a dyn Fn(i32) -> Option<(i64, i64)>,
}

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: TopicConfigs,
    partition_count: i32,
    partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// A topic as it would be created, without touching disk (for `validate_only`).
    pub fn new_unopened(name: &str, partitions: i32, configs: TopicConfigs) -> Self {
        Self {
            name: name.to_string(),
            id: Uuid::nil(),
            configs,
            partition_count: partitions,
            partitions: Vec::new(),
        }
    }

    /// Opens (creating when new) every partition; `remote` tells what the remote tier holds
    /// for a partition.
    pub fn create(
        home: Home<'_>,
        name: &str,
        id: Uuid,
        configs: TopicConfigs,
        log_config: LogConfig,
        layout: Layout<'_>,
    ) -> io::Result<Self> {
        let Layout {
            count: partitions,
            hosted,
            remote,
        } = layout;
        let mut opened = Vec::with_capacity(partitions as usize);
        for index in (0..partitions).filter(|p| hosted(*p)) {
            opened.push(Arc::new(Partition::open(
                home.data_dir,
                name,
                id,
                index,
                log_config.clone(),
                remote(index),
                home.tier.clone(),
            )?));
        }
        Ok(Self {
            name: name.to_string(),
            id,
            configs,
            partition_count: partitions,
            partitions: opened,
        })
    }

    /// The partition if this broker holds it (a single node holds them all; a cluster's
    /// brokers the ones placed on them).
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        if index < 0 {
            return None;
        }
        if let Some(p) = self.partitions.get(index as usize)
            && p.index == index
        {
            return Some(p.clone());
        }
        self.partitions
            .binary_search_by_key(&index, |p| p.index)
            .ok()
            .map(|at| self.partitions[at].clone())
    }

    /// The partitions this broker holds, by index.
    pub fn partitions(&self) -> &[Arc<Partition>] {
        &self.partitions
    }

    pub fn partition_count(&self) -> i32 {
        self.partition_count
    }

    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }

    /// The same topic with more partitions; existing partitions are shared, not reopened.
    pub fn with_partitions(
        &self,
        home: Home<'_>,
        count: i32,
        defaults: &LogDefaults,
    ) -> Result<Self, TopicError> {
        let log_config = self.configs.resolve(defaults)?;
        let mut partitions = self.partitions.clone();
        for index in self.partition_count..count {
            partitions.push(Arc::new(Partition::open(
                home.data_dir,
                &self.name,
                self.id,
                index,
                log_config.clone(),
                None,
                home.tier.clone(),
            )?));
        }
        Ok(Self {
            name: self.name.clone(),
            id: self.id,
            configs: self.configs.clone(),
            partition_count: count,
            partitions,
        })
    }

    /// The same topic holding exactly the partitions `hosted` names (in a cluster, as the
    /// metadata places them): new ones are opened, ones placed elsewhere now are closed and
    /// their logs removed, the others are shared.
    pub fn with_hosted(
        &self,
        home: Home<'_>,
        log_config: &LogConfig,
        layout: Layout<'_>,
    ) -> io::Result<Self> {
        let Layout {
            count,
            hosted,
            remote,
        } = layout;
        let mut partitions = Vec::new();
        for p in &self.partitions {
            if p.index < count && hosted(p.index) {
                partitions.push(p.clone());
            } else {
                tracing::info!(topic = %self.name, partition = p.index, "partition placed elsewhere; removing its local log");
                p.delete()?;
            }
        }
        for index in (0..count).filter(|i| hosted(*i)) {
            if self.partition(index).is_none() {
                partitions.push(Arc::new(Partition::open(
                    home.data_dir,
                    &self.name,
                    self.id,
                    index,
                    log_config.clone(),
                    remote(index),
                    home.tier.clone(),
                )?));
            }
        }
        partitions.sort_by_key(|p| p.index);
        Ok(Self {
            name: self.name.clone(),
            id: self.id,
            configs: self.configs.clone(),
            partition_count: count,
            partitions,
        })
    }

    /// The same topic with new configs, applied to every open log.
    pub fn with_configs(&self, configs: TopicConfigs, log_config: LogConfig) -> Self {
        for p in &self.partitions {
            p.set_config(log_config.clone());
        }
        Self {
            name: self.name.clone(),
            id: self.id,
            configs,
            partition_count: self.partition_count,
            partitions: self.partitions.clone(),
        }
    }

    pub fn delete_logs(&self) -> io::Result<()> {
        for p in &self.partitions {
            p.delete()?;
        }
        Ok(())
    }
}

/// Opens every topic the metadata state names. Directories of deleted topics whose removal a
/// crash interrupted are finished off first.
pub fn open_topics(
    metadata: &MetadataStore,
    home: Home<'_>,
    config: &Config,
    hosted: &dyn Fn(&TopicState, i32) -> bool,
) -> io::Result<HashMap<String, Arc<Topic>>> {
    for entry in std::fs::read_dir(home.data_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with("-delete") {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    let topics: Vec<TopicState> = metadata.read(|s| s.topics.values().cloned().collect());
    let mut out = HashMap::new();
    for t in topics {
        let configs = TopicConfigs(t.configs.clone());
        let log_config = configs
            .resolve(&config.log)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let id = t.id;
        let remote = |p: i32| metadata.read(|s| s.remote_range(id, p));
        let topic = Topic::create(
            home,
            &t.name,
            t.id,
            configs,
            log_config,
            Layout {
                count: t.partitions,
                hosted: &|p| hosted(&t, p),
                remote: &remote,
            },
        )?;
        out.insert(t.name.clone(), Arc::new(topic));
    }
    Ok(out)
}

/// Moves aside any partition directories left under `name` by an earlier topic whose deletion
/// never completed, so a new topic starts empty.
pub fn clear_partition_dirs(data_dir: &Path, name: &str, partitions: i32) -> io::Result<()> {
    for index in 0..partitions.min(MAX_PARTITIONS) {
        let dir = data_dir.join(super::partition::dir_name(name, index));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a b", "ä", "x/y"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"a".repeat(250)).is_err());
        assert!(validate_name(&"a".repeat(249)).is_ok());
        assert!(collides("a.b", "a_b"));
        assert!(!collides("a.b", "a.b"));
    }
}
