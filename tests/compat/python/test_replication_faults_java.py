"""The replication fault checker of test_replication_faults.py with Apache Kafka's Java producer
in place of librdkafka's: the same history checked against the same final read, so the Java
client's idempotent producer (its sequence numbers, epoch bumps and retries across leader
changes) is held to the same rules as librdkafka's.

test_java_acknowledged_records_survive_leader_faults: three nodes (each broker and controller
voter) with every node-to-node link proxied (`Cluster(proxied=True)`), a topic of 3 partitions,
replication factor 3, min.insync.replicas 2. The producer is a small Java program
(tests/compat/java-checker/ReplicationFaultsProducer.java, compiled here with javac against the
Kafka client jars of CHRONIK_TOOLS_CLASSPATH and cached under $HOME/.cache/chronik-tests/
java-checker/<hash of the source and classpath>): a KafkaProducer with enable.idempotence=true
and acks=all, retries and delivery.timeout.ms at their defaults, writing the unique values j0,
j1, ... without stopping for faults (value j<i> to partition i % 3, at most MAX_IN_FLIGHT
unanswered, at most RATE a second) and printing one line per acknowledgement (value, partition,
offset) and per error; that output is the history. A consumer assigned to every partition reads
along. Meanwhile `JAVA_REPLICATION_FAULTS` faults (default 3), each on the leader of a
partition, in turn: kill -9, SIGSTOP, and the leader isolated from the other nodes by the
proxies but not from clients — each lasting until the other two nodes agree that its partitions
have new leaders, and at least as long as in test_replication_faults.py; then restarted,
resumed or healed, and the cluster must recover (every partition led, in-sync sets of 3, and
the Java producer acknowledged again on every partition). During the isolation a librdkafka
producer bootstrapped at the isolated leader writes acks=all to it: none of that may be
acknowledged by the isolated leader. At the end the Java program stops sending and gets
ANSWER_S seconds to have every value answered, and a fresh consumer reads every partition from
offset 0 to the high watermark. What must hold (test_replication_faults.check):

- every value the Java producer was told was acknowledged is in the log exactly once, at the
  partition and offset of its acknowledgement (none lost, moved or duplicated);
- no value at all appears twice, and none appears that was never sent;
- no value was answered twice;
- the live consumer's reads agree with the final read and only went forward;
- the isolated leader acknowledged nothing. The producer sent to it finds the other brokers in
  its metadata and may reach the partition's new leader before its message timeout; an
  acknowledgement whose record the final read shows at that offset in a later leader epoch is
  the new leader's, printed and not counted against the isolated one.

Values not acknowledged but in the log are allowed, counted and printed; so are values failed
or left unanswered (see JavaProducing.stop for how a batch can stay unanswered until the
delivery timeout). Printed as in test_replication_faults.py: the faults, the acknowledged,
failed, lost, moved, duplicated, unknown and unacknowledged-but-present counts, failover times
and the leader and in-sync set changes, and when clock 0 was in UTC (to find the faults in the
nodes' logs). The Java producer asks for metadata every second (metadata.max.age.ms, like
librdkafka's refresh interval there) and gives up on a request after 5 s (request.timeout.ms;
the default 30 s would hold every batch sent to a SIGSTOPped leader for 30 s).

Needs java and javac (JDK 11+) and CHRONIK_TOOLS_CLASSPATH (made by tests/compat/cluster.sh);
skipped without them, failed in CI. Bounded: every wait has a deadline; the CI version (3
faults) runs in about a minute.
"""

