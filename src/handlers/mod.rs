//! One module per family of Kafka APIs. A handler takes the decoded request and returns the
//! decoded response; it reports every per-topic and per-partition failure with the Kafka error
//! code a client expects and never fails the whole request for one bad partition.

pub mod acls;
pub mod authz;
pub mod cluster;
pub mod configs;
pub mod dispatch;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod quotas;
pub mod reassign;
pub mod sasl;
pub mod scram;
pub mod session;
pub mod topics;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

use crate::config::topic::TopicConfigError;
use crate::replica::{EpochError, TopicError};

pub(crate) fn code(e: ResponseError) -> i16 {
    e.code()
}

pub(crate) fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// The Kafka error code for a topic administration failure.
pub(crate) fn topic_error_code(e: &TopicError) -> i16 {
    code(match e {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        TopicError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::Config(TopicConfigError::Unknown(_) | TopicConfigError::Invalid { .. }) => {
            ResponseError::InvalidConfig
        }
        TopicError::Config(TopicConfigError::Unsupported { .. }) => ResponseError::InvalidConfig,
        TopicError::Io(_) => ResponseError::KafkaStorageError,
    })
}

/// The Kafka error code for a request whose leader epoch does not match the partition's.
pub(crate) fn epoch_error_code(e: EpochError) -> i16 {
    code(match e {
        EpochError::Fenced => ResponseError::FencedLeaderEpoch,
        EpochError::Unknown => ResponseError::UnknownLeaderEpoch,
    })
}
