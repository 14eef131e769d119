"""Deterministic search corpus and a brute-force evaluator of the search query DSL (docs/search.md).

Nothing here talks to a broker: test_search.py produces the corpus, asks the broker, and compares
every answer with `Evaluator` (a linear scan over every record). test_search_corpus.py tests the
evaluator itself.

Semantics implemented (from docs/search.md; see the module-level notes where the spec is silent):

* Tokenizer: split on every character that is not alphanumeric (Python `str.isalnum()`, the same
  set as Rust's `char::is_alphanumeric` for every character the corpus uses), lower-case, drop
  tokens whose UTF-8 encoding is 40 bytes or more. A dropped token keeps its position (Tantivy's
  RemoveLongFilter does not renumber), though the corpus only puts long tokens at the end of a
  line so no phrase query can straddle one.
* `key` / `value`: the tokens of the bytes when they are valid UTF-8. A value that is a JSON
  object has no text of its own: `value` matches a token in any of its strings (a phrase within
  one string) or, for a word of digits, an integer of it equal to the word (not key names, not
  a quoted number). `json.<path>`: the tokens of the string at that path, or the
  integer there (values that are JSON objects only). `headers.<name>`: the tokens of that
  header's value.
* `term` is not tokenized: a string matches one token, an integer matches an integer.
* `query_string`: `field:word` is the word tokenized like the field (one token: a term, several:
  a phrase); on a JSON path (and so on `value`) an integer word also matches that integer.
  Unqualified words and phrases search `key` and `value`. The evaluator accepts only unambiguous query strings
  (no unparenthesised mix of AND and OR, no NOT inside OR, no query that is only negative).
* `bool`: Elasticsearch semantics (only `must_not`: every other record).
* `time`: from <= timestamp < to. `partitions`: only these.
* Sort orders with their tie-breaks: offset asc -> (offset, partition); timestamp desc ->
  (-timestamp, partition, offset); and so on.
"""
import base64
import datetime
import json
import random
import re

PARTITIONS = 3
BASE_TS = 1_780_000_000_000  # 2026-05-28T20:26:40Z; retention.ms=-1 on the test topics keeps it
TS_STEP = 1000  # two consecutive corpus records share one timestamp slot, slots 1 s apart
MAX_TOKEN_BYTES = 40  # tokens of this many UTF-8 bytes or more are dropped
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

_TOKEN_RE = re.compile(r"[^\W_]+")  # \w minus "_" is exactly str.isalnum() in Python's re


def tokenize(text):
    """Tokens of `text` in position order; a dropped (too long) token is None."""
    out = []
    for m in _TOKEN_RE.finditer(text):
        tok = m.group()
        out.append(None if len(tok.encode()) >= MAX_TOKEN_BYTES else tok.lower())
    return tuple(out)


def query_tokens(text):
    return [t for t in tokenize(text) if t is not None]


def utf8(data):
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def flatten_json(obj, prefix="", out=None):
    """{path: int | tokens} of a JSON object; nested objects give dotted paths."""
    if out is None:
        out = {}
    for k, v in obj.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            flatten_json(v, path + ".", out)
        elif isinstance(v, bool) or v is None:
            raise ValueError(f"the corpus has no {v!r} in JSON values ({path})")
        elif isinstance(v, int):
            out[path] = v
        elif isinstance(v, str):
            out[path] = tokenize(v)
        else:
            raise ValueError(f"the corpus has no {type(v).__name__} in JSON values ({path})")
    return out


class Record:
    """One produced record, plus what the index should hold for it."""

    __slots__ = ("idx", "key", "value", "headers", "ts", "partition", "offset",
                 "key_toks", "value_toks", "json", "hdr")

    def __init__(self, idx, key, value, headers, ts, partition):
        self.idx, self.key, self.value, self.headers = idx, key, value, headers
        self.ts, self.partition, self.offset = ts, partition, None
        self.analyze()

    def analyze(self):
        k = utf8(self.key)
        self.key_toks = tokenize(k) if k is not None else None
        v = utf8(self.value)
        self.value_toks = tokenize(v) if v is not None else None
        self.json = None
        if v is not None and v.lstrip().startswith("{"):
            obj = json.loads(v)
            if isinstance(obj, dict):
                self.json = flatten_json(obj)
        self.hdr = {}
        for name, hv in self.headers or ():
            text = utf8(hv)
            if text is not None:
                assert name not in self.hdr, "the corpus never repeats a header name"
                self.hdr[name] = tokenize(text)

    def __repr__(self):
        return (f"Record(#{self.idx} p{self.partition}@{self.offset} ts={self.ts} key={self.key!r} "
                f"value={self.value[:160] if self.value else self.value!r} headers={self.headers!r})")


