//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, and a read-only view of
//! the broker's own settings. Broker settings come from `chronik.toml` and cannot be changed
//! at run time; altering them is refused with a message that says so.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_request, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::{code, msg, topic_error_code};
use crate::broker::Broker;
use crate::config::topic::{self, ConfigKind, ConfigSource, TopicConfigError, TopicConfigs};
use crate::protocol::RequestContext;
use crate::replica::TopicError;
use crate::replica::throttle;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const STATIC_BROKER_CONFIG: i8 = 4;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;

/// Kafka's broker-level name for the default of a topic config, for synonyms.
fn broker_synonym(name: &str) -> Option<&'static str> {
    Some(match name {
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "retention.ms" => "log.retention.ms",
        "retention.bytes" => "log.retention.bytes",
        "index.interval.bytes" => "log.index.interval.bytes",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.type" => "log.message.timestamp.type",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "min.insync.replicas" => "min.insync.replicas",
        _ => return None,
    })
}

fn broker_configs(broker: &Broker) -> Vec<(&'static str, String, ConfigKind)> {
    let c = &broker.config;
    let l = &c.log;
    let (host, port) = &broker.advertised;
    vec![
        ("node.id", c.node_id.to_string(), ConfigKind::Int),
        (
            "listeners",
            format!("PLAINTEXT://{}", c.kafka.listen),
            ConfigKind::List,
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://{host}:{port}"),
            ConfigKind::List,
        ),
        (
            "log.dirs",
            c.data_dir.display().to_string(),
            ConfigKind::List,
        ),
        (
            "num.partitions",
            l.num_partitions.to_string(),
            ConfigKind::Int,
        ),
        ("default.replication.factor", "1".into(), ConfigKind::Int),
        (
            "auto.create.topics.enable",
            l.auto_create_topics.to_string(),
            ConfigKind::Boolean,
        ),
        (
            "log.segment.bytes",
            l.segment_bytes.to_string(),
            ConfigKind::Int,
        ),
        ("log.roll.ms", l.segment_ms.to_string(), ConfigKind::Long),
        (
            "log.retention.ms",
            l.retention_ms.to_string(),
            ConfigKind::Long,
        ),
        (
            "log.retention.bytes",
            l.retention_bytes.to_string(),
            ConfigKind::Long,
        ),
        (
            "log.index.interval.bytes",
            l.index_interval_bytes.to_string(),
            ConfigKind::Int,
        ),
        (
            "message.max.bytes",
            l.max_message_bytes.to_string(),
            ConfigKind::Int,
        ),
        (
            "log.message.timestamp.type",
            l.message_timestamp_type.clone(),
            ConfigKind::String,
        ),
        (
            "log.flush.interval.messages",
            l.flush_interval_messages.to_string(),
            ConfigKind::Long,
        ),
        (
            "log.flush.interval.ms",
            l.flush_interval_ms.to_string(),
            ConfigKind::Long,
        ),
        (
            "min.insync.replicas",
            l.min_insync_replicas.to_string(),
            ConfigKind::Int,
        ),
        (
            "log.retention.check.interval.ms",
            l.retention_check_interval_ms.to_string(),
            ConfigKind::Long,
        ),
        (
            "socket.request.max.bytes",
            c.kafka.request_max_bytes.to_string(),
            ConfigKind::Int,
        ),
        (
            "connections.max.idle.ms",
            c.kafka.idle_timeout_ms.to_string(),
            ConfigKind::Long,
        ),
        (
            "max.connections",
            c.kafka.max_connections.to_string(),
            ConfigKind::Int,
        ),
    ]
}

