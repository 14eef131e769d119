//! Small helpers shared by several modules: wall-clock time, crash-safe file replacement and
//! thread priorities.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Gives the calling thread the lowest priority of the normal scheduling class (nice 19; Linux
/// applies a nice value to that one thread). False where that was refused.
pub fn lowest_nice() -> bool {
    use nix::libc;
    // SAFETY: gettid and setpriority only take and return integers.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) == 0 }
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`: it runs only when no
/// other thread wants the CPU), or at nice 19 where that is refused.
pub fn idle_class() {
    use nix::libc;
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; param is valid for SCHED_IDLE.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        lowest_nice();
    }
}

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file:
/// write a temporary file, fsync it, rename it over the target, fsync the directory.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(match path.extension() {
        Some(ext) => format!("{}.tmp", ext.to_string_lossy()),
        None => "tmp".to_string(),
    });
    {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
