//! The index schema and how a Kafka record becomes a document.

use std::collections::BTreeMap;

use bytes::Bytes;
use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, OwnedValue, STORED, Schema,
    TextFieldIndexing, TextOptions,
};

use crate::log::batch::BatchHeader;

/// Field handles of the schema every index of this broker uses.
#[derive(Debug, Clone)]
pub struct Fields {
    pub schema: Schema,
    pub key: Field,
    pub value: Field,
    pub json: Field,
    pub headers: Field,
    pub timestamp: Field,
    pub offset: Field,
    pub partition: Field,
    pub key_raw: Field,
    pub value_raw: Field,
    pub headers_raw: Field,
}

/// The text analysis of `key`, `value` and JSON strings: Tantivy's `default` tokenizer (split
/// on non-alphanumeric characters, drop tokens of 40 bytes or more, lower-case).
pub const TOKENIZER: &str = "default";

impl Fields {
    pub fn new() -> Self {
        let mut b = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let text = TextOptions::default().set_indexing_options(indexing.clone());
        let key = b.add_text_field("key", text.clone());
        let value = b.add_text_field("value", text);
        // Range queries over JSON numbers need the fast (columnar) form of the JSON field.
        let json = b.add_json_field(
            "json",
            JsonObjectOptions::default()
                .set_indexing_options(indexing.clone())
                .set_fast("raw"),
        );
        let headers = b.add_json_field(
            "headers",
            JsonObjectOptions::default().set_indexing_options(indexing),
        );
        let timestamp = b.add_i64_field("timestamp", INDEXED | FAST | STORED);
        let offset = b.add_i64_field("offset", INDEXED | FAST | STORED);
        let partition = b.add_i64_field("partition", INDEXED | FAST | STORED);
        let key_raw = b.add_bytes_field("key_raw", STORED);
        let value_raw = b.add_bytes_field("value_raw", STORED);
        let headers_raw = b.add_bytes_field("headers_raw", STORED);
        Self {
            schema: b.build(),
            key,
            value,
            json,
            headers,
            timestamp,
            offset,
            partition,
            key_raw,
            value_raw,
            headers_raw,
        }
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::new()
    }
}

/// One record as the index sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What [`decode_batches`] found.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<IndexedRecord>,
    /// One message per batch that could not be decoded (it is skipped: one bad batch must not
    /// stop the indexer for good).
    pub errors: Vec<String>,
    /// One past the last offset of the last whole batch (0 when there was none).
    pub next_offset: i64,
}

