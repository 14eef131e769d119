//! The free-space guard of the data directory.
//!
//! Below a floor of free space, produce is refused with a retriable error *before* the disk is
//! full, so a full disk never decides which write fails; reads, deletes and metadata changes
//! (all small or freeing) keep working, and produce resumes by itself once space returns. The
//! file system is read every [`POLL_INTERVAL`]; between two reads every appended byte is taken
//! off the estimate, so a fast producer cannot write far past the floor in between.
//!
//! It never writes or deletes anything itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the housekeeping task reads the file system's free space.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub struct DiskSpaceGuard {
    dir: PathBuf,
    min_free_bytes: u64,
    min_free_percent: f64,
    /// Free bytes at the last poll, less what was appended since.
    free: AtomicU64,
    /// The floor computed at the last poll (0: no floor).
    floor: AtomicU64,
    low: AtomicBool,
    refused: AtomicU64,
}

impl DiskSpaceGuard {
    pub fn new(dir: &Path, min_free_bytes: u64, min_free_percent: f64) -> Self {
        let guard = Self {
            dir: dir.to_path_buf(),
            min_free_bytes,
            min_free_percent,
            free: AtomicU64::new(u64::MAX),
            floor: AtomicU64::new(0),
            low: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        };
        guard.poll();
        guard
    }

    /// The floor for a file system of `total` bytes: the smaller of the two bounds that are on.
    fn floor_for(&self, total: u64) -> u64 {
        let by_percent = (total as f64 * self.min_free_percent / 100.0) as u64;
        match (self.min_free_bytes, by_percent) {
            (0, 0) => 0,
            (0, p) => p,
            (b, 0) => b,
            (b, p) => b.min(p),
        }
    }

    /// Reads the file system's free space and updates the verdict; logs when it changes.
    pub fn poll(&self) {
        let stat = match nix::sys::statvfs::statvfs(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read free space of the data directory");
                return;
            }
        };
        let block = stat.fragment_size() as u64;
        let free = (stat.blocks_available() as u64).saturating_mul(block);
        let total = (stat.blocks() as u64).saturating_mul(block);
        let floor = self.floor_for(total);
        self.free.store(free, Ordering::Relaxed);
        self.floor.store(floor, Ordering::Relaxed);
        // Once refusing, produce resumes only with some room above the floor (a tenth of it, at
        // least 1 MiB): otherwise each poll lets one more request in that crosses it again.
        let low = if self.low.load(Ordering::Relaxed) {
            free < floor.saturating_add((floor / 10).max(1 << 20))
        } else {
            free < floor
        };
        self.set_low(low, free, floor);
    }

    fn set_low(&self, low: bool, free: u64, floor: u64) {
        let was = self.low.swap(low, Ordering::Relaxed);
        if low && !was {
            tracing::warn!(dir = %self.dir.display(), free_bytes = free, floor_bytes = floor,
                "free space below the floor: refusing produce until space returns");
        } else if was && !low {
            tracing::info!(dir = %self.dir.display(), free_bytes = free, floor_bytes = floor,
                "free space above the floor again: produce resumed");
        }
    }

    /// Asks to append `bytes`: `Err` with the message for the client when the data directory
    /// is below its floor (or would be after this append).
    pub fn admit(&self, bytes: u64) -> Result<(), String> {
        let floor = self.floor.load(Ordering::Relaxed);
        if floor == 0 {
            return Ok(());
        }
        let free = self.free.load(Ordering::Relaxed);
        let after = free.saturating_sub(bytes);
        if after < floor {
            self.set_low(true, free, floor);
        }
        if self.low.load(Ordering::Relaxed) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "the broker's data directory is nearly full ({free} bytes free, floor \
                 {floor}): produce is refused until space is freed"
            ));
        }
        let _ = self
            .free
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(f.saturating_sub(bytes))
            });
        Ok(())
    }

    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Free bytes as last estimated.
    pub fn free_bytes(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    pub fn floor_bytes(&self) -> u64 {
        self.floor.load(Ordering::Relaxed)
    }

    /// Produce requests (partitions) refused by the guard since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_smaller_bound_that_is_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = DiskSpaceGuard::new(dir.path(), 1 << 30, 5.0);
        assert_eq!(g.floor_for(100 << 30), 1 << 30);
        assert_eq!(g.floor_for(1 << 30), (1u64 << 30) / 20);
        let g = DiskSpaceGuard::new(dir.path(), 0, 5.0);
        assert_eq!(g.floor_for(100 << 30), 5 << 30);
        let g = DiskSpaceGuard::new(dir.path(), 4096, 0.0);
        assert_eq!(g.floor_for(100 << 30), 4096);
        let g = DiskSpaceGuard::new(dir.path(), 0, 0.0);
        assert_eq!(g.floor_for(100 << 30), 0);
        assert!(g.admit(u64::MAX).is_ok());
    }

    #[test]
    fn appends_count_against_the_estimate_until_the_next_poll() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = DiskSpaceGuard::new(dir.path(), 1, 0.0);
        let free = g.free_bytes();
        assert!(free > 1 << 20, "the test needs some free space");
        assert!(g.admit(1 << 20).is_ok());
        assert_eq!(g.free_bytes(), free - (1 << 20));
        // Asking for more than is left is refused, and refused again until a poll.
        let err = g.admit(free).expect_err("below the floor");
        assert!(err.contains("nearly full"), "{err}");
        assert!(g.is_low());
        assert!(g.admit(1).is_err());
        assert_eq!(g.refused(), 2);
        g.poll();
        assert!(!g.is_low());
        assert!(g.admit(1).is_ok());
    }
}
