//! Zero-copy transfer of a segment file range to a plaintext socket with `sendfile(2)`.
//!
//! The record bytes of a fetch never enter user space on this path. The file handle is shared
//! (`Arc<File>`), so retention deleting the segment during the transfer cannot break it.

use std::io;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::log::FileRegion;

/// Sends `region` to `stream`, waiting for socket readiness between partial transfers.
pub async fn send_region(stream: &TcpStream, region: &FileRegion) -> io::Result<()> {
    let mut offset = region.position as i64;
    let end = region.position as i64 + region.len as i64;
    while offset < end {
        stream.writable().await?;
        let remaining = (end - offset) as usize;
        let result = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(stream, &*region.file, Some(&mut offset), remaining)
                .map_err(io::Error::from)
        });
        match result {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended before the promised fetch bytes",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
