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

/// The CPUs the calling thread may run on (all of them when the mask cannot be read).
pub fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Restricts the calling thread to `cpus` (nothing changes when it is empty).
pub fn run_on(cpus: &[usize]) -> nix::Result<()> {
    run_thread_on(0, cpus)
}

fn run_thread_on(tid: i32, cpus: &[usize]) -> nix::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set)
}

/// Moves every thread of this process that is in the idle scheduling class ([`idle_class`])
/// onto `cpus`. Returns how many were moved; a thread that ended meanwhile is skipped.
pub fn move_idle_threads(cpus: &[usize]) -> io::Result<usize> {
    use nix::libc;
    let mut moved = 0;
    for entry in fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: sched_getscheduler only reads the policy of the thread `tid` (or fails).
        if unsafe { libc::sched_getscheduler(tid) } == libc::SCHED_IDLE
            && run_thread_on(tid, cpus).is_ok()
        {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file:
/// write a temporary file, fsync it, rename it over the target, fsync the directory.
/// Replaces `path` with `contents` through a temporary file and a rename, without fsync: a
/// reader sees the old file or the new one, never a mix, but a power loss may leave either (for
/// files that are checked and rebuilt when they cannot be trusted, such as segment indexes).
pub fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    if let Err(e) = fs::write(&tmp, contents) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)
}

fn tmp_path(path: &Path) -> std::path::PathBuf {
    path.with_extension(match path.extension() {
        Some(ext) => format!("{}.tmp", ext.to_string_lossy()),
        None => "tmp".to_string(),
    })
}

pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        f.sync_all()
    });
    if let Err(e) = written {
        // A full disk must not also leave the half-written temporary file behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
