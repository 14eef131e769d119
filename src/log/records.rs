//! The record decoder: the records of whole v2 batches of any codec, as consumers see them
//! (offsets, timestamps with LogAppendTime applied, keys, values, headers), with decompression
//! bounded so that a small batch cannot claim gigabytes. The search indexer reads the log through
//! it; the log cleaner and transaction index will too.

use bytes::{Buf, Bytes};

use super::batch::{BATCH_HEADER_LEN, BatchHeader};

/// One record as the index sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What [`decode_batches`] found.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<LogRecord>,
    /// One message per batch that could not be decoded (it is skipped: one bad batch must not
    /// stop the indexer for good).
    pub errors: Vec<String>,
    /// One past the last offset of the last whole batch (0 when there was none).
    pub next_offset: i64,
}

/// Records of whole batches (any codec). Control batches are skipped; with LogAppendTime every
/// record carries the batch's timestamp, as consumers see it. Keys, values and header values are
/// slices of `bytes` (or of the decompressed records), not copies.
pub fn decode_batches(bytes: &Bytes) -> Decoded {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut next_offset = 0;
    let mut at = 0;
    while at < bytes.len() {
        let h = match BatchHeader::parse(&bytes[at..]) {
            Ok(h) => h,
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        };
        let len = h.total_len();
        if len > bytes.len() - at {
            errors.push(format!(
                "batch of {len} bytes is cut at {}",
                bytes.len() - at
            ));
            break;
        }
        let batch = bytes.slice(at..at + len);
        at += len;
        // Not `h.last_offset()`: the header is read from the log as it is, and a base offset
        // near i64::MAX must end the decoding with an error, not overflow.
        next_offset = h
            .base_offset
            .saturating_add(i64::from(h.last_offset_delta))
            .saturating_add(1);
        if h.is_control() {
            continue;
        }
        let before = out.len();
        if let Err(e) = decode_records(&h, batch, &mut out) {
            out.truncate(before);
            errors.push(format!("batch at offset {}: {e}", h.base_offset));
        }
    }
    Decoded {
        records: out,
        errors,
        next_offset,
    }
}

/// The records of one magic-v2 batch, appended to `out`. Header names may repeat; every header
/// is kept, in order.
fn decode_records(h: &BatchHeader, batch: Bytes, out: &mut Vec<LogRecord>) -> Result<(), String> {
    let body = batch.slice(BATCH_HEADER_LEN..);
    let mut buf = decompress(h.compression(), body, MAX_UNCOMPRESSED_BATCH)?;
    for i in 0..h.record_count.max(0) {
        let len = varint(&mut buf)?;
        if len < 0 || len as usize > buf.len() {
            return Err(format!("record {i} of {len} bytes is cut at {}", buf.len()));
        }
        let mut r = buf.split_to(len as usize);
        if r.is_empty() {
            return Err(format!("record {i} is empty"));
        }
        r.advance(1); // attributes: unused in magic v2
        let timestamp_delta = varlong(&mut r)?;
        let offset_delta = varint(&mut r)?;
        let key = sized(&mut r)?;
        let value = sized(&mut r)?;
        let count = varint(&mut r)?;
        let mut headers = Vec::with_capacity(count.clamp(0, 64) as usize);
        for _ in 0..count.max(0) {
            let name = sized(&mut r)?.ok_or("a header without a name")?;
            let value = sized(&mut r)?;
            headers.push((String::from_utf8_lossy(&name).into_owned(), value));
        }
        // The delta is the producer's, never checked against the batch header: one that
        // overflows the offset is an error of this batch (found by fuzzing, tests/fuzz).
        let offset = h
            .base_offset
            .checked_add(i64::from(offset_delta))
            .ok_or_else(|| {
                format!("record {i} has an offset delta of {offset_delta} that overflows")
            })?;
        out.push(LogRecord {
            offset,
            timestamp: if h.is_log_append_time() {
                h.max_timestamp
            } else {
                h.first_timestamp.wrapping_add(timestamp_delta)
            },
            key,
            value,
            headers,
        });
    }
    Ok(())
}

/// The most one batch's records may take once decompressed. A producer's batch is stored as
/// received, so its compressed records are only ever expanded here: 30 KB of zstd can claim 1 GB
/// of zeros, and one snappy block header can claim 4 GiB. A batch beyond this is an error of the
/// indexer (its records are not searchable), not an allocation the broker cannot survive.
pub const MAX_UNCOMPRESSED_BATCH: usize = 128 << 20;

