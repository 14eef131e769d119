//! Split files: the Tantivy index of one sealed segment packed into one immutable file.
//!
//! ```text
//! [file 0][file 1]...[file n-1][hotcache][footer (JSON)][footer length: u64 LE][magic: 8 bytes]
//! ```
//!
//! The footer names every file with its offset and length and describes the hotcache: the bytes
//! every query reads (small files whole, the tail of each larger file where Tantivy keeps its
//! per-file footers). A reader that knows the size of the hotcache and footer together (kept in
//! the remote metadata) gets both with one ranged GET and then reads only what a query touches.
//!
//! [`SplitDirectory`] is a read-only Tantivy `Directory` over a split, reading byte ranges from a
//! [`SplitSource`]: a local file, or an object in the remote tier read through the chunk cache.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::directory::error::{DeleteError, OpenReadError, OpenWriteError};
use tantivy::directory::{FileHandle, FileSlice, OwnedBytes, WatchCallback, WatchHandle, WritePtr};
use tantivy::{Directory, HasLen};

pub const MAGIC: &[u8; 8] = b"CHRSPLT1";
/// Files up to this size go into the hotcache whole.
const HOT_WHOLE_FILE: u64 = 32 * 1024;
/// Of larger files, this many bytes of the tail.
const HOT_TAIL: u64 = 8 * 1024;
/// Length word + magic.
const TRAILER: u64 = 16;

/// What a split holds, written in its footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub base_offset: i64,
    pub next_offset: i64,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub docs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    name: String,
    offset: u64,
    len: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HotEntry {
    name: String,
    /// Where the cached bytes start within the file.
    start: u64,
    len: u64,
    /// Where they are within the hotcache region.
    at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Footer {
    version: u32,
    info: SplitInfo,
    files: Vec<FileEntry>,
    hotcache: Vec<HotEntry>,
    /// Offset of the hotcache region in the split.
    hotcache_offset: u64,
}

/// Packs `files` (names relative to `dir`) into the split file `out`, fsynced. Returns the
/// split's total size and the size of its hotcache + footer region.
pub fn pack(dir: &Path, files: &[String], info: &SplitInfo, out: &Path) -> io::Result<(u64, u64)> {
    let tmp = out.with_extension("split.tmp");
    let mut w = io::BufWriter::new(std::fs::File::create(&tmp)?);
    let mut entries = Vec::with_capacity(files.len());
    let mut offset = 0u64;
    for name in files {
        let bytes = std::fs::read(dir.join(name))?;
        w.write_all(&bytes)?;
        entries.push(FileEntry {
            name: name.clone(),
            offset,
            len: bytes.len() as u64,
        });
        offset += bytes.len() as u64;
    }
    let hotcache_offset = offset;
    let mut hot = Vec::new();
    let mut hot_entries = Vec::new();
    for e in &entries {
        let start = if e.len <= HOT_WHOLE_FILE {
            0
        } else {
            e.len - HOT_TAIL
        };
        let bytes = read_range(&dir.join(&e.name), start..e.len)?;
        hot_entries.push(HotEntry {
            name: e.name.clone(),
            start,
            len: bytes.len() as u64,
            at: hot.len() as u64,
        });
        hot.extend_from_slice(&bytes);
    }
    w.write_all(&hot)?;
    let footer = serde_json::to_vec(&Footer {
        version: 1,
        info: info.clone(),
        files: entries,
        hotcache: hot_entries,
        hotcache_offset,
    })
    .map_err(io::Error::other)?;
    w.write_all(&footer)?;
    w.write_all(&(footer.len() as u64).to_le_bytes())?;
    w.write_all(MAGIC)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, out)?;
    if let Some(parent) = out.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    let total = offset + hot.len() as u64 + footer.len() as u64 + TRAILER;
    Ok((total, total - hotcache_offset))
}

fn read_range(path: &Path, range: Range<u64>) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    f.read_exact_at(&mut buf, range.start)?;
    Ok(buf)
}

/// Reads byte ranges of one split, wherever it is.
pub trait SplitSource: Send + Sync + fmt::Debug + 'static {
    fn size(&self) -> u64;
    fn read(&self, range: Range<u64>) -> io::Result<OwnedBytes>;
}

/// A split on local disk.
#[derive(Debug)]
pub struct LocalSplit {
    slice: FileSlice,
}

impl LocalSplit {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            slice: FileSlice::open(path)?,
        })
    }
}

impl SplitSource for LocalSplit {
    fn size(&self) -> u64 {
        self.slice.len() as u64
    }

