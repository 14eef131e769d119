//! Topic-level configuration: the keys Kafka defines, their types, validation and defaults.
//!
//! A topic stores only the keys that were set explicitly; everything else falls back to the
//! broker's `[log]` defaults. Validation follows Kafka's rules and messages; keys whose feature
//! this broker does not offer (compaction, broker-side recompression, tiered storage before it
//! exists) are refused rather than silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::LogDefaults;
use crate::log::{LogConfig, TimestampType};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicConfigError {
    #[error("unknown topic config name: {0}")]
    Unknown(String),
    #[error("invalid value {value} for configuration {name}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("{name}={value} is not supported by this broker: {reason}")]
    Unsupported {
        name: String,
        value: String,
        reason: String,
    },
}

/// How a value is parsed and what Kafka calls its type in DescribeConfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

impl ConfigKind {
    /// The DescribeConfigs `config_type` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigKind::Boolean => 1,
            ConfigKind::String => 2,
            ConfigKind::Int => 3,
            ConfigKind::Long => 5,
            ConfigKind::Double => 6,
            ConfigKind::List => 7,
        }
    }
}

pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// Smallest accepted number for Int/Long/Double.
    min: f64,
    default: fn(&LogDefaults) -> String,
    check: fn(&str) -> Result<(), (bool, String)>,
    pub doc: &'static str,
}

fn ok(_: &str) -> Result<(), (bool, String)> {
    Ok(())
}

fn cleanup_policy(v: &str) -> Result<(), (bool, String)> {
    let items: Vec<&str> = v.split(',').map(str::trim).collect();
    for item in &items {
        match *item {
            "delete" => {}
            "compact" => {
                return Err((true, "log compaction is not implemented yet".into()));
            }
            other => return Err((false, format!("{other} is not one of [compact, delete]"))),
        }
    }
    Ok(())
}

fn compression_type(v: &str) -> Result<(), (bool, String)> {
    match v {
        "producer" => Ok(()),
        "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Err((
            true,
            "batches are stored as the producer sent them; only compression.type=producer".into(),
        )),
        other => Err((
            false,
            format!("{other} is not one of [uncompressed, zstd, lz4, snappy, gzip, producer]"),
        )),
    }
}

fn search_fields(v: &str) -> Result<(), (bool, String)> {
    for path in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if path.starts_with('.') || path.ends_with('.') || path.contains("..") {
            return Err((false, format!("{path} is not a JSON path like order.id")));
        }
    }
    Ok(())
}

fn timestamp_type(v: &str) -> Result<(), (bool, String)> {
    match v {
        "CreateTime" | "LogAppendTime" => Ok(()),
        other => Err((
            false,
            format!("{other} is not one of [CreateTime, LogAppendTime]"),
        )),
    }
}

macro_rules! def {
    ($name:expr, $kind:ident, $min:expr, $default:expr, $check:expr, $doc:expr) => {
        ConfigDef {
            name: $name,
            kind: ConfigKind::$kind,
            min: $min as f64,
            default: $default,
            check: $check,
            doc: $doc,
        }
    };
}