# --- the corpus --------------------------------------------------------------------------------

LEVELS = ["INFO", "WARN", "ERROR", "DEBUG"]
LEVEL_WEIGHTS = [55, 20, 10, 15]
SERVICES = ["checkout", "payments", "inventory", "shipping", "auth", "search-api", "billing", "gateway"]
WORDS = ["disk", "full", "timeout", "retry", "connection", "refused", "upstream", "cache", "miss",
         "latency", "slow", "queue", "backlog", "user", "login", "session", "expired", "payment",
         "declined", "approved", "shipped", "delivered", "warehouse", "stock", "low", "request",
         "served", "the", "after", "attempt", "volume", "growing"]
UNICODE_WORDS = ["Grüße", "CAFÉ", "naïve", "日本語", "Ünïcödé", "ΔΕΛΤΑ", "smörgåsbord"]
PHRASES = [
    "disk full on volume {vol}",
    "connection refused by upstream {svc}",
    "payment declined after {n} attempts",
    "cache miss for user {uid}",
    "request served in {ms} ms",
    "queue backlog is growing",
    "session expired for user {uid}",
    "stock low in warehouse {wh}",
    "shipped to {city}",
    "login ok for user {uid}",
]
STATUSES = ["paid", "pending", "failed", "refunded", "cancelled"]
STATUS_WEIGHTS = [50, 20, 12, 10, 8]
COUNTRIES = ["de", "fr", "us", "jp", "br", "it", "se"]
NAMES = ["Anna Müller", "José García", "Li Wei", "Søren Olsen", "Zoë Martin", "Jean Dupont",
         "Akira Tanaka", "田中 太郎"]
CITIES = ["berlin", "paris", "new york", "são paulo", "tokyo", "münchen", "zürich"]
SOURCES = ["web", "mobile-app", "batch", "api"]
SOURCE_WEIGHTS = [40, 30, 10, 20]
TENANTS = ["acme", "globex", "initech", "umbrella"]
ORDER_IDS = range(8000, 11000)  # order-8812 and 2999 others: ~80 records each at 300000
# Tokens around the 40-byte limit: kept (39 bytes, 38 bytes in 19 two-byte letters) and dropped
# (40 bytes, 40 bytes in 20 two-byte letters).
TOK39 = "k" + "39" * 19
TOK40 = "k" + "40" * 19 + "x"
TOKU19 = "ü" * 19
TOKU20 = "ü" * 20
assert [len(t.encode()) for t in (TOK39, TOK40, TOKU19, TOKU20)] == [39, 40, 38, 40]


def _log_line(rng, level, oid, uid):
    service = rng.choice(SERVICES)
    phrase = rng.choice(PHRASES).format(
        vol=rng.randint(1, 9), svc=rng.choice(SERVICES), n=rng.randint(2, 5), uid=uid,
        ms=rng.randint(1, 2000), wh=rng.choice(["north", "south", "east"]), city=rng.choice(CITIES))
    parts = [f"{level} [{service}] order-{oid} {phrase}"]
    parts += rng.sample(WORDS, rng.randint(0, 4))
    if rng.random() < 0.04:
        parts.append(rng.choice(UNICODE_WORDS))
    # Long tokens only at the end of a line, so no phrase runs across a dropped token.
    r = rng.random()
    if r < 0.01:
        parts.append(f"ref={TOK39}")
    elif r < 0.02:
        parts.append(f"ref={TOK40}")
    elif r < 0.03:
        parts.append("sha=" + "%045x" % rng.getrandbits(180))
    elif r < 0.035:
        parts.append(f"sig {TOKU19}")
    elif r < 0.04:
        parts.append(f"sig {TOKU20}")
    return " ".join(parts)


