"""Search in a cluster: three brokers, a searchable tiered topic of three partitions, RF=3, each
partition led by another broker, part of every partition in the remote tier (segments and
their splits) and part only on the leader's disk. The same query to each broker's admin HTTP
port answers with exactly the hits computed from what was produced — same hits, order, total
and pages — because a broker asks the leaders of the partitions it does not lead and merges.

- A leader hung (SIGSTOP) does not hang the query: the answer comes after
  `[search] peer_timeout_ms`, marked `partial`, with the hung leader's partition listed under
  `missing` (its remote part searched), and the other partitions complete.
- After the leader of partition 0 is killed (kill -9) and more is produced, the new leader
  indexes from the remote tier's end: the two live brokers answer every record exactly once.

Bounded: every wait has a deadline (about a minute in all).
"""

import json
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_lib import Cluster
from reliability_lib import free_port, wait_until

TOPIC = "found"
PARTITIONS = 3
SEGMENT = 1 << 20  # the smallest segment.bytes
PAD = "x" * 900    # one token of 40+ bytes: not indexed
QUERY = {"query": {"match": {"value": "color3"}}, "sort": [{"offset": "asc"}]}


def produce(boot, start, per_partition):
    """`per_partition` records into each partition; returns [(partition, offset, i)]."""
    p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "log_level": 2})
    acked, failed = [], []

    def done(err, m, i):
        if err:
            failed.append(err)
        else:
            acked.append((m.partition(), m.offset(), i))
    for i in range(start, start + per_partition):
        for part in range(PARTITIONS):
            p.produce(TOPIC, value=f"item{i} color{i % 7} {PAD}".encode(), partition=part,
                      on_delivery=lambda err, m, i=i: done(err, m, i))
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed[:3]
    return acked


