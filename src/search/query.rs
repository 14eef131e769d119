//! The JSON query language of `POST /topics/{topic}/_search`, turned into Tantivy queries.
//!
//! It follows what Elasticsearch users know (`match`, `match_phrase`, `term`, `range`,
//! `query_string`, `bool`, `match_all`) over this index's fields: `key`, `value`,
//! `json.<path>`, `headers.<name>`, `timestamp`, `offset`, `partition`.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tantivy::index::SegmentId;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, EmptyQuery, EnableScoring, Occur, PhraseQuery, Query,
    QueryParser, RangeQuery, TermQuery, Weight,
};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Index, Searcher, SegmentReader, Term};

use super::schema::{Fields, TOKENIZER};

/// Tantivy ends a JSON path in a term with NUL and separates its segments with U+0001; a path
/// holding either is read back as another path, and Tantivy's query parser asserts on it (found by
/// fuzzing, tests/fuzz). Neither can appear in a field name or a query string.
const TANTIVY_SEPARATORS: [char; 2] = ['\0', '\u{1}'];

/// A request the client got wrong; `parse` says the query language itself did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub parse: bool,
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> BadRequest {
    BadRequest {
        parse: false,
        reason: reason.into(),
    }
}

fn parse_err(reason: impl Into<String>) -> BadRequest {
    BadRequest {
        parse: true,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Score,
    Timestamp { asc: bool },
    Offset { asc: bool },
}

/// A parsed search request.
pub struct SearchRequest {
    pub query: Box<dyn Query>,
    pub size: usize,
    pub from: usize,
    pub sort: Sort,
    /// Only hits whose sort key comes after this one.
    pub after: Option<SortKey>,
    pub partitions: Option<Vec<i32>>,
    /// `[from, to)` in milliseconds.
    pub time: (Option<i64>, Option<i64>),
}

/// A hit's position in the result order: larger is earlier. Ties on the first part are broken by
/// partition, then offset, ascending (hence the negations).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct SortKey(pub f64, pub i64, pub i64);

impl SortKey {
    /// Ranks below every real hit.
    pub const NONE: SortKey = SortKey(f64::NEG_INFINITY, i64::MIN, i64::MIN);

    pub fn new(sort: Sort, score: f32, partition: i64, offset: i64, timestamp: i64) -> Self {
        match sort {
            Sort::Score => SortKey(score as f64, -partition, -offset),
            Sort::Timestamp { asc } => {
                let t = if asc { -timestamp } else { timestamp };
                SortKey(t as f64, -partition, -offset)
            }
            Sort::Offset { asc } => {
                let o = if asc { -offset } else { offset };
                SortKey(o as f64, -partition, 0)
            }
        }
    }

    /// The key from a hit's `sort` array as returned to the client.
    pub fn from_values(sort: Sort, values: &[Value]) -> Result<Self, BadRequest> {
        let int = |i: usize| {
            values
                .get(i)
                .and_then(Value::as_i64)
                .ok_or_else(|| bad(format!("search_after[{i}] must be an integer")))
        };
        match sort {
            Sort::Score => {
                let score = values
                    .first()
                    .and_then(Value::as_f64)
                    .ok_or_else(|| bad("search_after[0] must be a score"))?;
                Ok(SortKey(score, -int(1)?, -int(2)?))
            }
            Sort::Timestamp { .. } => Ok(Self::new(sort, 0.0, int(1)?, int(2)?, int(0)?)),
            Sort::Offset { .. } => Ok(Self::new(sort, 0.0, int(1)?, int(0)?, 0)),
        }
    }
}

/// What every query is built against: the schema and its tokenizers.
pub struct QueryBuilder {
    pub fields: Fields,
    index: Index,
    max_window: usize,
}

impl QueryBuilder {
    pub fn new(fields: Fields, max_window: usize) -> Self {
        let index = Index::create_in_ram(fields.schema.clone());
        super::schema::register_analyzers(&index);
        Self {
            fields,
            index,
            max_window,
        }
    }

    /// Parses a request body.
    pub fn request(&self, body: &Value) -> Result<SearchRequest, BadRequest> {
        let obj = body
            .as_object()
            .ok_or_else(|| parse_err("the request body must be a JSON object"))?;
        for k in obj.keys() {
            if !matches!(
                k.as_str(),
                "query" | "size" | "from" | "sort" | "search_after" | "partitions" | "time"
            ) {
                return Err(bad(format!("unknown request field [{k}]")));
            }
        }
        let uint = |name: &str, default: usize| -> Result<usize, BadRequest> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| bad(format!("[{name}] must be a non-negative integer"))),
            }
        };
        let size = uint("size", 10)?;
        let from = uint("from", 0)?;
        if from.saturating_add(size) > self.max_window {
            return Err(bad(format!(
                "from + size must be at most {} (the result window), got {}",
                self.max_window,
                from.saturating_add(size)
            )));
        }
        let sort = parse_sort(obj.get("sort"))?;
        let after = match obj.get("search_after") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(SortKey::from_values(sort, a)?),
            Some(_) => return Err(bad("[search_after] must be the sort array of a hit")),
        };
        let partitions = match obj.get("partitions") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_i64()
                            .and_then(|n| i32::try_from(n).ok())
                            .ok_or_else(|| bad("[partitions] must be partition numbers"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(bad("[partitions] must be an array")),
        };
        let time = match obj.get("time") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(t)) => {
                for k in t.keys() {
                    if k != "from" && k != "to" {
                        return Err(bad(format!("unknown field [time.{k}]; use from and to")));
                    }
                }
                let bound = |k: &str| match t.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => timestamp_value(v).map(Some),
                };
                (bound("from")?, bound("to")?)
            }
            Some(_) => return Err(bad("[time] must be an object with from and to")),
        };
        let mut query = match obj.get("query") {
            None | Some(Value::Null) => Box::new(AllQuery) as Box<dyn Query>,
            Some(q) => self.query(q)?,
        };
        if time != (None, None) {
            let lo = time.0.map_or(Bound::Unbounded, |t| {
                Bound::Included(Term::from_field_i64(self.fields.timestamp, t))
            });
            let hi = time.1.map_or(Bound::Unbounded, |t| {
                Bound::Excluded(Term::from_field_i64(self.fields.timestamp, t))
            });
            query = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (
                    Occur::Must,
                    Box::new(ConstScoreQuery::new(Box::new(RangeQuery::new(lo, hi)), 0.0)),
                ),
            ]));
        }
        Ok(SearchRequest {
            query,
            size,
            from,
            sort,
            after,
            partitions,
            time,
        })
    }

    /// A `query_string` query. Words and phrases without a field search `key` and `value`;
    /// `value` (named or not) also covers every JSON path of the index searched (see [OnValue]).
    pub fn query_string(&self, text: &str) -> Result<Box<dyn Query>, BadRequest> {
        let f = &self.fields;
        let parser = QueryParser::for_index(&self.index, vec![f.key, f.value]);
        if let Some(c) = text.chars().find(|c| TANTIVY_SEPARATORS.contains(c)) {
            return Err(parse_err(format!(
                "a query string may not contain the character {c:?}"
            )));
        }
        // Tantivy's parser recurses per nesting level and per operator: thousands of `(` or
        // `NOT` would overflow the stack of the thread that parses, and take the broker down.
        if nesting_depth(text) > MAX_QUERY_STRING_DEPTH {
            return Err(parse_err(format!(
                "a query string may nest parentheses at most {MAX_QUERY_STRING_DEPTH} deep"
            )));
        }
        let words = text
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .filter(|w| !w.is_empty())
            .count();
        if words > MAX_QUERY_STRING_WORDS {
            return Err(parse_err(format!(
                "a query string may hold at most {MAX_QUERY_STRING_WORDS} words and operators"
            )));
        }
        let text = columnar_terms_as_ranges(text);
        let ast = tantivy::query_grammar::parse_query(&text).map_err(|_| {
            // The text is echoed for the user, but not a megabyte of it.
            let shown: String = text.chars().take(200).collect();
            let more = if shown.len() < text.len() { "..." } else { "" };
            parse_err(format!("syntax error in query string [{shown}{more}]"))
        })?;
        json_ranges_of_numbers(&ast)?;
        // Built once as it is, so a field or value the parser refuses is this request's error.
        let q = parser
            .build_query_from_user_input_ast(ast.clone())
            .map_err(|e| parse_err(e.to_string()))?;
        if !mentions_value(&ast) {
            return Ok(with_positive_clauses(q));
        }
        // And as it will be on an index with JSON paths, for the same reason.
        parser
            .build_query_from_user_input_ast(value_on_paths(ast.clone(), &["path".into()]))
            .map_err(|e| parse_err(e.to_string()))?;
        Ok(Box::new(OnValue::new(f.json, move |paths| {
            let q = parser.build_query_from_user_input_ast(value_on_paths(ast.clone(), paths))?;
            Ok(with_positive_clauses(q))
        })))
    }

    /// One query clause.
    pub fn query(&self, q: &Value) -> Result<Box<dyn Query>, BadRequest> {
        let obj = q
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| parse_err("a query is an object with exactly one query type"))?;
        let (kind, body) = obj.iter().next().expect("one entry");
        match kind.as_str() {
            "match_all" => Ok(Box::new(AllQuery)),
            "match_none" => Ok(Box::new(EmptyQuery)),
            "query_string" => {
                let text = match body {
                    Value::String(s) => s.as_str(),
                    Value::Object(o) => o
                        .get("query")
                        .and_then(Value::as_str)
                        .ok_or_else(|| parse_err("[query_string] needs a string [query]"))?,
                    _ => return Err(parse_err("[query_string] needs a string [query]")),
                };
                self.query_string(text)
            }
            "match" | "match_phrase" => {
                let (field, spec) = single_field(kind, body)?;
                let (text, and) = match spec {
                    Value::String(s) => (s.clone(), false),
                    Value::Number(n) => (n.to_string(), false),
                    Value::Object(o) => {
                        let text = match o.get("query") {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Number(n)) => n.to_string(),
                            _ => return Err(parse_err(format!("[{kind}] needs a [query]"))),
                        };
                        let and = match o.get("operator").and_then(Value::as_str) {
                            None => false,
                            Some(op) if op.eq_ignore_ascii_case("or") => false,
                            Some(op) if op.eq_ignore_ascii_case("and") => true,
                            Some(op) => {
                                return Err(bad(format!("operator must be and or or, not {op}")));
                            }
                        };
                        (text, and)
                    }
                    _ => return Err(parse_err(format!("[{kind}] takes text"))),
                };
                if matches!(self.resolve(field)?, Target::Value) {
                    return Ok(self.match_value(&text, kind == "match_phrase", and));
                }
                let terms = self.text_terms(field, &text)?;
                if terms.is_empty() {
                    return Ok(Box::new(EmptyQuery));
                }
                if kind == "match_phrase" && terms.len() > 1 {
                    return Ok(Box::new(PhraseQuery::new(terms)));
                }
                let occur = if and { Occur::Must } else { Occur::Should };
                let clauses = terms.into_iter().map(|t| (occur, term_query(t))).collect();
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            "term" => {
                let (field, spec) = single_field(kind, body)?;
                let value = match spec {
                    Value::Object(o) => o
                        .get("value")
                        .ok_or_else(|| parse_err("[term] needs a [value]"))?,
                    v => v,
                };
                if matches!(self.resolve(field)?, Target::Value) {
                    return self.term_value(value);
                }
                let terms = self.exact_terms(field, value)?;
                let clauses = terms
                    .into_iter()
                    .map(|t| (Occur::Should, self.exact_query(t)))
                    .collect();
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            "range" => {
                let (field, spec) = single_field(kind, body)?;
                let spec = spec
                    .as_object()
                    .ok_or_else(|| parse_err("[range] takes gt, gte, lt, lte"))?;
                let mut lo = Bound::Unbounded;
                let mut hi = Bound::Unbounded;
                for (op, v) in spec {
                    let term = self.range_term(field, v)?;
                    match op.as_str() {
                        "gt" => lo = Bound::Excluded(term),
                        "gte" => lo = Bound::Included(term),
                        "lt" => hi = Bound::Excluded(term),
                        "lte" => hi = Bound::Included(term),
                        other => {
                            return Err(bad(format!(
                                "unknown range bound [{other}]; use gt, gte, lt, lte"
                            )));
                        }
                    }
                }
                // Tantivy requires a bound (a debug assertion; found by fuzzing, tests/fuzz).
                if matches!((&lo, &hi), (Bound::Unbounded, Bound::Unbounded)) {
                    return Err(bad(format!(
                        "[range] on [{field}] needs at least one of gt, gte, lt, lte"
                    )));
                }
                Ok(Box::new(RangeQuery::new(lo, hi)))
            }
            "bool" => {
                let o = body
                    .as_object()
                    .ok_or_else(|| parse_err("[bool] takes must, should, must_not, filter"))?;
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                let mut positive = false;
                for (k, v) in o {
                    let list: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for item in list {
                        let sub = self.query(item)?;
                        match k.as_str() {
                            "must" => {
                                positive = true;
                                clauses.push((Occur::Must, sub));
                            }
                            "filter" => {
                                positive = true;
                                clauses
                                    .push((Occur::Must, Box::new(ConstScoreQuery::new(sub, 0.0))));
                            }
                            "should" => {
                                positive = true;
                                clauses.push((Occur::Should, sub));
                            }
                            "must_not" => clauses.push((Occur::MustNot, sub)),
                            other => {
                                return Err(bad(format!(
                                    "unknown bool clause [{other}]; use must, should, must_not, filter"
                                )));
                            }
                        }
                    }
                }
                if !positive {
                    // Only exclusions: everything else matches, as in Elasticsearch.
                    clauses.push((
                        Occur::Must,
                        Box::new(ConstScoreQuery::new(Box::new(AllQuery), 0.0)),
                    ));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            other => Err(bad(format!(
                "unknown query type [{other}]; use match_all, match, match_phrase, term, range, \
                 query_string or bool"
            ))),
        }
    }

    /// The field (and JSON path) a name refers to.
    fn resolve(&self, name: &str) -> Result<Target, BadRequest> {
        if let Some(c) = name.chars().find(|c| TANTIVY_SEPARATORS.contains(c)) {
            return Err(bad(format!(
                "a field name may not contain the character {c:?}"
            )));
        }
        let f = &self.fields;
        Ok(match name {
            "key" => Target::Text(f.key),
            "value" => Target::Value,
            "timestamp" => Target::Int(f.timestamp),
            "offset" => Target::Int(f.offset),
            "partition" => Target::Int(f.partition),
            _ => {
                if let Some(path) = name.strip_prefix("json.").filter(|p| !p.is_empty()) {
                    Target::Json(f.json, path.to_string())
                } else if let Some(path) = name.strip_prefix("headers.").filter(|p| !p.is_empty()) {
                    Target::Json(f.headers, path.to_string())
                } else {
                    return Err(bad(format!(
                        "unknown field [{name}]; use key, value, json.<path>, headers.<name>, \
                         timestamp, offset or partition"
                    )));
                }
            }
        })
    }

    /// `match` / `match_phrase` on `value`: each token in the text field or under any JSON
    /// path (a token of digits also as that number, `true`/`false` also as that boolean); a
    /// phrase within the text field or within one JSON path.
    fn match_value(&self, text: &str, phrase: bool, and: bool) -> Box<dyn Query> {
        let tokens = self.tokens(text);
        if tokens.is_empty() {
            return Box::new(EmptyQuery);
        }
        let (value, json) = (self.fields.value, self.fields.json);
        Box::new(OnValue::new(json, move |paths| {
            if phrase && tokens.len() > 1 {
                let mut alternatives: Vec<(Occur, Box<dyn Query>)> = vec![(
                    Occur::Should,
                    Box::new(PhraseQuery::new(
                        tokens
                            .iter()
                            .map(|t| Term::from_field_text(value, t))
                            .collect(),
                    )),
                )];
                for p in paths {
                    let terms = tokens
                        .iter()
                        .map(|t| {
                            let mut term = Term::from_field_json_path(json, p, false);
                            term.append_type_and_str(t);
                            term
                        })
                        .collect();
                    alternatives.push((Occur::Should, Box::new(PhraseQuery::new(terms))));
                }
                return Ok(Box::new(BooleanQuery::new(alternatives)));
            }
            let per_token = |t: &String| -> Vec<(Occur, Box<dyn Query>)> {
                token_terms(value, json, paths, t)
                    .into_iter()
                    .map(|t| (Occur::Should, term_query(t)))
                    .collect()
            };
            Ok(if and {
                Box::new(BooleanQuery::new(
                    tokens
                        .iter()
                        .map(|t| {
                            let q: Box<dyn Query> = Box::new(BooleanQuery::new(per_token(t)));
                            (Occur::Must, q)
                        })
                        .collect(),
                ))
            } else {
                Box::new(BooleanQuery::new(
                    tokens.iter().flat_map(per_token).collect(),
                ))
            })
        }))
    }

    /// `term` on `value`: the value as given in the text field or under any JSON path; a string
    /// of digits (or `true` / `false`) also as that number (boolean) there, as `match` does.
    fn term_value(&self, v: &Value) -> Result<Box<dyn Query>, BadRequest> {
        if !matches!(v, Value::String(_) | Value::Number(_)) {
            return Err(bad("[term] on [value] takes a string"));
        }
        let (value, json, v) = (self.fields.value, self.fields.json, v.clone());
        Ok(Box::new(OnValue::new(json, move |paths| {
            let terms = match &v {
                Value::Number(n) => {
                    let mut terms = vec![Term::from_field_text(value, &n.to_string())];
                    for p in paths {
                        terms.extend(json_exact_terms(json, "value", p, &v).unwrap_or_default());
                    }
                    terms
                }
                other => token_terms(value, json, paths, other.as_str().unwrap_or_default()),
            };
            Ok(Box::new(BooleanQuery::new(
                terms
                    .into_iter()
                    .map(|t| (Occur::Should, term_query(t)))
                    .collect(),
            )))
        })))
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        let mut analyzer = self
            .index
            .tokenizers()
            .get(TOKENIZER)
            .expect("the default tokenizer exists");
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// Terms of analysed text for `match`.
    fn text_terms(&self, field: &str, text: &str) -> Result<Vec<Term>, BadRequest> {
        match self.resolve(field)? {
            Target::Text(f) => Ok(self
                .tokens(text)
                .into_iter()
                .map(|t| Term::from_field_text(f, &t))
                .collect()),
            Target::Json(f, path) => Ok(self
                .tokens(text)
                .into_iter()
                .map(|t| {
                    let mut term = Term::from_field_json_path(f, &path, false);
                    term.append_type_and_str(&t);
                    term
                })
                .collect()),
            Target::Int(_) => Err(bad(format!("[{field}] is a number; use term or range"))),
            // `match` on `value` is built by match_value.
            Target::Value => Err(bad("[value] takes match, match_phrase or term")),
        }
    }

    /// Terms for `term`: the value as given, not analysed. A JSON number matches the number
    /// and the same digits as text.
    fn exact_terms(&self, field: &str, value: &Value) -> Result<Vec<Term>, BadRequest> {
        match self.resolve(field)? {
            Target::Text(f) => match value {
                Value::String(s) => Ok(vec![Term::from_field_text(f, s)]),
                Value::Number(n) => Ok(vec![Term::from_field_text(f, &n.to_string())]),
                _ => Err(bad(format!("[term] on [{field}] takes a string"))),
            },
            Target::Int(f) => Ok(vec![Term::from_field_i64(f, int_value(field, value)?)]),
            Target::Json(f, path) => json_exact_terms(f, field, &path, value),
            // `term` on `value` is built by term_value.
            Target::Value => Err(bad("[value] takes match, match_phrase or term")),
        }
    }

    fn range_term(&self, field: &str, v: &Value) -> Result<Term, BadRequest> {
        match self.resolve(field)? {
            Target::Int(f) => {
                let n = if f == self.fields.timestamp {
                    timestamp_value(v)?
                } else {
                    int_value(field, v)?
                };
                Ok(Term::from_field_i64(f, n))
            }
            Target::Json(f, path) if f == self.fields.json => {
                let mut t = Term::from_field_json_path(f, &path, false);
                match v {
                    Value::Number(n) if n.is_i64() => {
                        t.append_type_and_fast_value(n.as_i64().unwrap())
                    }
                    Value::Number(n) if n.is_u64() => {
                        t.append_type_and_fast_value(n.as_u64().unwrap())
                    }
                    Value::Number(n) => {
                        t.append_type_and_fast_value(n.as_f64().unwrap_or(f64::NAN))
                    }
                    _ => return Err(bad(format!("[range] on [{field}] takes numbers"))),
                }
                Ok(t)
            }
            _ => Err(bad(format!(
                "[range] works on timestamp, offset, partition and numeric json.<path>, not [{field}]"
            ))),
        }
    }
}

/// A boolean query of only exclusions matches nothing in Tantivy; the query parser makes one of
/// `a AND NOT b` (`+a +(-b)`). Every such group gets a match-everything clause, which gives the
/// meaning users expect (as the `bool` query does for `must_not` alone).
fn with_positive_clauses(q: Box<dyn Query>) -> Box<dyn Query> {
    let Some(b) = q.downcast_ref::<BooleanQuery>() else {
        return q;
    };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = b
        .clauses()
        .iter()
        .map(|(o, sub)| (*o, with_positive_clauses(sub.box_clone())))
        .collect();
    if !clauses.is_empty() && clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
        clauses.push((
            Occur::Must,
            Box::new(ConstScoreQuery::new(Box::new(AllQuery), 0.0)),
        ));
    }
    Box::new(BooleanQuery::new(clauses))
}

enum Target {
    /// `value`: the text field, and every JSON path of the index searched.
    Value,
    Text(Field),
    Int(Field),
    Json(Field, String),
}

/// The terms of one exact value at a JSON path: a string as it is; a number as that number and
/// as its digits in text; a boolean as that boolean.
fn json_exact_terms(
    f: Field,
    field: &str,
    path: &str,
    value: &Value,
) -> Result<Vec<Term>, BadRequest> {
    let base = || Term::from_field_json_path(f, path, false);
    let mut out = Vec::new();
    match value {
        Value::String(s) => {
            let mut t = base();
            t.append_type_and_str(s);
            out.push(t);
        }
        Value::Number(n) => {
            let mut t = base();
            if let Some(i) = n.as_i64() {
                t.append_type_and_fast_value(i);
            } else if let Some(u) = n.as_u64() {
                t.append_type_and_fast_value(u);
            } else {
                t.append_type_and_fast_value(n.as_f64().unwrap_or(f64::NAN));
            }
            out.push(t);
            let mut s = base();
            s.append_type_and_str(&n.to_string());
            out.push(s);
        }
        Value::Bool(b) => {
            let mut t = base();
            t.append_type_and_fast_value(*b);
            out.push(t);
        }
        _ => {
            return Err(bad(format!(
                "[term] on [{field}] takes a string, number or boolean"
            )));
        }
    }
    Ok(out)
}

/// The terms one analysed token of a `value` query stands for: the token in the text field and
/// under every JSON path; a token of digits also as that number there, `true` / `false` also as
/// that boolean (the text of a JSON object held those, before its strings and numbers were
/// indexed only under their paths).
fn token_terms(value: Field, json: Field, paths: &[String], token: &str) -> Vec<Term> {
    let mut out = vec![Term::from_field_text(value, token)];
    let int = token.parse::<i64>().ok();
    let uint = token.parse::<u64>().ok().filter(|_| int.is_none());
    let boolean = match token {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    fn typed<T: tantivy::fastfield::FastValue>(mut t: Term, v: T) -> Term {
        t.append_type_and_fast_value(v);
        t
    }
    for p in paths {
        let base = || Term::from_field_json_path(json, p, false);
        let mut t = base();
        t.append_type_and_str(token);
        out.push(t);
        out.extend(int.map(|i| typed(base(), i)));
        out.extend(uint.map(|u| typed(base(), u)));
        out.extend(boolean.map(|b| typed(base(), b)));
    }
    out
}

type Expand = dyn Fn(&[String]) -> tantivy::Result<Box<dyn Query>> + Send + Sync;

/// A query on `value`. The value of a record that is a JSON object is not indexed as text: its
/// strings and numbers are under their paths in `json` (indexing them twice cost a fifth of
/// the indexing CPU). So a query on `value` is built on each searcher anew, over the text field
/// and every JSON path that searcher's segments hold ([json_paths]).
#[derive(Clone)]
struct OnValue {
    json: Field,
    expand: Arc<Expand>,
}

impl OnValue {
    fn new(
        json: Field,
        expand: impl Fn(&[String]) -> tantivy::Result<Box<dyn Query>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            json,
            expand: Arc::new(expand),
        }
    }
}

impl std::fmt::Debug for OnValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What it is on an index without JSON paths.
        write!(f, "OnValue({:?})", (self.expand)(&[]))
    }
}