/// Records of whole batches (any codec). Control batches are skipped; with LogAppendTime every
/// record carries the batch's timestamp, as consumers see it.
pub fn decode_batches(mut bytes: &[u8]) -> Decoded {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut next_offset = 0;
    while !bytes.is_empty() {
        let h = match BatchHeader::parse(bytes) {
            Ok(h) => h,
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        };
        let len = h.total_len();
        if len > bytes.len() {
            errors.push(format!("batch of {len} bytes is cut at {}", bytes.len()));
            break;
        }
        let (batch, rest) = bytes.split_at(len);
        bytes = rest;
        next_offset = h.last_offset() + 1;
        if h.is_control() {
            continue;
        }
        let mut buf = Bytes::copy_from_slice(batch);
        let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
            Ok(set) => set,
            Err(e) => {
                errors.push(format!("batch at offset {}: {e}", h.base_offset));
                continue;
            }
        };
        for r in set.records {
            let timestamp = if h.is_log_append_time() {
                h.max_timestamp
            } else {
                r.timestamp
            };
            out.push(IndexedRecord {
                offset: r.offset,
                timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    Decoded {
        records: out,
        errors,
        next_offset,
    }
}

/// The document of one record. `json_paths` keeps only those paths of a JSON value (all when
/// empty).
pub fn document(
    f: &Fields,
    partition: i32,
    r: &IndexedRecord,
    json_paths: &[String],
) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_i64(f.offset, r.offset);
    doc.add_i64(f.timestamp, r.timestamp);
    doc.add_i64(f.partition, partition as i64);
    if let Some(k) = &r.key {
        doc.add_bytes(f.key_raw, k);
        if let Ok(s) = std::str::from_utf8(k) {
            doc.add_text(f.key, s);
        }
    }
    if let Some(v) = &r.value {
        doc.add_bytes(f.value_raw, v);
        if let Ok(s) = std::str::from_utf8(v) {
            doc.add_text(f.value, s);
            if s.trim_start().starts_with('{')
                && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(s)
            {
                let map = if json_paths.is_empty() {
                    map
                } else {
                    pick_paths(&map, json_paths)
                };
                if !map.is_empty() {
                    doc.add_object(f.json, to_owned_object(map));
                }
            }
        }
    }
    if !r.headers.is_empty() {
        let mut obj = BTreeMap::new();
        for (k, v) in &r.headers {
            if let Some(s) = v.as_ref().and_then(|v| std::str::from_utf8(v).ok()) {
                obj.insert(k.clone(), OwnedValue::Str(s.to_string()));
            }
        }
        if !obj.is_empty() {
            doc.add_object(f.headers, obj);
        }
        doc.add_bytes(f.headers_raw, &encode_headers(&r.headers));
    }
    doc
}

fn to_owned_object(
    map: serde_json::Map<String, serde_json::Value>,
) -> BTreeMap<String, OwnedValue> {
    map.into_iter()
        .map(|(k, v)| (k, OwnedValue::from(v)))
        .collect()
}

/// The sub-object of `map` holding only `paths` (dotted, nested).
fn pick_paths(
    map: &serde_json::Map<String, serde_json::Value>,
    paths: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        let mut cur = Some(map);
        let mut value = None;
        for (i, p) in parts.iter().enumerate() {
            let Some(m) = cur else { break };
            match m.get(*p) {
                Some(serde_json::Value::Object(next)) if i + 1 < parts.len() => cur = Some(next),
                Some(v) if i + 1 == parts.len() => value = Some(v.clone()),
                _ => cur = None,
            }
        }
        if let Some(v) = value {
            insert_path(&mut out, &parts, v);
        }
    }
    out
}

fn insert_path(
    map: &mut serde_json::Map<String, serde_json::Value>,
    parts: &[&str],
    v: serde_json::Value,
) {
    match parts {
        [] => {}
        [last] => {
            map.insert(last.to_string(), v);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry(first.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let serde_json::Value::Object(next) = entry {
                insert_path(next, rest, v);
            }
        }
    }
}

/// Headers in stored form: for each, name length (u32 BE), name, value length (i32 BE, -1 for
/// null), value.
pub fn encode_headers(headers: &[(String, Option<Bytes>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in headers {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        match v {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out
}

pub fn decode_headers(mut raw: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let take = |raw: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if raw.len() < n {
            return None;
        }
        let (a, b) = raw.split_at(n);
        *raw = b;
        Some(a.to_vec())
    };
    while let Some(len) = take(&mut raw, 4) {
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        let Some(name) = take(&mut raw, len) else {
            break;
        };
        let Some(vlen) = take(&mut raw, 4) else { break };
        let vlen = i32::from_be_bytes(vlen.try_into().unwrap());
        let value = if vlen < 0 {
            None
        } else {
            match take(&mut raw, vlen as usize) {
                Some(v) => Some(v),
                None => break,
            }
        };
        out.push((String::from_utf8_lossy(&name).into_owned(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_batch_is_skipped_and_reported() {
        let records: Vec<kafka_protocol::records::Record> = (0..3)
            .map(|i| kafka_protocol::records::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: i,
                sequence: -1,
                timestamp: 1000 + i,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
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

    #[test]
    fn headers_round_trip() {
        let h = vec![
            ("trace".to_string(), Some(Bytes::from_static(b"ab12"))),
            ("empty".to_string(), Some(Bytes::new())),
            ("null".to_string(), None),
        ];
        let back = decode_headers(&encode_headers(&h));
        let want: Vec<_> = h
            .into_iter()
            .map(|(k, v)| (k, v.map(|b| b.to_vec())))
            .collect();
        assert_eq!(back, want);
    }

    #[test]
    fn picking_paths_keeps_nesting() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"order":{"id":1,"note":"x"},"status":"paid","n":2}"#).unwrap();
        let serde_json::Value::Object(m) = v else {
            unreachable!()
        };
        let picked = pick_paths(
            &m,
            &["order.id".into(), "status".into(), "missing.x".into()],
        );
        assert_eq!(
            serde_json::Value::Object(picked),
            serde_json::json!({"order": {"id": 1}, "status": "paid"})
        );
    }
}
