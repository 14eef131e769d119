//! `chronik-cache`: a bounded memory + local-disk cache of immutable byte chunks.
//!
//! Owns: the foyer `HybridCache` that keeps chunks of remote objects close to the broker, its
//! on-disk directory, its byte budgets and its hit/miss/fetch counters. Concurrent misses on the
//! same chunk are coalesced so the remote store sees one fetch per chunk, however many readers
//! wait for it.
//!
//! Must never: know about Kafka (topics, partitions, offsets, records) or object stores. A chunk
//! is an opaque `(segment id, chunk index) -> bytes` pair; the caller says how to fetch a missing
//! chunk. It must also never be the *only* copy of anything: every chunk can be fetched again.
//! Nothing else in Chronik caches remote data on disk — this is the one disk cache.

mod chunk_cache;
mod config;
mod error;
mod key;

pub use chunk_cache::{CacheStats, ChunkCache};
pub use config::{CacheConfig, DEFAULT_CHUNK_BYTES};
pub use error::CacheError;
pub use key::ChunkKey;