def search(node, body, timeout=20):
    req = urllib.request.Request(f"http://{node.http}/topics/{TOPIC}/_search",
                                 data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def expected(acked):
    """The hits of QUERY, in its order: offset ascending, then partition."""
    return sorted(((p, o) for p, o, i in acked if i % 7 == 3), key=lambda h: (h[1], h[0]))


def hits_of(answer):
    return [(h["partition"], h["offset"]) for h in answer["hits"]]


def complete(node, want):
    """The full answer of `node` once it holds exactly `want` (None until then)."""
    try:
        a = search(node, {**QUERY, "size": 10000})
    except OSError:
        return None
    if a.get("partial") or a["total"] != len(want) or hits_of(a) != want:
        return None
    return a


def pages(node, size):
    out, after = [], None
    while True:
        body = {**QUERY, "size": size}
        if after is not None:
            body["search_after"] = after
        a = search(node, body)
        assert not a.get("partial"), a.get("missing")
        if not a["hits"]:
            return out
        out += hits_of(a)
        after = a["hits"][-1]["sort"]


def leaders(node):
    parts = node.partitions()["topics"].get(TOPIC, {})
    return {p: parts[p]["leader"] for p in parts}


def remote_splits(cluster):
    return sorted(f.parent.name for f in (cluster.workdir / "remote").rglob("*.split"))


def test_search_answers_for_the_whole_topic_from_every_broker(tmp_path):
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=3000, extra_env={
        "CHRONIK_TIERING_INTERVAL_MS": "200",
        "CHRONIK_SEARCH_COMMIT_INTERVAL_MS": "200",
        "CHRONIK_SEARCH_PEER_TIMEOUT_MS": "1500",
        "CHRONIK_CLUSTER_LEADER_REBALANCE_INTERVAL_MS": "0",
    })
    for n in cluster.nodes:
        n.http = f"127.0.0.1:{free_port()}"
        n.extra_env["CHRONIK_HTTP_LISTEN"] = f'"{n.http}"'
    try:
        cluster.start()
        n1, n2, n3 = cluster.nodes
        wait_until(lambda: all(n.metadata()["brokers"] == [1, 2, 3] for n in cluster.nodes),
                   30, what="three brokers")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 2})
        f = admin.create_topics([NewTopic(
            TOPIC, num_partitions=PARTITIONS,
            replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]],
            config={"search.enabled": "true", "remote.storage.enable": "true",
                    "segment.bytes": str(SEGMENT), "local.retention.bytes": "1",
                    "min.insync.replicas": "2"})], operation_timeout=20)
        f[TOPIC].result(30)
        wait_until(lambda: leaders(n1) == {0: 1, 1: 2, 2: 3}, 30, what="one leader per broker")

        # 1.5 MB per partition: a sealed segment goes to the remote tier with its split, the
        # rest stays on the leader's disk only.
        acked = produce(cluster.bootstrap, 0, 1500)
        wait_until(lambda: len(set(remote_splits(cluster))) == PARTITIONS, 60, interval=0.5,
                   what="a remote split of every partition")
        want = expected(acked)
        answers = {}
        for n in cluster.nodes:
            answers[n.id] = wait_until(lambda n=n: complete(n, want), 30, interval=0.5,
                                       what=f"broker {n.id} answering every hit")
        for n in cluster.nodes:
            a = answers[n.id]
            assert a["hits"] == answers[1]["hits"], f"broker {n.id} differs from broker 1"
            assert a["splits"]["remote"] >= PARTITIONS, a["splits"]
        print(f"{len(want)} hits of {len(acked)} records from each broker; splits {answers[1]['splits']}")
        # Pages: from/size and search_after give the same sequence on every broker.
        for n in cluster.nodes:
            assert pages(n, 97) == want, f"search_after pages of broker {n.id}"
            a = search(n, {**QUERY, "from": 40, "size": 25})
            assert hits_of(a) == want[40:65] and a["total"] == len(want)
        # By score: every broker gives the same hits with the same scores, in the same order.
        # (item1200 is a color3 record too; item15 is not)
        scored = {"query": {"match": {"value": "color3 item15 item1200"}}, "size": 50}
        by_score = [search(n, scored) for n in cluster.nodes]
        assert all(not a.get("partial") for a in by_score)
        assert all(a["hits"] == by_score[0]["hits"] and a["total"] == len(want) + PARTITIONS
                   for a in by_score), [a["total"] for a in by_score]
        counts = search(n2, {"query": {"match_all": {}}, "size": 0})
        assert counts["total"] == len(acked), counts

        # A hung leader: a partial answer, in time, that says what is missing.
        n3.pause()
        try:
            started = time.monotonic()
            a = search(n1, {**QUERY, "size": 10000})
            took = time.monotonic() - started
        finally:
            n3.resume()
        print(f"with broker 3 hung: {took:.1f} s, missing {a.get('missing')}")
        assert took < 10, took
        assert a.get("partial") is True
        assert [(m["partition"], m["leader"], m["remote_searched"]) for m in a["missing"]] \
            == [(2, 3, True)], a["missing"]
        got = hits_of(a)
        assert set(got) <= set(want)
        assert [h for h in got if h[0] != 2] == [h for h in want if h[0] != 2]
        assert any(h[0] == 2 for h in got), "the remote part of partition 2 was not searched"
        wait_until(lambda: complete(n1, want), 30, interval=0.5, what="complete again")

        # Failover: the leader of partition 0 killed, more produced; the new leader indexes on.
        n1.kill9()
        wait_until(lambda: leaders(n2).get(0) in (2, 3), 30, what="a new leader of partition 0")
        acked += produce(cluster.bootstrap_of([2, 3]), 1500, 500)
        want = expected(acked)
        for n in (n2, n3):
            wait_until(lambda n=n: complete(n, want), 45, interval=0.5,
                       what=f"broker {n.id} answering every hit after the failover")
        assert pages(n3, 250) == want
        new = leaders(n2)[0]
        skipped = "search indexing continues at the remote tier's end" in cluster.node(new).run_log()
        print(f"after the failover: {len(want)} hits of {len(acked)} records from brokers 2 and 3; "
              f"new leader {new} {'skipped to' if skipped else 'started at'} the remote tier's end")
    finally:
        cluster.stop()