import collections
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cluster_lib import Cluster
from reliability_lib import env_int, wait_until
from test_replication_faults import (CUT_S, ENV, KILLED_S, KINDS, NODES, PARTITIONS, RECOVERY_S,
                                     SESSION_S, STOP_S, LiveReader, Monitor, check,
                                     create_replicated, direct_produce, healthy, leaders_moved,
                                     read_all)

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "java-checker" / "ReplicationFaultsProducer.java"
MAIN_CLASS = "ReplicationFaultsProducer"
CACHE = Path(os.environ.get("CHRONIK_TEST_CACHE") or Path.home() / ".cache" / "chronik-tests")
IN_CI = bool(os.environ.get("CI"))
MAX_IN_FLIGHT = 1000          # values sent and not yet answered, at most
MAX_VALUES = 10_000_000       # the Java program's own bounds (the test stops it long before)
# Values a second, at most (0: as fast as the brokers take them, some 30000 a second here, which
# costs the test process more than the check gains); JAVA_REPLICATION_RATE overrides it.
RATE = 5000
# After the last send, how long the Java producer gets to have every value answered: a second
# is plenty unless a batch is stuck in retries until delivery.timeout.ms (120 s, see
# JavaProducing.stop); values still unanswered then count as indeterminate, as values that
# failed do.
ANSWER_S = 20
# The Java producer's settings besides enable.idempotence=true and acks=all (set by the
# program itself); retries and delivery.timeout.ms (120 s) stay at their defaults.
PRODUCER_CONFIG = {
    "linger.ms": "5",
    "request.timeout.ms": "5000",
    "metadata.max.age.ms": "1000",
    "reconnect.backoff.max.ms": "1000",
}


def need(what, ok):
    if not ok:
        if IN_CI:
            pytest.fail(f"{what} is missing (CI installs it: tests/compat/cluster.sh)")
        pytest.skip(f"{what} is missing")


def java_classpath():
    """The Kafka client classpath (CHRONIK_TOOLS_CLASSPATH names the file that holds it)."""
    path = os.environ.get("CHRONIK_TOOLS_CLASSPATH", "")
    need("the Kafka tools classpath (CHRONIK_TOOLS_CLASSPATH)", path and Path(path).is_file())
    need("java", shutil.which("java"))
    need("javac", shutil.which("javac"))
    return Path(path).read_text().strip()


