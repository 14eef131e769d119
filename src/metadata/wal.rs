//! The metadata write-ahead log on disk: numbered files of CRC-framed records plus snapshots.
//!
//! ```text
//! <dir>/wal-<first_index:020>.log      frames (see record.rs), indexes strictly increasing
//! <dir>/snapshot-<index:020>.bin       state after <index>: postcard body + crc32c trailer
//! ```
//!
//! Replay loads the newest valid snapshot and applies every later frame. A frame that is torn or
//! fails its CRC ends the log: the file is truncated there and nothing after it is trusted. A
//! snapshot is written atomically, then a new WAL file is started and older files are removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::record::{Decoded, MetadataRecord, decode_frame, encode_frame};
use super::state::MetadataState;

pub struct Wal {
    dir: PathBuf,
    file: File,
    /// Bytes of whole frames in `file`: a failed write is cut back to this.
    len: u64,
    next_index: u64,
    records_since_snapshot: u64,
    /// Set when the log can no longer be trusted to take writes (an fsync failed, or a failed
    /// write could not be cut off); every later write is refused until a restart replays it.
    failed: Option<String>,
}

/// What replay found, for the start-up log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayReport {
    pub snapshot_index: u64,
    pub records: u64,
    pub truncated_bytes: u64,
}

fn wal_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("wal-{first:020}.log"))
}

fn snapshot_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("snapshot-{index:020}.bin"))
}