    fn read(&self, range: Range<u64>) -> io::Result<OwnedBytes> {
        self.slice
            .read_bytes_slice(range.start as usize..range.end as usize)
    }
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// The parsed footer and hotcache of a split.
#[derive(Debug)]
struct Parsed {
    info: SplitInfo,
    /// Bytes from the start of the hotcache to the end of the split.
    tail_bytes: u64,
    files: HashMap<PathBuf, FileEntry>,
    hot: HashMap<PathBuf, (u64, OwnedBytes)>,
}

/// Parses the tail of a split: `tail` holds its last `tail.len()` bytes, which must cover the
/// hotcache, the footer and the trailer. With fewer bytes the error says how many are needed.
fn parse_tail(total: u64, tail: &OwnedBytes) -> Result<Parsed, TailError> {
    let t = tail.as_slice();
    if (t.len() as u64) < TRAILER {
        return Err(TailError::Need(TRAILER));
    }
    if &t[t.len() - 8..] != MAGIC {
        return Err(TailError::Bad(invalid("not a split file (bad magic)")));
    }
    let footer_len = u64::from_le_bytes(t[t.len() - 16..t.len() - 8].try_into().unwrap());
    if footer_len + TRAILER > total {
        return Err(TailError::Bad(invalid(
            "split footer length is out of range",
        )));
    }
    if (t.len() as u64) < footer_len + TRAILER {
        return Err(TailError::Need(footer_len + TRAILER));
    }
    let footer_start = t.len() - TRAILER as usize - footer_len as usize;
    let footer: Footer = serde_json::from_slice(&t[footer_start..t.len() - TRAILER as usize])
        .map_err(|e| TailError::Bad(invalid(format!("split footer: {e}"))))?;
    let tail_start = total - t.len() as u64;
    if footer.hotcache_offset < tail_start {
        return Err(TailError::Need(total - footer.hotcache_offset));
    }
    let hot_base = (footer.hotcache_offset - tail_start) as usize;
    let mut hot = HashMap::new();
    for h in &footer.hotcache {
        let a = hot_base + h.at as usize;
        let b = a + h.len as usize;
        if b > footer_start {
            return Err(TailError::Bad(invalid("split hotcache entry out of range")));
        }
        hot.insert(PathBuf::from(&h.name), (h.start, tail.slice(a..b)));
    }
    let mut files = HashMap::new();
    for f in footer.files {
        if f.offset + f.len > footer.hotcache_offset {
            return Err(TailError::Bad(invalid("split file entry out of range")));
        }
        files.insert(PathBuf::from(&f.name), f);
    }
    Ok(Parsed {
        tail_bytes: total - footer.hotcache_offset,
        info: footer.info,
        files,
        hot,
    })
}

enum TailError {
    Need(u64),
    Bad(io::Error),
}

/// A read-only Tantivy directory over one split.
#[derive(Clone)]
pub struct SplitDirectory {
    source: Arc<dyn SplitSource>,
    parsed: Arc<Parsed>,
}

impl fmt::Debug for SplitDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SplitDirectory({:?})", self.source)
    }
}

impl SplitDirectory {
    /// Opens a split; `tail_hint` is how many bytes at its end to read first (the hotcache and
    /// footer size from the remote metadata, or a guess).
    pub fn open(source: Arc<dyn SplitSource>, tail_hint: u64) -> io::Result<Self> {
        let total = source.size();
        let mut want = tail_hint.clamp(TRAILER, total.max(TRAILER));
        for _ in 0..3 {
            let want_now = want.min(total);
            let tail = source.read(total - want_now..total)?;
            match parse_tail(total, &tail) {
                Ok(parsed) => {
                    return Ok(Self {
                        source,
                        parsed: Arc::new(parsed),
                    });
                }
                Err(TailError::Need(n)) if n > want_now && n <= total => want = n,
                Err(TailError::Need(_)) => return Err(invalid("split is truncated")),
                Err(TailError::Bad(e)) => return Err(e),
            }
        }
        Err(invalid("split footer could not be read"))
    }

    pub fn info(&self) -> &SplitInfo {
        &self.parsed.info
    }

    /// Size of the hotcache + footer region: what one read at the end must cover.
    pub fn tail_bytes(&self) -> u64 {
        self.parsed.tail_bytes
    }
}

/// One file inside a split.
struct SplitFile {
    source: Arc<dyn SplitSource>,
    offset: u64,
    len: u64,
    /// Bytes `[hot_start, len)` of the file, already in memory.
    hot: Option<(u64, OwnedBytes)>,
}

impl fmt::Debug for SplitFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SplitFile(offset={}, len={})", self.offset, self.len)
    }
}

impl HasLen for SplitFile {
    fn len(&self) -> usize {
        self.len as usize
    }
}

impl FileHandle for SplitFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        let (a, b) = (range.start as u64, range.end as u64);
        if b > self.len || a > b {
            return Err(invalid(format!(
                "read {a}..{b} past the end of a {} byte file",
                self.len
            )));
        }
        if let Some((start, bytes)) = &self.hot
            && a >= *start
        {
            return Ok(bytes.slice((a - start) as usize..(b - start) as usize));
        }
        self.source.read(self.offset + a..self.offset + b)
    }
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "split files are read-only")
}

