//! Idempotent-producer state of one partition: per producer id, its epoch and the sequence
//! ranges of its last five batches.
//!
//! It decides whether a batch is new, a retry of one already written (answered with the original
//! offset) or out of order. It is rebuilt at start-up from the latest snapshot file plus the batch
//! headers after it, so it survives restarts; it never reads record data.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut};

use super::batch::BatchHeader;

/// Kafka keeps the last five batches per producer to recognise retries.
const CACHED_BATCHES: usize = 5;
const SNAPSHOT_VERSION: u16 = 1;
/// Older snapshots kept besides the newest.
const KEPT_SNAPSHOTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMetadata {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
}

/// The verdict on one incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next batch in sequence: append it.
    Append,
    /// A retry of a batch already in the log at this base offset.
    Duplicate { base_offset: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: expected sequence {expected}, received {received}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, ProducerError> {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // A producer this partition has not seen must start its sequence at zero.
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(ProducerError::OutOfOrder {
                    producer_id: h.producer_id,
                    expected: 0,
                    received: h.base_sequence,
                })
            };
        };
        if h.producer_epoch < entry.epoch {
            return Err(ProducerError::StaleEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(ProducerError::OutOfOrder {
                    producer_id: h.producer_id,
                    expected: 0,
                    received: h.base_sequence,
                })
            };
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| next_sequence(b.last_seq));
        if h.base_sequence != expected {
            return Err(ProducerError::OutOfOrder {
                producer_id: h.producer_id,
                expected,
                received: h.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch as written; `h.base_offset` must be the offset it was given.
    pub fn update(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
            });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
        });
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Writes the state as of `offset` (exclusive) to `<offset:020>.snapshot` in `dir`,
    /// atomically, and removes all but the newest few older snapshots.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> io::Result<()> {
        let mut body = Vec::with_capacity(16 + self.producers.len() * 64);
        body.put_u16(SNAPSHOT_VERSION);
        body.put_u32(self.producers.len() as u32);
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            body.put_i64(id);
            body.put_i16(e.epoch);
            body.put_u8(e.batches.len() as u8);
            for b in &e.batches {
                body.put_i32(b.first_seq);
                body.put_i32(b.last_seq);
                body.put_i64(b.base_offset);
            }
        }
        let crc = crc32c::crc32c(&body);
        body.put_u32(crc);
        let path = snapshot_path(dir, offset);
        crate::util::write_atomically(&path, &body)?;
        let mut existing = list_snapshots(dir)?;
        existing.retain(|&o| o < offset);
        existing.sort_unstable();
        // A few older snapshots stay: the remote tier uploads each sealed segment's snapshot,
        // and a fast producer may roll several segments before the upload gets to them.
        if existing.len() > KEPT_SNAPSHOTS {
            for o in &existing[..existing.len() - KEPT_SNAPSHOTS] {
                let _ = fs::remove_file(snapshot_path(dir, *o));
            }
        }
        Ok(())
    }

    /// Loads the newest valid snapshot at or below `max_offset`, returning it with its offset.
    /// Snapshots above `max_offset` (from a log that was since truncated) are deleted.
    pub fn load_latest(dir: &Path, max_offset: i64) -> io::Result<Option<(Self, i64)>> {
        let mut offsets = list_snapshots(dir)?;
        offsets.sort_unstable();
        for &o in offsets.iter().rev() {
            if o > max_offset {
                let _ = fs::remove_file(snapshot_path(dir, o));
                continue;
            }
            let raw = fs::read(snapshot_path(dir, o))?;
            if let Some(state) = Self::decode(&raw) {
                return Ok(Some((state, o)));
            }
            tracing::warn!(snapshot = %snapshot_path(dir, o).display(), "ignoring corrupt producer snapshot");
        }
        Ok(None)
    }

    fn decode(raw: &[u8]) -> Option<Self> {
        if raw.len() < 10 {
            return None;
        }
        let (body, crc) = raw.split_at(raw.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return None;
        }
        let mut b = body;
        if b.get_u16() != SNAPSHOT_VERSION {
            return None;
        }
        let n = b.get_u32();
        let mut producers = HashMap::new();
        for _ in 0..n {
            if b.remaining() < 11 {
                return None;
            }
            let id = b.get_i64();
            let epoch = b.get_i16();
            let count = b.get_u8() as usize;
            if b.remaining() < count * 16 {
                return None;
            }
            let mut batches = VecDeque::with_capacity(count);
            for _ in 0..count {
                batches.push_back(BatchMetadata {
                    first_seq: b.get_i32(),
                    last_seq: b.get_i32(),
                    base_offset: b.get_i64(),
                });
            }
            producers.insert(id, ProducerEntry { epoch, batches });
        }
        Some(Self { producers })
    }
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

