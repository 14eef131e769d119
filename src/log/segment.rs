//! One log segment: `<base_offset:020>.log` with its `.index` and `.timeindex`.
//!
//! A segment owns its files and the in-memory view of its indexes. It appends batches that the
//! partition already validated and numbered, finds batch boundaries for reads, and recovers its
//! tail after a crash. It never decides *when* to roll or delete; [`super::PartitionLog`] does.
//!
//! Only the active segment keeps a file open (its `.log`, for appends); a sealed one opens its
//! `.log` for the length of one read, and index files are written whole when a segment is sealed
//! or closed. A broker with thousands of partitions thus holds one file per partition, not three
//! per segment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{self, BatchHeader, LOG_OVERHEAD};
use super::index::{OffsetIndex, TimeIndex};

pub fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

pub fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// A batch found in a segment: its header and where it starts.
#[derive(Debug, Clone, Copy)]
pub struct BatchAt {
    pub position: u32,
    pub header: BatchHeader,
}

#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    dir: PathBuf,
    /// The append handle, while the segment is active (see the module comment).
    file: Option<Arc<File>>,
    size: u32,
    index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u32,
    bytes_since_index_entry: u32,
    /// Largest timestamp in the segment and the offset of the batch that holds it.
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    next_offset: i64,
    /// Wall-clock time the segment was created, or its first batch's timestamp after a restart.
    created_ms: i64,
}