impl Query for OnValue {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let searcher = scoring.searcher().ok_or_else(|| {
            tantivy::TantivyError::InvalidArgument("a query on value needs a searcher".into())
        })?;
        let paths = json_paths(searcher, self.json)?;
        (self.expand)(&paths)?.weight(scoring)
    }
}

/// The JSON paths under `field` in any segment of `searcher`, as query paths (dots between
/// names, a dot or backslash in a name escaped). Segments never change, so each one's list is
/// kept (a bounded map): a remote split is read for it once.
pub fn json_paths(searcher: &Searcher, field: Field) -> tantivy::Result<Vec<String>> {
    type Cache = Mutex<HashMap<(SegmentId, Field), Arc<Vec<String>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut all = BTreeSet::new();
    for segment in searcher.segment_readers() {
        let key = (segment.segment_id(), field);
        let known = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let paths = match known {
            Some(p) => p,
            None => {
                let p = Arc::new(segment_json_paths(segment, field)?);
                let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                if c.len() >= 16_384 {
                    c.clear();
                }
                c.insert(key, p.clone());
                p
            }
        };
        all.extend(paths.iter().cloned());
    }
    Ok(all.into_iter().collect())
}

/// A segment's JSON paths, one seek of its term dictionary each: a JSON term is the path (names
/// separated by 1), 0, the value's type and the value, so the next path starts at or after
/// this path followed by 1 (its first child, if any, or the next name in order).
fn segment_json_paths(segment: &SegmentReader, field: Field) -> tantivy::Result<Vec<String>> {
    let inverted = segment.inverted_index(field)?;
    let dict = inverted.terms();
    let mut out = Vec::new();
    let mut from: Vec<u8> = Vec::new();
    loop {
        let mut stream = dict.range().ge(&from).into_stream()?;
        if !stream.advance() {
            break;
        }
        let key = stream.key();
        let Some(end) = key.iter().position(|&b| b == 0) else {
            break;
        };
        let raw = &key[..end];
        let names: Vec<String> = raw
            .split(|&b| b == 1)
            .map(|name| {
                String::from_utf8_lossy(name)
                    .replace('\\', "\\\\")
                    .replace('.', "\\.")
            })
            .collect();
        out.push(names.join("."));
        from.clear();
        from.extend_from_slice(raw);
        from.push(1);
    }
    Ok(out)
}

