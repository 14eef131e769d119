//! Remote-tier chunks in sealed memory files, so that a fetch sends them with `sendfile` like a
//! local segment instead of copying them into the socket.
//!
//! A chunk fetched from the object store is written once into its own `memfd`, sealed against
//! every change (`F_SEAL_WRITE`, `F_SEAL_SHRINK`, `F_SEAL_GROW`, `F_SEAL_SEAL`) and mapped
//! read-only; the chunk cache holds it as ordinary [`Bytes`] over that mapping. A slice of such
//! bytes is found again by its address ([`file_region`]) and sent as a range of the memory file.
//! Sealed, the pages never change, and pages still referenced by a socket's queue outlive the
//! mapping and the file, so what a fetch sends is what was fetched even when the cache evicts the
//! chunk meanwhile. Anything that fails here falls back to ordinary heap bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::log::FileRegion;

/// Smaller chunks are not worth a file (four system calls each).
pub const MIN_SHARED_BYTES: usize = 16 << 10;
/// Memory files alive at once, at most (each is a descriptor; 4 GiB of 4 MiB chunks).
const MAX_SHARED: usize = 1024;

/// Start address → (length, file) of every live mapping.
static MAPPINGS: Mutex<BTreeMap<usize, (usize, Weak<File>)>> = Mutex::new(BTreeMap::new());
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Mapping {
    ptr: NonNull<std::ffi::c_void>,
    len: usize,
    _file: Arc<File>,
}

// The mapping is read-only and its file sealed: shared reads from any thread are fine.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until `drop`, and they never change (sealed).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr() as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unregistered before unmapping: the address can be reused only after `munmap`.
        MAPPINGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.ptr.as_ptr() as usize));
        // SAFETY: mapped by `share` with this length, and no slice of it outlives the owner.
        if let Err(e) = unsafe { munmap(self.ptr, self.len) } {
            tracing::warn!(error = %e, "munmap of a shared chunk failed");
        }
        LIVE.fetch_sub(1, Relaxed);
    }
}

/// `data` in a sealed memory file when it is large enough and the limit allows, else `data`
/// itself. The bytes are equal either way.
pub fn share(data: Bytes) -> Bytes {
    if data.len() < MIN_SHARED_BYTES || LIVE.fetch_add(1, Relaxed) >= MAX_SHARED {
        if data.len() >= MIN_SHARED_BYTES {
            LIVE.fetch_sub(1, Relaxed);
        }
        return data;
    }
    match map(&data) {
        Ok(shared) => shared,
        Err(e) => {
            LIVE.fetch_sub(1, Relaxed);
            tracing::debug!(error = %e, "no memory file for a chunk; kept on the heap");
            data
        }
    }
}

fn map(data: &[u8]) -> std::io::Result<Bytes> {
    let fd = memfd_create(
        "chronik-chunk",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut file = File::from(fd);
    file.write_all(data)?;
    fcntl(
        &file,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    let len = NonZeroUsize::new(data.len()).ok_or(std::io::ErrorKind::InvalidInput)?;
    // SAFETY: a fresh read-only shared mapping of a sealed file of exactly `len` bytes.
    // Populated up front: one fault per page later would cost more than the copy it saves.
    let ptr = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ,
            MapFlags::MAP_SHARED | MapFlags::MAP_POPULATE,
            &file,
            0,
        )?
    };
    let file = Arc::new(file);
    MAPPINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ptr.as_ptr() as usize, (data.len(), Arc::downgrade(&file)));
    Ok(Bytes::from_owner(Mapping {
        ptr,
        len: data.len(),
        _file: file,
    }))
}

/// The memory-file range `b` is a slice of, if it is one (see [`share`]). `b` keeps the
/// mapping alive while this looks it up.
pub fn file_region(b: &Bytes) -> Option<FileRegion> {
    if b.is_empty() {
        return None;
    }
    let addr = b.as_ptr() as usize;
    let map = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
    let (&start, (len, file)) = map.range(..=addr).next_back()?;
    if addr + b.len() > start + len {
        return None;
    }
    Some(FileRegion {
        file: file.upgrade()?,
        position: (addr - start) as u64,
        len: u32::try_from(b.len()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn shared_chunks_read_back_as_bytes_and_as_file_ranges() {
        let data: Vec<u8> = (0..(2 << 20)).map(|i| (i % 251) as u8).collect();
        let shared = share(Bytes::from(data.clone()));
        assert_eq!(&shared[..], &data[..]);
        let slice = shared.slice(1000..300_000);
        let region = file_region(&slice).expect("a slice of a shared chunk is a file range");
        assert_eq!(region.position, 1000);
        assert_eq!(region.len, 299_000);
        let mut buf = vec![0u8; region.len as usize];
        region
            .file
            .read_exact_at(&mut buf, region.position)
            .unwrap();
        assert_eq!(&buf[..], &data[1000..300_000]);
        // Sealed: nobody can change what a fetch may still be sending.
        assert!(region.file.write_at(b"x", 0).is_err());

        // Heap bytes and small chunks are not file ranges.
        assert!(file_region(&Bytes::from(data.clone())).is_none());
        let small = share(Bytes::from(vec![1u8; MIN_SHARED_BYTES - 1]));
        assert!(file_region(&small).is_none());

        // The file stays readable through a region after the chunk itself is gone.
        drop(slice);
        drop(shared);
        region
            .file
            .read_exact_at(&mut buf, region.position)
            .unwrap();
        assert_eq!(&buf[..], &data[1000..300_000]);
    }
}
