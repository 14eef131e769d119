//! The fixed header of a magic-v2 record batch, read and checked without decoding its records.
//!
//! This module owns the byte layout of the batch header. It never decompresses or re-encodes a
//! batch: the broker stores batches exactly as the producer sent them, and only the fields outside
//! the CRC (base offset, partition leader epoch) are ever rewritten.

use bytes::{Buf, Bytes};

/// Size of the batch header up to and including the record count.
pub const BATCH_HEADER_LEN: usize = 61;
/// `base_offset` (8) + `batch_length` (4): the part before the length-covered region.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal value of `batch_length` (header minus the log overhead).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
/// The CRC covers everything from the attributes to the end of the batch.
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why a batch was refused. Each maps to one Kafka error code at the protocol edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch is truncated: {0} bytes left, header needs {1}")]
    Truncated(usize, usize),
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("record batch magic {0} is not supported (only magic 2)")]
    UnsupportedMagic(i8),
    #[error("record batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch declares {count} records but a last offset delta of {last_offset_delta}")]
    InvalidRecordCount { count: i32, last_offset_delta: i32 },
    #[error("clients may not write control batches")]
    ControlBatch,
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
}

/// The decoded header of one batch, plus where it sits in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `LOG_OVERHEAD + batch_length` long.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `buf` (which may hold more).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated(buf.len(), BATCH_HEADER_LEN));
        }
        let mut b = &buf[..BATCH_HEADER_LEN];
        let header = BatchHeader {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            first_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        };
        if header.magic != 2 {
            return Err(BatchError::UnsupportedMagic(header.magic));
        }
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength(header.batch_length));
        }
        Ok(header)
    }

    /// Total size of the batch on disk and on the wire.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_FLAG != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// The sequence number of the batch's last record, wrapping like Kafka's.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Validates one whole batch (`bytes` holds exactly the batch) the way a producer's batch is
/// checked before it is appended: structure, codec, record count and CRC32C.
pub fn validate_client_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.total_len() != bytes.len() {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    if header.compression() > 4 {
        return Err(BatchError::UnknownCompression(header.compression()));
    }
    if header.record_count < 1
        || header.last_offset_delta < 0
        || header.last_offset_delta != header.record_count - 1
    {
        return Err(BatchError::InvalidRecordCount {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    check_crc(&header, bytes)?;
    Ok(header)
}

/// Checks the CRC32C of a batch whose header was already parsed.
pub fn check_crc(header: &BatchHeader, bytes: &[u8]) -> Result<(), BatchError> {
    let computed = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..header.total_len()]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Splits a produce request's record set into its batches, validating each.
/// Returns the slices (sharing `records`' memory) with their headers.
pub fn split_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, BatchError> {
    let mut out = Vec::with_capacity(1);
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated(rest.len(), LOG_OVERHEAD));
        }
        let batch_length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if rest.len() < total {
            return Err(BatchError::Truncated(rest.len(), total));
        }
        let slice = records.slice(pos..pos + total);
        let header = validate_client_batch(&slice)?;
        out.push((header, slice));
        pos += total;
    }
    Ok(out)
}

/// Splits record data a leader sent to a follower into whole, CRC-valid batches as stored
/// (control batches included). A batch cut off at the end of the data (a fetch answer may end
/// inside one) is left out; a damaged batch is an error.
pub fn split_stored_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while records.len() - pos >= LOG_OVERHEAD {
        let rest = &records[pos..];
        let batch_length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if rest.len() < total {
            break;
        }
        let slice = records.slice(pos..pos + total);
        let header = BatchHeader::parse(&slice)?;
        check_crc(&header, &slice)?;
        out.push((header, slice));
        pos += total;
    }
    Ok(out)
}

/// The first 17 bytes of a batch as the broker stores it: the assigned base offset, the length and
/// the leader epoch rewritten, the magic byte kept. None of these is covered by the CRC.
pub fn stored_prefix(
    batch: &[u8],
    base_offset: i64,
    partition_leader_epoch: i32,
) -> [u8; MAGIC_OFFSET + 1] {
    let mut prefix = [0u8; MAGIC_OFFSET + 1];
    prefix[..8].copy_from_slice(&base_offset.to_be_bytes());
    prefix[8..PARTITION_LEADER_EPOCH_OFFSET].copy_from_slice(&batch[8..12]);
    prefix[PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET]
        .copy_from_slice(&partition_leader_epoch.to_be_bytes());
    prefix[MAGIC_OFFSET] = batch[MAGIC_OFFSET];
    prefix
}

