//! Replay of the metadata write-ahead log from arbitrary bytes: `metadata::record::decode_frame`
//! on the input, then `metadata::wal::Wal::open` on a scratch directory holding it as a WAL file
//! (and optionally a snapshot), as a broker does at boot after a crash or a disk fault.
//!
//! The first byte chooses how the rest becomes files:
//! - bit 0 clear: the rest is the WAL file as it is (torn frames, bad CRCs, garbage);
//! - bit 0 set: the rest is a list of `[u16 length][payload]` chunks, each written as a frame
//!   with a valid CRC, so that the payloads reach the record decoder (postcard) and the state
//!   machine; indexes count up from 1, or with bit 2 set come from each payload's first 8 bytes;
//!   with bit 1 set the first chunk is a snapshot body (written with a valid CRC) instead.
//!
//! What must hold: no panic; a log that opened opens again to the same state with nothing left
//! to truncate, and accepts a new record at the next index.
#![no_main]

use chronik::metadata::record::{Decoded, MetadataRecord, decode_frame};
use chronik::metadata::wal::Wal;
use libfuzzer_sys::fuzz_target;

fn chunks(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while rest.len() >= 2 && out.len() < 64 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let take = len.min(body.len());
        out.push(&body[..take]);
        rest = &body[take..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Frame by frame, the way replay walks a file.
    let mut at = 0;
    while at < rest.len() {
        match decode_frame(&rest[at..]) {
            Decoded::Record(_, _, size) => {
                assert!(size > 0 && at + size <= rest.len());
                at += size;
            }
            Decoded::Torn => break,
        }
    }

    let dir = chronik_fuzz::scratch_dir("chronik-fuzz-wal-");
    let wal_file = dir.path().join(format!("wal-{:020}.log", 1));
    if mode & 1 == 0 {
        std::fs::write(&wal_file, rest).expect("write the wal file");
    } else {
        let mut parts = chunks(rest).into_iter();
        if mode & 2 != 0
            && let Some(snap) = parts.next()
        {
            let mut body = snap.to_vec();
            let crc = crc32c::crc32c(&body);
            body.extend_from_slice(&crc.to_be_bytes());
            let path = dir.path().join(format!("snapshot-{:020}.bin", 1));
            std::fs::write(path, body).expect("write the snapshot");
        }
        let mut log = Vec::new();
        for (i, payload) in parts.enumerate() {
            if mode & 4 != 0 && payload.len() >= 8 {
                let mut idx = [0u8; 8];
                idx.copy_from_slice(&payload[..8]);
                chronik_fuzz::wal_frame(&mut log, u64::from_be_bytes(idx), &payload[8..]);
            } else {
                chronik_fuzz::wal_frame(&mut log, i as u64 + 1, payload);
            }
        }
        std::fs::write(&wal_file, log).expect("write the wal file");
    }

    let Ok((wal, state, _report)) = Wal::open(dir.path()) else {
        return;
    };
    drop(wal);
    let (mut wal, again, report) = Wal::open(dir.path()).expect("a log that opened opens again");
    assert_eq!(again, state, "replaying twice gives the same state");
    assert_eq!(
        report.truncated_bytes, 0,
        "the first replay cut every torn frame"
    );
    let mut state = again;
    let before = state.last_index;
    let rec = MetadataRecord::ProducerIdsReserved { end: 1000 };
    if let Ok(last) = wal.append(&[rec], &mut state) {
        assert_eq!(last, before + 1, "a new record follows the replayed ones");
        drop(wal);
        let (_wal, third, _) = Wal::open(dir.path()).expect("the log opens after an append");
        assert_eq!(third, state, "the appended record is replayed");
    }
});
