//! `chronik-tiering`: moving sealed log segments to object storage and describing them there.
//!
//! Owns: opening the remote store from a `tiering.url` ([`open_store`]), the remote key layout
//! ([`segment_object_key`]), the remote segment metadata and its state machine
//! ([`RemoteLogSegmentMetadata`], [`RemoteSegmentState`]), uploading files with multipart and
//! retries ([`upload_file`]), the retry policy itself ([`RetryPolicy`]), AWS credentials from the
//! standard chain ([`AwsChainCredentialProvider`]) and counting store traffic ([`metered()`]).
//!
//! Must never: touch sockets or the Kafka wire protocol, decide *when* a segment may be deleted
//! locally (the broker does that after the metadata WAL has the `CopySegmentFinished` record),
//! or invent a storage trait of its own — `Arc<dyn ObjectStore>` is the boundary, and extra
//! behaviour (metering, fault injection) is added by wrapping it.

mod credentials;
mod error;
mod faults;
mod layout;
mod metadata;
mod metered;
mod retry;
mod store;
mod upload;

pub use credentials::{AwsChainCredentialProvider, DEFAULT_REGION, resolve_region};
pub use error::TieringError;
pub use faults::{FaultInjector, FaultyStore};
pub use layout::{cache_chunk_key, segment_object_key};
pub use metadata::{RemoteLogSegmentMetadata, RemoteSegmentState, RemoteSplitMetadata};
pub use metered::{
    MeteredStore, OperationMetrics, OperationSnapshot, StoreMetrics, StoreMetricsSnapshot, metered,
};
pub use retry::{RetryPolicy, retry};
pub use store::{CredentialsSource, RemoteStorageUrl, StoreOptions, open_store};
pub use upload::{
    DEFAULT_PART_SIZE, MIN_PART_SIZE, UploadOptions, UploadedObject, upload_file, upload_file_with,
};

/// Re-exported so callers name the same `object_store` version this crate was built with.
pub use object_store;
