//! The cache key: which chunk of which remote segment.

use std::fmt;
use std::io::{Read, Write};

/// Identifies one fixed-size chunk of one immutable remote object.
///
/// `segment_id` is the 16 bytes of the segment's UUID; the cache does not interpret it.
/// `chunk_index` counts chunks of `chunk_bytes` from the start of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    pub segment_id: [u8; 16],
    pub chunk_index: u64,
}

impl ChunkKey {
    pub const fn new(segment_id: [u8; 16], chunk_index: u64) -> Self {
        Self {
            segment_id,
            chunk_index,
        }
    }

    /// Size of the key in the disk tier's encoding.
    const ENCODED_LEN: usize = 16 + 8;
}

impl fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.segment_id {
            write!(f, "{b:02x}")?;
        }
        write!(f, "#{}", self.chunk_index)
    }
}

// The disk tier stores keys next to values so it can recover its index after a restart. The
// encoding is fixed-width little-endian and must stay stable for caches to survive upgrades.
impl foyer::Code for ChunkKey {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer
            .write_all(&self.segment_id)
            .and_then(|()| writer.write_all(&self.chunk_index.to_le_bytes()))
            .map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut segment_id = [0u8; 16];
        let mut index = [0u8; 8];
        reader
            .read_exact(&mut segment_id)
            .and_then(|()| reader.read_exact(&mut index))
            .map_err(foyer::Error::io_error)?;
        Ok(Self::new(segment_id, u64::from_le_bytes(index)))
    }

    fn estimated_size(&self) -> usize {
        Self::ENCODED_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foyer::Code;

    #[test]
    fn encoding_round_trips() {
        let key = ChunkKey::new([7; 16], u64::MAX - 3);
        let mut buf = Vec::new();
        key.encode(&mut buf).unwrap();
        assert_eq!(buf.len(), key.estimated_size());
        assert_eq!(ChunkKey::decode(&mut buf.as_slice()).unwrap(), key);
    }

    #[test]
    fn display_is_hex_then_index() {
        let mut id = [0u8; 16];
        id[15] = 0xab;
        assert_eq!(
            ChunkKey::new(id, 42).to_string(),
            "000000000000000000000000000000ab#42"
        );
    }
}
