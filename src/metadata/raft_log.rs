//! The replicated metadata log as a controller quorum member keeps it on disk: numbered files of
//! the metadata log's CRC frames (`record.rs`), each holding one Raft entry, plus the vote and
//! the id of the last entry purged behind a snapshot.
//!
//! ```text
//! <dir>/raft-<first_index:020>.log   frames: length | crc32c | index | entry, indexes consecutive
//! <dir>/raft-vote                    the current vote (crc32c-checked, replaced atomically)
//! <dir>/raft-purged                  the last purged entry (crc32c-checked, replaced atomically)
//! ```
//!
//! Entries are opaque here: the controller encodes them (log id and payload) and decodes them
//! again. What this file guarantees is Raft's storage contract: an append is durable (one fsync
//! for all entries of the call) before it returns; a suffix can be cut off (`truncate_from`, when
//! a new leader's log disagrees) and a prefix dropped behind a snapshot (`purge_upto`); the vote
//! is durable before it is reported saved. Indexes grow; they may jump (the entries after a
//! snapshot a follower installed arrive before the log behind it is purged). Replay stops at the
//! first torn or damaged frame, or an index that does not grow, and cuts the log there, as the
//! single-node metadata log does. Every entry after the last purge is also kept in memory:
//! snapshots bound their number.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::record::{decode_raw_frame, encode_raw_frame};

const VOTE_FILE: &str = "raft-vote";
const PURGED_FILE: &str = "raft-purged";

/// One entry as stored: its index, opaque bytes, and where its frame starts.
#[derive(Debug, Clone)]
struct Stored {
    index: u64,
    payload: Vec<u8>,
    /// First index of the file holding the frame, and the frame's byte offset in it.
    file: u64,
    offset: u64,
}

pub struct RaftLog {
    dir: PathBuf,
    /// The file appends go to, its first index and its length in whole frames.
    file: File,
    file_first: u64,
    len: u64,
    entries: VecDeque<Stored>,
    /// The last entry dropped behind a snapshot: its index and opaque id bytes.
    purged: Option<(u64, Vec<u8>)>,
    /// A write that could not be undone or an fsync that failed: the log refuses writes until
    /// a restart replays what the disk holds.
    failed: Option<String>,
}

fn log_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("raft-{first:020}.log"))
}

fn log_files(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix("raft-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// A small file: body then crc32c of the body, written whole with fsync and rename.
fn write_checked(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut raw = body.to_vec();
    raw.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    crate::util::write_atomically(path, &raw)
}

fn read_checked(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let raw = match fs::read(path) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if raw.len() < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged", path.display()),
        ));
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} fails its checksum", path.display()),
        ));
    }
    Ok(Some(body.to_vec()))
}

/// What opening the log found, for the start-up log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct RaftLogReport {
    pub entries: u64,
    pub truncated_bytes: u64,
}