/// Deletes the snapshots taken above `offset` (they describe batches that were cut off).
pub fn remove_snapshots_above(dir: &Path, offset: i64) -> io::Result<()> {
    for o in list_snapshots(dir)? {
        if o > offset {
            match fs::remove_file(snapshot_path(dir, o)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".snapshot")
            && let Ok(o) = stem.parse::<i64>()
        {
            out.push(o);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::BatchHeader;
    use crate::log::batch::tests::make_idempotent_batch;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchHeader {
        let raw = make_idempotent_batch(base, count, 1, pid, epoch, seq);
        BatchHeader::parse(&raw).expect("parse")
    }

    #[test]
    fn accepts_in_order_and_recognises_retries() {
        let mut s = ProducerStateManager::default();
        let b0 = header(1, 0, 0, 3, 0);
        assert_eq!(s.check(&b0), Ok(SequenceCheck::Append));
        s.update(&b0);
        let b1 = header(1, 0, 3, 2, 3);
        assert_eq!(s.check(&b1), Ok(SequenceCheck::Append));
        s.update(&b1);
        assert_eq!(
            s.check(&header(1, 0, 0, 3, 99)),
            Ok(SequenceCheck::Duplicate { base_offset: 0 })
        );
        assert_eq!(
            s.check(&header(1, 0, 6, 1, 99)),
            Err(ProducerError::OutOfOrder {
                producer_id: 1,
                expected: 5,
                received: 6
            })
        );
        assert!(matches!(
            s.check(&header(2, 0, 4, 1, 99)),
            Err(ProducerError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStateManager::default();
        s.update(&header(1, 3, 0, 1, 0));
        assert!(matches!(
            s.check(&header(1, 2, 1, 1, 1)),
            Err(ProducerError::StaleEpoch { .. })
        ));
        assert_eq!(s.check(&header(1, 4, 0, 1, 1)), Ok(SequenceCheck::Append));
        assert!(s.check(&header(1, 4, 5, 1, 1)).is_err());
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = ProducerStateManager::default();
        for i in 0..7 {
            s.update(&header(9, 1, i * 2, 2, i as i64 * 2));
        }
        s.update(&header(10, 0, 0, 1, 50));
        s.write_snapshot(dir.path(), 51).expect("write");
        let (loaded, at) = ProducerStateManager::load_latest(dir.path(), 100)
            .expect("io")
            .expect("present");
        assert_eq!(at, 51);
        assert_eq!(loaded, s);
        // A snapshot beyond the log end is dropped.
        assert!(
            ProducerStateManager::load_latest(dir.path(), 40)
                .expect("io")
                .is_none()
        );
        s.write_snapshot(dir.path(), 60).expect("write");
        let path = snapshot_path(dir.path(), 60);
        let mut raw = fs::read(&path).expect("read");
        raw[5] ^= 1;
        fs::write(&path, raw).expect("write");
        s.write_snapshot(dir.path(), 55).expect("write");
        let (_, at) = ProducerStateManager::load_latest(dir.path(), 100)
            .expect("io")
            .expect("present");
        assert_eq!(at, 55);
    }
}