/// Whether a query string has a word or phrase on `value`, named or not.
fn mentions_value(ast: &UserInputAst) -> bool {
    match ast {
        UserInputAst::Clause(cs) => cs.iter().any(|(_, a)| mentions_value(a)),
        UserInputAst::Boost(a, _) => mentions_value(a),
        UserInputAst::Leaf(leaf) => match leaf.as_ref() {
            UserInputLeaf::Literal(l) => l.field_name.as_deref().is_none_or(|f| f == "value"),
            UserInputLeaf::Set { field, .. } => field.as_deref().is_none_or(|f| f == "value"),
            _ => false,
        },
    }
}

/// The query string with every word, phrase or set on `value` (named, or unnamed: then on
/// `key` too) also asked of every JSON path.
fn value_on_paths(ast: UserInputAst, paths: &[String]) -> UserInputAst {
    let leaf = |l: UserInputLeaf| UserInputAst::Leaf(Box::new(l));
    match ast {
        UserInputAst::Clause(cs) => UserInputAst::Clause(
            cs.into_iter()
                .map(|(o, a)| (o, value_on_paths(a, paths)))
                .collect(),
        ),
        UserInputAst::Boost(a, b) => UserInputAst::Boost(Box::new(value_on_paths(*a, paths)), b),
        UserInputAst::Leaf(l) => {
            let (named, with_field): (Option<String>, Box<dyn Fn(String) -> UserInputLeaf>) =
                match *l {
                    UserInputLeaf::Literal(lit)
                        if lit.field_name.as_deref().is_none_or(|f| f == "value") =>
                    {
                        let named = lit.field_name.clone();
                        (
                            named,
                            Box::new(move |f| {
                                let mut lit = lit.clone();
                                lit.field_name = Some(f);
                                UserInputLeaf::Literal(lit)
                            }),
                        )
                    }
                    UserInputLeaf::Set { field, elements }
                        if field.as_deref().is_none_or(|f| f == "value") =>
                    {
                        (
                            field,
                            Box::new(move |f| UserInputLeaf::Set {
                                field: Some(f),
                                elements: elements.clone(),
                            }),
                        )
                    }
                    other => return leaf(other),
                };
            let mut names = vec!["value".to_string()];
            if named.is_none() {
                names.insert(0, "key".to_string());
            }
            names.extend(paths.iter().map(|p| format!("json.{p}")));
            UserInputAst::Clause(
                names
                    .into_iter()
                    .map(|n| {
                        (
                            Some(tantivy::query_grammar::Occur::Should),
                            leaf(with_field(n)),
                        )
                    })
                    .collect(),
            )
        }
    }
}