def _json_value(rng, level, oid, uid):
    obj = {
        "order": {"id": oid, "amount": rng.randint(1, 5000)},
        "status": rng.choices(STATUSES, STATUS_WEIGHTS)[0],
        "customer": {"country": rng.choice(COUNTRIES), "name": rng.choice(NAMES)},
        "level": level.lower(),
        "msg": rng.choice(PHRASES).format(
            vol=rng.randint(1, 9), svc=rng.choice(SERVICES), n=rng.randint(2, 5), uid=uid,
            ms=rng.randint(1, 2000), wh="north", city=rng.choice(CITIES)),
        "retries": rng.randint(0, 7),
        "delta": rng.randint(-500, 500),
    }
    if rng.random() < 0.15:
        obj["coupon"] = rng.choice(["save10", "SPRING", "vip"])
    if rng.random() < 0.30:
        obj["shipping"] = {"address": {"city": rng.choice(CITIES), "zip": rng.randint(10000, 99999)}}
    if rng.random() < 0.10:
        text = json.dumps(obj, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text


def generate_corpus(n, seed, base_ts=BASE_TS, partition_weights=(5, 3, 2)):
    """n records: (key, value, headers, timestamp, partition), all derived from `seed`."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        level = rng.choices(LEVELS, LEVEL_WEIGHTS)[0]
        oid = rng.choice(ORDER_IDS)
        uid = rng.randint(100, 999)
        # value
        r = rng.random()
        if r < 0.005:
            value = b"\xff\xfe" + rng.randbytes(rng.randint(1, 40))  # never valid UTF-8
        elif r < 0.008:
            value = None
        elif r < 0.010:
            value = b""
        elif r < 0.020:
            value = rng.choice(["404", '"plain string value"', "true", "null", "-17"]).encode()
        elif r < 0.370:
            value = _json_value(rng, level, oid, uid).encode()
        else:
            value = _log_line(rng, level, oid, uid).encode()
        # key
        r = rng.random()
        if r < 0.35:
            key = None
        elif r < 0.75:
            key = f"order-{oid}".encode()
        elif r < 0.85:
            key = f"user-{uid}".encode()
        elif r < 0.90:
            key = f"kunde-müller-{rng.randint(1, 50)}".encode()
        elif r < 0.98:
            key = f"tenant/{rng.choice(TENANTS)}/{rng.randint(1, 99)}".encode()
        else:
            key = b"\xfe\xff" + rng.randbytes(4)  # never valid UTF-8
        # headers
        headers = None
        if rng.random() < 0.5:
            headers = [("trace", ("%016x" % rng.getrandbits(64)).encode()),
                       ("source", rng.choices(SOURCES, SOURCE_WEIGHTS)[0].encode())]
            if rng.random() < 0.5:
                headers.append(("tenant", rng.choice(TENANTS).encode()))
            if rng.random() < 0.02:
                headers.append(("bin", b"\x80\xff" + bytes([i % 256])))  # not UTF-8
        ts = base_ts + (i // 2) * TS_STEP
        if rng.random() < 0.01:
            ts -= rng.randint(1, 600) * 1000  # a little out of order
        partition = rng.choices(range(PARTITIONS), partition_weights)[0]
        records.append(Record(i, key, value, headers, ts, partition))
    return records


def assign_offsets_in_order(records):
    """Offsets as a broker assigns them when each partition's records arrive in index order."""
    nxt = {}
    for rec in records:
        rec.offset = nxt.get(rec.partition, 0)
        nxt[rec.partition] = rec.offset + 1
    return nxt


def codec_slices(n, plan=None):
    """[(codec, lo, hi)]: contiguous slices of the corpus, one producer each. `plan` is a list of
    (codec, weight); by default every codec of CODECS gets an equal share."""
    plan = plan or [(c, 1) for c in CODECS]
    total = sum(w for _, w in plan)
    out, lo, acc = [], 0, 0
    for i, (codec, w) in enumerate(plan):
        acc += w
        hi = n if i == len(plan) - 1 else n * acc // total
        out.append((codec, lo, hi))
        lo = hi
    return out


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def iso(ms):
    """RFC 3339 (UTC, "Z") of a time in ms, exact to the millisecond."""
    dt = _EPOCH + datetime.timedelta(milliseconds=ms)
    frac = f".{ms % 1000:03d}" if ms % 1000 else ""
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


# --- the queries -------------------------------------------------------------------------------

QUERY_NAMES = [
    "match_all", "match_value_or", "match_value_two_tokens_or", "match_value_and",
    "match_value_unicode", "match_phrase_value", "match_phrase_value_long", "match_phrase_json_path",
    "match_key", "match_key_unicode", "term_json_string", "term_json_nested_string",
    "term_json_number", "term_json_negative_number", "term_partition", "term_timestamp",
    "term_offset", "term_value_39_bytes", "term_value_40_bytes_dropped", "term_value_multibyte_kept",
    "term_value_multibyte_dropped", "range_timestamp", "range_offset", "range_json_amount",
    "range_json_negative", "range_partition", "qs_qualified_and", "qs_unqualified",
    "qs_and_or_not", "qs_phrases_or", "qs_json_range_and", "qs_timestamp_range_exclusive",
    "qs_plus_minus", "qs_json_number", "qs_headers_key", "qs_uppercase_word", "bool_must_must_not",
    "bool_should_only", "bool_filter_should", "bool_everything", "bool_only_must_not",
    "bool_nested", "bool_filter_only", "qs_json_phrase", "qs_multi_token_word", "match_key_and",
    "headers_term", "headers_match", "headers_trace_single", "partitions_filter",
    "time_window_rfc3339", "time_window_partitions_bool", "time_window_match_all",
]


def build_queries(records, base_ts=BASE_TS):
    """{name: request body without size/sort/from}; values picked from the corpus itself."""
    n = len(records)
    span = (n // 2) * TS_STEP  # timestamps lie in about [base_ts - 600 s, base_ts + span)
    with_headers = [r for r in records if r.headers]
    traced = with_headers[len(with_headers) // 7]
    mid = records[n // 2]
    # window bounds on whole seconds, where records sit exactly on from (in) and to (out)
    t1 = base_ts + span // 3 // 1000 * 1000
    t2 = t1 + span // 20 // 1000 * 1000
    q = {
        "match_all": {"query": {"match_all": {}}},
        "match_value_or": {"query": {"match": {"value": "error"}}},
        "match_value_two_tokens_or": {"query": {"match": {"value": "disk full"}}},
        "match_value_and": {"query": {"match": {"value": {"query": "disk full", "operator": "and"}}}},
        "match_value_unicode": {"query": {"match": {"value": "grüße ΔΕΛΤΑ"}}},
        "match_phrase_value": {"query": {"match_phrase": {"value": "disk full"}}},
        "match_phrase_value_long": {"query": {"match_phrase": {"value": "connection refused by upstream payments"}}},
        "match_phrase_json_path": {"query": {"match_phrase": {"json.shipping.address.city": "new york"}}},
        "match_key": {"query": {"match": {"key": "8812"}}},
        "match_key_unicode": {"query": {"match": {"key": "Müller"}}},
        "term_json_string": {"query": {"term": {"json.status": "paid"}}},
        "term_json_nested_string": {"query": {"term": {"json.customer.country": "de"}}},
        "term_json_number": {"query": {"term": {"json.order.id": 8812}}},
        "term_json_negative_number": {"query": {"term": {"json.delta": -17}}},
        "term_partition": {"query": {"term": {"partition": 2}}},
        "term_timestamp": {"query": {"term": {"timestamp": mid.ts}}},
        "term_offset": {"query": {"term": {"offset": 5}}},
        "term_value_39_bytes": {"query": {"term": {"value": TOK39}}},
        "term_value_40_bytes_dropped": {"query": {"term": {"value": TOK40}}},
        "term_value_multibyte_kept": {"query": {"term": {"value": TOKU19}}},
        "term_value_multibyte_dropped": {"query": {"term": {"value": TOKU20}}},
        "range_timestamp": {"query": {"range": {"timestamp": {"gte": t1, "lt": t2}}}},
        "range_offset": {"query": {"range": {"offset": {"gte": 1000, "lt": 2000}}}},
        "range_json_amount": {"query": {"range": {"json.order.amount": {"gte": 100, "lte": 200}}}},
        "range_json_negative": {"query": {"range": {"json.delta": {"gt": -50, "lte": -10}}}},
        "range_partition": {"query": {"range": {"partition": {"gte": 1}}}},
        "qs_qualified_and": {"query": {"query_string": {"query": "value:error AND json.status:failed"}}},
        "qs_unqualified": {"query": {"query_string": {"query": "timeout"}}},
        "qs_and_or_not": {"query": {"query_string": {"query": "(error OR warn) AND NOT checkout"}}},
        "qs_phrases_or": {"query": {"query_string": {"query": 'value:"disk full" OR key:"order 8812"'}}},
        "qs_json_range_and": {"query": {"query_string": {
            "query": "json.order.amount:[100 TO 200] AND json.status:paid"}}},
        "qs_timestamp_range_exclusive": {"query": {"query_string": {
            "query": f"timestamp:{{{t1} TO {t2}}} AND value:slow"}}},
        "qs_plus_minus": {"query": {"query_string": {"query": "+json.customer.country:de -json.status:paid"}}},
        "qs_json_number": {"query": {"query_string": {"query": "json.order.id:8812 OR json.retries:7"}}},
        "qs_headers_key": {"query": {"query_string": {"query": "headers.tenant:acme AND key:user"}}},
        "qs_uppercase_word": {"query": {"query_string": {"query": "value:ERROR AND value:\"DISK FULL\""}}},
        "bool_must_must_not": {"query": {"bool": {
            "must": [{"match": {"value": "timeout"}}],
            "must_not": [{"term": {"partition": 0}}]}}},
        "bool_should_only": {"query": {"bool": {"should": [
            {"term": {"json.status": "refunded"}}, {"match_phrase": {"value": "queue backlog"}}]}}},
        "bool_filter_should": {"query": {"bool": {
            "filter": [{"term": {"json.customer.country": "jp"}}],
            "should": [{"term": {"json.status": "paid"}}]}}},
        "bool_everything": {"query": {"bool": {
            "must": [{"match": {"value": "user"}}],
            "filter": [{"range": {"timestamp": {"gte": base_ts, "lt": base_ts + span // 2}}}],
            "should": [{"match": {"value": "login"}}],
            "must_not": [{"term": {"headers.source": "batch"}}, {"term": {"json.level": "debug"}}]}}},
        "bool_only_must_not": {"query": {"bool": {"must_not": [{"match": {"value": "info"}}]}}},
        "bool_nested": {"query": {"bool": {
            "must": [{"bool": {"should": [{"term": {"json.customer.country": "fr"}},
                                          {"term": {"json.customer.country": "it"}}]}}],
            "must_not": [{"bool": {"must": [{"term": {"json.status": "paid"}},
                                            {"range": {"json.order.amount": {"gte": 2500}}}]}}]}}},
        "bool_filter_only": {"query": {"bool": {"filter": [{"range": {"json.retries": {"gte": 6}}}]}}},
        "qs_json_phrase": {"query": {"query_string": {
            "query": 'json.shipping.address.city:"new york" AND json.customer.country:de'}}},
        "qs_multi_token_word": {"query": {"query_string": {"query": "key:order-8812 OR value:search-api"}}},
        "match_key_and": {"query": {"match": {"key": {"query": "Kunde MÜLLER 7", "operator": "and"}}}},
        "headers_term": {"query": {"term": {"headers.source": "mobile"}}},
        "headers_match": {"query": {"match": {"headers.tenant": "acme globex"}}},
        "headers_trace_single": {"query": {"term": {"headers.trace": utf8(traced.headers[0][1])}}},
        "partitions_filter": {"query": {"match": {"value": "error"}}, "partitions": [0, 2]},
        "time_window_rfc3339": {"query": {"match": {"value": "warn"}}, "time": {"from": iso(t1), "to": t2}},
        "time_window_partitions_bool": {
            "query": {"bool": {"must": [{"match": {"value": "stock"}}],
                               "must_not": [{"match_phrase": {"value": "stock low"}}]}},
            "time": {"from": base_ts + span // 2, "to": iso(base_ts + span)},
            "partitions": [1]},
        "time_window_match_all": {"time": {"from": base_ts - 1000, "to": base_ts + span // 50}},
    }
    assert list(q) == QUERY_NAMES
    return q


# --- the evaluator -----------------------------------------------------------------------------

NUMERIC_FIELDS = {"timestamp": "ts", "offset": "offset", "partition": "partition"}
_INT_RE = re.compile(r"-?\d+\Z")


def _text(rec, field):
    """Tokens of a text field (key, value, json.<path>, headers.<name>), or None."""
    if field == "key":
        return rec.key_toks
    if field == "value":
        return rec.value_toks
    if field.startswith("json."):
        v = rec.json.get(field[5:]) if rec.json else None
        return v if isinstance(v, tuple) else None
    if field.startswith("headers."):
        return rec.hdr.get(field[8:])
    raise ValueError(f"not a text field: {field}")


def _number(rec, field):
    if field in NUMERIC_FIELDS:
        return getattr(rec, NUMERIC_FIELDS[field])
    if field.startswith("json."):
        v = rec.json.get(field[5:]) if rec.json else None
        return v if isinstance(v, int) else None
    raise ValueError(f"not a numeric field: {field}")


def has_phrase(toks, phrase):
    if not toks or phrase[0] not in toks:
        return False
    n = len(phrase)
    first = phrase[0]
    for i in range(len(toks) - n + 1):
        if toks[i] == first and toks[i:i + n] == phrase:
            return True
    return False


def _single(d, what):
    if not isinstance(d, dict) or len(d) != 1:
        raise ValueError(f"{what} takes one field: {d!r}")
    return next(iter(d.items()))


_DIGITS_RE = re.compile(r"[0-9]+\Z")


def _value_pred(toks, phrase, numbers):
    """Record predicate on `value`: the tokens (all, adjacent when phrase) in its text or, for a
    JSON object, in its strings: each token in any of them, a phrase within one; with `numbers`
    a token of digits also matches an integer of the object equal to it."""
    toks = tuple(toks)

    def pred(r):
        if r.json is None:
            ft = r.value_toks
            if ft is None:
                return False
            if len(toks) == 1 or not phrase:
                return all(t in ft for t in toks)
            return has_phrase(ft, toks)
        strs = [v for v in r.json.values() if isinstance(v, tuple)]
        ints = {v for v in r.json.values() if isinstance(v, int)}

        def one(t):
            return any(t in s for s in strs) or (numbers and bool(_DIGITS_RE.match(t)) and int(t) in ints)
        if len(toks) == 1 or not phrase:
            return all(one(t) for t in toks)
        return any(has_phrase(s, toks) for s in strs)
    return pred


def _text_pred(field, toks, phrase, numbers=True):
    """Record predicate: the tokens `toks` (all, adjacent when phrase) in field."""
    toks = tuple(toks)
    if not toks:
        raise ValueError("a query text without tokens is not used by this suite")
    if field == "value":
        return _value_pred(toks, phrase, numbers)
    if len(toks) == 1 or not phrase:
        if len(toks) == 1:
            t = toks[0]
            return lambda r: (lambda ft: ft is not None and t in ft)(_text(r, field))
        return lambda r: (lambda ft: ft is not None and all(t in ft for t in toks))(_text(r, field))
    return lambda r: has_phrase(_text(r, field), toks)


def compile_query(q):
    """A predicate over Record for one query object of the DSL."""
    kind, spec = _single(q, "a query")
    if kind == "match_all":
        return lambda r: True
    if kind == "match":
        field, arg = _single(spec, "match")
        text, op = (arg["query"], arg.get("operator", "or").lower()) if isinstance(arg, dict) else (arg, "or")
        toks = query_tokens(text)
        if not toks:
            raise ValueError("match text without tokens")
        if op == "and":
            return _text_pred(field, toks, phrase=False)
        preds = [_text_pred(field, [t], False) for t in dict.fromkeys(toks)]
        return lambda r: any(p(r) for p in preds)
    if kind == "match_phrase":
        field, text = _single(spec, "match_phrase")
        return _text_pred(field, query_tokens(text), phrase=True)
    if kind == "term":
        field, value = _single(spec, "term")
        if isinstance(value, bool):
            raise ValueError("no booleans")
        if isinstance(value, int):
            return lambda r: _number(r, field) == value
        if field in NUMERIC_FIELDS:
            raise ValueError("use integers for numeric terms")
        if field == "value":
            return _value_pred((value,), False, numbers=True)
        return lambda r: (lambda ft: ft is not None and value in ft)(_text(r, field))
    if kind == "range":
        field, bounds = _single(spec, "range")
        return _range_pred(field, bounds.get("gt"), bounds.get("gte"), bounds.get("lt"), bounds.get("lte"))
    if kind == "query_string":
        return compile_query_string(spec["query"])
    if kind == "bool":
        def clauses(name):
            v = spec.get(name, [])
            return [compile_query(c) for c in (v if isinstance(v, list) else [v])]
        must, filt, should, must_not = clauses("must"), clauses("filter"), clauses("should"), clauses("must_not")
        need_should = bool(should) and not must and not filt
        positive = must + filt

        def pred(r):
            for p in positive:
                if not p(r):
                    return False
            for p in must_not:
                if p(r):
                    return False
            if need_should:
                return any(p(r) for p in should)
            return True
        return pred
    raise ValueError(f"unknown query {kind}")


def _range_pred(field, gt=None, gte=None, lt=None, lte=None):
    def pred(r):
        v = _number(r, field)
        if v is None:
            return False
        if gt is not None and not v > gt:
            return False
        if gte is not None and not v >= gte:
            return False
        if lt is not None and not v < lt:
            return False
        if lte is not None and not v <= lte:
            return False
        return True
    return pred


# query_string: a lexer and parser for the unambiguous subset of Tantivy's query language

_QS_SPECIAL = set('()"[]{}')


def _qs_lex(s):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c.isspace():
            i += 1
        elif c == "(":
            out.append(("LP",))
            i += 1
        elif c == ")":
            out.append(("RP",))
            i += 1
        elif c == '"':
            j = s.index('"', i + 1)
            out.append(("PHRASE", s[i + 1:j]))
            i = j + 1
        elif c in "[{":
            j = min(k for k in (s.find("]", i), s.find("}", i)) if k >= 0)
            lo, to, hi = s[i + 1:j].split()
            if to != "TO":
                raise ValueError(f"bad range in {s!r}")
            out.append(("RANGE", None if lo == "*" else int(lo), c == "[", None if hi == "*" else int(hi), s[j] == "]"))
            i = j + 1
        elif c in "+-" and i + 1 < len(s) and not s[i + 1].isspace() and (not out or out[-1][0] != "FIELD"):
            out.append(("PLUS",) if c == "+" else ("MINUS",))
            i += 1
        else:
            j = i
            while j < len(s) and not s[j].isspace() and s[j] not in _QS_SPECIAL and s[j] != ":":
                j += 1
            word = s[i:j]
            if j < len(s) and s[j] == ":":
                out.append(("FIELD", word))
                j += 1
            elif word in ("AND", "OR", "NOT"):
                out.append((word,))
            else:
                out.append(("WORD", word))
            i = j
    return out


class _QsParser:
    def __init__(self, s):
        self.s = s
        self.toks = _qs_lex(s)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else ("END",)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def parse(self):
        node = self.expr()
        if self.peek()[0] != "END":
            raise ValueError(f"trailing input in {self.s!r}")
        return node

    def expr(self):
        items, ops = [self.unary()], []
        while self.peek()[0] not in ("END", "RP"):
            if self.peek()[0] in ("AND", "OR"):
                ops.append(self.take()[0])
            else:
                ops.append(None)
            items.append(self.unary())
        kinds = set(ops)
        if not ops:
            occur, node = items[0]
            if occur in ("-", "NOT"):
                raise ValueError(f"a query that is only negative: {self.s!r}")
            return node
        if len(kinds) != 1:
            raise ValueError(f"ambiguous mix of operators in {self.s!r}: parenthesise")
        kind = kinds.pop()
        if kind == "OR":
            if any(o is not None for o, _ in items):
                raise ValueError(f"NOT/+/- inside OR in {self.s!r}")
            return ("or", [n for _, n in items])
        if kind == "AND":
            pos = [n for o, n in items if o in (None, "+")]
            neg = [n for o, n in items if o in ("-", "NOT")]
            if not pos:
                raise ValueError(f"a query that is only negative: {self.s!r}")
            return ("and", pos, neg)
        # juxtaposition: +must, -must_not, the rest should
        must = [n for o, n in items if o == "+"]
        neg = [n for o, n in items if o in ("-", "NOT")]
        should = [n for o, n in items if o is None]
        if not must and not should:
            raise ValueError(f"a query that is only negative: {self.s!r}")
        return ("seq", must, should, neg)

    def unary(self):
        t = self.peek()[0]
        if t in ("NOT", "MINUS", "PLUS"):
            self.take()
            occur = {"NOT": "NOT", "MINUS": "-", "PLUS": "+"}[t]
            return occur, self.atom()
        return None, self.atom()

    def atom(self):
        t = self.take()
        if t[0] == "LP":
            node = self.expr()
            if self.take()[0] != "RP":
                raise ValueError(f"unclosed ( in {self.s!r}")
            return node
        field = None
        if t[0] == "FIELD":
            field = t[1]
            t = self.take()
        if t[0] == "WORD":
            return ("word", field, t[1])
        if t[0] == "PHRASE":
            return ("phrase", field, t[1])
        if t[0] == "RANGE" and field is not None:
            return ("range",) + (field,) + t[1:]
        raise ValueError(f"unexpected {t} in {self.s!r}")


def parse_query_string(s):
    return _QsParser(s).parse()


DEFAULT_FIELDS = ["key", "value"]  # value covers every JSON path (see the module doc)


def _qs_leaf(field, text, phrase):
    fields = DEFAULT_FIELDS if field is None else [field]
    if field in NUMERIC_FIELDS:
        value = int(text)
        return lambda r: _number(r, field) == value
    toks = query_tokens(text)
    # A quoted number on a JSON path is text only; a word of digits also that number.
    preds = [_text_pred(f, toks, phrase=True, numbers=not phrase) for f in fields]
    if field is not None and field.startswith("json.") and not phrase and _INT_RE.match(text):
        value = int(text)
        preds.append(lambda r: _number(r, field) == value)
    if len(preds) == 1:
        return preds[0]
    return lambda r: any(p(r) for p in preds)


def _qs_compile(node):
    kind = node[0]
    if kind == "word":
        return _qs_leaf(node[1], node[2], phrase=False)
    if kind == "phrase":
        return _qs_leaf(node[1], node[2], phrase=True)
    if kind == "range":
        _, field, lo, lo_incl, hi, hi_incl = node
        return _range_pred(field, gt=None if lo_incl else lo, gte=lo if lo_incl else None,
                           lt=None if hi_incl else hi, lte=hi if hi_incl else None)
    if kind == "or":
        preds = [_qs_compile(n) for n in node[1]]
        return lambda r: any(p(r) for p in preds)
    if kind == "and":
        pos, neg = [_qs_compile(n) for n in node[1]], [_qs_compile(n) for n in node[2]]
        return lambda r: all(p(r) for p in pos) and not any(p(r) for p in neg)
    if kind == "seq":
        must = [_qs_compile(n) for n in node[1]]
        should = [_qs_compile(n) for n in node[2]]
        neg = [_qs_compile(n) for n in node[3]]

        def pred(r):
            if not all(p(r) for p in must) or any(p(r) for p in neg):
                return False
            return bool(must) or any(p(r) for p in should)
        return pred
    raise AssertionError(node)


def compile_query_string(s):
    return _qs_compile(parse_query_string(s))


def time_bound(v):
    if isinstance(v, int):
        return v
    dt = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def request_pred(body):
    """Predicate over Record for a whole request body (query, partitions, time)."""
    query = compile_query(body.get("query", {"match_all": {}}))
    parts = set(body["partitions"]) if "partitions" in body else None
    lo = hi = None
    if "time" in body:
        lo = time_bound(body["time"]["from"]) if "from" in body["time"] else None
        hi = time_bound(body["time"]["to"]) if "to" in body["time"] else None

    def pred(r):
        if parts is not None and r.partition not in parts:
            return False
        if lo is not None and r.ts < lo:
            return False
        if hi is not None and r.ts >= hi:
            return False
        return query(r)
    return pred


def sort_key(sort):
    """Key function (on Record) for a sort spec, ties broken by partition then offset."""
    (field, order), = sort[0].items()
    if field == "offset":
        return (lambda r: (r.offset, r.partition)) if order == "asc" else (lambda r: (-r.offset, r.partition))
    if field == "timestamp":
        return ((lambda r: (r.ts, r.partition, r.offset)) if order == "asc"
                else (lambda r: (-r.ts, r.partition, r.offset)))
    raise ValueError(sort)


def sort_values(sort, r):
    """The hit's `sort` array for a sort spec (docs/search.md)."""
    (field, _), = sort[0].items()
    return [r.offset, r.partition] if field == "offset" else [r.ts, r.partition, r.offset]


def after_key(sort, values):
    """The sort_key of a hit whose `sort` array is `values`."""
    (field, order), = sort[0].items()
    sign = 1 if order == "asc" else -1
    if field == "offset":
        return (sign * values[0], values[1])
    return (sign * values[0], values[1], values[2])


class Evaluator:
    """Brute force: every query is a scan over every record (results cached per body)."""

    def __init__(self, records):
        self.records = records
        self._cache = {}

    def matches(self, body):
        """The matching records, sorted by (offset, partition)."""
        k = json.dumps({k: v for k, v in body.items() if k in ("query", "partitions", "time")}, sort_keys=True)
        if k not in self._cache:
            pred = request_pred(body)
            hits = [r for r in self.records if pred(r)]
            hits.sort(key=lambda r: (r.offset, r.partition))
            self._cache[k] = hits
        return self._cache[k]

    def page(self, body, sort, start=0, size=10, after=None):
        hits = sorted(self.matches(body), key=sort_key(sort))
        if after is not None:
            key = sort_key(sort)
            bound = after_key(sort, after)
            hits = [r for r in hits if key(r) > bound]
        return hits[start:start + size]


def expected_hit_fields(rec):
    """key/value/headers of a record as the search API returns them (docs/search.md)."""
    def enc(b):
        if b is None:
            return None, None
        t = utf8(b)
        return (t, None) if t is not None else (base64.b64encode(b).decode(), "base64")

    key, key_enc = enc(rec.key)
    value, value_enc = enc(rec.value)
    headers = []
    for name, hv in rec.headers or ():
        v, e = enc(hv)
        h = {"key": name, "value": v}
        if e:
            h["value_encoding"] = e
        headers.append(h)
    return {"key": key, "key_encoding": key_enc, "value": value, "value_encoding": value_enc,
            "headers": headers}
