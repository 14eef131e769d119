//! Metadata records kept in the partitions of an internal topic (`__consumer_offsets`,
//! `__remote_log_metadata`): each record's value is one postcard-encoded [`MetadataRecord`], its
//! key says whom it is about, batches are uncompressed.

use std::io;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::log::batch::split_stored_batches;
use crate::metadata::MetadataRecord;

/// One batch holding `records`, each keyed by `key`.
pub fn encode(key: &[u8], records: &[MetadataRecord], now_ms: i64) -> io::Result<Bytes> {
    let key = Bytes::from(key.to_vec());
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let value = postcard::to_stdvec(r).map_err(io::Error::other)?;
        out.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(key.clone()),
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        });
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &out,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buf.freeze())
}

/// Calls `f` with every record at or after offset `from` in `bytes` (whole stored batches) and
/// returns the offset after the last batch, or `from` when there is none. Records that do not
/// decode are skipped with a warning naming `topic`.
pub fn decode(
    topic: &str,
    bytes: &Bytes,
    from: i64,
    mut f: impl FnMut(i64, MetadataRecord),
) -> io::Result<i64> {
    let mut next = from;
    let batches = split_stored_batches(bytes).map_err(|e| io::Error::other(e.to_string()))?;
    for (h, raw) in batches {
        let mut raw = raw;
        let set = RecordBatchDecoder::decode(&mut raw)
            .map_err(|e| io::Error::other(format!("{topic} batch at {}: {e}", h.base_offset)))?;
        for r in set.records {
            if r.offset < from || r.control {
                continue;
            }
            let Some(value) = r.value else { continue };
            match postcard::from_bytes::<MetadataRecord>(&value) {
                Ok(rec) => f(r.offset, rec),
                Err(e) => {
                    tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable record of {topic}")
                }
            }
        }
        next = next.max(h.last_offset() + 1);
    }
    Ok(next)
}