def compiled(classpath):
    """The directory of the compiled producer, compiled once per source and classpath."""
    key = hashlib.sha256(SOURCE.read_bytes() + b"\0" + classpath.encode()).hexdigest()[:16]
    out = CACHE / "java-checker" / key
    if (out / f"{MAIN_CLASS}.class").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=out.parent))
    r = subprocess.run(["javac", "-nowarn", "-d", str(tmp), "-cp", classpath, str(SOURCE)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, \
        f"javac {SOURCE} exited {r.returncode}:\n{(r.stdout + r.stderr)[-3000:]}"
    try:
        tmp.rename(out)
    except OSError:  # compiled meanwhile by another run
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class JavaProducing(threading.Thread):
    """Runs the Java producer and reads its history from its stdout: the same figures as
    test_replication_faults.Producing (acked, sent, failed, errors, client_errors, producers),
    so that check() takes it in its place."""

    def __init__(self, classpath, bootstrap, topic, partitions, rate, max_s, log_path, clock):
        super().__init__(daemon=True)
        self.partitions, self.clock, self.log_path = partitions, clock, log_path
        self.lock = threading.Lock()
        self.sent = {}     # value -> (partition, None), known once sending stopped ("stopped <n>")
        self.acked = {}    # value -> (partition, offset, time)
        self.failed = {}   # value -> (error name, time)
        self.errors = collections.Counter()          # failed values by error
        self.client_errors = collections.Counter()   # send() itself threw, by error
        self.twice = []    # values answered more than once: (value, first answer, later line)
        self.strange = []  # lines not understood
        self.producers = 1
        self.stopped = None  # values sent, once sending stopped
        self.ended = False   # every value answered
        cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1",
               "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
               "-cp", f"{compiled(classpath)}{os.pathsep}{classpath}", MAIN_CLASS,
               bootstrap, topic, str(partitions), str(MAX_VALUES), str(int(max_s)),
               str(MAX_IN_FLIGHT), str(rate)] + [f"{k}={v}" for k, v in PRODUCER_CONFIG.items()]
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)

    def run(self):
        for line in self.proc.stdout:
            t = self.clock()
            parts = line.rstrip("\n").split(" ", 4)
            kind = parts[0]
            with self.lock:
                if kind in ("ack", "err") and len(parts) >= 4:
                    v = parts[1]
                    if v in self.acked or v in self.failed:
                        first = self.acked.get(v) or self.failed.get(v)
                        self.twice.append((v, first, line.strip()))
                        continue
                    if kind == "ack":
                        self.acked[v] = (int(parts[2]), int(parts[3]), t)
                    else:
                        self.failed[v] = (parts[3], t)
                        self.errors[parts[3]] += 1
                        if parts[3].startswith("send:"):
                            self.client_errors[parts[3]] += 1
                elif kind == "producer":
                    self.producers = int(parts[1])
                elif kind == "stopped":
                    self.stopped = int(parts[1])
                    self.sent = {f"j{i}": (i % self.partitions, None) for i in range(self.stopped)}
                elif kind == "end":
                    self.ended = int(parts[1]) == self.stopped
                else:
                    self.strange.append(line.strip())

    def acked_since(self, t):
        """Partitions that got an acknowledgement after time t."""
        with self.lock:
            return {p for p, _, at in self.acked.values() if at > t}

    def stop(self, timeout):
        """Stops sending; waits until every value is answered and the program exits, or at most
        `timeout` seconds: then it is killed and the values not answered are indeterminate.

        A value can stay unanswered until delivery.timeout.ms when the leader of its partition
        moved while its batch B was in flight to the old leader: the producer goes on writing
        newer batches to the new leader (max.in.flight.requests.per.connection bounds each
        connection, not the partition), and when B's request times out and B is retried, the
        new leader, which had B from the old one, has since taken more than 5 newer batches of
        that producer, so it no longer knows B for a duplicate (brokers keep the last 5 batches
        of a producer, Kafka's as chronik's) and answers OUT_OF_ORDER_SEQUENCE_NUMBER; the Java
        client retries B until its delivery timeout. B's records are in the log, unacknowledged."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.join(10)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def log_tail(self):
        try:
            return Path(self.log_path).read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def test_java_acknowledged_records_survive_leader_faults(tmp_path):
    faults = env_int("JAVA_REPLICATION_FAULTS", 3)
    classpath = java_classpath()
    compiled(classpath)  # before the cluster starts: the first compile takes a while
    topic = "jepsen-java"
    cluster = Cluster(tmp_path, n=3, session_timeout_ms=int(SESSION_S * 1000), extra_env=ENV,
                      proxied=True)
    t0 = time.monotonic()
    wall = time.time()
    print(f"clock 0 s = {time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(wall))}"
          f".{int(wall % 1 * 1000):03d}Z (UTC, as in the node logs under {tmp_path})")

    def clock():
        return time.monotonic() - t0

    threads, producer = [], None
    try:
        cluster.start()
        wait_until(lambda: all(n.metadata()["brokers"] == list(NODES) for n in cluster.nodes), 30,
                   what="three brokers listed by every node")
        create_replicated(cluster.bootstrap, topic, PARTITIONS)
        wait_until(lambda: healthy(cluster, topic, PARTITIONS), 30,
                   what="every partition led with three in-sync replicas")

        producer = JavaProducing(classpath, cluster.bootstrap, topic, PARTITIONS,
                                 env_int("JAVA_REPLICATION_RATE", RATE), 120 + 60 * faults,
                                 tmp_path / "java-producer.log", clock)
        reader = LiveReader(cluster.bootstrap, topic, PARTITIONS, clock)
        monitor = Monitor(cluster, topic, clock)
        threads = [reader, monitor]
        for t in [producer] + threads:
            t.start()
        wait_until(lambda: producer.acked_since(0) == set(range(PARTITIONS)) or
                   producer.proc.poll() is not None, 60,
                   what="first acknowledgements of the Java producer on every partition")
        assert producer.proc.poll() is None, \
            f"the Java producer exited {producer.proc.returncode}:\n{producer.log_tail()}"
        time.sleep(1.0)

        history = []   # one dict per fault
        direct = []    # produce sent straight to isolated leaders
        for i in range(faults):
            kind = KINDS[i % len(KINDS)]
            view = wait_until(lambda: healthy(cluster, topic, PARTITIONS), RECOVERY_S,
                              what="a healthy cluster before the fault")
            target = i % PARTITIONS
            victim = cluster.node(view[target][0])
            led = {p: epoch for p, (leader, epoch, _) in view.items() if leader == victim.id}
            fault = {"n": i + 1, "kind": kind, "node": victim.id, "led": led}
            monitor.faulted.add(victim.id)
            fault["at"] = clock()
            others = [n for n in cluster.nodes if n is not victim]
            if kind == "kill":
                victim.kill9()
                fault["moved"] = leaders_moved(others, topic, victim.id, led, fault["at"], clock)
                time.sleep(max(0.0, fault["at"] + KILLED_S - clock()))
                victim.start()
                victim.wait_ready(60)
            elif kind == "stop":
                victim.pause()
                fault["moved"] = leaders_moved(others, topic, victim.id, led, fault["at"], clock)
                time.sleep(max(0.0, fault["at"] + STOP_S - clock()))
                victim.resume()
            else:
                cluster.isolate(victim.id)
                out = {}
                sender = threading.Thread(target=lambda: out.update(
                    direct_produce(victim, topic, target, 20, CUT_S, clock)), daemon=True)
                sender.start()
                fault["moved"] = leaders_moved(others, topic, victim.id, led, fault["at"], clock)
                sender.join(max(0.0, fault["at"] + CUT_S - clock()))
                assert not sender.is_alive(), "the produce to the isolated leader outlived the cut"
                direct.append({"node": victim.id, "partition": target, "epoch": led[target], **out})
                time.sleep(max(0.0, fault["at"] + CUT_S - clock()))
                cluster.heal_all()
            fault["ended"] = clock()
            monitor.faulted.discard(victim.id)
            wait_until(lambda: healthy(cluster, topic, PARTITIONS), RECOVERY_S, interval=0.1,
                       what=f"recovery after fault {i + 1} ({kind} of node {victim.id}): every "
                            f"partition led, in-sync sets of 3")
            fault["recovered"] = clock()
            wait_until(lambda: producer.acked_since(fault["recovered"]) == set(range(PARTITIONS)),
                       45, interval=0.1,
                       what=f"Java producer acknowledgements on every partition after fault {i + 1}")
            fault["producing"] = clock()
            history.append(fault)
            print(f"fault {i + 1}: {kind} of node {victim.id} (leading {sorted(led)}) at "
                  f"{fault['at']:.1f} s, its partitions led by others {fault['moved']:.1f} s later, "
                  f"over at {fault['ended']:.1f} s, in-sync sets of 3 again at "
                  f"{fault['recovered']:.1f} s, every partition acknowledged at {fault['producing']:.1f} s")
            time.sleep(1.0)

        stopped = clock()
        producer.stop(ANSWER_S)
        assert producer.stopped is not None, \
            (f"the Java producer exited {producer.proc.returncode} before it stopped sending:\n"
             f"{producer.log_tail()}")
        answered = set(producer.acked) | set(producer.failed)
        unanswered = sorted(set(producer.sent) - answered, key=lambda v: int(v[1:]))
        print(f"Java producer: stopped at {stopped:.1f} s; "
              + (f"every value answered {clock() - stopped:.1f} s later" if producer.ended else
                 f"killed after {ANSWER_S} s with {len(unanswered)} values unanswered "
                 f"(indeterminate), first {unanswered[:3]}")
              + f"; its log {producer.log_path}")
        assert not producer.strange, f"lines the test does not understand: {producer.strange[:10]}"
        assert not producer.twice, f"values answered twice: {producer.twice[:10]}"
        assert answered <= set(producer.sent), \
            f"answers for values never sent: {sorted(answered - set(producer.sent))[:10]}"

        wait_until(lambda: healthy(cluster, topic, PARTITIONS), RECOVERY_S,
                   what="a healthy cluster for the final read")
        final, high = read_all(cluster.bootstrap, topic, PARTITIONS)
        wait_until(lambda: all(reader.position().get(p, -1) >= high[p] - 1
                               for p in range(PARTITIONS)), 30,
                   what=f"the live consumer at the high watermarks {high} "
                        f"(at {reader.position()})")
        for t in threads:
            t.halt.set()
        for t in threads:
            t.join(15)

        check(producer, reader, monitor, history, direct, final, high)
    finally:
        for t in threads:
            t.halt.set()
        if producer is not None:
            producer.kill()
        cluster.stop()
