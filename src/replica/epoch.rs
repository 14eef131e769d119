//! The leader epoch cache: for each leader epoch of a partition, the first offset written in it.
//! It answers `OffsetForLeaderEpoch` (where did epoch E end?) so that a follower or a consumer that
//! saw an older leader can find where its log and this one part.
//!
//! Kept in `leader-epoch-checkpoint` in the partition's directory, in Kafka's text layout: a
//! version line (`0`), the number of entries, then one `epoch start_offset` line per entry. The
//! file is rewritten whole (temporary file, fsync, rename) whenever an entry changes, which
//! happens once per leader change and when the log start passes an epoch's first offset.

use std::io;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "leader-epoch-checkpoint";

/// What `OffsetForLeaderEpoch` answers for an epoch nobody knows.
pub const UNDEFINED: (i32, i64) = (-1, -1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct EpochCache {
    path: PathBuf,
    /// Ascending in both epoch and start offset.
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Reads the checkpoint of the partition in `dir`. `None` when the partition has none yet
    /// (a new partition, or a data directory from before the cache existed).
    pub fn load(dir: &Path) -> io::Result<Option<Self>> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        };
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err(bad("unknown version"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| bad("no entry count"))?;
        let mut entries = Vec::with_capacity(count.min(1024));
        for line in lines.take(count) {
            let mut parts = line.split_whitespace();
            let (Some(e), Some(o), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("an entry is not `epoch offset`"));
            };
            let entry = EpochEntry {
                epoch: e.parse().map_err(|_| bad("bad epoch"))?,
                start_offset: o.parse().map_err(|_| bad("bad offset"))?,
            };
            if entries.last().is_some_and(|l: &EpochEntry| {
                l.epoch >= entry.epoch || l.start_offset > entry.start_offset
            }) {
                return Err(bad("entries out of order"));
            }
            entries.push(entry);
        }
        if entries.len() != count {
            return Err(bad("fewer entries than counted"));
        }
        Ok(Some(Self { path, entries }))
    }

    /// An empty cache that will be kept in `dir`.
    pub fn empty(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE_NAME),
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (a leader taking over at its log end, or
    /// the first batch of a new epoch). An older or equal epoch changes nothing; entries at or
    /// past `start_offset` belong to a tail that was truncated and go.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<bool> {
        if self.latest_epoch().is_some_and(|l| l >= epoch) {
            return Ok(false);
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()?;
        Ok(true)
    }

    /// The log now ends at `offset` (a truncated tail): entries starting at or after it go.
    pub fn truncate_from_end(&mut self, offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The log now starts at `offset`: entries wholly before it go, and the one it falls in
    /// starts there.
    pub fn truncate_from_start(&mut self, offset: i64) -> io::Result<()> {
        let Some(keep) = self.entries.iter().rposition(|e| e.start_offset <= offset) else {
            return Ok(());
        };
        if keep == 0 && self.entries[0].start_offset == offset {
            return Ok(());
        }
        self.entries.drain(..keep);
        self.entries[0].start_offset = offset;
        self.persist()
    }

    /// Where `epoch` ends, as `OffsetForLeaderEpoch` answers it: the latest epoch ends at the
    /// log end; an earlier one at the start of the next epoch, given with the largest known
    /// epoch not above the one asked; an epoch above every known one is undefined.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        if epoch < 0 {
            return UNDEFINED;
        }
        match self.latest_epoch() {
            Some(latest) if latest == epoch => return (epoch, log_end),
            None => return UNDEFINED,
            _ => {}
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > epoch) else {
            return UNDEFINED;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= epoch) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (epoch, higher.start_offset),
        }
    }

    fn persist(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        crate::util::write_atomically(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_where_each_epoch_ends_and_survives_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(EpochCache::load(dir.path()).expect("load").is_none());
        let mut c = EpochCache::empty(dir.path());
        assert_eq!(c.end_offset_for(0, 10), UNDEFINED);
        assert!(c.assign(0, 0).expect("assign"));
        assert!(!c.assign(0, 5).expect("same epoch"));
        c.assign(2, 40).expect("assign");
        c.assign(5, 70).expect("assign");
        assert_eq!(c.end_offset_for(5, 99), (5, 99));
        assert_eq!(c.end_offset_for(2, 99), (2, 70));
        assert_eq!(c.end_offset_for(3, 99), (2, 70));
        assert_eq!(c.end_offset_for(0, 99), (0, 40));
        assert_eq!(c.end_offset_for(6, 99), UNDEFINED);
        assert_eq!(c.end_offset_for(-1, 99), UNDEFINED);
        let again = EpochCache::load(dir.path())
            .expect("load")
            .expect("present");
        assert_eq!(again.entries(), c.entries());
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        assert_eq!(text, "0\n3\n0 0\n2 40\n5 70\n");
    }

    #[test]
    fn the_log_start_cuts_old_epochs_and_a_new_leader_cuts_a_divergent_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = EpochCache::empty(dir.path());
        c.assign(0, 0).expect("assign");
        c.assign(1, 50).expect("assign");
        c.assign(3, 80).expect("assign");
        c.truncate_from_start(60).expect("truncate");
        assert_eq!(
            c.entries(),
            [
                EpochEntry {
                    epoch: 1,
                    start_offset: 60
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 80
                }
            ]
        );
        assert_eq!(c.end_offset_for(0, 100), (0, 60));
        c.assign(4, 70).expect("assign");
        assert_eq!(c.latest_epoch(), Some(4));
        assert_eq!(c.entries().len(), 2);
        let again = EpochCache::load(dir.path())
            .expect("load")
            .expect("present");
        assert_eq!(again.entries(), c.entries());
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in [
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n2\n3 10\n1 20\n",
            "0\n1\nx 1\n",
            "",
        ] {
            std::fs::write(dir.path().join(FILE_NAME), bad).expect("write");
            assert!(EpochCache::load(dir.path()).is_err(), "{bad:?}");
        }
    }
}