/// The records of a batch body in codec `codec` (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd),
/// decompressed to at most `limit` bytes. Streams are read through a bound instead of being
/// decompressed whole (kafka-protocol's decompressors allocate what the stream claims).
pub fn decompress(codec: i16, body: Bytes, limit: usize) -> Result<Bytes, String> {
    use std::io::Read;
    let bounded = |mut r: Box<dyn Read + '_>, what: &str| -> Result<Bytes, String> {
        let mut out = Vec::new();
        r.by_ref()
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("cannot decompress {what}: {e}"))?;
        if out.len() > limit {
            return Err(format!(
                "{what} records decompress to more than {limit} bytes"
            ));
        }
        Ok(Bytes::from(out))
    };
    match codec {
        0 => Ok(body),
        1 => bounded(Box::new(flate2::read::GzDecoder::new(&body[..])), "gzip"),
        2 => snappy(&body, limit),
        3 => {
            let d = lz4::Decoder::new(&body[..]).map_err(|e| format!("cannot read lz4: {e}"))?;
            bounded(Box::new(d), "lz4")
        }
        4 => {
            let d = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| format!("cannot read zstd: {e}"))?;
            bounded(Box::new(d), "zstd")
        }
        c => Err(format!("unknown compression codec {c}")),
    }
}

/// Kafka's snappy: xerial framing (a 16-byte header, then blocks of `u32` length + raw snappy),
/// or raw snappy when the header is absent, as the Java client reads it. Each block states its
/// decompressed length up front: it is checked against what `limit` leaves before allocating.
fn snappy(body: &[u8], limit: usize) -> Result<Bytes, String> {
    const XERIAL: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    let block = |raw: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let n = snap::raw::decompress_len(raw).map_err(|e| format!("bad snappy block: {e}"))?;
        if n > limit - out.len() {
            return Err(format!(
                "snappy records decompress to more than {limit} bytes"
            ));
        }
        let at = out.len();
        out.resize(at + n, 0);
        snap::raw::Decoder::new()
            .decompress(raw, &mut out[at..])
            .map_err(|e| format!("bad snappy block: {e}"))?;
        Ok(())
    };
    let mut out = Vec::new();
    match body.strip_prefix(&XERIAL[..]) {
        None => block(body, &mut out)?,
        Some(mut rest) => {
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or("a snappy block length is cut")?;
                let len = u32::from_be_bytes(*len) as usize;
                if len > tail.len() {
                    return Err(format!(
                        "a snappy block of {len} bytes is cut at {}",
                        tail.len()
                    ));
                }
                block(&tail[..len], &mut out)?;
                rest = &tail[len..];
            }
        }
    }
    Ok(Bytes::from(out))
}

