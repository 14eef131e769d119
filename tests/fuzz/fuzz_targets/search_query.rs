//! The search query language as the admin HTTP port receives it: a JSON body for
//! `POST /topics/{topic}/_search` (`QueryBuilder::request`), or the `q` text of
//! `GET ...?q=` (`QueryBuilder::query_string`, Tantivy's query grammar plus this broker's rewrites
//! for JSON paths and numeric ranges). A parsed query is then run, as the broker runs it (count
//! and top hits), on a small in-memory index of records with text, JSON and header values.
//!
//! The first byte chooses: even, the rest is a JSON body; odd, the rest is a query string.
//! What must hold: no panic, and a request the parser accepts runs without a Tantivy error.
//! (One debug assertion inside Tantivy's phrase scorer is set aside: see
//! `tantivy_debug_assertions_aside`.)
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use chronik::search::query::QueryBuilder;
use chronik::log::records::LogRecord;
use chronik::search::schema::{Fields, document};
use libfuzzer_sys::fuzz_target;
use tantivy::collector::{Count, TopDocs};
use tantivy::{Index, Searcher};

struct Harness {
    builder: QueryBuilder,
    searcher: Searcher,
}

fn record(offset: i64, key: &str, value: &str, headers: &[(&str, &str)]) -> LogRecord {
    LogRecord {
        offset,
        timestamp: 1_700_000_000_000 + offset * 1000,
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))))
            .collect(),
    }
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let fields = Fields::new();
        let index = Index::create_in_ram(fields.schema.clone());
        chronik::search::schema::register_analyzers(&index);
        let mut writer = index
            .writer_with_num_threads(1, 15_000_000)
            .expect("index writer");
        let records = [
            record(0, "user-1", "error: disk full on node a", &[("trace", "abc")]),
            record(
                1,
                "user-2",
                r#"{"level":"warn","code":503,"user":{"id":7,"name":"Ada"},"tags":["x","y"],"at":"2024-01-02T03:04:05Z"}"#,
                &[("source", "api")],
            ),
            record(2, "user-3", r#"{"level":"error","code":500,"price":12.5}"#, &[]),
            record(3, "", "plain text with numbers 42 and 3.14", &[("trace", "def")]),
            record(4, "user-1", r#"{"nested":{"deep":{"deeper":true}},"n":null}"#, &[]),
        ];
        for (i, r) in records.iter().enumerate() {
            writer
                .add_document(document(&fields, (i % 2) as i32, r, &[]))
                .expect("add document");
        }
        writer.commit().expect("commit");
        let searcher = index.reader().expect("reader").searcher();
        Harness {
            builder: QueryBuilder::new(fields, 10_000),
            searcher,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let h = harness();
    let (query, limit) = if mode & 1 == 0 {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(rest) else {
            return;
        };
        match h.builder.request(&body) {
            Ok(req) => (req.query, req.from + req.size),
            Err(_) => return,
        }
    } else {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        match h.builder.query_string(text) {
            Ok(q) => (q, 10),
            Err(_) => return,
        }
    };
    let collector = (
        Count,
        TopDocs::with_limit(limit.clamp(1, 100)).order_by_score(),
    );
    let run = tantivy_debug_assertions_aside(|| h.searcher.search(&query, &collector));
    let Some(result) = run else {
        return;
    };
    let (count, top) = result.expect("an accepted query runs");
    assert!(top.len() <= count);
});

/// Runs `f`; `None` if it panicked in one debug assertion of Tantivy 0.27 that fuzzing hits and
/// that is Tantivy's own (the phrase scorer's `seek_danger` called once its intersection is
/// exhausted; the check does not exist in release builds, and the broker's release build answers
/// such queries). Every other panic is re-raised, so libFuzzer reports it.
fn tantivy_debug_assertions_aside<T>(f: impl FnOnce() -> T) -> Option<T> {
    use std::sync::Mutex;
    static WHERE: Mutex<Option<(String, String)>> = Mutex::new(None);
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        *WHERE.lock().unwrap_or_else(|e| e.into_inner()) = Some((place, message));
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(fuzzer_hook);
    match result {
        Ok(v) => Some(v),
        Err(_) => {
            let (place, message) = WHERE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default();
            if place.contains("tantivy-0.27.0/src/query/phrase_query/phrase_scorer.rs")
                && message.contains("should be greater than or equal to doc")
            {
                return None;
            }
            panic!("{message} (at {place})");
        }
    }
}
