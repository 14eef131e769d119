"""A broker-only node: four processes on loopback, three of them controller voters and brokers,
the fourth a broker without a vote (`roles = ["broker"]`, `cluster.listen` its internal
listener). It follows the metadata log as a Raft learner, so:

- every node lists four brokers, and `kafka-metadata-quorum describe` shows three voters and
  the fourth node as an observer;
- it leads partitions of replicated topics, takes produce and fetch for them, and its
  CreateTopics reach the controller leader;
- it keeps serving through a kill -9 of the controller leader, and its requests then reach the
  new leader;
- stopped while the cluster changes, it catches up when started again on its data.

Needs the tool classpath of the kafka-cli suite (CHRONIK_TOOLS_CLASSPATH, made by cluster.sh).
"""

import re
import time

from confluent_kafka.admin import AdminClient, NewTopic

from cluster_lib import Cluster, current_leader
from reliability_lib import wait_until
from test_cluster_brokers import consume, produce
from test_cluster_clients import QUORUM, tool

ALL = [1, 2, 3, 4]


def create_replicated(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    f = admin.create_topics([NewTopic(topic, partitions, 3)], operation_timeout=20)
    f[topic].result(30)


def test_broker_only_node_follows_leads_and_survives(tmp_path):
    cluster = Cluster(tmp_path, n=4, voters=3, session_timeout_ms=3000)
    try:
        cluster.start()
        learner = cluster.node(4)
        voters = cluster.nodes[:3]
        wait_until(lambda: all(n.metadata()["brokers"] == ALL for n in cluster.nodes), 30,
                   what="four brokers listed by every node")
        wait_until(lambda: "following the metadata log as a learner" in learner.run_log(), 10,
                   what="node 4 following the metadata log as a learner")

        status = tool(QUORUM, "--bootstrap-server", learner.bootstrap, "describe", "--status")
        print(status)
        voter_line = next(line for line in status.splitlines() if line.startswith("CurrentVoters"))
        observer_line = next(line for line in status.splitlines()
                             if line.startswith("CurrentObservers"))
        assert sorted(map(int, re.findall(r'"id":\s*(\d+)', voter_line))) == [1, 2, 3], status
        assert re.findall(r'"id":\s*(\d+)', observer_line) == ["4"], status
        replication = tool(QUORUM, "--bootstrap-server", learner.bootstrap, "describe",
                           "--replication")
        print(replication)
        rows = {int(r[0]): r[-1] for r in (line.split() for line in replication.splitlines())
                if r and r[0].isdigit()}
        assert rows.get(4) == "Observer", replication
        assert sorted(k for k, v in rows.items() if v in ("Leader", "Follower")) == [1, 2, 3]

        # Placement counts the broker-only node like any other; its CreateTopics is forwarded.
        create_replicated(learner.bootstrap, "spread", 8)
        parts = wait_until(lambda: (lambda t: t if len(t) == 8 and all(
            p["leader"] >= 0 for p in t.values()) else None)(
            learner.partitions()["topics"].get("spread", {})), 20, what="eight led partitions")
        led = sorted({p["leader"] for p in parts.values()})
        assert led == ALL, f"leaders {led}: the broker-only node leads partitions too"
        assert all(len(p["replicas"]) == 3 for p in parts.values())
        first = produce(cluster.bootstrap, "spread", {p: [f"a{p}-{i}".encode() for i in range(50)]
                                                      for p in range(8)})
        assert len(first) == 400

        # Kill -9 the controller leader: the broker-only node keeps serving and follows the
        # new leader.
        old, term = current_leader(voters)
        cluster.node(old).kill9()
        killed_at = time.monotonic()
        wait_until(lambda: (lambda s: s and s[0] != old)(learner.leader_seen()), 20,
                   what="the broker-only node following a new controller leader")
        print(f"controller leader {old} killed; node 4 follows leader {learner.leader_seen()} "
              f"after {time.monotonic() - killed_at:.1f} s")
        create_replicated(learner.bootstrap, "after-kill", 4)
        second = produce(learner.bootstrap, "spread",
                         {p: [f"b{p}-{i}".encode() for i in range(50)] for p in range(8)})
        assert len(second) == 400
        cluster.node(old).start()
        cluster.node(old).wait_ready()

        # Stopped while the cluster changes, it catches up from the leader on restart.
        learner.stop()
        create_replicated(cluster.node(1).bootstrap, "while-away", 2)
        learner.start()
        learner.wait_ready()
        wait_until(lambda: "while-away" in learner.metadata()["topics"], 20,
                   what="the restarted broker-only node seeing the topic made while it was away")
        wait_until(lambda: all(n.metadata()["brokers"] == ALL for n in cluster.nodes), 30,
                   what="four brokers listed again")
        got = consume(cluster.bootstrap, "spread", "broker-only-g", 800, timeout=60)
        values = sorted(v for _, _, v in got)
        want = sorted(v for _, _, v in first + second)
        print(f"read back {len(values)} of {len(want)} acknowledged records")
        assert values == want
    finally:
        cluster.stop()
