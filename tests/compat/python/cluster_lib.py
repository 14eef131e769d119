"""The cluster harness: several chronik processes on loopback, each a node of one cluster with
its own data directory and log, that tests start, kill -9, hang (SIGSTOP/SIGCONT), stop with
SIGTERM and restart on the same data, and whose links to each other they can cut and heal
(`Cluster(..., proxied=True)`, through tcp_proxy.py): both the controller traffic between two
nodes and the replication between them (a follower fetching from its leader's Kafka listener).
Used by the cluster suite (tests/compat/cluster.sh).

Environment: CHRONIK_BIN_PATH, the broker binary.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from reliability_lib import free_port, port_open, wait_until
from tcp_proxy import ProxyHub

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LEADER_LINE = re.compile(r"controller leader changed node_id=(\d+) leader=Some\((\d+)\) term=(\d+)")


class Node:
    def __init__(self, workdir, node_id, voters, roles, extra_env=None, port=None):
        self.id = node_id
        self.extra_env = dict(extra_env or {})
        self.workdir = Path(workdir) / f"node{node_id}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.voters = voters
        self.roles = roles
        self.port = port or free_port()  # its Kafka listener
        self.proc = None
        self.paused = False
        self.log_path = self.workdir / "chronik.log"

    @property
    def is_broker(self):
        return "broker" in self.roles

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
        env.update({
            "CHRONIK_NODE_ID": str(self.id),
            "CHRONIK_CLUSTER_VOTERS": "[" + ",".join(f'"{v}"' for v in self.voters) + "]",
            "CHRONIK_CLUSTER_ROLES": "[" + ",".join(f'"{r}"' for r in self.roles) + "]",
            "CHRONIK_HTTP_LISTEN": '""',
            "RUST_LOG": os.environ.get("CLUSTER_RUST_LOG", "info,openraft=warn"),
        })
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [os.environ["CHRONIK_BIN_PATH"], "serve", "--listen", self.bootstrap,
                 "--data-dir", str(self.workdir / "data")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)

    def wait_ready(self, timeout=60):
        needle = "broker ready" if self.is_broker else "controller quorum ready"

        def ready():
            if self.proc.poll() is not None:
                tail = "\n".join(self.log_text().rsplit("=== start at", 1)[-1].splitlines()[-15:])
                raise AssertionError(f"node {self.id} exited ({self.proc.returncode}); "
                                     f"the end of {self.log_path}:\n{tail}")
            return needle in self.log_text().rsplit("=== start at", 1)[-1]
        wait_until(ready, timeout, what=f"node {self.id} ready")
        if self.is_broker:
            wait_until(lambda: port_open(self.port), timeout, what=f"node {self.id} listening")

    def log_text(self):
        try:
            return ANSI.sub("", self.log_path.read_text(errors="replace"))
        except OSError:
            return ""

    def leader_seen(self):
        """The (leader, term) of this node's last leader line in its current run."""
        text = self.log_text().rsplit("=== start at", 1)[-1]
        found = LEADER_LINE.findall(text)
        return (int(found[-1][1]), int(found[-1][2])) if found else None

    def run_log(self):
        """This node's log since its last start."""
        return self.log_text().rsplit("=== start at", 1)[-1]

    @property
    def controller_dir(self):
        return self.workdir / "data" / "__chronik" / "controller"

    def raft_log_span(self):
        """(first, last) Raft index held in this node's controller log files (read while it is
        stopped, or as a snapshot of a running node's files), or None when they hold nothing.
        Frames: u32 length | u32 crc32c | u64 index | entry (src/metadata/raft_log.rs)."""
        first = last = None
        for path in sorted(self.controller_dir.glob("raft-*.log")):
            raw = path.read_bytes()
            at = 0
            while at + 16 <= len(raw):
                length = struct.unpack_from(">I", raw, at)[0]
                if length < 8 or at + 8 + length > len(raw):
                    break  # a torn tail
                index = struct.unpack_from(">Q", raw, at + 8)[0]
                first = index if first is None else min(first, index)
                last = index if last is None else max(last, index)
                at += 8 + length
        return None if first is None else (first, last)

    def raft_purged(self):
        """The index of the last entry this node purged behind a snapshot (`raft-purged`), or None."""
        try:
            raw = (self.controller_dir / "raft-purged").read_bytes()
        except OSError:
            return None
        return struct.unpack_from(">Q", raw, 0)[0] if len(raw) >= 12 else None

    def metadata(self, timeout=10):
        """Metadata as this node itself answers it (node_metadata)."""
        return node_metadata(self.port, timeout)

    def partitions(self, timeout=10):
        """Leaders, leader epochs, replicas and in-sync sets as this node itself answers them
        (node_partitions)."""
        return node_partitions(self.port, timeout)

    @property
    def alive(self):
        """Running and not hung by pause()."""
        return self.proc is not None and self.proc.poll() is None and not self.paused

    def topic_configs(self, topics, keys=None, timeout=10):
        """DescribeConfigs of topics as this node itself answers it (node_topic_configs)."""
        return node_topic_configs(self.port, topics, keys, timeout)

    def create_topic(self, name, partitions=1, timeout_ms=5000, wait_s=10):
        """CreateTopics sent to this node itself (node_create_topic)."""
        return node_create_topic(self.port, name, partitions, timeout_ms, wait_s)

    def pause(self):
        """Hangs the process (SIGSTOP): it keeps its sockets but answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.paused = False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class _Reader:
    def __init__(self, raw):
        self.raw, self.at = raw, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.raw, self.at)
        self.at += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        v = self.raw[self.at:self.at + n].decode()
        self.at += n
        return v


def _string(v):
    raw = v.encode()
    return struct.pack(">h", len(raw)) + raw


def ask_node(port, api_key, version, body, timeout=10):
    """One Kafka request (non-flexible version) to the node on `port` itself, on a connection
    of its own: unlike a client library, nothing routes it to another broker."""
    header = struct.pack(">hhi", api_key, version, 1) + _string("cluster-harness")
    frame = header + body
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        raw = b""
        while len(raw) < 4 or len(raw) < 4 + struct.unpack(">i", raw[:4])[0]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"node on port {port} did not answer within {timeout} s")
            s.settimeout(left)
            chunk = s.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"node on port {port} closed the connection")
            raw += chunk
    return _Reader(raw[8:])  # size and correlation id


def node_metadata(port, timeout=10):
    """Metadata v1 for all topics as this node answers it: {"brokers": [ids], "controller": id,
    "topics": {name: {partition: leader}}}."""
    r = ask_node(port, 3, 1, struct.pack(">i", -1), timeout)
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        r.string(), r.take(">i"), r.string()
        brokers.append(node_id)
    controller = r.take(">i")
    topics = {}
    for _ in range(r.take(">i")):
        error, name, _internal = r.take(">h"), r.string(), r.take(">b")
        parts = {}
        for _ in range(r.take(">i")):
            _perr, index, leader = r.take(">hii")
            for _array in ("replicas", "isr"):
                for _ in range(r.take(">i")):
                    r.take(">i")
            parts[index] = leader
        if error == 0:
            topics[name] = parts
    return {"brokers": sorted(brokers), "controller": controller, "topics": topics}


def node_partitions(port, timeout=10):
    """Metadata v7 for all topics as the node on `port` answers it: {"brokers": [ids],
    "controller": id, "topics": {name: {partition: {"error", "leader", "epoch", "replicas",
    "isr", "offline"}}}} (topics with a topic-level error left out)."""
    r = ask_node(port, 3, 7, struct.pack(">ib", -1, 0), timeout)
    r.take(">i")  # throttle
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        r.string(), r.take(">i"), r.string()
        brokers.append(node_id)
    r.string()  # cluster id
    controller = r.take(">i")
    topics = {}

    def ids():
        return sorted(r.take(">i") for _ in range(r.take(">i")))
    for _ in range(r.take(">i")):
        error, name, _internal = r.take(">h"), r.string(), r.take(">b")
        parts = {}
        for _ in range(r.take(">i")):
            perr, index, leader, epoch = r.take(">hiii")
            parts[index] = {"error": perr, "leader": leader, "epoch": epoch, "replicas": ids(),
                            "isr": ids(), "offline": ids()}
        if error == 0:
            topics[name] = parts
    return {"brokers": sorted(brokers), "controller": controller, "topics": topics}


def node_topic_configs(port, topics, keys=None, timeout=10):
    """DescribeConfigs v1 of `topics` as this node answers it: {topic: {key: value}} (an error
    code instead of the dict for a topic it does not know)."""
    body = struct.pack(">i", len(topics))
    for t in topics:
        body += struct.pack(">b", 2) + _string(t)
        if keys is None:
            body += struct.pack(">i", -1)
        else:
            body += struct.pack(">i", len(keys)) + b"".join(_string(k) for k in keys)
    body += struct.pack(">b", 0)
    r = ask_node(port, 32, 1, body, timeout)
    r.take(">i")
    out = {}
    for _ in range(r.take(">i")):
        error, _msg, _type, name = r.take(">h"), r.string(), r.take(">b"), r.string()
        configs = {}
        for _ in range(r.take(">i")):
            key, value = r.string(), r.string()
            r.take(">bbb")
            for _ in range(r.take(">i")):
                r.string(), r.string(), r.take(">b")
            configs[key] = value
        out[name] = configs if error == 0 else error
    return out


def node_create_topic(port, name, partitions=1, timeout_ms=5000, wait_s=10):
    """CreateTopics v2 of one topic sent to the node on `port` itself (a client library sends it
    to the broker Metadata names as controller): the answer's error code, 0 when created.
    Raises OSError (socket.timeout) when the node does not answer within `wait_s`."""
    body = struct.pack(">i", 1) + _string(name) + struct.pack(">ihii", partitions, 1, 0, 0)
    body += struct.pack(">ib", timeout_ms, 0)
    r = ask_node(port, 19, 2, body, wait_s)
    r.take(">i")
    assert r.take(">i") == 1
    r.string()
    return r.take(">h")


def current_leader(nodes, timeout=10):
    """The leader that every running node agrees on, with its term."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {n.leader_seen() for n in nodes if n.proc and n.proc.poll() is None}
        if len(seen) == 1 and None not in seen:
            return next(iter(seen))
        time.sleep(0.02)
    raise AssertionError(f"no agreed controller leader: {[n.leader_seen() for n in nodes]}")