fn term_query(t: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs))
}

/// JSON strings have no column (see `schema::NO_COLUMN`), so a range of strings on a JSON path
/// could only ever match nothing: refuse it, as the `range` query does.
fn json_ranges_of_numbers(ast: &tantivy::query_grammar::UserInputAst) -> Result<(), BadRequest> {
    use tantivy::query_grammar::{UserInputAst, UserInputBound, UserInputLeaf};
    match ast {
        UserInputAst::Clause(clauses) => clauses
            .iter()
            .try_for_each(|(_, a)| json_ranges_of_numbers(a)),
        UserInputAst::Boost(a, _) => json_ranges_of_numbers(a),
        UserInputAst::Leaf(leaf) => match leaf.as_ref() {
            UserInputLeaf::Range {
                field: Some(field),
                lower,
                upper,
            } if field.starts_with("json.") => {
                for b in [lower, upper] {
                    let v = match b {
                        UserInputBound::Inclusive(v) | UserInputBound::Exclusive(v) => v,
                        UserInputBound::Unbounded => continue,
                    };
                    if v != "*" && v.parse::<f64>().is_err() && parse_time(v).is_err() {
                        return Err(bad(format!(
                            "a range on [{field}] compares numbers or RFC 3339 times, not [{v}]"
                        )));
                    }
                }
                Ok(())
            }
            // Header values and the JSON root have no numeric column: Tantivy builds a range on
            // them and fails only when it runs (found by fuzzing, tests/fuzz).
            UserInputLeaf::Range {
                field: Some(field), ..
            } if field == "json" || field == "headers" || field.starts_with("headers.") => {
                Err(bad(format!(
                    "a range works on timestamp, offset, partition, key, value and numeric \
                     json.<path>, not [{field}]"
                )))
            }
            // `field:*` asks the field's column, which only these fields have; Tantivy builds
            // the query for any name and fails only when it runs (found by fuzzing).
            UserInputLeaf::Exists { field } => {
                let columnar = matches!(field.as_str(), "timestamp" | "offset" | "partition")
                    || field.strip_prefix("json.").is_some_and(|p| !p.is_empty());
                if columnar {
                    Ok(())
                } else {
                    Err(bad(format!(
                        "[{field}:*] (exists) works on timestamp, offset, partition and json \
                         paths"
                    )))
                }
            }
            _ => Ok(()),
        },
    }
}