/// Rewrites a batch for `message.timestamp.type=LogAppendTime`: the timestamp-type flag is set,
/// both timestamps become the append time, and the CRC is recomputed (it covers these fields).
pub fn with_log_append_time(batch: &[u8], now_ms: i64) -> Vec<u8> {
    let mut out = batch.to_vec();
    let attrs = i16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]])
        | TIMESTAMP_TYPE_FLAG;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    // first_timestamp directly precedes max_timestamp.
    out[MAX_TIMESTAMP_OFFSET - 8..MAX_TIMESTAMP_OFFSET].copy_from_slice(&now_ms.to_be_bytes());
    out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    /// Builds a valid uncompressed batch holding `count` records with small values, by hand, so
    /// the log's tests do not depend on a client library.
    pub fn make_batch(base_offset: i64, count: i32, timestamp: i64) -> Vec<u8> {
        make_idempotent_batch(base_offset, count, timestamp, -1, -1, -1)
    }

    pub fn make_idempotent_batch(
        base_offset: i64,
        count: i32,
        timestamp: i64,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Vec<u8> {
        let mut records = BytesMut::new();
        for i in 0..count {
            let mut rec = BytesMut::new();
            rec.put_i8(0); // attributes
            put_varlong(&mut rec, 0); // timestamp delta
            put_varlong(&mut rec, i as i64); // offset delta
            put_varlong(&mut rec, -1); // null key
            let value = format!("value-{i}");
            put_varlong(&mut rec, value.len() as i64);
            rec.put_slice(value.as_bytes());
            put_varlong(&mut rec, 0); // no headers
            put_varlong(&mut records, rec.len() as i64);
            records.put_slice(&rec);
        }
        let mut body = BytesMut::new();
        body.put_i16(0); // attributes
        body.put_i32(count - 1);
        body.put_i64(timestamp);
        body.put_i64(timestamp);
        body.put_i64(producer_id);
        body.put_i16(producer_epoch);
        body.put_i32(base_sequence);
        body.put_i32(count);
        body.put_slice(&records);
        let crc = crc32c::crc32c(&body);
        let mut out = BytesMut::new();
        out.put_i64(base_offset);
        out.put_i32((4 + 1 + 4 + body.len()) as i32);
        out.put_i32(0);
        out.put_i8(2);
        out.put_u32(crc);
        out.put_slice(&body);
        out.to_vec()
    }

    fn put_varlong(buf: &mut BytesMut, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z & !0x7f == 0 {
                buf.put_u8(z as u8);
                return;
            }
            buf.put_u8((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    #[test]
    fn parses_a_valid_batch() {
        let batch = make_batch(0, 3, 1_000);
        let h = validate_client_batch(&batch).expect("valid");
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_len(), batch.len());
        assert_eq!(h.max_timestamp, 1_000);
    }

    #[test]
    fn detects_a_flipped_bit() {
        let mut batch = make_batch(0, 3, 1_000);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(
            validate_client_batch(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn rejects_other_magics_and_bad_lengths() {
        let mut batch = make_batch(0, 1, 1);
        batch[MAGIC_OFFSET] = 1;
        assert_eq!(
            validate_client_batch(&batch),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut batch = make_batch(0, 1, 1);
        batch[8..12].copy_from_slice(&5i32.to_be_bytes());
        assert!(matches!(
            split_batches(&Bytes::from(batch)),
            Err(BatchError::InvalidLength(5))
        ));
        let batch = make_batch(0, 1, 1);
        assert!(matches!(
            split_batches(&Bytes::copy_from_slice(&batch[..batch.len() - 1])),
            Err(BatchError::Truncated(..))
        ));
    }

    #[test]
    fn splits_several_batches_without_copying() {
        let mut all = make_batch(0, 2, 1);
        all.extend(make_batch(0, 5, 2));
        let all = Bytes::from(all);
        let parts = split_batches(&all).expect("valid");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].0.record_count, 5);
        assert_eq!(parts[0].1.as_ptr(), all.as_ptr());
    }

    #[test]
    fn log_append_time_keeps_the_crc_valid() {
        let batch = make_batch(0, 2, 5);
        let rewritten = with_log_append_time(&batch, 99);
        let h = validate_client_batch(&rewritten).expect("still valid");
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99);
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        let mut batch = make_idempotent_batch(0, 3, 1, 7, 0, i32::MAX - 1);
        let h = BatchHeader::parse(&batch).expect("parse");
        assert_eq!(h.last_sequence(), 0);
        batch.truncate(BATCH_HEADER_LEN);
    }
}