class Cluster:
    """N combined (broker and controller) nodes sharing a remote tier on the local filesystem,
    with fast broker heartbeats so fencing shows within seconds.

    With `proxied=True` every node-to-node link goes through a proxy the test controls
    (tcp_proxy.py), two per ordered pair of nodes:

    - controller traffic: node a reaches node b's internal listener (Raft RPCs, broker
      heartbeats, forwarded proposals) only through the link `a->b`. Each node gets its own
      CHRONIK_CLUSTER_VOTERS: its own entry is its real listen address (a node binds the
      address of its own id), the others' entries are its links to them;
    - replication: node a fetches the partitions it follows from node b's Kafka listener only
      through the link `a->b kafka`, named in a's own CHRONIK_CLUSTER_BROKER_ADDRESSES (which
      overrides the address b registered, for a's replica fetchers only).

    Kafka clients reach every node directly, at the address it registered. `cut(a, b)`,
    `heal(a, b)`, `isolate(a)` act on both kinds of link by default (`kinds=("controller",)` or
    `("replication",)` for one of them); `heal_all()`; a cut closes the link's connections and
    black-holes (default) or refuses new ones.

    Caveat: Raft RPCs go to the addresses of the Raft membership, which each node takes from
    its own voters list when it initializes its log, but a node that installs a snapshot takes
    the membership (so the addresses) of the node that sent it; after that, its Raft RPCs follow
    the sender's links (and reach the sender itself directly). Heartbeats and forwarded
    proposals always use the node's own voters list, and replication its own broker addresses.
    """

    KINDS = ("controller", "replication")

    def __init__(self, workdir, n=3, session_timeout_ms=3000, extra_env=None, proxied=False,
                 cut_mode="blackhole", voters=None):
        """`voters`: how many of the n nodes are controller voters (default all); the others
        are broker-only nodes, which follow the metadata log as learners on an internal
        listener of their own (CHRONIK_CLUSTER_LISTEN)."""
        voters = n if voters is None else voters
        assert 1 <= voters <= n
        assert not (proxied and voters < n), "proxied clusters have only combined nodes"
        self.workdir = Path(workdir)
        self.proxy = None
        self.cut_mode = cut_mode
        self.links = {}  # (a, b) -> name of the link carrying a's controller traffic to b
        self.replication_links = {}  # (a, b) -> name of the link carrying a's fetches from b
        ports = [free_port() for _ in range(n)]        # internal (controller) listeners
        kafka_ports = [free_port() for _ in range(n)]  # Kafka listeners
        reserved = ports + kafka_ports
        voters_of = {}
        node_env = {a: {} for a in range(1, n + 1)}
        if proxied:
            self.proxy = ProxyHub()
            for a in range(1, n + 1):
                entries, brokers = [], []
                for b in range(1, n + 1):
                    if a == b:
                        entries.append(f"{b}@127.0.0.1:{ports[b - 1]}")
                        continue
                    name = f"{a}->{b}"
                    self.links[(a, b)] = name
                    port = self.proxy.add(name, ports[b - 1], avoid=reserved)
                    entries.append(f"{b}@127.0.0.1:{port}")
                    name = f"{a}->{b} kafka"
                    self.replication_links[(a, b)] = name
                    port = self.proxy.add(name, kafka_ports[b - 1], avoid=reserved)
                    brokers.append(f"{b}@127.0.0.1:{port}")
                voters_of[a] = entries
                node_env[a]["CHRONIK_CLUSTER_BROKER_ADDRESSES"] = \
                    "[" + ",".join(f'"{e}"' for e in brokers) + "]"
        else:
            shared = [f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports[:voters])]
            voters_of = {i + 1: shared for i in range(n)}
            for a in range(voters + 1, n + 1):
                node_env[a]["CHRONIK_CLUSTER_LISTEN"] = f'"127.0.0.1:{ports[a - 1]}"'
        env = {
            "CHRONIK_CLUSTER_SESSION_TIMEOUT_MS": str(session_timeout_ms),
            "CHRONIK_CLUSTER_BROKER_HEARTBEAT_MS": str(max(100, session_timeout_ms // 6)),
            "CHRONIK_TIERING_URL": f'"file://{self.workdir / "remote"}"',
        }
        env.update(extra_env or {})
        self.nodes = [Node(self.workdir, i + 1, voters_of[i + 1],
                           ["broker", "controller"] if i < voters else ["broker"],
                           extra_env={**env, **node_env[i + 1]}, port=kafka_ports[i])
                      for i in range(n)]

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes)

    def bootstrap_of(self, ids):
        return ",".join(self.node(i).bootstrap for i in ids)

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def start(self):
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_ready()

    def running(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    # Links (proxied clusters only).

    def _links(self, a, b, kinds=None):
        """Names of the links carrying a's traffic to b, of the given kinds (default both)."""
        assert self.proxy is not None, "links can be cut only in a Cluster(proxied=True)"
        kinds = self.KINDS if kinds is None else tuple(kinds)
        assert set(kinds) <= set(self.KINDS), kinds
        names = []
        if "controller" in kinds:
            names.append(self.links[(a, b)])
        if "replication" in kinds:
            names.append(self.replication_links[(a, b)])
        return names

    def cut(self, a, b, mode=None, kinds=None):
        """Cuts a and b apart, both directions: controller traffic and replication (or the
        `kinds` named)."""
        for name in self._links(a, b, kinds) + self._links(b, a, kinds):
            self.proxy.cut(name, mode or self.cut_mode)

    def heal(self, a, b, kinds=None):
        for name in self._links(a, b, kinds) + self._links(b, a, kinds):
            self.proxy.heal(name)

    def isolate(self, a, mode=None, kinds=None):
        """Cuts a from every other node (its Kafka clients still reach it)."""
        for n in self.nodes:
            if n.id != a:
                self.cut(a, n.id, mode, kinds)

    def heal_all(self):
        for a, b in self.links:
            for name in self._links(a, b):
                self.proxy.heal(name)

    def link_stats(self):
        """{(a, b): counters} of every controller link and {(a, b, "replication"): counters} of
        every replication link (tcp_proxy.Link.stats)."""
        if not self.proxy:
            return {}
        out = {ab: self.proxy.stats(name) for ab, name in self.links.items()}
        out.update({(a, b, "replication"): self.proxy.stats(name)
                    for (a, b), name in self.replication_links.items()})
        return out

    def stop(self):
        """Stops every node (SIGTERM, SIGKILL after 20 s) and then the proxies. Links are healed
        first, so that controlled shutdowns reach the controller leader."""
        try:
            if self.proxy is not None:
                try:
                    self.heal_all()
                except Exception:  # noqa: BLE001 - the nodes are stopped all the same
                    pass
            for n in self.nodes:
                n.stop()
        finally:
            if self.proxy is not None:
                self.proxy.close()