/// The fields the schema keeps only in columnar form, by name, for the query-string rewrite
/// below (the `term` query asks the schema itself).
const COLUMNAR_ONLY: [&str; 2] = ["offset", "timestamp"];

impl QueryBuilder {
    /// A query for one exact term; on a field that is not in the inverted index (only in
    /// columnar form) the range of that one value.
    fn exact_query(&self, t: Term) -> Box<dyn Query> {
        let indexed = self.fields.schema.get_field_entry(t.field()).is_indexed();
        if !indexed {
            Box::new(RangeQuery::new(
                Bound::Included(t.clone()),
                Bound::Included(t),
            ))
        } else {
            term_query(t)
        }
    }
}

/// Rewrites `offset:N` and `timestamp:N` outside quotes as `offset:[N TO N]`: Tantivy's query
/// parser answers ranges on a columnar-only field but refuses a single term on one.
fn columnar_terms_as_ranges(text: &str) -> std::borrow::Cow<'_, str> {
    if !COLUMNAR_ONLY
        .iter()
        .any(|f| text.contains(&format!("{f}:")))
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut quoted = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let at_word_start = !quoted
            && out
                .chars()
                .last()
                .is_none_or(|p| p.is_whitespace() || matches!(p, '(' | '+' | '-'));
        if at_word_start
            && let Some(field) = COLUMNAR_ONLY
                .iter()
                .find(|f| rest.starts_with(**f) && rest[f.len()..].starts_with(':'))
        {
            let after = &rest[field.len() + 1..];
            let sign = usize::from(after.starts_with('-'));
            let digits = after[sign..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len() - sign);
            let end = sign + digits;
            let ends_word = after[end..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == ')');
            if digits > 0 && ends_word {
                let n = &after[..end];
                out.push_str(&format!("{field}:[{n} TO {n}]"));
                rest = &after[end..];
                continue;
            }
        }
        if c == '"' {
            quoted = !quoted;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

fn single_field<'a>(kind: &str, body: &'a Value) -> Result<(&'a str, &'a Value), BadRequest> {
    let o = body
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| parse_err(format!("[{kind}] takes exactly one field")))?;
    let (k, v) = o.iter().next().expect("one entry");
    Ok((k.as_str(), v))
}

