#!/usr/bin/env python3
"""Writes the text seed corpora of the fuzz targets (the binary ones come from gen-corpus):

- search_query: every request body of the search compat suite (tests/compat/python/
  search_corpus.py build_queries), the JSON examples of docs/search.md, the bad requests the
  suite expects a 400 for, and every query_string text among them as a GET ?q= query;
- config: the Kubernetes example chronik.toml, environment-variable lines, topic config lines.

Usage: tests/fuzz/gen_text_corpus.py [CORPUS_DIR]   (default tests/fuzz/corpus)
"""
import hashlib
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat", "python"))
import search_corpus  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, mode, text):
    data = bytes([mode]) + text.encode()
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def query_strings(node, found):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "query_string" and isinstance(v, dict) and isinstance(v.get("query"), str):
                found.append(v["query"])
            query_strings(v, found)
    elif isinstance(node, list):
        for v in node:
            query_strings(v, found)
    return found


bodies = list(search_corpus.build_queries(search_corpus.generate_corpus(300, 1)).values())
with open(os.path.join(ROOT, "docs", "search.md")) as f:
    for block in re.findall(r"```json\n(.*?)```", f.read(), re.S):
        try:
            body = json.loads(block)
        except ValueError:
            continue
        if isinstance(body, dict) and "query" in body:
            bodies.append(body)
bodies += [
    {"query": {"query_string": {"query": "value:(unclosed"}}},
    {"query": {"fuzzy_wuzzy": {"value": "x"}}},
    {"query": {"match_all": {}}, "from": 9995, "size": 10},
    {"query": {"term": {"no_such_field": "x"}}},
    {"query": {"range": {"timestamp": {"gte": "yesterday"}}}},
    {"query": {"match_all": {}}, "sort": [{"offset": "asc"}], "search_after": [5, 0, 0]},
    {"query": {"match": {"value": "error"}}, "sort": [{"_score": "desc"}],
     "search_after": [1.5, 0, 12]},
    {"query": {"query_string": {"query": "json.level:[a TO m]"}}},
]
qs = []
for b in bodies:
    put("search_query", 0, json.dumps(b))
    query_strings(b, qs)
qs += ['key:"order 8812" OR json.order.id:8812', "headers.tenant:acme AND value:timeout",
       "json.status:failed AND json.customer.country:de", "offset:[10 TO 20] AND partition:1"]
for q in sorted(set(qs)):
    put("search_query", 1, q)

with open(os.path.join(ROOT, "deploy", "kubernetes", "configmap.yaml")) as f:
    text = f.read()
toml = "\n".join(l[4:] for l in text.split("chronik.toml: |\n", 1)[1].splitlines()
                 if l.startswith("    ") or not l.strip())
put("config", 0, toml + "\n")
put("config", 0, '[kafka]\nlisten = "127.0.0.1:9092"\nadvertised = "broker-1:9092"\n'
    '[search]\nenabled = true\nindex_cpus = [0, 1]\n[tiering]\nurl = "s3://b/p"\n'
    'endpoint = "http://127.0.0.1:4566"\nallow_http = true\n')
put("config", 1, "KAFKA_LISTEN=127.0.0.1:9092\nLOG_SEGMENT_BYTES=1048576\n"
    "SEARCH_INDEX_CPUS=0,1\nTIERING_URL=file:///tmp/remote\nDATA_DIR=/tmp/d\n")
put("config", 2, "retention.ms=60000\ncleanup.policy=compact,delete\ncompression.type=zstd\n"
    "search.enabled=true\nsearch.fields=order.id, status\nmin.insync.replicas\n")
print(f"search_query: {len(bodies)} bodies, {len(set(qs))} query strings; config: 4 seeds")