impl RaftLog {
    /// Opens (or creates) the log in `dir`, reading every entry after the last purge.
    pub fn open(dir: &Path) -> io::Result<(Self, RaftLogReport)> {
        fs::create_dir_all(dir)?;
        let purged = read_checked(&dir.join(PURGED_FILE))?
            .map(|body| {
                if body.len() < 8 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "raft-purged is damaged",
                    ));
                }
                let (idx, id) = body.split_at(8);
                let mut b = [0u8; 8];
                b.copy_from_slice(idx);
                Ok((u64::from_be_bytes(b), id.to_vec()))
            })
            .transpose()?;
        let mut report = RaftLogReport::default();
        let mut entries: VecDeque<Stored> = VecDeque::new();
        let mut ended = false;
        let mut last_file = None;
        for first in log_files(dir)? {
            let path = log_path(dir, first);
            if ended {
                fs::remove_file(&path)?;
                continue;
            }
            let raw = fs::read(&path)?;
            let mut pos = 0usize;
            while pos < raw.len() {
                let Some((index, payload, size)) = decode_raw_frame(&raw[pos..]) else {
                    ended = true;
                    break;
                };
                let skip = purged.as_ref().is_some_and(|(p, _)| index <= *p);
                if !skip {
                    // Indexes only grow; a gap is legitimate (entries after an installed
                    // snapshot), a step back is not.
                    let after = entries
                        .back()
                        .map(|e: &Stored| e.index)
                        .or_else(|| purged.as_ref().map(|(p, _)| *p));
                    if after.is_some_and(|a| index <= a) {
                        ended = true;
                        break;
                    }
                    entries.push_back(Stored {
                        index,
                        payload: payload.to_vec(),
                        file: first,
                        offset: pos as u64,
                    });
                    report.entries += 1;
                }
                pos += size;
            }
            if pos < raw.len() {
                report.truncated_bytes += (raw.len() - pos) as u64;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(pos as u64)?;
                ended = true;
            }
            last_file = Some(first);
        }
        let file_first = match last_file {
            Some(f) => f,
            None => entries
                .back()
                .map(|e| e.index + 1)
                .or_else(|| purged.as_ref().map(|(p, _)| p + 1))
                .unwrap_or(0),
        };
        let path = log_path(dir, file_first);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        File::open(dir)?.sync_all()?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                file,
                file_first,
                len,
                entries,
                purged,
                failed: None,
            },
            report,
        ))
    }

    fn refuse_if_failed(&self) -> io::Result<()> {
        match &self.failed {
            Some(why) => Err(io::Error::other(format!(
                "the raft log stopped after an earlier failure ({why}); restart to recover"
            ))),
            None => Ok(()),
        }
    }

    /// The last purged entry's index and id bytes.
    pub fn purged(&self) -> Option<(u64, &[u8])> {
        self.purged.as_ref().map(|(i, id)| (*i, id.as_slice()))
    }

    pub fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    pub fn last(&self) -> Option<(u64, &[u8])> {
        self.entries.back().map(|e| (e.index, e.payload.as_slice()))
    }

    /// The entries with indexes in `range` that the log holds, in order.
    pub fn range(&self, range: std::ops::Range<u64>) -> impl Iterator<Item = (u64, &[u8])> {
        let start = self.entries.partition_point(|e| e.index < range.start);
        self.entries
            .iter()
            .skip(start)
            .take_while(move |e| e.index < range.end)
            .map(|e| (e.index, e.payload.as_slice()))
    }

    /// Appends entries (consecutive) with one fsync for all. Entries the log already holds at
    /// those indexes are replaced (the suffix from the first of them is cut off first), as a
    /// leader's entries replace a follower's.
    /// Entries at or below the last purge are already covered by a snapshot and are skipped.
    pub fn append(&mut self, batch: &[(u64, Vec<u8>)]) -> io::Result<()> {
        self.refuse_if_failed()?;
        let purged = self.purged.as_ref().map(|(p, _)| *p);
        let skip = batch
            .iter()
            .take_while(|(i, _)| purged.is_some_and(|p| *i <= p))
            .count();
        let batch = &batch[skip..];
        if batch.is_empty() {
            return Ok(());
        }
        if let (Some((first, _)), Some(last)) = (batch.first(), self.entries.back())
            && *first <= last.index
            && self.entries.front().is_some_and(|f| *first >= f.index)
        {
            self.truncate_from(*first)?;
        }
        // The first entry may leave a gap after the last one: openraft appends the entries
        // after a snapshot it installed before it purges what the snapshot covers.
        let after = self
            .entries
            .back()
            .map(|e| e.index)
            .or_else(|| self.purged.as_ref().map(|(p, _)| *p));
        let mut next: Option<u64> = None;
        let mut buf = Vec::new();
        let mut placed = Vec::with_capacity(batch.len());
        for (index, payload) in batch {
            let fits = match next {
                Some(n) => n == *index,
                None => after.is_none_or(|a| *index > a),
            };
            if !fits {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "raft log entry {index} does not follow {:?}",
                        next.or(after)
                    ),
                ));
            }
            placed.push(self.len + buf.len() as u64);
            encode_raw_frame(&mut buf, *index, payload);
            next = Some(index + 1);
        }
        if let Err(e) = self.file.write_all(&buf) {
            if let Err(undo) = self.file.set_len(self.len) {
                self.failed = Some(format!("{e}; cutting it off failed: {undo}"));
            }
            return Err(e);
        }
        if let Err(e) = self.file.sync_data() {
            self.failed = Some(format!("fsync failed: {e}"));
            return Err(e);
        }
        for ((index, payload), offset) in batch.iter().zip(placed) {
            self.entries.push_back(Stored {
                index: *index,
                payload: payload.clone(),
                file: self.file_first,
                offset,
            });
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Removes every entry at or after `index` (a leader's log disagrees with this one there).
    pub fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        self.refuse_if_failed()?;
        let Some(pos) = self.entries.iter().position(|e| e.index >= index) else {
            return Ok(());
        };
        let cut = self.entries[pos].clone();
        // Later files go whole; the file holding the first removed frame is cut at it.
        for first in log_files(&self.dir)? {
            if first > cut.file {
                fs::remove_file(log_path(&self.dir, first))?;
            }
        }
        let path = log_path(&self.dir, cut.file);
        let file = OpenOptions::new().append(true).open(&path)?;
        file.set_len(cut.offset)?;
        file.sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        self.file = file;
        self.file_first = cut.file;
        self.len = cut.offset;
        self.entries.truncate(pos);
        Ok(())
    }

    /// Drops every entry up to `index` (a snapshot holds their effect). `id` is the opaque id of
    /// that entry, kept so the log can say what it last purged. Files holding only purged
    /// entries are removed; appends go to a new file from now on.
    pub fn purge_upto(&mut self, index: u64, id: &[u8]) -> io::Result<()> {
        self.refuse_if_failed()?;
        if self.purged.as_ref().is_some_and(|(p, _)| *p >= index) {
            return Ok(());
        }
        let mut body = index.to_be_bytes().to_vec();
        body.extend_from_slice(id);
        write_checked(&self.dir.join(PURGED_FILE), &body)?;
        self.purged = Some((index, id.to_vec()));
        while self.entries.front().is_some_and(|e| e.index <= index) {
            self.entries.pop_front();
        }
        // Start a new file at the next index, so older files hold only what is purged or was
        // written before: a file is removed once its last entry is purged.
        let next = self.entries.back().map_or(index + 1, |e| e.index + 1);
        if self.len > 0 && next > self.file_first {
            let path = log_path(&self.dir, next);
            self.file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.file_first = next;
            self.len = self.file.metadata()?.len();
            File::open(&self.dir)?.sync_all()?;
        }
        let keep_from = self.entries.front().map(|e| e.file);
        for first in log_files(&self.dir)? {
            if first != self.file_first && keep_from.is_none_or(|k| first < k) {
                fs::remove_file(log_path(&self.dir, first))?;
            }
        }
        Ok(())
    }

    pub fn save_vote(&mut self, vote: &[u8]) -> io::Result<()> {
        write_checked(&self.dir.join(VOTE_FILE), vote)
    }

    pub fn read_vote(&self) -> io::Result<Option<Vec<u8>>> {
        read_checked(&self.dir.join(VOTE_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(r: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
        r.map(|i| (i, format!("entry {i}").into_bytes())).collect()
    }

    fn indexes(log: &RaftLog) -> Vec<u64> {
        log.range(0..u64::MAX).map(|(i, _)| i).collect()
    }

    #[test]
    fn appends_truncations_and_purges_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = RaftLog::open(dir.path()).expect("open");
        assert_eq!(log.last(), None);
        log.append(&entries(1..=10)).expect("append");
        assert!(
            log.append(&[(11, vec![1]), (13, vec![3])]).is_err(),
            "a gap inside a batch is refused"
        );
        log.truncate_from(8).expect("truncate");
        log.append(&[(8, b"new 8".to_vec())])
            .expect("append after the cut");
        log.append(&entries(9..=9)).expect("append");
        log.append(&[(9, b"new 9".to_vec())])
            .expect("an entry replaces the one at its index");
        assert_eq!(log.range(9..10).next().map(|(_, p)| p), Some(&b"new 9"[..]));
        log.truncate_from(9).expect("truncate");
        log.purge_upto(3, b"id-3").expect("purge");
        log.append(&entries(9..=12))
            .expect("append after the purge");
        log.save_vote(b"vote").expect("vote");
        let expected: Vec<(u64, Vec<u8>)> =
            log.range(0..100).map(|(i, p)| (i, p.to_vec())).collect();
        drop(log);

        let (log, report) = RaftLog::open(dir.path()).expect("reopen");
        assert_eq!(report.truncated_bytes, 0);
        let got: Vec<(u64, Vec<u8>)> = log.range(0..100).map(|(i, p)| (i, p.to_vec())).collect();
        assert_eq!(got, expected);
        assert_eq!(indexes(&log), (4..=12).collect::<Vec<_>>());
        assert_eq!(log.range(8..9).next().map(|(_, p)| p), Some(&b"new 8"[..]));
        assert_eq!(log.purged(), Some((3, &b"id-3"[..])));
        assert_eq!(log.read_vote().expect("vote"), Some(b"vote".to_vec()));
        assert_eq!(log.range(5..7).map(|(i, _)| i).collect::<Vec<_>>(), [5, 6]);
    }

    #[test]
    fn a_purge_past_the_end_leaves_an_empty_log_that_continues_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = RaftLog::open(dir.path()).expect("open");
        log.append(&entries(1..=5)).expect("append");
        log.purge_upto(9, b"id-9").expect("purge");
        assert_eq!(log.last(), None);
        log.append(&entries(7..=9))
            .expect("entries behind the purge are skipped");
        assert_eq!(log.last(), None);
        log.append(&entries(10..=11)).expect("append");
        drop(log);
        let (log, _) = RaftLog::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&log), [10, 11]);
        let files = log_files(dir.path()).expect("files");
        assert_eq!(files, [10], "files of purged entries are gone");
    }

    #[test]
    fn a_torn_tail_is_cut_at_every_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = RaftLog::open(dir.path()).expect("open");
        log.append(&entries(1..=3)).expect("append");
        drop(log);
        let path = log_path(dir.path(), 0);
        let whole = fs::read(&path).expect("read");
        let two = {
            let mut b = Vec::new();
            for (i, p) in entries(1..=2) {
                encode_raw_frame(&mut b, i, &p);
            }
            b.len()
        };
        for cut in two..whole.len() {
            fs::write(&path, &whole[..cut]).expect("write");
            let (mut log, report) = RaftLog::open(dir.path()).expect("reopen");
            assert_eq!(indexes(&log), [1, 2], "cut at {cut}");
            assert_eq!(report.truncated_bytes as usize, cut - two);
            log.append(&entries(3..=3)).expect("append after the cut");
            drop(log);
            assert_eq!(fs::read(&path).expect("read"), whole);
        }
    }

    /// Entries past a gap arrive after a snapshot was installed (openraft appends them before it
    /// purges the log behind the snapshot): they are kept after the older ones until the purge,
    /// also across a reopen.
    #[test]
    fn entries_past_a_gap_wait_for_the_purge_behind_a_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = RaftLog::open(dir.path()).expect("open");
        log.append(&entries(0..=1)).expect("append");
        log.append(&entries(100..=101))
            .expect("append past the gap");
        assert_eq!(indexes(&log), [0, 1, 100, 101]);
        assert_eq!(
            log.range(1..101).map(|(i, _)| i).collect::<Vec<_>>(),
            [1, 100]
        );
        drop(log);
        let (mut log, _) = RaftLog::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&log), [0, 1, 100, 101]);
        log.purge_upto(99, b"id-99")
            .expect("the purge that follows the snapshot");
        log.append(&entries(102..=102)).expect("append");
        drop(log);
        let (log, _) = RaftLog::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&log), [100, 101, 102]);
    }
}