/// Every topic config this broker knows, in Kafka's names.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        0,
        |_| "delete".into(),
        cleanup_policy,
        "Retention policy: delete old segments."
    ),
    def!(
        "compression.type",
        String,
        0,
        |_| "producer".into(),
        compression_type,
        "Batches keep the producer's codec."
    ),
    def!(
        "delete.retention.ms",
        Long,
        0,
        |_| "86400000".into(),
        ok,
        "Kept for compatibility; applies to compaction."
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        0,
        |_| "60000".into(),
        ok,
        "Kept for compatibility; files are deleted at once, open readers keep them alive."
    ),
    def!(
        "flush.messages",
        Long,
        1,
        |d| d.flush_interval_messages.to_string(),
        ok,
        "Fsync after this many messages."
    ),
    def!(
        "flush.ms",
        Long,
        0,
        |d| d.flush_interval_ms.to_string(),
        ok,
        "Fsync when unflushed data is this old."
    ),
    def!(
        "index.interval.bytes",
        Int,
        0,
        |d| d.index_interval_bytes.to_string(),
        ok,
        "Bytes between offset index entries."
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        1,
        |_| i64::MAX.to_string(),
        ok,
        "Kept for compatibility; applies to compaction."
    ),
    def!(
        "max.message.bytes",
        Int,
        0,
        |d| d.max_message_bytes.to_string(),
        ok,
        "Largest record batch accepted."
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        0,
        |d| d.message_timestamp_after_max_ms.to_string(),
        ok,
        "How far in the future a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        0,
        |d| d.message_timestamp_before_max_ms.to_string(),
        ok,
        "How far in the past a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.type",
        String,
        0,
        |d| d.message_timestamp_type.clone(),
        timestamp_type,
        "CreateTime or LogAppendTime."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        0,
        |_| "0.5".into(),
        ok,
        "Kept for compatibility; applies to compaction."
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        0,
        |_| "0".into(),
        ok,
        "Kept for compatibility; applies to compaction."
    ),
    def!(
        "min.insync.replicas",
        Int,
        1,
        |d| d.min_insync_replicas.to_string(),
        ok,
        "Replicas that must hold an acks=all write."
    ),
    def!(
        "preallocate",
        Boolean,
        0,
        |_| "false".into(),
        ok,
        "Kept for compatibility; segments are not preallocated."
    ),
    def!(
        "retention.bytes",
        Long,
        -1,
        |d| d.retention_bytes.to_string(),
        ok,
        "Partition size above which old segments are deleted."
    ),
    def!(
        "retention.ms",
        Long,
        -1,
        |d| d.retention_ms.to_string(),
        ok,
        "Age after which old segments are deleted."
    ),
    def!(
        "segment.bytes",
        Int,
        14,
        |d| d.segment_bytes.to_string(),
        ok,
        "Segment size at which the log rolls."
    ),
    def!(
        "segment.index.bytes",
        Int,
        4,
        |_| "10485760".into(),
        ok,
        "Kept for compatibility; indexes grow as needed."
    ),
    def!(
        "segment.jitter.ms",
        Long,
        0,
        |_| "0".into(),
        ok,
        "Kept for compatibility."
    ),
    def!(
        "segment.ms",
        Long,
        1,
        |d| d.segment_ms.to_string(),
        ok,
        "Segment age at which the log rolls."
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        0,
        |_| "false".into(),
        ok,
        "Kept for compatibility; one replica per partition."
    ),
    def!(
        "remote.storage.enable",
        Boolean,
        0,
        |d| d.remote_storage_enable.to_string(),
        ok,
        "Copy sealed segments to object storage (KIP-405)."
    ),
    def!(
        "search.enabled",
        Boolean,
        0,
        |d| d.search_enabled.to_string(),
        ok,
        "Index the topic's records for the search API."
    ),
    def!(
        "search.fields",
        List,
        0,
        |_| String::new(),
        search_fields,
        "JSON paths indexed in the json field; empty: the whole object."
    ),
    def!(
        "local.retention.ms",
        Long,
        -2,
        |d| d.local_retention_ms.to_string(),
        ok,
        "Local retention when tiering (-2: retention.ms)."
    ),
    def!(
        "local.retention.bytes",
        Long,
        -2,
        |d| d.local_retention_bytes.to_string(),
        ok,
        "Local retention when tiering (-2: retention.bytes)."
    ),
    def!(
        "leader.replication.throttled.replicas",
        List,
        0,
        |_| String::new(),
        ok,
        "Replicas (partition:broker, or *) whose copies their leader sends at most at its leader.replication.throttled.rate while they are out of sync."
    ),
    def!(
        "follower.replication.throttled.replicas",
        List,
        0,
        |_| String::new(),
        ok,
        "Replicas (partition:broker, or *) that fetch at most at their broker's follower.replication.throttled.rate while they are out of sync."
    ),
];

pub fn find_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one key/value pair against Kafka's rules.
pub fn validate(name: &str, value: &str) -> Result<(), TopicConfigError> {
    let def = find_def(name).ok_or_else(|| TopicConfigError::Unknown(name.to_string()))?;
    let invalid = |reason: String| TopicConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason,
    };
    let v = value.trim();
    match def.kind {
        ConfigKind::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(invalid("expected true or false".into()));
            }
        }
        ConfigKind::Int => {
            let n: i32 = v.parse().map_err(|_| invalid("expected an int".into()))?;
            if (n as f64) < def.min {
                return Err(invalid(format!("value must be at least {}", def.min)));
            }
        }
        ConfigKind::Long => {
            let n: i64 = v.parse().map_err(|_| invalid("expected a long".into()))?;
            if (n as f64) < def.min {
                return Err(invalid(format!("value must be at least {}", def.min)));
            }
        }
        ConfigKind::Double => {
            let n: f64 = v.parse().map_err(|_| invalid("expected a double".into()))?;
            if !(0.0..=1.0).contains(&n) {
                return Err(invalid("value must be between 0 and 1".into()));
            }
        }
        ConfigKind::String | ConfigKind::List => {}
    }
    (def.check)(v).map_err(|(unsupported, reason)| {
        if unsupported {
            TopicConfigError::Unsupported {
                name: name.to_string(),
                value: value.to_string(),
                reason,
            }
        } else {
            invalid(reason)
        }
    })
}

/// Where a described value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic,
    Default,
}

impl ConfigSource {
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::Default => 5,
        }
    }
}

pub struct DescribedConfig {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub kind: ConfigKind,
    pub doc: &'static str,
}