pub async fn describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let wanted: Option<HashSet<String>> = res
            .configuration_keys
            .as_ref()
            .map(|keys| keys.iter().map(|k| k.to_string()).collect());
        let keep = |name: &str| wanted.as_ref().is_none_or(|w| w.contains(name));
        let r = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        match res.resource_type {
            TOPIC => {
                let Some(t) = broker.replicas.topic(res.resource_name.as_str()) else {
                    results.push(
                        r.with_error_code(code(ResponseError::UnknownTopicOrPartition))
                            .with_error_message(msg(format!(
                                "unknown topic '{}'",
                                res.resource_name.as_str()
                            ))),
                    );
                    continue;
                };
                let defaults = TopicConfigs::default().describe(&broker.config.log);
                let configs = t
                    .configs
                    .describe(&broker.config.log)
                    .into_iter()
                    .filter(|d| keep(d.name))
                    .map(|d| {
                        let mut synonyms = Vec::new();
                        if req.include_synonyms {
                            if d.source == ConfigSource::DynamicTopic {
                                synonyms.push(
                                    DescribeConfigsSynonym::default()
                                        .with_name(StrBytes::from_static_str(d.name))
                                        .with_value(Some(StrBytes::from_string(d.value.clone())))
                                        .with_source(ConfigSource::DynamicTopic.code()),
                                );
                            }
                            if let Some(def) = defaults.iter().find(|x| x.name == d.name) {
                                let (name, source) = match broker_synonym(d.name) {
                                    Some(n) => (n, STATIC_BROKER_CONFIG),
                                    None => (d.name, ConfigSource::Default.code()),
                                };
                                synonyms.push(
                                    DescribeConfigsSynonym::default()
                                        .with_name(StrBytes::from_static_str(name))
                                        .with_value(Some(StrBytes::from_string(def.value.clone())))
                                        .with_source(source),
                                );
                            }
                        }
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_static_str(d.name))
                            .with_value(Some(StrBytes::from_string(d.value)))
                            .with_read_only(false)
                            .with_config_source(d.source.code())
                            .with_synonyms(synonyms)
                            .with_config_type(d.kind.code())
                            .with_documentation(if req.include_documentation && ctx.version >= 3 {
                                msg(d.doc)
                            } else {
                                None
                            })
                    })
                    .collect();
                results.push(r.with_configs(configs));
            }
            BROKER => {
                let name = res.resource_name.as_str();
                if !name.is_empty() && name != broker.node_id.to_string() {
                    results.push(
                        r.with_error_code(code(ResponseError::InvalidRequest))
                            .with_error_message(msg(format!(
                                "this is broker {}, not {name}",
                                broker.node_id
                            ))),
                    );
                    continue;
                }
                let mut configs: Vec<DescribeConfigsResourceResult> = broker_configs(broker)
                    .into_iter()
                    .filter(|(n, _, _)| keep(n))
                    .map(|(n, v, kind)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_static_str(n))
                            .with_value(Some(StrBytes::from_string(v)))
                            .with_read_only(true)
                            .with_config_source(STATIC_BROKER_CONFIG)
                            .with_config_type(kind.code())
                    })
                    .collect();
                // The dynamic ones that are set, this broker's own or the default of all.
                let me = broker.node_id;
                let dynamic: Vec<(&str, String, i8)> = broker.metadata.read(|s| {
                    DYNAMIC_BROKER_CONFIGS
                        .iter()
                        .filter_map(|k| {
                            let own = s.broker_configs.get(&me).and_then(|c| c.get(*k));
                            let all = s.broker_configs.get(&-1).and_then(|c| c.get(*k));
                            match (own, all) {
                                (Some(v), _) => Some((*k, v.clone(), DYNAMIC_BROKER_CONFIG)),
                                (None, Some(v)) => {
                                    Some((*k, v.clone(), DYNAMIC_DEFAULT_BROKER_CONFIG))
                                }
                                (None, None) => None,
                            }
                        })
                        .collect()
                });
                configs.extend(dynamic.into_iter().filter(|(k, _, _)| keep(k)).map(
                    |(k, v, source)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v)))
                            .with_read_only(false)
                            .with_config_source(source)
                            .with_config_type(ConfigKind::Long.code())
                    },
                ));
                results.push(r.with_configs(configs));
            }
            other => results.push(
                r.with_error_code(code(ResponseError::InvalidRequest))
                    .with_error_message(msg(format!("resource type {other} has no configs here"))),
            ),
        }
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// Applies a validated new config set to a topic, mapping failures to (code, message).
async fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    configs: Result<TopicConfigs, TopicConfigError>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    match resource_type {
        TOPIC => {}
        BROKER => {
            return (
                code(ResponseError::InvalidRequest),
                msg("broker configs are static: set them in chronik.toml and restart"),
            );
        }
        other => {
            return (
                code(ResponseError::InvalidRequest),
                msg(format!("resource type {other} has no alterable configs")),
            );
        }
    }
    let result = match configs {
        Ok(c) => {
            broker
                .replicas
                .set_topic_configs(name, c, validate_only)
                .await
        }
        Err(e) => Err(TopicError::Config(e)),
    };
    match result {
        Ok(()) => {
            if !validate_only {
                tracing::info!(topic = %name, "altered topic configs");
            }
            (0, None)
        }
        Err(e) => (topic_error_code(&e), msg(e.to_string())),
    }
}

