"""Self-tests of search_corpus.py (the corpus generator and the brute-force evaluator that
test_search.py compares the broker's search answers with). No broker needed."""
import json
import os
import unicodedata

import pytest

import search_corpus as sc
from search_corpus import Record

if os.environ.get("TARGET") == "kafka":
    pytest.skip("TARGET=kafka: Apache Kafka has no search API (the search suite is chronik's only)",
                allow_module_level=True)


def rec(idx, value=None, key=None, headers=None, ts=0, partition=0, offset=None):
    r = Record(idx, key.encode() if isinstance(key, str) else key,
               value.encode() if isinstance(value, str) else value, headers, ts, partition)
    r.offset = idx if offset is None else offset
    return r


def run(records, body):
    return [r.idx for r in sc.Evaluator(records).matches(body)]


def test_tokenizer_splits_lowercases_and_drops_long_tokens():
    assert sc.tokenize("Order-8812 FAILED") == ("order", "8812", "failed")
    assert sc.tokenize('{"order":{"id":8812},"status":"paid"}') == ("order", "id", "8812", "status", "paid")
    assert sc.tokenize("a_b  c.d/e") == ("a", "b", "c", "d", "e")
    assert sc.tokenize("Grüße CAFÉ 日本語 ΔΕΛΤΑ") == ("grüße", "café", "日本語", "δελτα")
    assert sc.tokenize("") == ()
    assert sc.tokenize("--- ...") == ()
    # 39 bytes kept, 40 dropped (the position stays taken); bytes, not characters.
    assert sc.tokenize(f"x {sc.TOK39} y") == ("x", sc.TOK39, "y")
    assert sc.tokenize(f"x {sc.TOK40} y") == ("x", None, "y")
    assert sc.tokenize(sc.TOKU19) == (sc.TOKU19,)
    assert sc.tokenize(sc.TOKU20) == (None,)
    assert sc.query_tokens(f"x {sc.TOK40} y") == ["x", "y"]


def test_tokenizer_character_classes_are_isalnum():
    # The regex must split exactly where str.isalnum() is false.
    for cp in list(range(0, 0x3000)) + list(range(0xFF00, 0xFFF0)):
        c = chr(cp)
        if unicodedata.category(c) == "Cs":
            continue
        got = sc.tokenize(f"a{c}b")
        assert (got == (f"a{c}b".lower(),)) == c.isalnum() or c.lower() != c, (hex(cp), got)


def test_corpus_characters_lowercase_without_changing_byte_length():
    # Where the lower-casing happens (before or after the length filter) then does not matter.
    for r in sc.generate_corpus(3000, seed=5):
        for data in (r.key, r.value):
            text = sc.utf8(data)
            if text:
                for m in sc._TOKEN_RE.finditer(text):
                    assert len(m.group().encode()) == len(m.group().lower().encode()), m.group()


def test_flatten_json():
    flat = sc.flatten_json({"order": {"id": 8812, "amount": 120}, "status": "Paid now",
                            "customer": {"address": {"city": "New York"}}, "delta": -3})
    assert flat == {"order.id": 8812, "order.amount": 120, "status": ("paid", "now"),
                    "customer.address.city": ("new", "york"), "delta": -3}
    with pytest.raises(ValueError):
        sc.flatten_json({"x": 1.5})
    with pytest.raises(ValueError):
        sc.flatten_json({"x": True})


def test_record_analysis():
    r = rec(0, value='{"order":{"id":8812},"status":"paid"}', key="order-8812",
            headers=[("trace", b"AB12"), ("bin", b"\x80\xff")])
    assert r.key_toks == ("order", "8812")
    assert r.value_toks == ("order", "id", "8812", "status", "paid")
    assert r.json == {"order.id": 8812, "status": ("paid",)}
    assert r.hdr == {"trace": ("ab12",)}
    assert rec(1, value=b"\xff\x00abc").value_toks is None
    assert rec(2, value="[1, 2]").json is None
    assert rec(3, value="404").json is None
    assert rec(4, value=None).value_toks is None
    assert rec(5, value=b"").value_toks == ()


SMALL = [
    rec(0, "ERROR disk full on volume 3", key="order-8812", ts=1000, partition=0, offset=0),
    rec(1, "INFO disk is not full", key="user-1", ts=2000, partition=1, offset=0),
    rec(2, '{"order":{"id":8812,"amount":120},"status":"paid","customer":{"country":"de"}}',
        ts=3000, partition=0, offset=1, headers=[("source", b"mobile-app")]),
    rec(3, '{"order":{"id":77,"amount":5000},"status":"failed","customer":{"country":"fr"}}',
        key="order-77", ts=3000, partition=2, offset=0),
    rec(4, b"\xff\xfe binary disk full", ts=4000, partition=1, offset=1),
    rec(5, None, key="kunde-müller-3", ts=5000, partition=1, offset=2, headers=[("source", b"web")]),
    rec(6, "warn: Full DISK", ts=500, partition=2, offset=1),
]


