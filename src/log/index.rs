//! The sparse offset index (`.index`) and time index (`.timeindex`) of one log segment.
//!
//! Both use Kafka's file format: big-endian entries, an offset index entry is
//! `relative_offset: u32, position: u32` (8 bytes), a time index entry is
//! `timestamp: i64, relative_offset: u32` (12 bytes). The entries live in memory; the files
//! exist so a restart does not rescan sealed segments, and are written whole when a segment is
//! sealed or the log closed ([`OffsetIndex::persist`]): an append never writes an index file,
//! so it can neither fail on one nor hold it open (the active segment is rebuilt by scanning
//! after a crash anyway). Neither index is ever trusted blindly:
//! [`OffsetIndex::load`] and [`TimeIndex::load`] refuse a file that is torn, out of order or points
//! past the end of its segment, and the caller then rebuilds it from the log.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub const OFFSET_ENTRY_LEN: usize = 8;
pub const TIME_ENTRY_LEN: usize = 12;

/// Maps (relative) offsets to file positions of the batches that contain them.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    path: PathBuf,
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    /// Creates an empty index, replacing any file at `path`.
    pub fn create(path: &Path, base_offset: i64) -> io::Result<Self> {
        remove_if_exists(path)?;
        Ok(Self {
            base_offset,
            path: path.to_path_buf(),
            entries: Vec::new(),
        })
    }

    /// Loads an index file. `Ok(None)` means the file is missing or cannot be trusted.
    pub fn load(path: &Path, base_offset: i64, segment_len: u64) -> io::Result<Option<Self>> {
        let Some(raw) = read_if_exists(path)? else {
            return Ok(None);
        };
        if raw.len() % OFFSET_ENTRY_LEN != 0 {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(raw.len() / OFFSET_ENTRY_LEN);
        for chunk in raw.chunks_exact(OFFSET_ENTRY_LEN) {
            let rel = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if let Some(&(prev_rel, prev_pos)) = entries.last()
                && (rel <= prev_rel || pos <= prev_pos)
            {
                return Ok(None);
            }
            if pos as u64 >= segment_len {
                return Ok(None);
            }
            entries.push((rel, pos));
        }
        Ok(Some(Self {
            base_offset,
            path: path.to_path_buf(),
            entries,
        }))
    }

    /// Records that the batch ending at `last_offset` starts at `position`.
    pub fn append(&mut self, last_offset: i64, position: u32) {
        let rel = (last_offset - self.base_offset) as u32;
        if let Some(&(prev_rel, _)) = self.entries.last()
            && rel <= prev_rel
        {
            return;
        }
        self.entries.push((rel, position));
    }

    /// Writes the whole index to its file (see the module comment).
    pub fn persist(&self) -> io::Result<()> {
        let mut raw = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_LEN);
        for &(rel, pos) in &self.entries {
            raw.extend_from_slice(&rel.to_be_bytes());
            raw.extend_from_slice(&pos.to_be_bytes());
        }
        crate::util::replace_file(&self.path, &raw)
    }

    /// The position from which to scan for `offset`: the start of the last indexed batch that
    /// ends before `offset`, or 0.
    pub fn scan_start(&self, offset: i64) -> u32 {
        let rel = offset - self.base_offset;
        if rel <= 0 {
            return 0;
        }
        // Entries hold each indexed batch's *last* offset; a batch ending below `offset` can be
        // skipped together with everything before it.
        let idx = self.entries.partition_point(|&(r, _)| (r as i64) < rel);
        if idx == 0 {
            0
        } else {
            // The batch after entry idx-1 is the first one that may contain `offset`; its start
            // is unknown, so scan from the indexed batch itself (it is cheap to skip).
            self.entries[idx - 1].1
        }
    }

    /// The greatest indexed batch start at or below `position`, to skip whole batches when
    /// looking for where a read of bounded size must end.
    pub fn floor_position(&self, position: u32) -> Option<u32> {
        let idx = self.entries.partition_point(|&(_, p)| p <= position);
        if idx == 0 {
            None
        } else {
            Some(self.entries[idx - 1].1)
        }
    }

    /// Keeps only the first `len` entries (a failed append is undone this way).
    pub fn truncate_entries(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Maps timestamps to the first offset whose batch may hold a record at or after them.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    path: PathBuf,
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn create(path: &Path, base_offset: i64) -> io::Result<Self> {
        remove_if_exists(path)?;
        Ok(Self {
            base_offset,
            path: path.to_path_buf(),
            entries: Vec::new(),
        })
    }

    /// Loads a time index. `Ok(None)` means missing or untrustworthy; `next_offset` bounds the
    /// relative offsets it may name.
    pub fn load(path: &Path, base_offset: i64, next_offset: i64) -> io::Result<Option<Self>> {
        let Some(raw) = read_if_exists(path)? else {
            return Ok(None);
        };
        if raw.len() % TIME_ENTRY_LEN != 0 {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(raw.len() / TIME_ENTRY_LEN);
        for chunk in raw.chunks_exact(TIME_ENTRY_LEN) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if let Some(&(prev_ts, prev_rel)) = entries.last()
                && (ts <= prev_ts || rel < prev_rel)
            {
                return Ok(None);
            }
            if base_offset + rel as i64 >= next_offset {
                return Ok(None);
            }
            entries.push((ts, rel));
        }
        Ok(Some(Self {
            base_offset,
            path: path.to_path_buf(),
            entries,
        }))
    }

    /// Records that records up to `timestamp` have been seen by `offset`. Only growing
    /// timestamps are kept, as in Kafka.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if let Some(&(prev_ts, _)) = self.entries.last()
            && timestamp <= prev_ts
        {
            return;
        }
        let rel = (offset - self.base_offset) as u32;
        self.entries.push((timestamp, rel));
    }

    /// Writes the whole index to its file (see the module comment).
    pub fn persist(&self) -> io::Result<()> {
        let mut raw = Vec::with_capacity(self.entries.len() * TIME_ENTRY_LEN);
        for &(ts, rel) in &self.entries {
            raw.extend_from_slice(&ts.to_be_bytes());
            raw.extend_from_slice(&rel.to_be_bytes());
        }
        crate::util::replace_file(&self.path, &raw)
    }

    /// The offset from which to scan for the first record with a timestamp at or after
    /// `timestamp`: the entry before the first one that reaches it, or the segment start.
    pub fn scan_start(&self, timestamp: i64) -> i64 {
        let idx = self.entries.partition_point(|&(ts, _)| ts < timestamp);
        if idx == 0 {
            self.base_offset
        } else {
            self.base_offset + self.entries[idx - 1].1 as i64
        }
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(ts, rel)| (ts, self.base_offset + rel as i64))
    }

    /// Keeps only the first `len` entries.
    pub fn truncate_entries(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A new index replaces whatever file an earlier segment of the same base offset left.
fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match File::open(path) {
        Ok(mut f) => {
            let mut raw = Vec::new();
            f.read_to_end(&mut raw)?;
            Ok(Some(raw))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_round_trips_and_finds_scan_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::create(&path, 100).expect("create");
        idx.append(109, 0);
        idx.append(119, 4096);
        idx.append(129, 8192);
        idx.persist().expect("persist");
        assert_eq!(idx.scan_start(100), 0);
        assert_eq!(idx.scan_start(110), 0);
        assert_eq!(idx.scan_start(120), 4096);
        assert_eq!(idx.scan_start(200), 8192);
        assert_eq!(idx.floor_position(5000), Some(4096));
        assert_eq!(idx.floor_position(0), Some(0));
        drop(idx);
        let loaded = OffsetIndex::load(&path, 100, 10_000)
            .expect("io")
            .expect("trusted");
        assert_eq!(loaded.len(), 3);
        assert_eq!(loaded.scan_start(125), 4096);
    }

    #[test]
    fn offset_index_refuses_torn_or_lying_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.index");
        let mut idx = OffsetIndex::create(&path, 0).expect("create");
        idx.append(9, 0);
        idx.append(19, 4096);
        idx.persist().expect("persist");
        drop(idx);
        // Points past a segment that is now shorter.
        assert!(OffsetIndex::load(&path, 0, 100).expect("io").is_none());
        // Torn entry.
        let mut raw = std::fs::read(&path).expect("read");
        raw.pop();
        std::fs::write(&path, &raw).expect("write");
        assert!(OffsetIndex::load(&path, 0, 10_000).expect("io").is_none());
        // Missing.
        assert!(
            OffsetIndex::load(&dir.path().join("none.index"), 0, 1)
                .expect("io")
                .is_none()
        );
    }

    #[test]
    fn time_index_keeps_only_growing_timestamps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.timeindex");
        let mut idx = TimeIndex::create(&path, 50).expect("create");
        idx.maybe_append(1000, 59);
        idx.maybe_append(900, 69);
        idx.maybe_append(2000, 79);
        idx.persist().expect("persist");
        assert_eq!(idx.last_entry(), Some((2000, 79)));
        assert_eq!(idx.scan_start(500), 50);
        assert_eq!(idx.scan_start(1500), 59);
        assert_eq!(idx.scan_start(3000), 79);
        drop(idx);
        let loaded = TimeIndex::load(&path, 50, 80)
            .expect("io")
            .expect("trusted");
        assert_eq!(loaded.last_entry(), Some((2000, 79)));
        assert!(TimeIndex::load(&path, 50, 70).expect("io").is_none());
    }
}
