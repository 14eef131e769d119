"""The controller quorum under network faults and a voter that falls a snapshot behind, with
three nodes (each broker and voter) as separate processes on loopback.

Links between nodes go through proxies the test cuts and heals (`Cluster(proxied=True)`,
tcp_proxy.py: a cut closes the link's connections and black-holes new ones); Kafka clients
reach every node directly. What must hold:

- the controller leader cut from both other nodes: the other two elect a leader within a few
  seconds, fence the isolated broker after the session timeout, and take topic changes; a
  CreateTopics sent to the isolated node is not acknowledged; healed, the old leader follows the
  new one, is listed again and has every change made meanwhile;
- a broker cut from the controller leader only (it still reaches the other voter): its
  heartbeats go from its own voter straight to the leader (docs/cluster.md: "a follower voter
  forwards to the leader"), so they fail, and the leader fences it after the session timeout,
  not before; the leader and the other voter keep taking topic changes, which the cut node does
  not get until the link heals (Raft entries come from the leader only); healed, it is listed
  again and has them;
- a voter stopped while the others write more than a snapshot's worth of entries
  (`snapshot_every` 50) and purge their logs past its position: restarted, it installs the
  leader's snapshot and answers with the same topics and configs as the others.

Metadata, DescribeConfigs and the CreateTopics to the isolated node are sent to one node itself
(cluster_lib.node_metadata and the like): a client library may send them to any broker it
learned of, or to the controller. Bounded: every wait has a deadline; the
session timeout is 3 s. Printed: election, fencing and rejoin times, entries written while the
voter was down, its catch-up time.
"""

import re
import threading
import time

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from cluster_lib import Cluster, current_leader
from reliability_lib import wait_until

SESSION_S = 3.0
HEARTBEAT_S = SESSION_S / 6  # the harness's broker_heartbeat_ms
# The leader may have heard a broker up to one heartbeat interval before its link was cut.
FENCED_NOT_BEFORE_S = SESSION_S - HEARTBEAT_S - 0.1
ELECTION_BOUND_S = 5.0
CANDIDATE_LINE = re.compile(r"controller leader changed node_id=\d+ leader=None term=(\d+)")


def admin_of(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})


def create(bootstrap, names, config=None):
    """Creates topics of one partition; the admin client lives until every answer came."""
    admin = admin_of(bootstrap)
    futures = admin.create_topics([NewTopic(n, 1, 1, config=dict(config or {})) for n in names],
                                  operation_timeout=20)
    for name, f in futures.items():
        f.result(30)


def set_retention(bootstrap, values):
    """IncrementalAlterConfigs retention.ms per topic ({topic: value})."""
    admin = admin_of(bootstrap)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", v, incremental_operation=AlterConfigOpType.SET)])
        for t, v in values.items()]
    for res, f in admin.incremental_alter_configs(resources).items():
        f.result(30)


def brokers_of(node):
    """The brokers this node lists in Metadata; None when it does not answer."""
    try:
        return node.metadata(timeout=5)["brokers"]
    except OSError:
        return None


def topics_of(node):
    return {t for t in node.metadata()["topics"] if not t.startswith("__")}


