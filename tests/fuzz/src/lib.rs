//! Helpers shared by the fuzz targets and the corpus generator.

use std::path::PathBuf;

/// A scratch directory on a memory filesystem when there is one: the targets that write files
/// (the metadata WAL, config files, the request target's broker) run thousands of times a second.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    let builder = tempfile::Builder::new().prefix(prefix).to_owned();
    if shm.is_dir()
        && let Ok(d) = builder.tempdir_in(&shm)
    {
        return d;
    }
    builder.tempdir().expect("a temporary directory")
}

/// Frames `body` the way the metadata WAL does: length, CRC32C of the body, body.
pub fn wal_frame(out: &mut Vec<u8>, index: u64, payload: &[u8]) {
    let mut body = Vec::with_capacity(8 + payload.len());
    body.extend_from_slice(&index.to_be_bytes());
    body.extend_from_slice(payload);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
}

/// Recomputes the length and CRC32C fields of every magic-v2 batch in `buf` that has room for a
/// header, so that mutations of the records get past the CRC check and reach the decoders. The
/// batch length is kept when it fits, else it is cut to what is left.
pub fn fix_batch_crcs(buf: &mut [u8]) {
    const HEADER: usize = 61;
    let mut at = 0;
    while buf.len() - at >= HEADER {
        let rest = buf.len() - at;
        let declared = i32::from_be_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
        let len = if declared >= (HEADER - 12) as i32 && 12 + declared as usize <= rest {
            declared as usize
        } else {
            rest - 12
        };
        buf[at + 8..at + 12].copy_from_slice(&(len as i32).to_be_bytes());
        let crc = crc32c::crc32c(&buf[at + 21..at + 12 + len]);
        buf[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at += 12 + len;
    }
}

/// A configuration as TOML text.
pub fn to_toml(config: &chronik::Config) -> String {
    toml::to_string(config).expect("a config serialises to TOML")
}
