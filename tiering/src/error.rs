//! Errors of the tiering layer.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TieringError {
    #[error("invalid remote storage url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("invalid store options: {0}")]
    InvalidOptions(String),

    #[error("cannot create remote storage directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot read local file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("local file {path} changed during upload: expected {expected} bytes, read {read}")]
    FileChanged {
        path: PathBuf,
        expected: u64,
        read: u64,
    },

    #[error("remote segment state cannot go from {from:?} to {to:?}")]
    InvalidStateTransition {
        from: crate::RemoteSegmentState,
        to: crate::RemoteSegmentState,
    },

    #[error("object store request failed")]
    ObjectStore(#[from] object_store::Error),

    #[error("{operation} gave up after {attempts} attempts")]
    RetriesExhausted {
        operation: String,
        attempts: u32,
        #[source]
        last: Box<TieringError>,
    },
}

impl TieringError {
    /// Whether trying the same operation again may succeed.
    ///
    /// Only object store errors that are not a definite answer count: object_store already
    /// maps 404/401/403/409/412 to their own variants and retries 5xx and connection errors
    /// itself, so what still arrives as `Generic` is a failure after its own retries or a
    /// local I/O error; both deserve a later attempt of the whole operation.
    pub fn is_transient(&self) -> bool {
        match self {
            TieringError::ObjectStore(e) => matches!(e, object_store::Error::Generic { .. }),
            _ => false,
        }
    }
}