@pytest.mark.parametrize("body,want", [
    ({}, [0, 1, 2, 3, 4, 5, 6]),
    ({"query": {"match_all": {}}}, [0, 1, 2, 3, 4, 5, 6]),
    ({"query": {"match": {"value": "disk full"}}}, [0, 1, 6]),
    ({"query": {"match": {"value": {"query": "DISK error", "operator": "and"}}}}, [0]),
    ({"query": {"match": {"value": {"query": "DISK error", "operator": "or"}}}}, [0, 1, 6]),
    ({"query": {"match_phrase": {"value": "disk full"}}}, [0]),
    ({"query": {"match_phrase": {"value": "full disk"}}}, [6]),
    # Key names are not part of a JSON object's value, only its strings and numbers.
    ({"query": {"match_phrase": {"value": "status paid"}}}, []),
    ({"query": {"match_phrase": {"value": "de"}}}, [2]),
    ({"query": {"match": {"value": "77"}}}, [3]),
    ({"query": {"term": {"json.status": "paid"}}}, [2]),
    ({"query": {"term": {"json.order.id": 8812}}}, [2]),
    ({"query": {"term": {"json.order.id": 77}}}, [3]),
    ({"query": {"term": {"value": "8812"}}}, [2]),
    ({"query": {"term": {"key": "8812"}}}, [0]),
    ({"query": {"term": {"partition": 1}}}, [1, 4, 5]),
    ({"query": {"term": {"offset": 1}}}, [2, 4, 6]),
    ({"query": {"term": {"timestamp": 3000}}}, [2, 3]),
    ({"query": {"range": {"json.order.amount": {"gt": 120}}}}, [3]),
    ({"query": {"range": {"json.order.amount": {"gte": 120, "lte": 5000}}}}, [2, 3]),
    ({"query": {"range": {"timestamp": {"gte": 2000, "lt": 4000}}}}, [1, 2, 3]),
    ({"query": {"term": {"headers.source": "mobile"}}}, [2]),
    ({"query": {"match": {"key": "MÜLLER"}}}, [5]),
    ({"query": {"bool": {"must_not": [{"match": {"value": "disk"}}]}}}, [2, 3, 4, 5]),
    ({"query": {"bool": {"should": [{"term": {"json.status": "paid"}}, {"term": {"key": "user"}}]}}}, [1, 2]),
    ({"query": {"bool": {"must": [{"match": {"value": "disk"}}],
                         "should": [{"term": {"json.status": "paid"}}]}}}, [0, 1, 6]),
    ({"query": {"bool": {"filter": [{"term": {"partition": 0}}],
                         "must_not": [{"term": {"json.status": "paid"}}]}}}, [0]),
    ({"query": {"query_string": {"query": "value:error OR json.status:failed"}}}, [0, 3]),
    ({"query": {"query_string": {"query": "disk AND NOT error"}}}, [1, 6]),
    ({"query": {"query_string": {"query": "8812"}}}, [0, 2]),
    ({"query": {"query_string": {"query": "order-8812"}}}, [0]),
    ({"query": {"query_string": {"query": '"disk full" OR "full disk"'}}}, [0, 6]),
    ({"query": {"query_string": {"query": "json.order.id:77"}}}, [3]),
    ({"query": {"query_string": {"query": "json.order.amount:[120 TO 5000}"}}}, [2]),
    ({"query": {"query_string": {"query": "json.order.amount:{120 TO *]"}}}, [3]),
    ({"query": {"query_string": {"query": "timestamp:[1000 TO 3000]"}}}, [0, 1, 2, 3]),
    ({"query": {"query_string": {"query": "+disk -error full"}}}, [1, 6]),
    ({"query": {"query_string": {"query": "error full"}}}, [0, 1, 6]),
    ({"query": {"query_string": {"query": "(error OR warn) AND disk"}}}, [0, 6]),
    ({"query": {"query_string": {"query": "partition:2"}}}, [3, 6]),
    ({"partitions": [1, 2]}, [1, 3, 4, 5, 6]),
    ({"time": {"from": 1000, "to": 3000}}, [0, 1]),
    ({"time": {"from": "1970-01-01T00:00:03Z", "to": 5001}}, [2, 3, 4, 5]),
    ({"time": {"from": 0, "to": 5000}, "partitions": [1], "query": {"match": {"value": "disk"}}}, [1]),
])
def test_evaluator(body, want):
    # matches() orders by (offset, partition)
    assert sorted(run(SMALL, body)) == sorted(want)


def test_evaluator_order_and_pages():
    ev = sc.Evaluator(SMALL)
    assert [r.idx for r in ev.matches({})] == [0, 1, 3, 2, 4, 6, 5]  # (offset, partition)
    ts_desc = [{"timestamp": "desc"}]
    page = ev.page({}, ts_desc, size=3)
    assert [r.idx for r in page] == [5, 4, 2]
    after = sc.sort_values(ts_desc, page[-1])
    assert after == [3000, 0, 1]
    assert [r.idx for r in ev.page({}, ts_desc, size=3, after=after)] == [3, 1, 0]
    assert [r.idx for r in ev.page({}, ts_desc, start=3, size=3)] == [3, 1, 0]
    off_asc = [{"offset": "asc"}]
    assert [r.idx for r in ev.page({}, off_asc, size=2, after=[0, 1])] == [3, 2]
    assert [r.idx for r in ev.page({}, [{"offset": "desc"}], size=3)] == [5, 2, 4]
    assert [r.idx for r in ev.page({}, [{"timestamp": "asc"}], size=2)] == [6, 0]