/// A zig-zag varint of up to 64 bits, as records encode their fields.
fn varlong(buf: &mut Bytes) -> Result<i64, String> {
    let mut raw = 0u64;
    for (i, shift) in (0..64).step_by(7).enumerate() {
        let Some(&b) = buf.get(i) else {
            return Err("a varint is cut".into());
        };
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            buf.advance(i + 1);
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err("a varint is longer than 10 bytes".into())
}

fn varint(buf: &mut Bytes) -> Result<i32, String> {
    i32::try_from(varlong(buf)?).map_err(|_| "a varint does not fit 32 bits".to_string())
}

/// A length-prefixed byte string (-1: null).
fn sized(buf: &mut Bytes) -> Result<Option<Bytes>, String> {
    match varint(buf)? {
        n if n < 0 => Ok(None),
        n if n as usize <= buf.len() => Ok(Some(buf.split_to(n as usize))),
        n => Err(format!("a field of {n} bytes is cut at {}", buf.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_hex(parts: &[&str]) -> Vec<u8> {
        let hex: String = parts.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Compressed records are expanded through a bound: a small stream that claims or yields
    /// more than the limit is an error of the batch, before the memory is taken. (Found while
    /// fuzzing the record decoders, tests/fuzz: kafka-protocol's decompressors allocate what a
    /// stream claims, e.g. 4 GiB for one snappy block header.)
    #[test]
    fn decompression_is_bounded_for_every_codec() {
        use std::io::Write;
        let zeros = vec![0u8; 2 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&zeros).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).expect("lz4");
        lz.write_all(&zeros).expect("lz4");
        let (lz, r) = lz.finish();
        r.expect("lz4");
        let zs = zstd::encode_all(&zeros[..], 3).expect("zstd");
        let sn = snap::raw::Encoder::new()
            .compress_vec(&zeros)
            .expect("snappy");
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        xerial.extend_from_slice(&(sn.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&sn);
        for (codec, body) in [(1, gz), (2, sn), (2, xerial), (3, lz), (4, zs)] {
            let body = Bytes::from(body);
            assert!(
                body.len() < 128 << 10,
                "codec {codec}: {} bytes",
                body.len()
            );
            let e = decompress(codec, body.clone(), 1 << 20).expect_err("over the limit");
            assert!(e.contains("more than"), "codec {codec}: {e}");
            let all = decompress(codec, body, 4 << 20).expect("under the limit");
            assert_eq!(all.len(), zeros.len(), "codec {codec}");
        }
        // One xerial block whose raw snappy header claims 1 GiB: refused before allocating.
        let mut claim = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        claim.extend_from_slice(&8u32.to_be_bytes());
        claim.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x04, 0, 0, 0]);
        let e = decompress(2, Bytes::from(claim), MAX_UNCOMPRESSED_BATCH).expect_err("claim");
        assert!(e.contains("more than"), "{e}");
    }

    /// Fuzzing (tests/fuzz, target record_batch) found a batch whose record carries an offset
    /// delta that overflows the base offset (i64::MAX region): the decoder added them unchecked
    /// (a panic with overflow checks, a wrapped offset indexed without them). The batch is now an
    /// error and no record of it is indexed. The first byte is the fuzz target's mode byte.
    #[test]
    fn fuzz_offset_delta_overflow_is_an_error_of_the_batch() {
        let input = from_hex(&[
            "008000000000000000000000a6ffffffff026736bd004902000000000000018bcfe568000000018bcfe56800",
            "ffffffffffffffffffffffffffff0000000182534e41505059000000000100000001000000615ef05db80100",
            "000176227b6c650100000000000013656c223a226572726f72222c22636f6465223a31000000000000000000",
            "00000000000000a6ffffffff026736bd490002000000000000018bcfe568000000018bcfe56800ffffffffff",
            "ffffffffffffffffff0000000182534e41505059007f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f000000010000",
            "0001000000615ef05db8010000000a6b65792d3080017b226c6576656c223a226572726f72222c22636f6465",
            "223a302c2275736572223a7b226964223a302c226e616d65223a226e3022182c226f6b223a74727500000000",
            "000000000000000000000000000000000000000000000000000000000a6b65792d32346572726f723a206469",
            "736b2066756c6c206f6e206e6b223a747275657d040a7472616364050f586e616d65223a226e33227d2c6504",
            "226f6b222f74300a74656d70",
        ]);
        let decoded = decode_batches(&Bytes::from(input[1..].to_vec()));
        assert!(
            decoded.errors.iter().any(|e| e.contains("overflows")),
            "{:?}",
            decoded.errors
        );
        assert!(decoded.records.is_empty(), "{:?}", decoded.records);
    }

    /// A plain record of a producer without idempotence.
    fn record(
        offset: i64,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
    ) -> kafka_protocol::records::Record {
        kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp,
            key,
            value,
            headers: Default::default(),
        }
    }

    #[test]
    fn an_undecodable_batch_is_skipped_and_reported() {
        let records: Vec<_> = (0..3)
            .map(|i| record(i, 1000 + i, None, Some(Bytes::from(format!("v{i}")))))
            .collect();
        let mut good = bytes::BytesMut::new();
        kafka_protocol::records::RecordBatchEncoder::encode(
            &mut good,
            &records,
            &kafka_protocol::records::RecordEncodeOptions {
                version: 2,
                compression: kafka_protocol::records::Compression::Gzip,
            },
        )
        .unwrap();
        // The encoder may make one batch per record: spoil the first batch only, where its
        // compressed records are (the header still parses).
        let first = BatchHeader::parse(&good).unwrap().total_len();
        let mut bad = good[..first].to_vec();
        for b in &mut bad[70..first] {
            *b = 0xff;
        }
        let mut both = bad.clone();
        both.extend_from_slice(&good);
        let both = Bytes::from(both);
        let Decoded {
            records,
            errors,
            next_offset,
        } = decode_batches(&both);
        assert_eq!(errors.len(), 1, "{errors:?}");

        assert_eq!(records.len(), 3);
        assert_eq!(records[2].value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(
            next_offset,
            records[2].offset + 1,
            "past the last whole batch"
        );
    }

    /// Appends a zig-zag varint.
    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    fn put_sized(out: &mut Vec<u8>, v: Option<&[u8]>) {
        match v {
            None => put_varint(out, -1),
            Some(v) => {
                put_varint(out, v.len() as i64);
                out.extend_from_slice(v);
            }
        }
    }

    #[test]
    fn repeated_header_names_keep_every_value_in_order() {
        // One uncompressed batch of two records written by hand (kafka-protocol's encoder keeps
        // one value per header name).
        let mut records = Vec::new();
        for (i, hs) in [
            vec![("k", Some(&b"1"[..])), ("k", Some(&b"2"[..])), ("n", None)],
            vec![],
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = vec![0u8]; // attributes
            put_varint(&mut r, 7 * i as i64); // timestamp delta
            put_varint(&mut r, i as i64); // offset delta
            put_sized(&mut r, if i == 0 { None } else { Some(b"key") });
            put_sized(&mut r, Some(format!("value {i}").as_bytes()));
            put_varint(&mut r, hs.len() as i64);
            for (k, v) in hs {
                put_sized(&mut r, Some(k.as_bytes()));
                put_sized(&mut r, v);
            }
            put_varint(&mut records, r.len() as i64);
            records.extend_from_slice(&r);
        }
        let mut batch = Vec::new();
        batch.extend_from_slice(&40i64.to_be_bytes()); // base offset
        let length = (BATCH_HEADER_LEN - 12 + records.len()) as i32;
        batch.extend_from_slice(&length.to_be_bytes());
        batch.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        batch.push(2); // magic
        batch.extend_from_slice(&0u32.to_be_bytes()); // crc: not checked here
        batch.extend_from_slice(&0i16.to_be_bytes()); // attributes: CreateTime, no codec
        batch.extend_from_slice(&1i32.to_be_bytes()); // last offset delta
        batch.extend_from_slice(&1000i64.to_be_bytes()); // first timestamp
        batch.extend_from_slice(&1007i64.to_be_bytes()); // max timestamp
        batch.extend_from_slice(&(-1i64).to_be_bytes());
        batch.extend_from_slice(&(-1i16).to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes());
        batch.extend_from_slice(&2i32.to_be_bytes()); // record count
        batch.extend_from_slice(&records);
        let d = decode_batches(&Bytes::from(batch));
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.next_offset, 42);
        let b = |s: &str| Some(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(
            d.records,
            vec![
                LogRecord {
                    offset: 40,
                    timestamp: 1000,
                    key: None,
                    value: b("value 0"),
                    headers: vec![
                        ("k".into(), b("1")),
                        ("k".into(), b("2")),
                        ("n".into(), None)
                    ],
                },
                LogRecord {
                    offset: 41,
                    timestamp: 1007,
                    key: b("key"),
                    value: b("value 1"),
                    headers: vec![],
                },
            ]
        );
    }

    #[test]
    fn every_codec_decodes_to_the_same_records() {
        use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
        let records: Vec<_> = (0..50)
            .map(|i| {
                let mut r = record(
                    100 + i,
                    5000 + 3 * i,
                    (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                    (i % 7 != 0).then(|| Bytes::from(format!("{{\"n\":{i}}}"))),
                );
                r.headers
                    .insert("h".into(), Some(Bytes::from(format!("hv{i}"))));
                r
            })
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut buf = bytes::BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
            let d = decode_batches(&buf.freeze());
            assert!(d.errors.is_empty(), "{compression:?}: {:?}", d.errors);
            assert_eq!(d.records.len(), records.len(), "{compression:?}");
            for (got, want) in d.records.iter().zip(&records) {
                assert_eq!(got.offset, want.offset, "{compression:?}");
                assert_eq!(got.timestamp, want.timestamp, "{compression:?}");
                assert_eq!(got.key, want.key, "{compression:?}");
                assert_eq!(got.value, want.value, "{compression:?}");
                let h: Vec<_> = want
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                assert_eq!(got.headers, h, "{compression:?}");
            }
        }
    }
}