fn numbered(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|s| s.strip_suffix(suffix))
            .and_then(|s| s.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn read_snapshot(path: &Path) -> Option<MetadataState> {
    let raw = fs::read(path).ok()?;
    if raw.len() < 4 {
        return None;
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return None;
    }
    MetadataState::decode_snapshot(body)
}

impl Wal {
    /// Opens the log in `dir`, replaying it into a state.
    pub fn open(dir: &Path) -> io::Result<(Self, MetadataState, ReplayReport)> {
        fs::create_dir_all(dir)?;
        let mut report = ReplayReport::default();
        let mut state = MetadataState::default();
        for index in numbered(dir, "snapshot-", ".bin")?.into_iter().rev() {
            if let Some(s) = read_snapshot(&snapshot_path(dir, index)) {
                state = s;
                report.snapshot_index = index;
                break;
            }
            tracing::warn!(index, "ignoring unreadable metadata snapshot");
        }
        // The next record would need index last + 1: a (CRC-valid) snapshot at the last index
        // there is cannot be real, and wrapping to 0 would let later records hide behind it.
        if state.last_index == u64::MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "metadata snapshot {} ends at index {}, the largest there is",
                    report.snapshot_index,
                    u64::MAX
                ),
            ));
        }
        let files = numbered(dir, "wal-", ".log")?;
        let mut last_file = None;
        let mut ended = false;
        for first in files {
            let path = wal_path(dir, first);
            if ended {
                // Everything after a torn frame is untrusted.
                fs::remove_file(&path)?;
                continue;
            }
            let raw = fs::read(&path)?;
            let mut pos = 0;
            while pos < raw.len() {
                match decode_frame(&raw[pos..]) {
                    Decoded::Record(index, record, size) => {
                        if index <= state.last_index && index <= report.snapshot_index {
                            pos += size; // already in the snapshot
                            continue;
                        }
                        if state.last_index.checked_add(1) != Some(index) {
                            ended = true;
                            break;
                        }
                        state.apply(index, &record);
                        report.records += 1;
                        pos += size;
                    }
                    Decoded::Torn => {
                        ended = true;
                        break;
                    }
                }
            }
            if pos < raw.len() {
                report.truncated_bytes += (raw.len() - pos) as u64;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(pos as u64)?;
                ended = true;
            }
            last_file = Some(path);
        }
        let next_index = state.last_index.checked_add(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the metadata log is at the largest index there is",
            )
        })?;
        let path = match last_file {
            Some(p) => p,
            None => wal_path(dir, next_index),
        };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        File::open(dir)?.sync_all()?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                file,
                len,
                next_index,
                records_since_snapshot: report.records,
                failed: None,
            },
            state,
            report,
        ))
    }

    /// Writes `records` durably, one fsync for all of them, and returns the index of the first.
    /// The caller applies them to its state in order once this returns.
    ///
    /// A failed write (a full disk) is cut off again, so the log takes later writes once space
    /// returns and no frame ever follows torn bytes (replay stops at the first torn frame and
    /// would drop everything after it). A failed fsync, or a cut that fails, stops the log:
    /// what the disk holds is then unknown, and only a restart's replay can say.
    pub fn write(&mut self, records: &[MetadataRecord]) -> io::Result<u64> {
        if let Some(reason) = &self.failed {
            return Err(io::Error::other(format!(
                "metadata log stopped after an earlier failure ({reason}); restart to recover"
            )));
        }
        let first = self.next_index;
        // Replay takes any index a frame carries, so the last one may leave no room (found by
        // fuzzing, tests/fuzz): refuse rather than wrap around.
        if first.checked_add(records.len() as u64).is_none() {
            return Err(io::Error::other(format!(
                "metadata log index {first} leaves no room for {} more records",
                records.len()
            )));
        }
        let mut buf = Vec::with_capacity(records.len() * 64);
        let mut index = first;
        for r in records {
            encode_frame(&mut buf, index, r).map_err(io::Error::other)?;
            index += 1;
        }
        if let Err(e) = self.write_frames(&buf) {
            if let Err(undo) = self.file.set_len(self.len) {
                self.failed = Some(format!("{e}; cutting it off failed: {undo}"));
            }
            return Err(e);
        }
        if let Err(e) = self.file.sync_data() {
            self.failed = Some(format!("fsync failed: {e}"));
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.next_index = index;
        self.records_since_snapshot += records.len() as u64;
        Ok(first)
    }

    fn write_frames(&mut self, buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = tests::WRITE_BUDGET.with(|b| b.take()) {
            self.file.write_all(&buf[..n.min(buf.len())])?;
            return Err(io::Error::from_raw_os_error(28));
        }
        self.file.write_all(buf)
    }

    /// Whether the log refuses writes until a restart.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// `write` followed by applying the records to `state`.
    pub fn append(
        &mut self,
        records: &[MetadataRecord],
        state: &mut MetadataState,
    ) -> io::Result<u64> {
        let first = self.write(records)?;
        for (i, r) in records.iter().enumerate() {
            state.apply(first + i as u64, r);
        }
        Ok(first + records.len() as u64 - 1)
    }

    pub fn records_since_snapshot(&self) -> u64 {
        self.records_since_snapshot
    }

    /// Writes a snapshot of `state` and starts a new file; older files are removed.
    pub fn snapshot(&mut self, state: &MetadataState) -> io::Result<()> {
        let mut body = postcard::to_stdvec(state).map_err(io::Error::other)?;
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        crate::util::write_atomically(&snapshot_path(&self.dir, state.last_index), &body)?;
        let new_path = wal_path(&self.dir, self.next_index);
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&new_path)?;
        self.len = self.file.metadata()?.len();
        File::open(&self.dir)?.sync_all()?;
        for first in numbered(&self.dir, "wal-", ".log")? {
            if first < self.next_index {
                fs::remove_file(wal_path(&self.dir, first))?;
            }
        }
        for index in numbered(&self.dir, "snapshot-", ".bin")? {
            if index < state.last_index {
                fs::remove_file(snapshot_path(&self.dir, index))?;
            }
        }
        self.records_since_snapshot = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// When set, the next write puts only this many bytes in the file, then fails.
        pub(super) static WRITE_BUDGET: std::cell::Cell<Option<usize>> =
            const { std::cell::Cell::new(None) };
    }

    /// A write that fails half-way (ENOSPC) is cut off: later writes are taken and replay keeps
    /// every one of them (before, the torn frame stopped replay and dropped all after it).
    #[test]
    fn a_failed_write_is_cut_off_and_later_writes_survive_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, mut state, _) = Wal::open(dir.path()).expect("open");
        wal.append(&[commit(0)], &mut state).expect("append");
        for budget in [0, 5, 20] {
            WRITE_BUDGET.with(|b| b.set(Some(budget)));
            assert!(wal.append(&[commit(1), commit(2)], &mut state).is_err());
            assert!(!wal.is_failed());
        }
        for i in 1..5 {
            wal.append(&[commit(i)], &mut state)
                .expect("append after space returns");
        }
        let expected = state.clone();
        drop(wal);
        let (_, replayed, report) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(report.records, 5);
        assert_eq!(replayed, expected);
    }

    fn commit(i: i64) -> MetadataRecord {
        MetadataRecord::OffsetCommitted {
            group: "g".into(),
            topic: "t".into(),
            partition: (i % 3) as i32,
            offset: i,
            leader_epoch: 0,
            metadata: None,
            commit_ms: i,
        }
    }

    /// Fuzzing (tests/fuzz, target metadata_wal) wrote a snapshot with a valid CRC whose state
    /// ends at index u64::MAX; replay computed the next index as last + 1 (a panic with overflow
    /// checks, index 0 without). Opening such a log is now an error that names the snapshot.
    #[test]
    fn fuzz_snapshot_at_the_largest_index_is_refused() {
        let hex = "ffffffffffffffffff0100000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0000";
        let mut body: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(snapshot_path(dir.path(), 1), &body).expect("write snapshot");
        let err = Wal::open(dir.path()).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("largest"), "{err}");
    }

    /// Fuzzing found a snapshot whose state ends one below u64::MAX: it opens, and the next
    /// write's index counter would have wrapped (a panic with overflow checks). The write is
    /// refused instead, and nothing reaches the file.
    #[test]
    fn fuzz_a_write_past_the_largest_index_is_refused() {
        let mut body = vec![
            0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00,
            0xff, 0x24, 0xff, 0xff, 0xff,
        ];
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(snapshot_path(dir.path(), 1), &body).expect("write snapshot");
        let (mut wal, mut state, _) = Wal::open(dir.path()).expect("open");
        assert_eq!(state.last_index, u64::MAX - 1);
        let before = state.clone();
        let err = wal.append(&[commit(1)], &mut state).expect_err("refused");
        assert!(err.to_string().contains("no room"), "{err}");
        assert_eq!(state, before);
        drop(wal);
        let (_, again, report) = Wal::open(dir.path()).expect("reopen");
        assert_eq!((again, report.truncated_bytes), (before, 0));
    }

    #[test]
    fn replays_after_restart_and_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, mut state, _) = Wal::open(dir.path()).expect("open");
        for i in 0..10 {
            wal.append(&[commit(i)], &mut state).expect("append");
        }
        wal.snapshot(&state).expect("snapshot");
        wal.append(&[commit(10), commit(11)], &mut state)
            .expect("append");
        let expected = state.clone();
        drop(wal);
        let (_, replayed, report) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(replayed, expected);
        assert_eq!(report.snapshot_index, 10);
        assert_eq!(report.records, 2);
    }

    /// Cutting the file at every byte of its last records leaves exactly the records that were
    /// whole before the cut.
    #[test]
    fn a_torn_tail_is_truncated_at_every_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, mut state, _) = Wal::open(dir.path()).expect("open");
        let mut states = vec![state.clone()];
        let path = wal_path(dir.path(), 1);
        let mut ends = vec![0u64];
        for i in 0..6 {
            wal.append(&[commit(i)], &mut state).expect("append");
            states.push(state.clone());
            ends.push(fs::metadata(&path).expect("stat").len());
        }
        drop(wal);
        let full = fs::read(&path).expect("read");
        let first_cut = ends[3] as usize;
        for cut in first_cut..=full.len() {
            fs::write(&path, &full[..cut]).expect("write");
            let whole = ends.iter().filter(|&&e| e as usize <= cut).count() - 1;
            let (_, replayed, report) = Wal::open(dir.path()).expect("open");
            assert_eq!(replayed, states[whole], "cut at {cut}");
            assert_eq!(
                fs::metadata(&path).expect("stat").len(),
                ends[whole],
                "cut at {cut}"
            );
            assert_eq!(report.truncated_bytes, (cut as u64) - ends[whole]);
        }
        // A flipped byte in the last record drops it and nothing before it.
        let mut bad = full.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0x40;
        fs::write(&path, &bad).expect("write");
        let (_, replayed, _) = Wal::open(dir.path()).expect("open");
        assert_eq!(replayed, states[5]);
    }
}