fn int_value(field: &str, v: &Value) -> Result<i64, BadRequest> {
    v.as_i64()
        .ok_or_else(|| bad(format!("[{field}] takes an integer")))
}

/// Milliseconds since the epoch, or an RFC 3339 time.
pub fn timestamp_value(v: &Value) -> Result<i64, BadRequest> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| bad("a timestamp is milliseconds since the epoch")),
        Value::String(s) => parse_time(s),
        _ => Err(bad("a timestamp is milliseconds or an RFC 3339 string")),
    }
}

/// Milliseconds since the epoch, or an RFC 3339 time (`2026-03-01T00:00:00Z`).
pub fn parse_time(s: &str) -> Result<i64, BadRequest> {
    if let Ok(ms) = s.trim().parse::<i64>() {
        return Ok(ms);
    }
    tantivy::time::OffsetDateTime::parse(
        s.trim(),
        &tantivy::time::format_description::well_known::Rfc3339,
    )
    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    .map_err(|e| bad(format!("{s} is not milliseconds or an RFC 3339 time: {e}")))
}

fn parse_sort(v: Option<&Value>) -> Result<Sort, BadRequest> {
    let item = match v {
        None | Some(Value::Null) => return Ok(Sort::Score),
        Some(Value::Array(a)) if a.is_empty() => return Ok(Sort::Score),
        Some(Value::Array(a)) if a.len() == 1 => &a[0],
        Some(Value::Array(_)) => {
            return Err(bad(
                "sort by one of _score, timestamp or offset (ties go by partition, offset)",
            ));
        }
        Some(other) => other,
    };
    let (field, order) = match item {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) if o.len() == 1 => {
            let (k, v) = o.iter().next().expect("one entry");
            let order = match v {
                Value::String(s) => s.as_str(),
                Value::Object(inner) => inner
                    .get("order")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("sort order is asc or desc"))?,
                _ => return Err(bad("sort order is asc or desc")),
            };
            (k.as_str(), Some(order))
        }
        _ => return Err(bad("sort is _score, timestamp or offset")),
    };
    let asc = match order {
        None => None,
        Some("asc") => Some(true),
        Some("desc") => Some(false),
        Some(o) => return Err(bad(format!("sort order is asc or desc, not {o}"))),
    };
    match field {
        "_score" => Ok(Sort::Score),
        "timestamp" => Ok(Sort::Timestamp {
            asc: asc.unwrap_or(false),
        }),
        "offset" => Ok(Sort::Offset {
            asc: asc.unwrap_or(true),
        }),
        other => Err(bad(format!(
            "cannot sort by [{other}]; use _score, timestamp or offset"
        ))),
    }
}

/// Deepest nesting of parentheses a query string may have.
pub const MAX_QUERY_STRING_DEPTH: usize = 64;
/// Most words and operators (`AND`, `NOT`, ...) a query string may have.
pub const MAX_QUERY_STRING_WORDS: usize = 1024;

