//! Record batches as a producer sends them and as the search indexer reads them back:
//! `log::batch::split_batches` (structure, codec, record count, CRC32C), the LogAppendTime
//! rewrite, and `log::records::decode_batches` (records of every codec: none, gzip, snappy,
//! lz4, zstd) followed by the Tantivy document of each record.
//!
//! The first byte of an input chooses a mode: bit 0 set recomputes the length and CRC of each
//! batch first, so that mutated records get past the CRC and reach the decompressors and the
//! record decoder. The rest is the record set.
//!
//! What must hold: no panic; a batch `split_batches` accepts stays valid after the LogAppendTime
//! rewrite; decoding never yields more records than the batches declare.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use chronik::log::batch::{split_batches, validate_client_batch, with_log_append_time};
use chronik::log::records::decode_batches;
use chronik::search::schema::{Fields, document};
use libfuzzer_sys::fuzz_target;

fn fields() -> &'static Fields {
    static F: OnceLock<Fields> = OnceLock::new();
    F.get_or_init(Fields::new)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        chronik_fuzz::fix_batch_crcs(&mut bytes);
    }
    let records = Bytes::from(bytes);
    if let Ok(batches) = split_batches(&records) {
        for (header, batch) in &batches {
            let rewritten = with_log_append_time(batch, 1_700_000_000_000);
            let again = validate_client_batch(&rewritten)
                .expect("a valid batch stays valid with LogAppendTime");
            assert!(again.is_log_append_time());
            assert_eq!(again.record_count, header.record_count);
            let _ = header.last_sequence();
        }
    }
    let decoded = decode_batches(&records);
    let declared: i64 = {
        let mut sum = 0i64;
        let mut at = 0;
        while let Ok(h) = chronik::log::batch::BatchHeader::parse(&records[at..]) {
            sum += i64::from(h.record_count.max(0));
            at += h.total_len();
            if at > records.len() {
                break;
            }
        }
        sum
    };
    assert!(decoded.records.len() as i64 <= declared);
    let paths = ["a".to_string(), "a.b".to_string()];
    for r in &decoded.records {
        let _ = document(fields(), 0, r, &[]);
        let _ = document(fields(), 0, r, &paths);
    }
});
