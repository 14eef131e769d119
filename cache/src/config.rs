//! Configuration of the chunk cache (`[cache]` in `chronik.toml`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::CacheError;

pub const DEFAULT_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// Disk pages foyer aligns blocks to.
const PAGE: u64 = 4096;

/// How many chunks one disk block holds. The block is foyer's unit of disk eviction and must
/// hold at least one whole entry; four chunks per block keep eviction fine-grained.
const CHUNKS_PER_BLOCK: u64 = 4;

/// Room a chunk takes in a block beyond its own bytes: foyer rounds every entry (header, key,
/// value) up to whole pages and writes a page of index in front of every batch it flushes,
/// which can be a single chunk. A block of exactly four chunks held only three.
const ENTRY_OVERHEAD: u64 = 2 * PAGE;

/// The disk tier needs a few blocks to rotate through: one being filled, one being reclaimed,
/// and some holding data.
const MIN_DISK_BLOCKS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of chunk data the memory tier may hold. Per-entry bookkeeping comes on top.
    pub memory_bytes: u64,
    /// Bytes of the local disk the disk tier may use (its files are preallocated lazily).
    pub disk_bytes: u64,
    /// Directory of the disk tier. Owned by the cache: do not put anything else in it.
    pub dir: PathBuf,
    /// Size of one chunk; the last chunk of an object may be shorter, none may be longer.
    pub chunk_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * 1024 * 1024,
            disk_bytes: 4 * 1024 * 1024 * 1024,
            dir: PathBuf::from("./data/cache"),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

/// The numbers foyer is built with, derived from a validated [`CacheConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub memory_bytes: usize,
    pub disk_bytes: usize,
    pub chunk_bytes: usize,
    pub block_bytes: usize,
    /// The disk tier's write buffer, taken from the memory budget.
    pub buffer_bytes: usize,
    pub memory_shards: usize,
}

impl CacheConfig {
    pub(crate) fn layout(&self) -> Result<Layout, CacheError> {
        let invalid = |msg: String| Err(CacheError::InvalidConfig(msg));
        if self.chunk_bytes == 0 {
            return invalid("chunk_bytes must be greater than 0".into());
        }
        let block_bytes =
            ((self.chunk_bytes + ENTRY_OVERHEAD) * CHUNKS_PER_BLOCK).div_ceil(PAGE) * PAGE;
        // The disk tier's write buffer comes out of the memory budget: foyer keeps two of them
        // (one filling while the other is written), each an eighth of the budget, at least two
        // chunks and at most four blocks. A buffer that is full when a chunk arrives drops that
        // chunk's disk write (it is fetched again if it is ever needed).
        let entry_bytes = (self.chunk_bytes + ENTRY_OVERHEAD).div_ceil(PAGE) * PAGE;
        let buffer_bytes =
            (self.memory_bytes / 8 / PAGE * PAGE).clamp(2 * entry_bytes, 4 * block_bytes);
        // Chunks being fetched (a reader's and the one read ahead) are memory too.
        let in_flight = 2 * self.chunk_bytes;
        if self.memory_bytes < 2 * buffer_bytes + in_flight + self.chunk_bytes {
            return invalid(format!(
                "memory_bytes ({}) must hold the two disk write buffers ({buffer_bytes} each), two \
                 chunks being fetched and at least one cached chunk of chunk_bytes ({})",
                self.memory_bytes, self.chunk_bytes
            ));
        }
        let min_disk = block_bytes * MIN_DISK_BLOCKS;
        if self.disk_bytes < min_disk {
            return invalid(format!(
                "disk_bytes ({}) must be at least {min_disk} ({MIN_DISK_BLOCKS} blocks of \
                 {CHUNKS_PER_BLOCK} chunks) for chunk_bytes {}",
                self.disk_bytes, self.chunk_bytes
            ));
        }
        if self.dir.as_os_str().is_empty() {
            return invalid("dir must not be empty".into());
        }
        let to_usize = |name: &str, v: u64| {
            usize::try_from(v)
                .map_err(|_| CacheError::InvalidConfig(format!("{name} ({v}) is too large")))
        };
        let memory_bytes = to_usize(
            "memory_bytes",
            self.memory_bytes - 2 * buffer_bytes - in_flight,
        )?;
        let chunk_bytes = to_usize("chunk_bytes", self.chunk_bytes)?;
        // foyer splits the memory budget evenly over shards and lets an entry larger than its
        // shard overshoot it. Keeping every shard at least a few chunks large keeps the budget
        // a real bound.
        let memory_shards = (memory_bytes / (chunk_bytes * 4)).clamp(1, 8);
        Ok(Layout {
            memory_bytes,
            disk_bytes: to_usize("disk_bytes", self.disk_bytes)?,
            chunk_bytes,
            block_bytes: to_usize("chunk_bytes", block_bytes)?,
            buffer_bytes: to_usize("memory_bytes", buffer_bytes)?,
            memory_shards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let layout = CacheConfig::default().layout().unwrap();
        assert_eq!(layout.chunk_bytes, 4 * 1024 * 1024);
        assert_eq!(layout.block_bytes, 16 * 1024 * 1024 + 8 * 4096);
        assert_eq!(layout.memory_shards, 8);
    }

    #[test]
    fn serde_fills_defaults_and_rejects_unknown_keys() {
        let c: CacheConfig = serde_json::from_str(r#"{"memory_bytes": 67108864}"#).unwrap();
        assert_eq!(c.memory_bytes, 64 * 1024 * 1024);
        assert_eq!(c.chunk_bytes, DEFAULT_CHUNK_BYTES);

        let err = serde_json::from_str::<CacheConfig>(r#"{"memory_byte": 1}"#).unwrap_err();
        assert!(err.to_string().contains("memory_byte"), "{err}");
    }

    #[test]
    fn too_small_budgets_are_rejected() {
        let small_memory = CacheConfig {
            memory_bytes: 1024,
            ..CacheConfig::default()
        };
        assert!(matches!(
            small_memory.layout(),
            Err(CacheError::InvalidConfig(_))
        ));

        let small_disk = CacheConfig {
            disk_bytes: 32 * 1024 * 1024,
            ..CacheConfig::default()
        };
        let err = small_disk.layout().unwrap_err();
        assert!(err.to_string().contains("disk_bytes"), "{err}");

        let zero_chunk = CacheConfig {
            chunk_bytes: 0,
            ..CacheConfig::default()
        };
        assert!(zero_chunk.layout().is_err());
    }
}