@pytest.mark.parametrize("bad", [
    "a OR b AND c",  # needs parentheses
    "a OR NOT b",
    "NOT a",
    "-a",
    "a AND b c",
    "value:(a",
])
def test_query_string_subset_refuses_ambiguity(bad):
    with pytest.raises(ValueError):
        sc.parse_query_string(bad)


def test_query_string_parse():
    assert sc.parse_query_string('value:"disk full" OR key:x') == (
        "or", [("phrase", "value", "disk full"), ("word", "key", "x")])
    assert sc.parse_query_string("json.a.b:[1 TO *}") == ("range", "json.a.b", 1, True, None, False)
    assert sc.parse_query_string("+a -b c") == ("seq", [("word", None, "a")], [("word", None, "c")],
                                                [("word", None, "b")])


def test_generator_is_deterministic():
    a = sc.generate_corpus(2000, seed=7)
    b = sc.generate_corpus(2000, seed=7)
    c = sc.generate_corpus(2000, seed=8)
    fa = [(r.key, r.value, r.headers, r.ts, r.partition) for r in a]
    assert fa == [(r.key, r.value, r.headers, r.ts, r.partition) for r in b]
    assert fa != [(r.key, r.value, r.headers, r.ts, r.partition) for r in c]


def test_corpus_shape_and_queries():
    n = 20000
    records = sc.generate_corpus(n, seed=11)
    counts = sc.assign_offsets_in_order(records)
    assert sorted(counts) == [0, 1, 2] and sum(counts.values()) == n
    assert any(r.key is None for r in records)
    assert any(r.key is not None and r.key_toks is None for r in records), "binary keys"
    assert any(r.value is None for r in records)
    assert any(r.value == b"" for r in records)
    assert any(r.value is not None and r.value_toks is None for r in records), "binary values"
    assert sum(1 for r in records if r.json) > n // 4
    assert any(r.headers and any(sc.utf8(v) is None for _, v in r.headers) for r in records)
    assert sum(1 for r in records if r.headers) > n // 3
    assert len({r.ts for r in records}) < n, "some timestamps are shared (tie-breaks)"
    assert any(b.ts < a.ts for a, b in zip(records, records[1:])), "some timestamps go back"
    for r in records:
        if r.json:
            # every token of the JSON object is a token of the raw text (unqualified search)
            toks = set(r.value_toks)
            for v in r.json.values():
                assert set(v if isinstance(v, tuple) else [str(abs(v))]) <= toks
            assert json.loads(r.value)
    queries = sc.build_queries(records)
    assert list(queries) == sc.QUERY_NAMES and len(queries) >= 30
    ev = sc.Evaluator(records)
    totals = {name: len(ev.matches(body)) for name, body in queries.items()}
    assert totals["match_all"] == n
    empty = {"term_value_40_bytes_dropped", "term_value_multibyte_dropped"}
    for name, total in totals.items():
        if name in empty:
            assert total == 0, name
        elif name != "match_all":
            assert 0 < total < n, (name, total)
    assert totals["headers_trace_single"] == 1
    assert totals["match_value_and"] >= totals["match_phrase_value"] > 0
    assert totals["match_value_two_tokens_or"] > totals["match_value_and"]


def test_time_bounds():
    assert sc.iso(0) == "1970-01-01T00:00:00Z"
    assert sc.iso(sc.BASE_TS) == "2026-05-28T20:26:40Z"
    assert sc.iso(sc.BASE_TS + 1) == "2026-05-28T20:26:40.001Z"
    for ms in (0, 1, 999, sc.BASE_TS, sc.BASE_TS + 333, 1772323200000):
        assert sc.time_bound(sc.iso(ms)) == ms
    assert sc.time_bound("2026-03-01T00:00:00+01:00") == 1772319600000
    assert sc.time_bound(1772323200000) == 1772323200000


def test_codec_slices():
    assert sc.codec_slices(10) == [("none", 0, 2), ("gzip", 2, 4), ("snappy", 4, 6), ("lz4", 6, 8), ("zstd", 8, 10)]
    plan = [("none", 3), ("gzip", 1)]
    assert sc.codec_slices(8, plan) == [("none", 0, 6), ("gzip", 6, 8)]


def test_expected_hit_fields():
    r = rec(0, b"\xff\x00", key="k\u00fc", headers=[("a", b"x"), ("b", b"\x80")])
    f = sc.expected_hit_fields(r)
    assert f["key"] == "kü" and f["key_encoding"] is None
    assert f["value"] == "/wA=" and f["value_encoding"] == "base64"
    assert f["headers"] == [{"key": "a", "value": "x"}, {"key": "b", "value": "gA==", "value_encoding": "base64"}]
    f = sc.expected_hit_fields(rec(1, None))
    assert f["key"] is None and f["value"] is None and f["headers"] == []