def new_leader(nodes, old, old_term, timeout):
    """(leader, term) once every node in `nodes` follows one leader other than `old` in a later
    term; bounded."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = {n.leader_seen() for n in nodes}
        if len(seen) == 1:
            leader = next(iter(seen))
            if leader and leader[0] != old and leader[1] > old_term:
                return leader
        time.sleep(0.01)
    raise AssertionError(f"no new controller leader within {timeout} s: {seen}")


def test_isolated_controller_leader(tmp_path):
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000), proxied=True)
    try:
        cluster.start()
        wait_until(lambda: all(brokers_of(n) == [1, 2, 3] for n in cluster.nodes), 30,
                   what="three brokers listed by every node")
        create(cluster.bootstrap, ["a-before"])
        old, term = current_leader(cluster.nodes)
        isolated = cluster.node(old)
        rest = [n for n in cluster.nodes if n.id != old]
        rest_ids = sorted(n.id for n in rest)
        majority = cluster.bootstrap_of(rest_ids)

        cluster.isolate(old)
        cut_at = time.monotonic()
        leader, new_term = new_leader(rest, old, term, 15)
        elected_after = time.monotonic() - cut_at
        print(f"leader {old} (term {term}) isolated: nodes {rest_ids} follow node {leader} "
              f"(term {new_term}) after {elected_after * 1000:.0f} ms")
        assert elected_after < ELECTION_BOUND_S, f"a new leader took {elected_after:.2f} s"

        wait_until(lambda: all(brokers_of(n) == rest_ids for n in rest), SESSION_S * 4 + 5,
                   interval=0.1, what=f"node {old} fenced by the majority")
        fenced_after = time.monotonic() - cut_at
        print(f"node {old} fenced after {fenced_after:.1f} s (session timeout {SESSION_S} s); "
              f"the isolated node itself still lists {brokers_of(isolated)}")
        # A new leader counts every broker as heard when it takes over (docs/cluster.md).
        assert fenced_after >= elected_after + SESSION_S - 0.3, \
            f"fenced {fenced_after - elected_after:.1f} s after the new leader took over"

        # A write sent to the isolated node cannot reach a majority: it must not be acknowledged.
        iso_answer = {}

        def create_on_isolated():
            sent = time.monotonic()
            try:
                iso_answer["error code"] = isolated.create_topic("a-from-isolated", timeout_ms=5000,
                                                                 wait_s=10)
            except OSError as e:
                iso_answer["no answer"] = repr(e)
            iso_answer["after_s"] = round(time.monotonic() - sent, 1)
        iso_thread = threading.Thread(target=create_on_isolated, daemon=True)
        iso_thread.start()
        during = [f"a-during-{i}" for i in range(5)]
        create(majority, during, {"retention.ms": "7200000"})
        set_retention(majority, {"a-before": "5400000"})
        for n in rest:  # a follower applies a commit with the leader's next message
            wait_until(lambda: set(during) <= topics_of(n), 5, what=f"node {n.id} applying the topics")
        assert not set(during) & topics_of(isolated), "the isolated node got entries it cannot get"
        iso_thread.join(20)
        print(f"CreateTopics (timeout_ms 5000) sent to the isolated node: {iso_answer}")
        assert "after_s" in iso_answer, "the CreateTopics to the isolated node is still running"
        assert iso_answer.get("error code") != 0, "a node cut off from the quorum acknowledged a write"

        cluster.heal_all()
        healed_at = time.monotonic()
        wait_until(lambda: isolated.leader_seen() == (leader, new_term), 15, interval=0.05,
                   what=f"node {old} following node {leader} in term {new_term}")
        followed_after = time.monotonic() - healed_at
        wait_until(lambda: all(brokers_of(n) == [1, 2, 3] for n in cluster.nodes), 15,
                   interval=0.1, what="three brokers listed again by every node")
        listed_after = time.monotonic() - healed_at
        assert current_leader(cluster.nodes) == (leader, new_term), "the rejoin changed the leader"
        # (The isolated node listed three brokers all along, from its stale state: wait for the
        # entries themselves.)
        wait_until(lambda: set(during) <= topics_of(isolated), 5,
                   what=f"node {old} applying the topics made while it was cut off")
        configs = isolated.topic_configs(during + ["a-before"], ["retention.ms"])
        assert all(configs[t] == {"retention.ms": "7200000"} for t in during), configs
        assert configs["a-before"] == {"retention.ms": "5400000"}, configs
        # Not a promise either way: a write that was not acknowledged may still take effect.
        late = appears(cluster.node(leader), "a-from-isolated", 3)
        print(f"healed: node {old} follows node {leader} after {followed_after * 1000:.0f} ms, "
              f"listed by every node after {listed_after:.1f} s, has the {len(during)} topics and "
              f"the config change made meanwhile; the unacknowledged topic "
              f"{'was created after the heal' if late else 'does not exist'}")
    finally:
        cluster.stop()


def appears(node, topic, seconds):
    """Whether `topic` shows in the node's Metadata within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if topic in topics_of(node):
            return True
        time.sleep(0.1)
    return False


def test_broker_cut_from_the_controller_leader_only(tmp_path):
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000), proxied=True)
    try:
        cluster.start()
        wait_until(lambda: all(brokers_of(n) == [1, 2, 3] for n in cluster.nodes), 30,
                   what="three brokers listed by every node")
        leader, term = current_leader(cluster.nodes)
        cut_node = next(n for n in cluster.nodes if n.id != leader)
        other = next(n for n in cluster.nodes if n.id not in (leader, cut_node.id))
        majority = [cluster.node(leader), other]
        mark = len(cut_node.log_text())

        cluster.cut(cut_node.id, leader)
        cut_at = time.monotonic()
        wait_until(lambda: all(brokers_of(n) == sorted([leader, other.id]) for n in majority),
                   SESSION_S * 4 + 5, interval=0.1, what=f"node {cut_node.id} fenced")
        fenced_after = time.monotonic() - cut_at
        assert fenced_after >= FENCED_NOT_BEFORE_S, "fenced before the session timeout"
        failed_heartbeats = cut_node.log_text()[mark:].count("broker heartbeat failed")
        assert failed_heartbeats > 0, "the cut node's heartbeats did not fail, yet it was fenced"

        # The leader and the other voter are a majority: topic changes go on through either.
        during = [f"b-during-{i}" for i in range(3)]
        create(other.bootstrap, during[:2])
        create(cluster.node(leader).bootstrap, during[2:])
        for n in majority:  # a follower applies a commit with the leader's next message
            wait_until(lambda: set(during) <= topics_of(n), 5, what=f"node {n.id} applying the topics")
        assert not set(during) & topics_of(cut_node), \
            f"node {cut_node.id} got entries although only the leader sends them"
        majority_leader = {n.leader_seen() for n in majority}
        elections = [int(t) for t in CANDIDATE_LINE.findall(cut_node.log_text()[mark:])]
        print(f"node {cut_node.id} cut from leader {leader} only: fenced after {fenced_after:.1f} s "
              f"(session timeout {SESSION_S} s), {failed_heartbeats} failed heartbeats; it stood "
              f"for election {len(elections)} times (terms up to {max(elections, default=term)}); "
              f"the majority's leader meanwhile {sorted(majority_leader)}")

        cluster.heal(cut_node.id, leader)
        healed_at = time.monotonic()
        wait_until(lambda: all(brokers_of(n) == [1, 2, 3] for n in cluster.nodes), 15,
                   interval=0.1, what=f"node {cut_node.id} listed again")
        listed_after = time.monotonic() - healed_at
        after = current_leader(cluster.nodes, timeout=15)
        wait_until(lambda: set(during) <= topics_of(cut_node), 5,
                   what=f"node {cut_node.id} applying the topics made during the cut")
        print(f"healed: node {cut_node.id} listed by every node after {listed_after:.1f} s; leader "
              f"then {after[0]} in term {after[1]} (before the cut: {leader} in term {term})")
    finally:
        cluster.stop()