impl Directory for SplitDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        let entry = self
            .parsed
            .files
            .get(path)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))?;
        Ok(Arc::new(SplitFile {
            source: self.source.clone(),
            offset: entry.offset,
            len: entry.len,
            hot: self.parsed.hot.get(path).cloned(),
        }))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError {
            io_error: Arc::new(read_only()),
            filepath: path.to_path_buf(),
        })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.parsed.files.contains_key(path))
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::IoError {
            io_error: Arc::new(read_only()),
            filepath: path.to_path_buf(),
        })
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let handle = self.get_file_handle(path)?;
        let len = handle.len();
        handle
            .read_bytes(0..len)
            .map(|b| b.as_slice().to_vec())
            .map_err(|e| OpenReadError::IoError {
                io_error: Arc::new(e),
                filepath: path.to_path_buf(),
            })
    }

    fn atomic_write(&self, _path: &Path, _data: &[u8]) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(
        &self,
        _lock: &tantivy::directory::Lock,
    ) -> Result<tantivy::directory::DirectoryLock, tantivy::directory::error::LockError> {
        Ok(tantivy::directory::DirectoryLock::from(Box::new(())))
    }

    fn watch(&self, _callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> Vec<String> {
        std::fs::write(dir.join("small"), b"tiny file").unwrap();
        let big: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(dir.join("big"), &big).unwrap();
        vec!["small".into(), "big".into()]
    }

    fn info() -> SplitInfo {
        SplitInfo {
            base_offset: 10,
            next_offset: 20,
            min_timestamp_ms: 1,
            max_timestamp_ms: 2,
            docs: 10,
        }
    }

    /// Counts the reads that reach the source, to show the hotcache serving the tails.
    #[derive(Debug)]
    struct Counting(LocalSplit, std::sync::atomic::AtomicUsize);
    impl SplitSource for Counting {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read(&self, range: Range<u64>) -> io::Result<OwnedBytes> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.read(range)
        }
    }

    #[test]
    fn files_read_back_byte_identical_and_tails_come_from_the_hotcache() {
        let tmp = tempfile::tempdir().unwrap();
        let names = sample(tmp.path());
        let out = tmp.path().join("x.split");
        let (total, tail) = pack(tmp.path(), &names, &info(), &out).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), total);
        let source = Arc::new(Counting(
            LocalSplit::open(&out).unwrap(),
            Default::default(),
        ));
        let dir = SplitDirectory::open(source.clone(), tail).unwrap();
        assert_eq!(dir.info(), &info());
        assert_eq!(dir.tail_bytes(), tail);
        // One read for the whole tail.
        assert_eq!(source.1.load(std::sync::atomic::Ordering::Relaxed), 1);
        for name in &names {
            let want = std::fs::read(tmp.path().join(name)).unwrap();
            let got = dir.atomic_read(Path::new(name)).unwrap();
            assert_eq!(got, want, "{name}");
        }
        let before = source.1.load(std::sync::atomic::Ordering::Relaxed);
        let h = dir.get_file_handle(Path::new("big")).unwrap();
        let n = h.len();
        let last = h.read_bytes(n - 100..n).unwrap();
        assert_eq!(
            last.as_slice(),
            &std::fs::read(tmp.path().join("big")).unwrap()[n - 100..]
        );
        let small = dir.get_file_handle(Path::new("small")).unwrap();
        assert_eq!(small.read_bytes(0..4).unwrap().as_slice(), b"tiny");
        assert_eq!(source.1.load(std::sync::atomic::Ordering::Relaxed), before);
        assert!(!dir.exists(Path::new("nope")).unwrap());
        assert!(dir.atomic_write(Path::new("x"), b"y").is_err());
    }

    #[test]
    fn a_short_tail_hint_reads_again_and_garbage_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let names = sample(tmp.path());
        let out = tmp.path().join("x.split");
        pack(tmp.path(), &names, &info(), &out).unwrap();
        let dir = SplitDirectory::open(Arc::new(LocalSplit::open(&out).unwrap()), 16).unwrap();
        assert_eq!(dir.info().docs, 10);
        // Every truncation and a flipped magic are errors, never a panic.
        let raw = std::fs::read(&out).unwrap();
        for cut in [0usize, 7, 16, raw.len() / 2, raw.len() - 1] {
            let p = tmp.path().join(format!("cut{cut}"));
            std::fs::write(&p, &raw[..cut]).unwrap();
            let r = LocalSplit::open(&p).and_then(|s| SplitDirectory::open(Arc::new(s), 64));
            assert!(r.is_err(), "cut at {cut}");
        }
        let mut bad = raw.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let p = tmp.path().join("bad");
        std::fs::write(&p, &bad).unwrap();
        assert!(SplitDirectory::open(Arc::new(LocalSplit::open(&p).unwrap()), 1 << 20).is_err());
    }
}