/// The deepest nesting of parentheses in `text`, outside quoted phrases.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut quoted, mut escaped) = (0usize, 0usize, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_query_strings_are_refused_not_parsed() {
        assert_eq!(nesting_depth("(a OR (b AND c)) \"((\" \\("), 2);
        let b = qb();
        let deep = format!("{}x{}", "(".repeat(50_000), ")".repeat(50_000));
        let err = b.query_string(&deep).expect_err("refused");
        assert!(
            err.parse && err.reason.contains("at most 64 deep"),
            "{err:?}"
        );
        let ok = format!("{}x{}", "(".repeat(64), ")".repeat(64));
        assert!(b.query_string(&ok).is_ok());
        let nots = format!("{}x", "NOT ".repeat(20_000));
        let err = b.query_string(&nots).expect_err("refused");
        assert!(err.reason.contains("at most 1024 words"), "{err:?}");
        // Within the bounds, the worst chains parse on a request thread's stack.
        for q in [
            format!("{}x", "NOT ".repeat(1023)),
            vec!["x"; 512].join(" AND "),
            format!("{}x{}", "(NOT ".repeat(64), ")".repeat(64)),
        ] {
            let parsed = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn({
                    let b = qb();
                    move || b.query_string(&q).is_ok() || b.query_string(&q).is_err()
                })
                .expect("thread")
                .join();
            assert!(parsed.is_ok());
        }
    }

    use serde_json::json;

    fn qb() -> QueryBuilder {
        QueryBuilder::new(Fields::new(), 10_000)
    }

    /// Runs `q` on an empty index of this schema: a query that parsed must also run.
    fn runs(q: &dyn Query) -> tantivy::Result<usize> {
        let index = Index::create_in_ram(Fields::new().schema);
        super::super::schema::register_analyzers(&index);
        index
            .reader()?
            .searcher()
            .search(q, &tantivy::collector::Count)
    }

    /// Fuzzing (tests/fuzz, target search_query) found a query string whose JSON path holds NUL
    /// bytes: Tantivy's query parser asserted on it (a panic on a request thread). Such paths are
    /// a 400 now, in query strings and JSON queries alike.
    #[test]
    fn fuzz_nul_in_a_json_path_is_a_bad_request() {
        let q = qb();
        let input = b"json.shipping.addr\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7fK\x00\x00\x00\x00\x00\x00\x00\x7f\x7f\x7f\x7f\x7f\x7f\x7fess.city:\x22new ~ork\x22 AND json.customeingourror:de";
        let text = std::str::from_utf8(input).expect("utf-8");
        let e = q.query_string(text).expect_err("refused");
        assert!(e.parse, "{e:?}");
        for name in ["json.a\u{0}b", "json.a\u{1}b", "headers.x\u{0}"] {
            let e = q.query(&json!({"term": {name: "x"}})).expect_err("refused");
            assert!(e.reason.contains("may not contain"), "{e:?}");
        }
        q.query_string("json.a.b:x").expect("a plain path parses");
    }

    /// Fuzzing found `jssizeon.status:*`: an exists query on a field the schema lacks parsed and
    /// then failed when it ran (an internal error instead of a 400). Exists works on the fields
    /// with a column only.
    #[test]
    fn fuzz_queries_that_parse_but_cannot_run_are_bad_requests() {
        let q = qb();
        for text in ["jssizeon.status:*", "key:*", "value:*", "headers.trace:*"] {
            let e = q.query_string(text).expect_err(text);
            assert!(e.reason.contains("exists"), "{text}: {e:?}");
        }
        // A range on header values (`headers:<R`) failed the same way when it ran.
        for text in ["headers:<R buser", "headers.trace:[a TO b]", "json:>5"] {
            let e = q.query_string(text).expect_err(text);
            assert!(e.reason.contains("range"), "{text}: {e:?}");
        }
        for text in [
            "json.status:*",
            "timestamp:*",
            "offset:* AND partition:*",
            "key:[a TO b]",
        ] {
            let parsed = q.query_string(text).expect(text);
            runs(parsed.as_ref()).expect(text);
        }
    }

    #[test]
    fn columnar_only_names_the_fields_the_schema_does_not_index() {
        let f = Fields::new();
        for name in COLUMNAR_ONLY {
            let field = f.schema.get_field(name).expect("in the schema");
            assert!(!f.schema.get_field_entry(field).is_indexed(), "{name}");
        }
    }

    #[test]
    fn exact_offsets_and_timestamps_in_query_strings_become_ranges() {
        for (given, want) in [
            ("value:error", "value:error"),
            ("offset:42", "offset:[42 TO 42]"),
            (
                "offset:-1 AND timestamp:1700",
                "offset:[-1 TO -1] AND timestamp:[1700 TO 1700]",
            ),
            ("(offset:5) +offset:6", "(offset:[5 TO 5]) +offset:[6 TO 6]"),
            ("offset:[1 TO 5]", "offset:[1 TO 5]"),
            ("\"offset:5\" offset:5", "\"offset:5\" offset:[5 TO 5]"),
            (
                "json.offset:5 myoffset:5 offset:5x",
                "json.offset:5 myoffset:5 offset:5x",
            ),
        ] {
            assert_eq!(columnar_terms_as_ranges(given), want, "{given}");
        }
        let q = qb();
        q.query_string("offset:42 OR timestamp:7").expect("parses");
        q.query_string("json.amount:[1 TO 5.5} AND json.at:[2026-01-01T00:00:00Z TO *]")
            .expect("numbers and times");
        let e = q
            .query_string("json.level:[a TO m]")
            .expect_err("strings refused");
        assert!(e.reason.contains("json.level"), "{e:?}");
        q.query(&json!({"term": {"offset": 42}})).expect("parses");
    }

    #[test]
    fn every_query_type_parses() {
        let qb = qb();
        for q in [
            json!({"match_all": {}}),
            json!({"match": {"value": "disk full"}}),
            json!({"match": {"value": {"query": "disk full", "operator": "and"}}}),
            json!({"match_phrase": {"json.note": "disk full"}}),
            json!({"term": {"json.status": "paid"}}),
            json!({"term": {"json.order.id": 8812}}),
            json!({"term": {"partition": 2}}),
            json!({"range": {"timestamp": {"gte": "2026-03-01T00:00:00Z", "lt": 1800000000000i64}}}),
            json!({"range": {"json.amount": {"gt": 10, "lte": 20.5}}}),
            json!({"query_string": {"query": "value:error AND json.level:warn"}}),
            json!({"bool": {"must": [{"match": {"value": "a"}}], "must_not": {"term": {"offset": 3}}}}),
            json!({"bool": {"must_not": [{"match": {"value": "a"}}]}}),
        ] {
            qb.query(&q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
        }
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let qb = qb();
        let e = qb
            .query(&json!({"query_string": {"query": "value:(unclosed"}}))
            .err()
            .unwrap();
        assert!(e.parse && !e.reason.is_empty(), "{e:?}");
        // `a AND NOT b` keeps its meaning (the parser alone makes it match nothing).
        let q = qb.query_string("error AND NOT checkout").unwrap();
        let text = format!("{q:?}");
        assert!(text.contains("AllQuery"), "{text}");
        let e = qb.query(&json!({"fuzzy": {"value": "x"}})).err().unwrap();
        assert!(e.reason.contains("unknown query type"), "{e:?}");
        let e = qb.query(&json!({"match": {"nope": "x"}})).err().unwrap();
        assert!(e.reason.contains("unknown field"), "{e:?}");
        let e = qb
            .query(&json!({"range": {"value": {"gt": 1}}}))
            .err()
            .unwrap();
        assert!(e.reason.contains("[range]"), "{e:?}");
        for field in ["json.user.name", "timestamp"] {
            let e = qb.query(&json!({"range": {field: {}}})).err().unwrap();
            assert!(e.reason.contains("at least one of"), "{field}: {e:?}");
        }
        let e = qb
            .request(&json!({"size": 9000, "from": 2000}))
            .err()
            .unwrap();
        assert!(e.reason.contains("result window"), "{e:?}");
        assert!(qb.request(&json!({"sort": [{"value": "asc"}]})).is_err());
        assert!(qb.request(&json!({"bogus": 1})).is_err());
        assert!(qb.request(&json!([1])).err().unwrap().parse);
    }

    #[test]
    fn sort_keys_order_as_documented() {
        // Timestamp descending, ties by partition then offset ascending.
        let s = Sort::Timestamp { asc: false };
        let a = SortKey::new(s, 0.0, 0, 5, 100);
        let b = SortKey::new(s, 0.0, 1, 2, 100);
        let c = SortKey::new(s, 0.0, 0, 9, 99);
        assert!(a > b && b > c);
        let s = Sort::Offset { asc: true };
        assert!(SortKey::new(s, 0.0, 1, 3, 0) > SortKey::new(s, 0.0, 0, 4, 0));
        assert!(SortKey::new(s, 0.0, 0, 3, 0) > SortKey::new(s, 0.0, 1, 3, 0));
        // search_after round-trips the hit's sort array.
        let k = SortKey::new(Sort::Timestamp { asc: true }, 0.0, 2, 7, 1000);
        let back = SortKey::from_values(
            Sort::Timestamp { asc: true },
            &[json!(1000), json!(2), json!(7)],
        )
        .unwrap();
        assert_eq!(k, back);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1000);
    }

    /// A one-segment index of these values (offsets 0, 1, ...) and the offsets a query finds.
    fn index_of(values: &[&str]) -> (QueryBuilder, tantivy::Searcher) {
        let qb = qb();
        let index = Index::create_in_ram(qb.fields.schema.clone());
        crate::search::schema::register_analyzers(&index);
        let mut w: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        for (i, v) in values.iter().enumerate() {
            let r = crate::log::records::LogRecord {
                offset: i as i64,
                timestamp: 0,
                key: None,
                value: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
                headers: Vec::new(),
            };
            w.add_document(crate::search::schema::document(&qb.fields, 0, &r, &[]))
                .unwrap();
        }
        w.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        (qb, searcher)
    }

    fn found(qb: &QueryBuilder, searcher: &tantivy::Searcher, q: Value) -> Vec<i64> {
        let q = qb.query(&q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
        let docs = searcher
            .search(&q, &tantivy::collector::DocSetCollector)
            .unwrap();
        let offsets = searcher
            .segment_reader(0)
            .fast_fields()
            .i64("offset")
            .unwrap();
        let mut out: Vec<i64> = docs
            .into_iter()
            .map(|d| offsets.first(d.doc_id).unwrap())
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn json_paths_are_listed_with_nesting_and_escapes() {
        let (qb, searcher) = index_of(&[
            r#"{"a":{"b":"x","c":1},"d.e":"y","f\\g":true}"#,
            r#"{"z":"late","a":{"b":"again"}}"#,
            "not json",
        ]);
        let paths = json_paths(&searcher, qb.fields.json).unwrap();
        assert_eq!(paths, ["a.b", "a.c", "d\\.e", "f\\\\g", "z"]);
        // The escaped names find their values.
        let t = |path: &str, v: Value| {
            found(&qb, &searcher, json!({"term": {format!("json.{path}"): v}}))
        };
        assert_eq!(t("d\\.e", json!("y")), [0]);
        assert_eq!(t("f\\\\g", json!(true)), [0]);
    }

    #[test]
    fn value_of_a_json_object_is_its_strings_and_numbers() {
        let (qb, searcher) = index_of(&[
            r#"{"status":"paid","order":{"id":8812,"note":"disk full now"},"ok":true}"#,
            "status paid disk full 8812",
            r#"{"msg":"disk","other":"full","amount":940.71}"#,
            r#"["not","an","object"]"#,
        ]);
        let f = |q: Value| found(&qb, &searcher, q);
        assert_eq!(f(json!({"match": {"value": "paid"}})), [0, 1]);
        assert_eq!(f(json!({"match": {"value": "8812"}})), [0, 1]);
        assert_eq!(f(json!({"term": {"value": "8812"}})), [0, 1]);
        assert_eq!(f(json!({"term": {"value": 8812}})), [0, 1]);
        assert_eq!(f(json!({"match": {"value": "true"}})), [0]);
        assert_eq!(f(json!({"match": {"value": "object"}})), [3]);
        // Key names are not part of it; a phrase stays within one string.
        assert_eq!(f(json!({"match": {"value": "status"}})), [1]);
        assert_eq!(f(json!({"match_phrase": {"value": "disk full"}})), [0, 1]);
        assert_eq!(
            f(json!({"match": {"value": {"query": "disk full", "operator": "and"}}})),
            [0, 1, 2]
        );
        // A fraction is one number, not the digits on either side of its point.
        assert_eq!(f(json!({"match": {"value": "940"}})), Vec::<i64>::new());
        assert_eq!(f(json!({"range": {"json.amount": {"gt": 940}}})), [2]);
        // Query strings: named and unnamed words, phrases, and a number.
        assert_eq!(f(json!({"query_string": {"query": "value:paid"}})), [0, 1]);
        let set = json!({"query_string": {"query": "value: IN [paid object]"}});
        assert_eq!(f(set), [0, 1, 3]);
        assert_eq!(
            f(json!({"query_string": {"query": "paid AND NOT status"}})),
            [0]
        );
        assert_eq!(
            f(json!({"query_string": {"query": "\"disk full\""}})),
            [0, 1]
        );
        assert_eq!(f(json!({"query_string": {"query": "value:8812"}})), [0, 1]);
        assert_eq!(
            f(json!({"query_string": {"query": "json.status:paid"}})),
            [0]
        );
    }
}