impl LogSegment {
    /// Creates an empty segment. An existing file of that name is truncated.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> io::Result<Self> {
        let path = segment_path(dir, base_offset, "log");
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Append mode: every write lands at the end whatever else touched the file offset.
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let indexes = OffsetIndex::create(&segment_path(dir, base_offset, "index"), base_offset)
            .and_then(|index| {
                let time_path = segment_path(dir, base_offset, "timeindex");
                Ok((index, TimeIndex::create(&time_path, base_offset)?))
            });
        let (index, time_index) = match indexes {
            Ok(i) => i,
            Err(e) => {
                // No half-made segment stays behind for a restart to pick up.
                for ext in ["log", "index", "timeindex"] {
                    let _ = fs::remove_file(segment_path(dir, base_offset, ext));
                }
                return Err(e);
            }
        };
        Ok(Self {
            base_offset,
            dir: dir.to_path_buf(),
            file: Some(Arc::new(file)),
            size: 0,
            index,
            time_index,
            index_interval_bytes,
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            next_offset: base_offset,
            created_ms: now_ms,
        })
    }

    /// Opens an existing segment. With `recover` the whole file is scanned: a torn or corrupt
    /// tail is cut off and both indexes are rebuilt. Without it, the indexes are loaded and
    /// rebuilt only when they cannot be trusted.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        recover: bool,
    ) -> io::Result<(Self, RecoveryReport)> {
        let path = segment_path(dir, base_offset, "log");
        let file = OpenOptions::new().read(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        if len > u32::MAX as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment {} is larger than 4 GiB", path.display()),
            ));
        }
        let file = Arc::new(file);
        if !recover
            && let Some(seg) =
                Self::load_trusted(dir, base_offset, index_interval_bytes, &file, len as u32)?
        {
            return Ok((seg, RecoveryReport::default()));
        }
        let mut seg = Self {
            base_offset,
            dir: dir.to_path_buf(),
            file: Some(file),
            size: len as u32,
            index: OffsetIndex::create(&segment_path(dir, base_offset, "index"), base_offset)?,
            time_index: TimeIndex::create(
                &segment_path(dir, base_offset, "timeindex"),
                base_offset,
            )?,
            index_interval_bytes,
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            next_offset: base_offset,
            created_ms: 0,
        };
        let report = seg.rebuild(recover)?;
        Ok((seg, report))
    }

    /// Opens a segment through its index files, if they can be trusted: the offset index must
    /// stay inside the file, the batches after its last entry must end exactly at the end of the
    /// file, and the time index must name only offsets the segment holds.
    fn load_trusted(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        file: &Arc<File>,
        size: u32,
    ) -> io::Result<Option<Self>> {
        let index_path = segment_path(dir, base_offset, "index");
        let time_path = segment_path(dir, base_offset, "timeindex");
        let Some(index) = OffsetIndex::load(&index_path, base_offset, size as u64)? else {
            return Ok(None);
        };
        let mut pos = index.floor_position(u32::MAX).unwrap_or(0);
        let mut last: Option<BatchAt> = None;
        while pos < size {
            match read_header_at(file, pos) {
                Ok(b) if pos as u64 + b.header.total_len() as u64 <= size as u64 => {
                    pos += b.header.total_len() as u32;
                    last = Some(b);
                }
                _ => return Ok(None),
            }
        }
        let next_offset = last.map_or(base_offset, |b| b.header.last_offset() + 1);
        let Some(time_index) = TimeIndex::load(&time_path, base_offset, next_offset)? else {
            return Ok(None);
        };
        let (mut max_timestamp, mut offset_of_max_timestamp) =
            time_index.last_entry().unwrap_or((-1, base_offset));
        if let Some(b) = last
            && b.header.max_timestamp > max_timestamp
        {
            max_timestamp = b.header.max_timestamp;
            offset_of_max_timestamp = b.header.last_offset();
        }
        let created_ms = if size == 0 {
            0
        } else {
            read_header_at(file, 0).map_or(0, |b| b.header.first_timestamp)
        };
        Ok(Some(Self {
            base_offset,
            dir: dir.to_path_buf(),
            file: Some(file.clone()),
            size,
            index,
            time_index,
            index_interval_bytes,
            // Unknown after a restart; starting at the interval makes the next append indexed.
            bytes_since_index_entry: index_interval_bytes,
            max_timestamp,
            offset_of_max_timestamp,
            next_offset,
            created_ms,
        }))
    }

    /// Scans every batch from the start into the (fresh, empty) indexes. With `check_crc`, each
    /// batch's CRC is verified too. The file is truncated after the last good batch.
    fn rebuild(&mut self, check_crc: bool) -> io::Result<RecoveryReport> {
        let mut report = RecoveryReport {
            rebuilt_indexes: true,
            ..Default::default()
        };
        let len = self.size;
        let file = self.reader()?;
        self.size = 0;
        self.bytes_since_index_entry = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        let mut pos: u32 = 0;
        let mut buf = Vec::new();
        while pos < len {
            let Ok(b) = read_header_at(&file, pos) else {
                break;
            };
            let total = b.header.total_len();
            if pos as u64 + total as u64 > len as u64 || b.header.base_offset < self.next_offset {
                break;
            }
            if check_crc {
                buf.resize(total, 0);
                if file.read_exact_at(&mut buf, pos as u64).is_err()
                    || batch::check_crc(&b.header, &buf).is_err()
                {
                    break;
                }
            }
            self.size = pos;
            self.note_appended(&b.header, total as u32);
            self.size = pos + total as u32;
            pos += total as u32;
            report.batches += 1;
        }
        if pos < len {
            report.truncated_bytes = (len - pos) as u64;
            file.set_len(pos as u64)?;
        }
        self.size = pos;
        self.created_ms = self.first_timestamp().unwrap_or(0);
        Ok(report)
    }

    fn first_timestamp(&self) -> Option<i64> {
        if self.size == 0 {
            return None;
        }
        self.read_batch_header(0)
            .ok()
            .map(|b| b.header.first_timestamp)
    }

    /// Updates indexes and bookkeeping for a batch just written at `self.size`.
    fn note_appended(&mut self, header: &BatchHeader, total: u32) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.bytes_since_index_entry >= self.index_interval_bytes || self.size == 0 {
            self.index.append(header.last_offset(), self.size);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += total;
        self.next_offset = header.last_offset() + 1;
    }

    /// The segment's file for reading: the append handle while active, else opened for this
    /// read alone (the handle lives as long as a response region holds it).
    pub fn reader(&self) -> io::Result<Arc<File>> {
        match &self.file {
            Some(f) => Ok(f.clone()),
            None => Ok(Arc::new(File::open(self.log_path())?)),
        }
    }

    /// The append handle, opened again if the segment was sealed (a rollback across a roll).
    fn writer(&mut self) -> io::Result<Arc<File>> {
        if let Some(f) = &self.file {
            return Ok(f.clone());
        }
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .append(true)
                .open(self.log_path())?,
        );
        self.file = Some(f.clone());
        Ok(f)
    }

    fn log_path(&self) -> PathBuf {
        segment_path(&self.dir, self.base_offset, "log")
    }

    /// Writes both index files whole (at a roll and at a clean close).
    pub fn persist_indexes(&self) -> io::Result<()> {
        self.index.persist()?;
        self.time_index.persist()
    }

    /// Ends the segment's active life: its indexes go to disk and its file is closed. On an
    /// error the segment is unchanged and still active.
    pub fn seal(&mut self) -> io::Result<()> {
        self.persist_indexes()?;
        self.file = None;
        Ok(())
    }

    /// Closes the file of a segment that is not the active one, without writing anything.
    pub fn release(&mut self) {
        self.file = None;
    }

    /// Where the segment stands now, to go back to with [`LogSegment::rollback`].
    pub fn mark(&self) -> SegmentMark {
        SegmentMark {
            size: self.size,
            index_len: self.index.len(),
            time_index_len: self.time_index.len(),
            bytes_since_index_entry: self.bytes_since_index_entry,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            next_offset: self.next_offset,
        }
    }

    /// Undoes every append after `mark`: the file and both indexes are cut back to what they
    /// held then, so bytes of a failed write (ENOSPC, EIO, a short write) never stay in front of
    /// a later append. An error means the files could not be cut and still hold those bytes.
    pub fn rollback(&mut self, mark: SegmentMark) -> io::Result<()> {
        self.writer()?.set_len(mark.size as u64)?;
        self.index.truncate_entries(mark.index_len);
        self.time_index.truncate_entries(mark.time_index_len);
        self.size = mark.size;
        self.bytes_since_index_entry = mark.bytes_since_index_entry;
        self.max_timestamp = mark.max_timestamp;
        self.offset_of_max_timestamp = mark.offset_of_max_timestamp;
        self.next_offset = mark.next_offset;
        Ok(())
    }

    /// Appends one already numbered batch given as a rewritten prefix and the rest of the
    /// producer's bytes (no copy of the record data is made). On an error the segment may hold
    /// part of the batch: the caller must [`LogSegment::rollback`] before appending again.
    pub fn append(&mut self, header: &BatchHeader, prefix: &[u8], rest: &[u8]) -> io::Result<()> {
        let total = prefix.len() + rest.len();
        let mut slices = [IoSlice::new(prefix), IoSlice::new(rest)];
        let mut slices: &mut [IoSlice<'_>] = &mut slices;
        // `File` implements Write for `&File`; the partition lock serialises writers.
        let file = self.writer()?;
        let mut f: &File = &file;
        #[cfg(test)]
        if let Some(budget) = write_faults::take(total) {
            // As a full disk does: part of the batch reaches the file, then the write fails.
            let head = [prefix, rest].concat();
            f.write_all(&head[..budget])?;
            return Err(io::Error::from_raw_os_error(28));
        }
        while !slices.is_empty() {
            let n = f.write_vectored(slices)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
            }
            IoSlice::advance_slices(&mut slices, n);
        }
        self.note_appended(header, total as u32);
        self.size += total as u32;
        Ok(())
    }

    pub fn read_batch_header(&self, position: u32) -> io::Result<BatchAt> {
        read_header_at(&*self.reader()?, position)
    }

    /// The first batch whose last offset is at or above `offset`, within the first `limit` bytes.
    pub fn find_batch(&self, offset: i64, limit: u32) -> io::Result<Option<BatchAt>> {
        self.find_batch_in(&*self.reader()?, offset, limit)
    }

    fn find_batch_in(&self, file: &File, offset: i64, limit: u32) -> io::Result<Option<BatchAt>> {
        let mut pos = self.index.scan_start(offset);
        while pos < limit {
            let b = read_header_at(file, pos)?;
            if b.header.last_offset() >= offset {
                return Ok(Some(b));
            }
            pos += b.header.total_len() as u32;
        }
        Ok(None)
    }

    /// Where a read starting at the batch at `start` must end to hold whole batches within
    /// `max_bytes` — but always at least the first batch, so a consumer can make progress.
    pub fn read_end(
        &self,
        start: BatchAt,
        max_bytes: u32,
        limit: u32,
        at_least_one: bool,
    ) -> io::Result<u32> {
        self.read_end_in(&*self.reader()?, start, max_bytes, limit, at_least_one)
    }

    /// For a read at `offset`: the file and the byte range `[position, position + len)` of whole
    /// batches within the first `limit` bytes to return (see [`LogSegment::read_end`]), or `None`
    /// when no batch qualifies.
    pub fn read_region(
        &self,
        offset: i64,
        max_bytes: u32,
        at_least_one: bool,
        limit: u32,
    ) -> io::Result<Option<(Arc<File>, u32, u32)>> {
        let file = self.reader()?;
        let limit = limit.min(self.size);
        let Some(first) = self.find_batch_in(&file, offset, limit)? else {
            return Ok(None);
        };
        let end = self.read_end_in(&file, first, max_bytes, limit, at_least_one)?;
        Ok(Some((file, first.position, end - first.position)))
    }

    fn read_end_in(
        &self,
        file: &File,
        start: BatchAt,
        max_bytes: u32,
        limit: u32,
        at_least_one: bool,
    ) -> io::Result<u32> {
        let first_end = start.position + start.header.total_len() as u32;
        if first_end > limit {
            return Ok(start.position);
        }
        let budget_end = start.position.saturating_add(max_bytes).min(limit);
        if first_end > budget_end {
            return Ok(if at_least_one {
                first_end
            } else {
                start.position
            });
        }
        // Jump over batches the index proves complete, then walk the remainder.
        let mut pos = first_end;
        if let Some(p) = self.index.floor_position(budget_end)
            && p > pos
        {
            pos = p;
        }
        while pos < budget_end {
            let b = read_header_at(file, pos)?;
            let end = pos + b.header.total_len() as u32;
            if end > budget_end {
                break;
            }
            pos = end;
        }
        Ok(pos)
    }

    /// The first batch holding a record with a timestamp at or after `timestamp`.
    pub fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
        limit: u32,
    ) -> io::Result<Option<BatchAt>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let from = self.time_index.scan_start(timestamp);
        let file = self.reader()?;
        let Some(mut b) = self.find_batch_in(&file, from, limit)? else {
            return Ok(None);
        };
        loop {
            if b.header.max_timestamp >= timestamp {
                return Ok(Some(b));
            }
            let next = b.position + b.header.total_len() as u32;
            if next >= limit {
                return Ok(None);
            }
            b = read_header_at(&file, next)?;
        }
    }

    /// Reads a whole batch into memory (used for timestamp lookups inside a batch and tests).
    pub fn read_batch(&self, at: &BatchAt) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; at.header.total_len()];
        self.reader()?.read_exact_at(&mut buf, at.position as u64)?;
        Ok(buf)
    }

    /// Iterates batch headers from `position` up to `limit`.
    pub fn batches_from(&self, position: u32, limit: u32) -> io::Result<Vec<BatchAt>> {
        let mut out = Vec::new();
        let mut pos = position;
        let file = self.reader()?;
        while pos + LOG_OVERHEAD as u32 <= limit {
            let b = read_header_at(&file, pos)?;
            pos += b.header.total_len() as u32;
            out.push(b);
        }
        Ok(out)
    }

    /// Forces the appended bytes to disk (indexes are rebuilt from them after a crash).
    pub fn flush(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// Removes the segment's files. Readers holding the file handle keep reading safely.
    pub fn delete_files(&self) -> io::Result<()> {
        for ext in ["log", "index", "timeindex"] {
            match fs::remove_file(segment_path(&self.dir, self.base_offset, ext)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size(&self) -> u32 {
        self.size
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

/// Test-only fault injection: the next appends on this thread write only part of their bytes
/// and then fail with ENOSPC, as on a disk that fills up in the middle of a write.
#[cfg(test)]
pub mod write_faults {
    use std::cell::Cell;

    thread_local! {
        static BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// Lets `bytes` more bytes through, then fails every append until [`clear`].
    pub fn fail_after(bytes: usize) {
        BUDGET.with(|b| b.set(Some(bytes)));
    }

    pub fn clear() {
        BUDGET.with(|b| b.set(None));
    }

    /// For an append of `len` bytes: `Some(n)` when only `n` of them may be written.
    pub(super) fn take(len: usize) -> Option<usize> {
        BUDGET.with(|b| {
            let left = b.get()?;
            if left >= len {
                b.set(Some(left - len));
                None
            } else {
                b.set(Some(0));
                Some(left)
            }
        })
    }
}

fn read_header_at(file: &File, position: u32) -> io::Result<BatchAt> {
    let mut buf = [0u8; batch::BATCH_HEADER_LEN];
    file.read_exact_at(&mut buf, position as u64)?;
    let header = BatchHeader::parse(&buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(BatchAt { position, header })
}

/// The state of a segment at one moment (see [`LogSegment::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMark {
    size: u32,
    index_len: usize,
    time_index_len: usize,
    bytes_since_index_entry: u32,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    next_offset: i64,
}

/// What opening a segment found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub batches: u64,
    pub truncated_bytes: u64,
    pub rebuilt_indexes: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::batch::{stored_prefix, validate_client_batch};

    fn append(seg: &mut LogSegment, base: i64, count: i32, ts: i64) {
        let raw = make_batch(0, count, ts);
        let mut header = validate_client_batch(&raw).expect("valid");
        header.base_offset = base;
        let prefix = stored_prefix(&raw, base, 0);
        seg.append(&header, &prefix, &raw[prefix.len()..])
            .expect("append");
    }

    #[test]
    fn appends_and_finds_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = LogSegment::create(dir.path(), 0, 64, 0).expect("create");
        for i in 0..20 {
            append(&mut seg, i * 3, 3, 1000 + i);
        }
        assert_eq!(seg.next_offset(), 60);
        let b = seg.find_batch(31, seg.size()).expect("io").expect("found");
        assert_eq!(b.header.base_offset, 30);
        assert!(seg.find_batch(60, seg.size()).expect("io").is_none());
        let t = seg
            .find_batch_by_timestamp(1010, seg.size())
            .expect("io")
            .expect("found");
        assert_eq!(t.header.base_offset, 30);
        // A read bounded to two batches ends exactly at a batch boundary.
        let first = seg.find_batch(0, seg.size()).expect("io").expect("found");
        let one = first.header.total_len() as u32;
        let end = seg
            .read_end(first, one * 2 + 5, seg.size(), true)
            .expect("io");
        assert_eq!(end, one * 2);
        // A budget below one batch still returns it when progress requires.
        assert_eq!(seg.read_end(first, 10, seg.size(), true).expect("io"), one);
        assert_eq!(seg.read_end(first, 10, seg.size(), false).expect("io"), 0);
    }

    #[test]
    fn reopen_uses_or_rebuilds_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = LogSegment::create(dir.path(), 100, 64, 0).expect("create");
        for i in 0..10 {
            append(&mut seg, 100 + i * 2, 2, 50 + i);
        }
        let size = seg.size();
        seg.seal().expect("seal");
        drop(seg);
        let (seg, report) = LogSegment::open(dir.path(), 100, 64, false).expect("open");
        assert!(!report.rebuilt_indexes);
        assert_eq!(seg.next_offset(), 120);
        assert_eq!(seg.size(), size);
        assert_eq!(seg.max_timestamp(), 59);
        drop(seg);
        std::fs::write(segment_path(dir.path(), 100, "index"), b"garbage").expect("write");
        let (seg, report) = LogSegment::open(dir.path(), 100, 64, false).expect("open");
        assert!(report.rebuilt_indexes);
        assert_eq!(seg.next_offset(), 120);
        assert_eq!(
            seg.find_batch(111, seg.size())
                .expect("io")
                .expect("found")
                .header
                .base_offset,
            110
        );
    }

    #[test]
    fn recovery_cuts_a_torn_or_corrupt_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = LogSegment::create(dir.path(), 0, 64, 0).expect("create");
        for i in 0..5 {
            append(&mut seg, i * 4, 4, 1);
        }
        let good = seg.size();
        append(&mut seg, 20, 4, 1);
        let full = seg.size();
        drop(seg);
        let path = segment_path(dir.path(), 0, "log");
        // Every cut inside the last batch leaves exactly the first five.
        for cut in good + 1..full {
            let raw = std::fs::read(&path).expect("read");
            let f = OpenOptions::new().write(true).open(&path).expect("open");
            f.set_len(cut as u64).expect("truncate");
            let (seg, report) = LogSegment::open(dir.path(), 0, 64, true).expect("open");
            assert_eq!(seg.size(), good, "cut at {cut}");
            assert_eq!(seg.next_offset(), 20);
            assert_eq!(report.truncated_bytes, (cut - good) as u64);
            drop(seg);
            std::fs::write(&path, &raw[..full as usize]).expect("restore");
        }
        // A flipped byte in the last batch is caught by the CRC.
        let mut raw = std::fs::read(&path).expect("read");
        raw[full as usize - 3] ^= 0xff;
        std::fs::write(&path, &raw).expect("write");
        let (seg, _) = LogSegment::open(dir.path(), 0, 64, true).expect("open");
        assert_eq!(seg.size(), good);
    }
}
