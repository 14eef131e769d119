"""The cluster harness: several chronik processes on loopback, each a node of one cluster with
its own data directory and log, that tests start, kill -9, hang (SIGSTOP/SIGCONT), stop with
SIGTERM and restart on the same data. Used by the cluster suite (tests/compat/cluster.sh).

Environment: CHRONIK_BIN_PATH, the broker binary.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from reliability_lib import free_port, port_open, wait_until

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LEADER_LINE = re.compile(r"controller leader changed node_id=(\d+) leader=Some\((\d+)\) term=(\d+)")


class Node:
    def __init__(self, workdir, node_id, voters, roles, extra_env=None):
        self.id = node_id
        self.extra_env = dict(extra_env or {})
        self.workdir = Path(workdir) / f"node{node_id}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.voters = voters
        self.roles = roles
        self.port = free_port()
        self.proc = None
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
            assert self.proc.poll() is None, f"node {self.id} exited; see {self.log_path}"
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

    def pause(self):
        """Hangs the process (SIGSTOP): it keeps its sockets but answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


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
    with fast broker heartbeats so fencing shows within seconds."""

    def __init__(self, workdir, n=3, session_timeout_ms=3000, extra_env=None):
        self.workdir = Path(workdir)
        ports = [free_port() for _ in range(n)]
        voters = [f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports)]
        env = {
            "CHRONIK_CLUSTER_SESSION_TIMEOUT_MS": str(session_timeout_ms),
            "CHRONIK_CLUSTER_BROKER_HEARTBEAT_MS": str(max(100, session_timeout_ms // 6)),
            "CHRONIK_TIERING_URL": f'"file://{self.workdir / "remote"}"',
        }
        env.update(extra_env or {})
        self.nodes = [Node(self.workdir, i + 1, voters, ["broker", "controller"], extra_env=env)
                      for i in range(n)]

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def start(self):
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_ready()

    def running(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def stop(self):
        for n in self.nodes:
            n.stop()
