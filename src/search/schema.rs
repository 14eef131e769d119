//! The index schema and how a Kafka record becomes a document.

use bytes::Bytes;
use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, OwnedValue, STORED, Schema,
    TextFieldIndexing, TextOptions,
};

use crate::log::records::LogRecord;

/// The fast-field "normalizer" of JSON strings: it yields no token, so JSON strings get no
/// column (numbers, booleans and dates still do). Every index must have it registered
/// ([`register_analyzers`]) before a writer is made.
pub const NO_COLUMN: &str = "chronik_no_column";

/// Registers what the schema names beyond Tantivy's defaults.
pub fn register_analyzers(index: &tantivy::Index) {
    index
        .fast_field_tokenizer()
        .register(NO_COLUMN, NoTokens::default());
}

/// A tokenizer that yields no token.
#[derive(Clone, Default)]
pub struct NoTokens(tantivy::tokenizer::Token);

pub struct NoTokenStream<'a>(&'a mut tantivy::tokenizer::Token);

impl tantivy::tokenizer::Tokenizer for NoTokens {
    type TokenStream<'a> = NoTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, _text: &'a str) -> NoTokenStream<'a> {
        NoTokenStream(&mut self.0)
    }
}

impl tantivy::tokenizer::TokenStream for NoTokenStream<'_> {
    fn advance(&mut self) -> bool {
        false
    }

    fn token(&self) -> &tantivy::tokenizer::Token {
        self.0
    }

    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        self.0
    }
}

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
        // Range queries over JSON numbers need the fast (columnar) form of the JSON field. Its
        // strings go through NO_COLUMN, which yields nothing: no query reads string columns,
        // and their dictionaries were a twentieth of the indexing CPU.
        let json = b.add_json_field(
            "json",
            JsonObjectOptions::default()
                .set_indexing_options(indexing.clone())
                .set_fast(NO_COLUMN),
        );
        let headers = b.add_json_field(
            "headers",
            JsonObjectOptions::default().set_indexing_options(indexing),
        );
        // Offsets (and nearly so timestamps) differ from record to record: indexed, each would
        // be one more term and posting list per record, an eighth of the indexing CPU. Ranges
        // and exact values on them are answered from the fast (columnar) form instead.
        let timestamp = b.add_i64_field("timestamp", FAST | STORED);
        let offset = b.add_i64_field("offset", FAST | STORED);
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

/// The document of one record. `json_paths` keeps only those paths of a JSON value (all when
/// empty).
pub fn document(
    f: &Fields,
    partition: i32,
    r: &LogRecord,
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
            let object = if s.trim_start().starts_with('{') {
                match serde_json::from_str(s) {
                    Ok(serde_json::Value::Object(map)) => Some(map),
                    _ => None,
                }
            } else {
                None
            };
            // A JSON object indexed whole is not indexed as text too: its strings and numbers
            // are under their paths, and a query on `value` asks those (query::OnValue). With
            // `search.fields` hints only some paths are kept, so the text stays.
            if object.is_none() || !json_paths.is_empty() {
                doc.add_text(f.value, s);
            }
            if let Some(map) = object {
                let map = if json_paths.is_empty() {
                    map
                } else {
                    pick_paths(&map, json_paths)
                };
                if !map.is_empty() {
                    // Tantivy reads the parsed value in place (strings in RFC 3339 form become
                    // dates, as with its own conversion); no copy into an OwnedValue tree.
                    doc.add_field_value(f.json, &serde_json::Value::Object(map));
                }
            }
        }
    }
    if !r.headers.is_empty() {
        // A name may repeat: each of its values is indexed under it.
        let obj: Vec<(String, OwnedValue)> = r
            .headers
            .iter()
            .filter_map(|(k, v)| {
                let s = std::str::from_utf8(v.as_deref()?).ok()?;
                Some((k.clone(), OwnedValue::Str(s.to_string())))
            })
            .collect();
        if !obj.is_empty() {
            doc.add_field_value(f.headers, &OwnedValue::Object(obj));
        }
        doc.add_bytes(f.headers_raw, &encode_headers(&r.headers));
    }
    doc
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