SNAPSHOT_EVERY = 50
SNAPSHOT_LOG = ("info,openraft=warn,openraft::engine::handler::following_handler=info,"
                "openraft::network::snapshot_transport=info")


def test_restarted_voter_catches_up_from_a_snapshot(tmp_path):
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000), extra_env={
        "CHRONIK_CLUSTER_SNAPSHOT_EVERY": str(SNAPSHOT_EVERY), "RUST_LOG": SNAPSHOT_LOG})
    try:
        cluster.start()
        wait_until(lambda: all(brokers_of(n) == [1, 2, 3] for n in cluster.nodes), 30,
                   what="three brokers listed by every node")
        leader, _ = current_leader(cluster.nodes)
        victim = next(n for n in cluster.nodes if n.id != leader)
        others = [n for n in cluster.nodes if n is not victim]
        bootstrap = cluster.bootstrap_of(n.id for n in others)
        victim.stop()
        span = victim.raft_log_span()
        assert span is not None, f"node {victim.id} holds no controller log"
        victim_last = span[1]

        # 150 topics (15 CreateTopics of 10) and 50 config changes, each its own Raft entry.
        created = {}
        for batch in range(15):
            names = {f"c-{batch}-{i}": str(3_600_000 + batch * 10 + i) for i in range(10)}
            admin = admin_of(bootstrap)
            futures = admin.create_topics([NewTopic(t, 1, 1, config={"retention.ms": r})
                                           for t, r in names.items()], operation_timeout=20)
            for f in futures.values():
                f.result(30)
            created.update(names)
        altered = {t: str(9_000_000 + i) for i, t in enumerate(sorted(created)[:50])}
        for i in range(0, 50, 10):
            set_retention(bootstrap, dict(list(altered.items())[i:i + 10]))
        expected = {**created, **altered}

        # Every running voter has purged its log past the victim's position.
        def purged_past():
            purged = [n.raft_purged() for n in others]
            return min(purged) if None not in purged and min(purged) > victim_last + 1 else None
        purged = wait_until(purged_past, 20, what=f"logs purged past index {victim_last}")
        written = max(n.raft_log_span()[1] for n in others) - victim_last

        victim.start()
        started = time.monotonic()
        victim.wait_ready(60)
        caught_up = time.monotonic() - started
        # Answered by the restarted node itself, as soon as it says it is ready.
        mine, theirs = topics_of(victim), [topics_of(n) for n in others]
        assert all(mine == t for t in theirs), \
            f"node {victim.id} differs: missing {sorted(theirs[0] - mine)[:5]}, extra {sorted(mine - theirs[0])[:5]}"
        assert set(expected) <= mine
        configs = victim.topic_configs(sorted(expected), ["retention.ms"])
        wrong = {t: configs[t] for t, r in expected.items() if configs[t] != {"retention.ms": r}}
        assert not wrong, f"node {victim.id} has other configs: {dict(list(wrong.items())[:5])}"
        assert configs == others[0].topic_configs(sorted(expected), ["retention.ms"])

        # It installed a snapshot: openraft's line (logged at info for this test) and its files.
        installed = [line for line in victim.run_log().splitlines() if "install_full_snapshot:" in line]
        assert installed, f"node {victim.id} logged no snapshot installation"
        assert (victim.controller_dir / "raft-snapshot").exists()
        assert (victim.raft_purged() or 0) >= purged, "its log starts before the snapshot it needed"
        snapshot = re.search(r"last_log_id: Some\(LogId \{ leader_id: LeaderId \{ term: \d+, node_id: \d+ \}, index: (\d+)",
                             installed[-1])
        print(f"node {victim.id} stopped at index {victim_last}; {written} entries written while it "
              f"was down ({len(created)} topics, {len(altered)} config changes), the others' logs "
              f"purged up to {purged}; restarted, it installed the snapshot at index "
              f"{snapshot.group(1) if snapshot else '?'} and was ready after {caught_up:.2f} s "
              f"with {len(mine)} topics, configs equal to the others'")
    finally:
        cluster.stop()
