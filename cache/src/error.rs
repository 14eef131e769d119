//! Errors of the chunk cache.

use std::path::PathBuf;

use crate::ChunkKey;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error("invalid cache config: {0}")]
    InvalidConfig(String),

    #[error("cannot prepare cache directory {dir}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open cache in {dir}")]
    Open {
        dir: PathBuf,
        #[source]
        source: foyer::Error,
    },

    #[error("chunk {key} is {len} bytes, more than chunk_bytes ({max})")]
    ChunkTooLarge {
        key: ChunkKey,
        len: usize,
        max: usize,
    },

    /// The caller's fetch failed. Every reader that waited on the same fetch gets this error;
    /// [`CacheError::fetch_error`] recovers the caller's own error value.
    #[error("fetching chunk {key} failed")]
    Fetch {
        key: ChunkKey,
        #[source]
        source: foyer::Error,
    },

    #[error("reading chunk {key} from the cache failed")]
    Read {
        key: ChunkKey,
        #[source]
        source: foyer::Error,
    },

    #[error("closing the cache failed")]
    Close(#[source] foyer::Error),
}

impl CacheError {
    /// The error the fetch future returned, if this is a fetch failure with an error of type `E`.
    pub fn fetch_error<E>(&self) -> Option<&E>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match self {
            CacheError::Fetch { source, .. } => match source.downcast_ref::<FetchFailure<E>>() {
                Some(FetchFailure::Source(e)) => Some(e),
                _ => None,
            },
            _ => None,
        }
    }
}

/// What the wrapped fetch future fails with inside foyer; kept private so callers only see
/// [`CacheError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchFailure<E> {
    #[error(transparent)]
    Source(E),
    #[error("fetched chunk is {len} bytes, more than chunk_bytes ({max})")]
    TooLarge { len: usize, max: usize },
}