/// The explicitly set configs of one topic.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigs(pub BTreeMap<String, String>);

impl TopicConfigs {
    /// Builds a validated set from client-supplied pairs.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, TopicConfigError> {
        let mut out = BTreeMap::new();
        for (k, v) in pairs {
            match v {
                Some(v) => {
                    validate(k, v)?;
                    out.insert(k.to_string(), v.trim().to_string());
                }
                None => {
                    find_def(k).ok_or_else(|| TopicConfigError::Unknown(k.to_string()))?;
                }
            }
        }
        Ok(Self(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn value(&self, name: &str, defaults: &LogDefaults) -> String {
        match self.0.get(name) {
            Some(v) => v.clone(),
            None => find_def(name).map_or_else(String::new, |d| (d.default)(defaults)),
        }
    }

    fn number(&self, name: &str, defaults: &LogDefaults) -> Result<i64, TopicConfigError> {
        let v = self.value(name, defaults);
        v.parse().map_err(|_| TopicConfigError::Invalid {
            name: name.to_string(),
            value: v.clone(),
            reason: "expected a number".into(),
        })
    }

    /// The effective log settings for this topic.
    pub fn resolve(&self, defaults: &LogDefaults) -> Result<LogConfig, TopicConfigError> {
        // Broker defaults go through the same rules as topic values.
        for def in TOPIC_CONFIGS {
            validate(def.name, &self.value(def.name, defaults))?;
        }
        let ts_type = match self.value("message.timestamp.type", defaults).as_str() {
            "LogAppendTime" => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        Ok(LogConfig {
            segment_bytes: self.number("segment.bytes", defaults)? as u32,
            segment_ms: self.number("segment.ms", defaults)?,
            retention_ms: self.number("retention.ms", defaults)?,
            retention_bytes: self.number("retention.bytes", defaults)?,
            index_interval_bytes: self.number("index.interval.bytes", defaults)? as u32,
            max_message_bytes: self.number("max.message.bytes", defaults)? as u32,
            timestamp_type: ts_type,
            timestamp_before_max_ms: self.number("message.timestamp.before.max.ms", defaults)?,
            timestamp_after_max_ms: self.number("message.timestamp.after.max.ms", defaults)?,
            flush_messages: self.number("flush.messages", defaults)?,
            flush_ms: self.number("flush.ms", defaults)?,
            remote_storage: self
                .value("remote.storage.enable", defaults)
                .eq_ignore_ascii_case("true"),
            local_retention_ms: self.number("local.retention.ms", defaults)?,
            local_retention_bytes: self.number("local.retention.bytes", defaults)?,
            search_enabled: self
                .value("search.enabled", defaults)
                .eq_ignore_ascii_case("true"),
            search_fields: self
                .value("search.fields", defaults)
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    pub fn min_insync_replicas(&self, defaults: &LogDefaults) -> i64 {
        self.number("min.insync.replicas", defaults).unwrap_or(1)
    }

    /// Every known key with its effective value and where it comes from.
    pub fn describe(&self, defaults: &LogDefaults) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|d| DescribedConfig {
                name: d.name,
                value: self.value(d.name, defaults),
                source: if self.0.contains_key(d.name) {
                    ConfigSource::DynamicTopic
                } else {
                    ConfigSource::Default
                },
                kind: d.kind,
                doc: d.doc,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_kafka() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(matches!(
            validate("retention.ms", "-5"),
            Err(TopicConfigError::Invalid { .. })
        ));
        assert!(matches!(
            validate("segment.bytes", "abc"),
            Err(TopicConfigError::Invalid { .. })
        ));
        assert!(matches!(
            validate("no.such.key", "1"),
            Err(TopicConfigError::Unknown(_))
        ));
        assert!(matches!(
            validate("cleanup.policy", "compact"),
            Err(TopicConfigError::Unsupported { .. })
        ));
        assert!(matches!(
            validate("cleanup.policy", "shred"),
            Err(TopicConfigError::Invalid { .. })
        ));
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("preallocate", "yes").is_err());
    }

    #[test]
    fn resolves_overrides_over_broker_defaults() {
        let defaults = LogDefaults::default();
        let cfg = TopicConfigs::from_pairs([
            ("segment.bytes", Some("4096")),
            ("message.timestamp.type", Some("LogAppendTime")),
        ])
        .expect("valid");
        let log = cfg.resolve(&defaults).expect("resolve");
        assert_eq!(log.segment_bytes, 4096);
        assert_eq!(log.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(log.retention_ms, defaults.retention_ms);
        let described = cfg.describe(&defaults);
        let seg = described
            .iter()
            .find(|d| d.name == "segment.bytes")
            .expect("listed");
        assert_eq!(seg.source, ConfigSource::DynamicTopic);
        assert_eq!(described.len(), TOPIC_CONFIGS.len());
    }
}