pub async fn alter(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let name = res.resource_name.to_string();
        // The legacy API replaces the whole set of explicit configs.
        let configs = TopicConfigs::from_pairs(res.configs.iter().map(|c| {
            (
                c.name.as_str(),
                Some(c.value.as_ref().map_or("", |v| v.as_str())),
            )
        }));
        let null_value = res.configs.iter().find(|c| c.value.is_none());
        let (error_code, error_message) = if let Some(c) = null_value {
            (
                code(ResponseError::InvalidRequest),
                msg(format!("null value for config {}", c.name.as_str())),
            )
        } else {
            apply(broker, res.resource_type, &name, configs, req.validate_only).await
        };
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The broker configs that can change while brokers run (the others come from `chronik.toml`).
const DYNAMIC_BROKER_CONFIGS: [&str; 2] = [throttle::LEADER_RATE, throttle::FOLLOWER_RATE];

/// IncrementalAlterConfigs on broker `name` (empty: the default of every broker): setting and
/// deleting the dynamic ones. Deleting a config that is not set is the no-op it is in Kafka
/// (`kafka-reassign-partitions --verify` deletes every throttle config it knows of).
async fn alter_broker(
    broker: &Broker,
    name: &str,
    ops: &[incremental_alter_configs_request::AlterableConfig],
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    let invalid = |m: String| (code(ResponseError::InvalidRequest), msg(m));
    let id = if name.is_empty() {
        -1
    } else {
        match name.parse::<i32>() {
            Ok(id) if id >= 0 => id,
            _ => return invalid(format!("'{name}' is not a broker id")),
        }
    };
    let mut next = broker
        .metadata
        .read(|s| s.broker_configs.get(&id).cloned().unwrap_or_default());
    let before = next.clone();
    for c in ops {
        let key = c.name.as_str();
        match c.config_operation {
            OP_DELETE => {
                next.remove(key);
            }
            OP_SET if DYNAMIC_BROKER_CONFIGS.contains(&key) => {
                match c.value.as_ref().map(|v| v.as_str().parse::<u64>()) {
                    Some(Ok(v)) => {
                        next.insert(key.to_string(), v.to_string());
                    }
                    _ => {
                        return (
                            code(ResponseError::InvalidConfig),
                            msg(format!("{key} takes a number of bytes per second")),
                        );
                    }
                }
            }
            OP_SET => {
                return invalid(format!(
                    "broker config {key} is static: set it in chronik.toml and restart (dynamic: {})",
                    DYNAMIC_BROKER_CONFIGS.join(", ")
                ));
            }
            _ => return invalid(format!("config {key}: append and subtract do not apply")),
        }
    }
    if validate_only || next == before {
        return (0, None);
    }
    match broker
        .metadata
        .append(vec![crate::metadata::MetadataRecord::BrokerConfigsSet {
            broker: id,
            configs: next,
        }])
        .await
    {
        Ok(_) => {
            tracing::info!(broker = id, "altered dynamic broker configs");
            (0, None)
        }
        Err(e) => (code(ResponseError::RequestTimedOut), msg(e.to_string())),
    }
}

pub async fn incremental_alter(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let name = res.resource_name.to_string();
        if res.resource_type == BROKER {
            let (error_code, error_message) =
                alter_broker(broker, &name, &res.configs, req.validate_only).await;
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name)
                    .with_error_code(error_code)
                    .with_error_message(error_message),
            );
            continue;
        }
        let current = broker
            .replicas
            .topic(&name)
            .map(|t| t.configs.clone())
            .unwrap_or_default();
        let mut seen = HashSet::new();
        let mut next: BTreeMap<String, String> = current.0.clone();
        let mut failure: Option<(i16, Option<StrBytes>)> = None;
        for c in &res.configs {
            let key = c.name.to_string();
            if !seen.insert(key.clone()) {
                failure = Some((
                    code(ResponseError::InvalidRequest),
                    msg(format!("config {key} appears more than once")),
                ));
                break;
            }
            let Some(def) = topic::find_def(&key) else {
                failure = Some((
                    code(ResponseError::InvalidConfig),
                    msg(TopicConfigError::Unknown(key).to_string()),
                ));
                break;
            };
            let value = c.value.as_ref().map(|v| v.to_string());
            match c.config_operation {
                OP_SET => match value {
                    Some(v) => {
                        next.insert(key, v);
                    }
                    None => {
                        failure = Some((
                            code(ResponseError::InvalidRequest),
                            msg(format!("null value for config {}", def.name)),
                        ));
                        break;
                    }
                },
                OP_DELETE => {
                    next.remove(&key);
                }
                OP_APPEND | OP_SUBTRACT => {
                    if def.kind != ConfigKind::List {
                        failure = Some((
                            code(ResponseError::InvalidConfig),
                            msg(format!(
                                "config {key} is not a list; append/subtract do not apply"
                            )),
                        ));
                        break;
                    }
                    let base = next.get(&key).cloned().unwrap_or_else(|| {
                        TopicConfigs::default()
                            .describe(&broker.config.log)
                            .into_iter()
                            .find(|d| d.name == def.name)
                            .map(|d| d.value)
                            .unwrap_or_default()
                    });
                    let mut items: Vec<String> = base
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    for v in value
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                    {
                        if c.config_operation == OP_APPEND {
                            if !items.iter().any(|i| i == v) {
                                items.push(v.to_string());
                            }
                        } else {
                            items.retain(|i| i != v);
                        }
                    }
                    next.insert(key, items.join(","));
                }
                other => {
                    failure = Some((
                        code(ResponseError::InvalidRequest),
                        msg(format!("unknown config operation {other}")),
                    ));
                    break;
                }
            }
        }
        let (error_code, error_message) = match failure {
            Some(f) => f,
            None => {
                let configs = TopicConfigs::from_pairs(
                    next.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))),
                );
                apply(broker, res.resource_type, &name, configs, req.validate_only).await
            }
        };
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
