#!/usr/bin/env python3
"""Three brokers: chronik vs Apache Kafka 4.4 (issue 18). Started by tests/bench/cluster.sh.

    cluster_bench.py run                 both clusters in alternating rounds; table + JSON
    cluster_bench.py report [FILE.json]  print the table of an earlier run again

For each round and each broker kind (BROKERS, default "chronik kafka", so A B A B ...):

1. three nodes on 127.0.0.1, each a broker and a controller voter with its own data directory
   under BENCH_DIR: chronik (CHRONIK_NODE_ID, CHRONIK_CLUSTER_VOTERS, every other setting at its
   default, `[tiering]` included) or Kafka 4.4 in KRaft mode (process.roles=broker,controller,
   a static 3-voter quorum); both with the same broker session timeout, broker heartbeat
   interval and replica lag time (SESSION_TIMEOUT_MS, HEARTBEAT_MS, REPLICA_LAG_MS);
2. an unmeasured warm-up (unthrottled produce runs of WARMUP_CHUNK records on new topics until
   the rates settle, at most WARMUP_SECONDS: three Kafka JVMs sharing one core need minutes of
   load before their JIT is done), then for each of PARTITIONS a topic with
   replication factor 3 and min.insync.replicas=2, and Kafka's ProducerPerformance (the same jar
   for both) with acks=all, RECORD_SIZE-byte records, RECORDS records, unthrottled: MB/s and
   latency percentiles are its own, broker CPU is utime+stime of the three broker processes
   (/proc/PID/stat) over the run, per GB of record payload produced;
3. produce latency at a fixed rate (LAT_RATE records/s for LAT_SECONDS, LAT_WARMUP excluded),
   ProducerPerformance again, on a 1-partition topic (LAT_SECONDS=0 skips it);
4. FAILOVERS times: a new 1-partition RF=3 topic led by a node that is not the controller
   leader (replica assignment; FAILOVER_KILL_CONTROLLER=1 kills the controller leader instead),
   a librdkafka producer (failover_producer.py) writing acks=all at FAILOVER_RATE records/s,
   kill -9 of the leader; the failover time is from the kill to the first acknowledgement of a
   record produced after the kill (the killed process is gone by then, so a live node, the new
   leader, acknowledged it). The killed node is started again on its data and the run waits
   until the partition's ISR has all three replicas again;
5. the cluster is stopped, its data deleted (logs kept).

The load generators and this script run on LOAD_CPU, all three broker processes on BROKER_CPU
(taskset), when the machine has two cores or more. Everything is bounded: each load process by
LOAD_TIMEOUT, each wait by its own timeout, the whole run by TOTAL_TIMEOUT; every process this
script starts is killed (its process group) at the end, also on error.
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import bench  # noqa: E402  (run_load, java_cp, PP_RE, proc_stat, port_open)

CACHE = bench.CACHE
PY = os.path.join(CACHE, "venv", "bin", "python")


def env_int(name, default):
    return int(float(os.environ.get(name, default)))


def env_float(name, default):
    return float(os.environ.get(name, default))


CONFIG = {
    "rounds": env_int("ROUNDS", 2),
    "brokers": os.environ.get("BROKERS", "chronik kafka").split(),
    "records": env_int("RECORDS", 200_000),
    "record_size": env_int("RECORD_SIZE", 1024),
    "partitions": [int(x) for x in os.environ.get("PARTITIONS", "3 1").split()],
    "warmup_fraction": env_float("PP_WARMUP", 0.1),         # ProducerPerformance --warmup-records share
    # unmeasured produce on each fresh cluster: ProducerPerformance runs of WARMUP_CHUNK records,
    # alternating over PARTITIONS, until each partition count's last two rates are within
    # WARMUP_TOLERANCE of each other or WARMUP_SECONDS passed (Kafka's JIT needs minutes here)
    "warmup_seconds": env_int("WARMUP_SECONDS", 180),
    "warmup_chunk": env_int("WARMUP_CHUNK", 100_000),
    "warmup_tolerance": env_float("WARMUP_TOLERANCE", 0.1),
    "warmup_min_runs": env_int("WARMUP_MIN_RUNS", 3),        # per partition count
    "lat_rate": env_int("LAT_RATE", 5000),
    "lat_seconds": env_float("LAT_SECONDS", 10),
    "lat_warmup_seconds": env_float("LAT_WARMUP", 2),
    "failovers": env_int("FAILOVERS", 3),
    "failover_rate": env_int("FAILOVER_RATE", 500),
    "failover_kill_controller": os.environ.get("FAILOVER_KILL_CONTROLLER", "0") == "1",
    "failover_timeout": env_int("FAILOVER_TIMEOUT", 60),     # s from the kill to give up
    "isr_timeout": env_int("ISR_TIMEOUT", 120),              # s for a restarted node to rejoin
    "session_timeout_ms": env_int("SESSION_TIMEOUT_MS", 6000),
    "heartbeat_ms": env_int("HEARTBEAT_MS", 2000),
    "replica_lag_ms": env_int("REPLICA_LAG_MS", 30000),
    "bench_dir": os.path.abspath(os.environ.get("BENCH_DIR", "/var/tmp/chronik-bench")),
    "port": env_int("CLUSTER_BENCH_PORT", 19200),
    "load_timeout": env_int("LOAD_TIMEOUT", 300),
    "start_timeout": env_int("START_TIMEOUT", 120),
    "total_timeout": env_int("TOTAL_TIMEOUT", 1800),
    "kafka_heap": os.environ.get("KAFKA_HEAP", "1g"),
    "kafka_jvm_opts": os.environ.get("KAFKA_JVM_OPTS", "").split(),  # extra JVM flags of the Kafka nodes
    "keep_data": os.environ.get("KEEP_DATA", "0") == "1",
    "out": os.path.abspath(os.environ.get("OUT", os.path.join(HERE, "results", "cluster-latest.json"))),
    "label": os.environ.get("LABEL", ""),
}

if not CONFIG["port"] + 40 < bench.ephemeral_ports()[0]:
    sys.exit(f"CLUSTER_BENCH_PORT {CONFIG['port']}: ports up to +40 must lie below the ephemeral range "
             f"{bench.ephemeral_ports()}")

PIN = bench.PIN
BROKER_CPU = os.environ.get("BROKER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")
KAFKA_LIBS = os.path.join(CACHE, f"kafka-{KAFKA_VERSION}", "libs")
log = bench.log


def on_core(core, cmd):
    return (["taskset", "-c", core] if PIN else []) + cmd


def java_tool(cls, args, heap="1g"):
    return on_core(LOAD_CPU, ["java", f"-Xmx{heap}", "-XX:+UseG1GC", "-cp", bench.java_cp(), cls] + args)


# --- every process we start, so that all of them die at the end ----------------------------------

PROCS = {}  # pid -> description
PROCS_LOCK = threading.Lock()


def spawn(cmd, what, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    with PROCS_LOCK:
        PROCS[p.pid] = (what, p)
    return p


def forget(p):
    with PROCS_LOCK:
        PROCS.pop(p.pid, None)


def kill_group(p, sig=signal.SIGKILL):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all():
    with PROCS_LOCK:
        items = list(PROCS.values())
        PROCS.clear()
    for what, p in items:
        if p.poll() is None:
            kill_group(p)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                log(f"cleanup: {what} (pid {p.pid}) did not exit after SIGKILL")


class TotalTimeout(Exception):
    pass


def on_alarm(_sig, _frame):
    raise TotalTimeout(f"TOTAL_TIMEOUT of {CONFIG['total_timeout']} s reached")


def on_term(sig, _frame):
    log(f"received signal {sig}: stopping, killing every process this run started")
    raise KeyboardInterrupt(f"signal {sig}")


# --- is the machine quiet? -----------------------------------------------------------------------

def busy_processes():
    """Other work that distorts the figures on a 2-core machine: compilers and test runs."""
    found = set()
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            comm = open(f"/proc/{d}/comm").read().strip()
            if comm in ("rustc", "cargo", "cc", "ld", "javac"):
                found.add(comm)
                continue
            cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ")
            if b"pytest" in cmd:
                found.add("pytest")
        except OSError:
            pass
    return sorted(found)


class BusySampler(threading.Thread):
    """Every 5 s: the load average and any compiler or test process; stored with the results."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.stop_ev = [], threading.Event()

    def run(self):
        while not self.stop_ev.wait(5):
            try:
                la = float(open("/proc/loadavg").read().split()[0])
            except OSError:
                la = None
            self.samples.append({"t": time.strftime("%H:%M:%S"), "epoch": round(time.time(), 1), "load1": la,
                                 "busy": busy_processes()})

    def annotate(self, results):
        """Marks every timed result during which a sample saw other work (other_work_during)."""
        for per in results.values():
            for rs in per.values():
                for r in rs:
                    if isinstance(r, dict) and "t0" in r and "t1" in r:
                        seen = sorted({p for s in self.samples if r["t0"] - 5 <= s["epoch"] <= r["t1"] + 5
                                       for p in s["busy"]})
                        r["other_work_during"] = seen

    def summary(self):
        busy = [s for s in self.samples if s["busy"]]
        return {"samples": len(self.samples), "samples_with_other_work": len(busy),
                "other_work_seen": sorted({p for s in busy for p in s["busy"]}),
                "first_busy_at": busy[0]["t"] if busy else None}


# --- /proc ---------------------------------------------------------------------------------------

def cpu_seconds(pid):
    try:
        return bench.proc_stat(pid)["cpu_s"]
    except OSError:
        return None


def wait_until(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = pred()
            if r:
                return r
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last!r})" if last else ""))


_ADMINS = {}


def admin(bootstrap):
    """One AdminClient per bootstrap list, kept for the run (a client destroyed while a request
    is pending fails that request)."""
    from confluent_kafka.admin import AdminClient
    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000,
                                          "log_level": 0})
    return _ADMINS[bootstrap]


# --- nodes ---------------------------------------------------------------------------------------

class Node:
    """One combined broker+controller process with its own directory; start/kill9/stop."""

    def __init__(self, cluster, nid, port, cport, workdir):
        self.cluster, self.id, self.port, self.cport = cluster, nid, port, cport
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.log_mark = 0

    @property
    def pid(self):
        return self.proc.pid

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, cmd, env):
        self.log_mark = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self.outf = open(self.out_path, "ab")
        self.outf.write(f"\n=== start at {time.time():.3f}\n".encode())
        self.outf.flush()
        self.proc = spawn(on_core(BROKER_CPU, cmd), f"{self.cluster.kind} node {self.id}", env=env,
                          stdout=self.outf, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()

    def new_log(self):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_mark)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.cluster.kind} node {self.id} exited during start; see {self.log_path}")
            if self.ready_line in self.new_log() and bench.port_open(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.cluster.kind} node {self.id} not ready in time; see {self.log_path}")

    def kill9(self):
        """SIGKILL (the whole process group); returns CLOCK_MONOTONIC ns right after the signal."""
        kill_group(self.proc)
        t = time.monotonic_ns()
        self.proc.wait(10)
        forget(self.proc)
        self.outf.close()
        return t

    def stop(self, timeout=30):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"  {self.cluster.kind} node {self.id} ignored SIGTERM for {timeout} s, SIGKILL")
                kill_group(self.proc)
                self.proc.wait(10)
        forget(self.proc)
        self.outf.close()


class ChronikNode(Node):
    ready_line = "broker ready"

    @property
    def log_path(self):
        return os.path.join(self.dir, "chronik.log")

    out_path = log_path

    def start(self):
        c = CONFIG
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
        env.update({
            "CHRONIK_NODE_ID": str(self.id),
            "CHRONIK_CLUSTER_VOTERS": "[" + ",".join(f'"{v}"' for v in self.cluster.voters) + "]",
            "CHRONIK_HTTP_LISTEN": '""',   # three nodes on one host: no admin port each
            "CHRONIK_CLUSTER_SESSION_TIMEOUT_MS": str(c["session_timeout_ms"]),
            "CHRONIK_CLUSTER_BROKER_HEARTBEAT_MS": str(c["heartbeat_ms"]),
            "CHRONIK_CLUSTER_REPLICA_LAG_TIME_MAX_MS": str(c["replica_lag_ms"]),
            "RUST_LOG": os.environ.get("CLUSTER_RUST_LOG", "info,openraft=warn"),
            "NO_COLOR": "1",
        })
        self._spawn([self.cluster.bin, "serve", "--listen", f"127.0.0.1:{self.port}",
                     "--data-dir", os.path.join(self.dir, "data")], env)


class KafkaNode(Node):
    ready_line = "Kafka Server started"

    @property
    def log_path(self):
        return os.path.join(self.dir, "kafka.log")

    @property
    def out_path(self):
        return os.path.join(self.dir, "kafka.out")

    def java(self):
        return ["java", "-Xms256m", f"-Xmx{CONFIG['kafka_heap']}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                *CONFIG["kafka_jvm_opts"],
                f"-Dlog4j2.configurationFile={self.dir}/log4j2.properties", "-cp", os.path.join(KAFKA_LIBS, "*")]

    def configure(self, cluster_id):
        c = CONFIG
        voters = ",".join(self.cluster.voters)
        with open(os.path.join(self.dir, "server.properties"), "w") as f:
            f.write(f"""# written by tests/bench/cluster_bench.py
process.roles=broker,controller
node.id={self.id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={self.dir}/data
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms={c['session_timeout_ms']}
broker.heartbeat.interval.ms={c['heartbeat_ms']}
replica.lag.time.max.ms={c['replica_lag_ms']}
""")
        with open(os.path.join(self.dir, "log4j2.properties"), "w") as f:
            f.write(f"""status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {self.dir}/kafka.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
""")
        r = subprocess.run(self.java() + ["kafka.tools.StorageTool", "format", "--cluster-id", cluster_id,
                                          "--config", os.path.join(self.dir, "server.properties"),
                                          "--ignore-formatted"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"Kafka storage format of node {self.id} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")

    def start(self):
        self._spawn(self.java() + ["kafka.Kafka", os.path.join(self.dir, "server.properties")], dict(os.environ))


class Cluster:
    def __init__(self, kind, workdir):
        self.kind = kind
        self.dir = workdir
        base = CONFIG["port"] + (0 if kind == "chronik" else 20)
        ports = [base + i for i in range(3)]
        cports = [base + 10 + i for i in range(3)]
        self.voters = [f"{i + 1}@127.0.0.1:{cports[i]}" for i in range(3)]
        cls = ChronikNode if kind == "chronik" else KafkaNode
        self.nodes = [cls(self, i + 1, ports[i], cports[i], os.path.join(workdir, f"node{i + 1}")) for i in range(3)]
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports)
        self.bin = os.environ.get("CHRONIK_BIN_PATH", "/tmp/bench-bin/chronik")

    def node(self, nid):
        return self.nodes[nid - 1]

    def start(self):
        """Starts the three nodes; returns seconds from the first spawn to Metadata listing three
        brokers (Kafka's storage format, a JVM per node before that, not counted)."""
        if self.kind == "kafka":
            import base64
            import uuid
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            threads = []
            errors = []

            def fmt(n):
                try:
                    n.configure(cid)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
            for n in self.nodes:
                t = threading.Thread(target=fmt, args=(n,))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
        t0 = time.monotonic()
        for n in self.nodes:
            n.start()
        deadline = time.monotonic() + CONFIG["start_timeout"]
        for n in self.nodes:
            n.wait_ready(deadline)
        self.wait_brokers(3, deadline - time.monotonic())
        return time.monotonic() - t0

    def wait_brokers(self, count, timeout):
        a = admin(self.bootstrap)
        wait_until(lambda: len(a.list_topics(timeout=5).brokers) >= count, max(timeout, 1),
                   f"{self.kind}: {count} brokers in Metadata")

    def pids(self):
        return [n.pid for n in self.nodes if n.alive]

    def cpu(self):
        vals = [cpu_seconds(p) for p in self.pids()]
        return sum(v for v in vals if v is not None)

    def stop(self, timeout=20):
        """SIGTERM to all three at once (one by one, the last could not reach a controller
        majority for its controlled shutdown), SIGKILL after `timeout` s."""
        for n in self.nodes:
            if n.alive:
                try:
                    os.killpg(n.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            try:
                n.stop(max(deadline - time.monotonic(), 0.1))
            except Exception as e:  # noqa: BLE001 - stop the others all the same
                log(f"  stopping {self.kind} node {n.id}: {e!r}")
                if n.proc is not None:
                    kill_group(n.proc)

    def forget_clients(self):
        _ADMINS.pop(self.bootstrap, None)

    def delete_data(self):
        for n in self.nodes:
            shutil.rmtree(os.path.join(n.dir, "data"), ignore_errors=True)

    # --- topics ---

    def partition_state(self, topic):
        """{partition: (leader, replicas, isr)} as Metadata answers it."""
        md = admin(self.bootstrap).list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return {}
        return {p: (m.leader, list(m.replicas), sorted(m.isrs)) for p, m in md.partitions.items()}

    def create_topic(self, topic, partitions, assignment=None, timeout=60):
        from confluent_kafka.admin import NewTopic
        cfg = {"min.insync.replicas": "2"}
        if assignment:
            nt = NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment,
                          config=cfg)
        else:
            nt = NewTopic(topic, num_partitions=partitions, replication_factor=3, config=cfg)
        fut = admin(self.bootstrap).create_topics([nt], operation_timeout=30)
        fut[topic].result(60)
        self.wait_isr_full(topic, partitions, timeout)

    def wait_isr_full(self, topic, partitions, timeout):
        def full():
            st = self.partition_state(topic)
            return len(st) == partitions and all(l >= 0 and len(isr) == 3 for l, _, isr in st.values())
        wait_until(full, timeout, f"{self.kind}: topic {topic} with a leader and 3 in-sync replicas", 0.2)

    def controller_leader(self, work):
        """The active controller (the quorum's leader) by kafka-metadata-quorum describe --status."""
        out = os.path.join(work, "quorum-status.out")
        rc, text, _, _ = bench.run_load(java_tool("org.apache.kafka.tools.MetadataQuorumCommand",
                                                  ["--bootstrap-server", self.bootstrap, "describe", "--status"],
                                                  heap="256m"), out, timeout=60)
        m = re.search(r"^LeaderId:\s+(\d+)", text, re.M)
        if rc != 0 or not m:
            raise RuntimeError(f"kafka-metadata-quorum describe --status failed (rc {rc}), see {out}:\n{text[-1000:]}")
        return int(m.group(1))


# --- measurements --------------------------------------------------------------------------------

ERR_RE = re.compile(r"org\.apache\.kafka\.common\.errors\.(\w+)")


def producer_perf(cl, work, topic, records, throughput, warmup=0, timeout=None):
    size = CONFIG["record_size"]
    args = ["--bootstrap-server", cl.bootstrap, "--topic", topic, "--num-records", str(records),
            "--record-size", str(size), "--throughput", str(throughput), "--command-property", "acks=all"]
    if warmup:
        args += ["--warmup-records", str(warmup)]
    out = os.path.join(work, f"{topic}.out")
    rc, text, cpu, wall = bench.run_load(java_tool("org.apache.kafka.tools.ProducerPerformance", args), out,
                                         timeout=min(timeout or CONFIG["load_timeout"], CONFIG["load_timeout"]))
    matches = bench.PP_RE.findall(text)
    errors = {}
    for e in ERR_RE.findall(text):
        errors[e] = errors.get(e, 0) + 1
    if rc != 0 or not matches:
        raise RuntimeError(f"ProducerPerformance failed (rc {rc}), see {out}:\n{text[-1500:]}")
    m = matches[-1]
    n = int(matches[0][0])
    rps = float(m[1])
    return {"records": n, "bytes": n * size, "steady_records": int(m[0]), "records_per_s": rps,
            "mb_per_s": round(rps * size / 1e6, 2), "lat_avg_ms": float(m[3]), "lat_max_ms": float(m[4]),
            "p50_ms": float(m[5]), "p95_ms": float(m[6]), "p99_ms": float(m[7]), "p999_ms": float(m[8]),
            "errors": errors, "load_cpu_s": round(cpu, 3), "load_wall_s": round(wall, 3), "output": out}


def measured(cl, fn):
    pids = cl.pids()
    c0 = {p: cpu_seconds(p) for p in pids}
    t0 = time.monotonic()
    e0 = time.time()
    r = fn()
    dt = time.monotonic() - t0
    r["t0"], r["t1"] = round(e0, 1), round(time.time(), 1)
    c1 = {p: cpu_seconds(p) for p in pids}
    per = [round(c1[p] - c0[p], 3) for p in pids if c0[p] is not None and c1[p] is not None]
    r["broker_cpu_s"] = round(sum(per), 3)
    r["broker_cpu_s_each"] = per
    r["interval_s"] = round(dt, 3)
    if len(per) != 3:
        r["broker_cpu_note"] = "a broker process was missing at a sample"
    gb = r["bytes"] / 1e9
    if gb > 0:
        r["broker_cpu_s_per_gb"] = round(r["broker_cpu_s"] / gb, 3)
        r["load_cpu_s_per_gb"] = round(r["load_cpu_s"] / gb, 3)
    return r


def warm_up(cl, work):
    """Unthrottled ProducerPerformance runs of WARMUP_CHUNK records on new topics, partition
    counts taking turns, until every partition count had WARMUP_MIN_RUNS runs and its last two
    rates agree within WARMUP_TOLERANCE, or WARMUP_SECONDS are over (a run still going then is killed). Each topic is
    deleted after its run. Returns the rates seen, for the record."""
    c = CONFIG
    t0 = time.monotonic()
    deadline = t0 + c["warmup_seconds"]
    rates = {p: [] for p in c["partitions"]}
    converged, i = False, 0
    while time.monotonic() < deadline - 1:
        p = c["partitions"][i % len(c["partitions"])]
        topic = f"warmup-{i}-p{p}"
        cl.create_topic(topic, p)
        left = deadline - time.monotonic()
        try:
            r = producer_perf(cl, work, topic, c["warmup_chunk"], -1, timeout=max(left, 5))
            rates[p].append(r["mb_per_s"])
        except RuntimeError:
            break  # killed at the deadline
        finally:
            try:
                for f in admin(cl.bootstrap).delete_topics([topic], operation_timeout=30).values():
                    f.result(60)
            except Exception as e:  # noqa: BLE001 - only disk space is at stake
                log(f"  {cl.kind}: deleting {topic}: {e!r}")
        i += 1
        tol = c["warmup_tolerance"]
        converged = all(len(v) >= max(2, c["warmup_min_runs"]) and abs(v[-1] - v[-2]) <= tol * max(v[-1], v[-2])
                        for v in rates.values())
        if converged:
            break
    out = {"runs": i, "seconds": round(time.monotonic() - t0, 1), "converged": converged,
           "mb_per_s": {str(k): v for k, v in rates.items()}}
    log(f"  {cl.kind}: warm-up {out}")
    return out


def throughput(cl, work, partitions):
    topic = f"pp-p{partitions}"
    cl.create_topic(topic, partitions)
    warm = int(CONFIG["records"] * CONFIG["warmup_fraction"])
    return measured(cl, lambda: producer_perf(cl, work, topic, CONFIG["records"], -1, warm))


def fixed_rate(cl, work):
    topic = "lat-p1"
    cl.create_topic(topic, 1)
    rate = CONFIG["lat_rate"]
    total = int(rate * CONFIG["lat_seconds"])
    warm = int(rate * CONFIG["lat_warmup_seconds"])
    return measured(cl, lambda: producer_perf(cl, work, topic, total, rate, warm))


class AckReader:
    """The lines failover_producer.py wrote so far, read incrementally (the runner polls it
    every 20 ms on the load generator's core; re-reading the whole file would cost that core)."""

    def __init__(self, path):
        self.path, self.pos, self.rows, self.tail = path, 0, [], b""

    def read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except OSError:
            return self.rows
        self.pos += len(chunk)
        data = self.tail + chunk
        lines = data.split(b"\n")
        self.tail = lines.pop()
        for line in lines:
            parts = line.split()
            if len(parts) == 5:
                self.rows.append((int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]), parts[4].decode()))
        return self.rows


def log_epoch(node, pattern, after):
    """Epoch seconds of the first line of `node`'s log matching `pattern` (its group 1 the
    line's timestamp) at or after `after`; None if there is none. For the record only."""
    import calendar
    import datetime
    try:
        with open(node.log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    for m in re.finditer(pattern, text, re.M):
        ts = m.group(1)
        if isinstance(node, ChronikNode):   # 2026-12-07T13:18:36.534160Z (UTC)
            whole, frac = ts.rstrip("Z").split(".")
            t = calendar.timegm(datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").timetuple()) + float("0." + frac)
        else:                               # 2026-12-07 13:19:29,528 (local time)
            day, ms = ts.split(",")
            t = time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000.0
        if t >= after:
            return t
    return None


def fence_epoch(ctl_node, victim, after):
    """When the controller leader fenced `victim` because its session timed out."""
    if isinstance(ctl_node, ChronikNode):
        pat = (r"^(\S+Z)\s+WARN chronik::controller::brokers: fencing broker broker=" + str(victim) +
               r" .*shutdown=false")
    else:
        pat = (r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] INFO \[QuorumController id=\d+\] Fencing broker " +
               str(victim) + r" at epoch \d+ because its session has timed out")
    return log_epoch(ctl_node, pat, after)


def leading_epoch(node, topic, after):
    """When `node` started leading partition 0 of `topic` in a leader epoch above 0."""
    if isinstance(node, ChronikNode):
        pat = r"^(\S+Z)\s+INFO chronik::replica: leading partition topic=" + re.escape(topic) + r" partition=0 epoch=[1-9]"
    else:
        pat = (r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] INFO \[Broker id=\d+\] Leader " + re.escape(topic) +
               r"-0 with topic id .* starts at leader epoch [1-9]")
    return log_epoch(node, pat, after)


def failover_once(cl, work, i):
    """One failover: returns a dict with failover_ms and what happened around it."""
    c = CONFIG
    ctl = cl.controller_leader(work)
    live = [n.id for n in cl.nodes]
    if c["failover_kill_controller"]:
        victim = ctl
    else:
        candidates = [x for x in live if x != ctl]
        victim = candidates[i % len(candidates)]
    others = [x for x in live if x != victim]
    topic = f"failover-{i}"
    cl.create_topic(topic, 1, assignment=[[victim] + others])
    leader = cl.partition_state(topic)[0][0]
    if leader != victim:
        log(f"  {cl.kind}: {topic} is led by {leader}, not by the first replica {victim}; killing {leader}")
        victim = leader
    acks_path = os.path.join(work, f"{topic}.acks")
    prod_out = os.path.join(work, f"{topic}.producer.out")
    pf = open(prod_out, "w")
    prod = spawn(on_core(LOAD_CPU, [PY, os.path.join(HERE, "failover_producer.py"), cl.bootstrap, topic,
                                    str(c["failover_rate"]), str(c["record_size"]), acks_path,
                                    "--seconds", str(c["failover_timeout"] + 60)]),
                 "failover producer", stdout=pf, stderr=subprocess.STDOUT)
    r = {"topic": topic, "victim": victim, "controller_leader": ctl, "victim_was_controller": victim == ctl,
         "t0": round(time.time(), 1)}
    reader = AckReader(acks_path)
    try:
        # Steady acknowledgements first: at least 2 s of them.
        def steady():
            ok = [x for x in reader.read() if x[4] == "-"]
            return len(ok) >= 2 and ok[-1][2] - ok[0][2] > 2e9
        wait_until(steady, 30, f"{cl.kind}: acknowledgements before the kill", 0.1)
        node = cl.node(victim)
        t_kill = node.kill9()
        r["kill_epoch"] = round(time.time(), 3)
        log(f"  {cl.kind}: killed node {victim} (leader of {topic}; controller leader {ctl})")
        checked = [len(reader.read())]

        def after():
            rows = reader.read()
            found = any(x[4] == "-" and x[1] >= t_kill for x in rows[checked[0]:])
            checked[0] = len(rows)
            return found
        try:
            wait_until(after, c["failover_timeout"], "an acknowledgement after the kill", 0.02)
        except RuntimeError:
            r["failover_ms"] = None
            r["error"] = f"no acknowledgement within {c['failover_timeout']} s of the kill"
        time.sleep(1.0)
        acks = reader.read()
        ok = [x for x in acks if x[4] == "-"]
        post = [x for x in ok if x[1] >= t_kill]
        if post:
            first = min(post, key=lambda x: x[2])
            r["failover_ms"] = round((first[2] - t_kill) / 1e6, 1)
            r["first_offset_after_kill"] = first[3]
        pre = [x for x in ok if x[2] < t_kill]
        if pre:
            r["last_ack_before_kill_ms"] = round((pre[-1][2] - t_kill) / 1e6, 1)
        any_after = [x for x in ok if x[2] >= t_kill]
        if any_after:
            r["first_any_ack_after_kill_ms"] = round((min(x[2] for x in any_after) - t_kill) / 1e6, 1)
        errs = {}
        for x in acks:
            if x[4] != "-":
                errs[x[4]] = errs.get(x[4], 0) + 1
        r["delivery_errors"] = errs
        offsets = [x[3] for x in sorted(ok, key=lambda x: x[0])]
        r["acked"] = len(ok)
        r["offsets_in_order"] = all(b > a for a, b in zip(offsets, offsets[1:]))
        fenced = fence_epoch(cl.node(ctl), victim, r["kill_epoch"] - 0.5)
        if fenced is not None:
            r["fenced_after_ms"] = round((fenced - r["kill_epoch"]) * 1000, 1)
        try:
            st = cl.partition_state(topic)
            r["new_leader"] = st[0][0]
            r["new_leader_ok"] = st[0][0] not in (victim, -1)
            if r["new_leader_ok"]:
                led = leading_epoch(cl.node(st[0][0]), topic, r["kill_epoch"] - 0.5)
                if led is not None:
                    r["new_leader_after_ms"] = round((led - r["kill_epoch"]) * 1000, 1)
        except Exception as e:  # noqa: BLE001
            r["new_leader"] = repr(e)
    finally:
        if prod.poll() is None:
            os.killpg(prod.pid, signal.SIGTERM)
            try:
                prod.wait(20)
            except subprocess.TimeoutExpired:
                kill_group(prod)
                prod.wait(5)
        forget(prod)
        pf.close()
    try:
        r["producer"] = json.loads(open(prod_out).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        pass
    # Back to three: start the killed node on its data, wait until the partition's ISR is full.
    node = cl.node(victim)
    t0 = time.monotonic()
    node.start()
    node.wait_ready(time.monotonic() + c["start_timeout"])
    cl.wait_brokers(3, 60)
    cl.wait_isr_full(topic, 1, c["isr_timeout"])
    r["rejoin_s"] = round(time.monotonic() - t0, 2)
    r["t1"] = round(time.time(), 1)
    return r


# --- one session: a fresh cluster of one kind ----------------------------------------------------

def session(kind, work, add):
    cl = Cluster(kind, work)
    try:
        subprocess.run(["sync"])
        start_s = cl.start()
        add(kind, "start", {"s": round(start_s, 2)})
        log(f"  {kind}: 3 brokers up in {start_s:.1f} s ({cl.bootstrap})")
        if CONFIG["warmup_seconds"] > 0:
            add(kind, "warmup", warm_up(cl, work))
        for p in CONFIG["partitions"]:
            add(kind, f"pp_p{p}", throughput(cl, work, p))
        if CONFIG["lat_seconds"] > 0:
            add(kind, "lat", fixed_rate(cl, work))
        for i in range(CONFIG["failovers"]):
            try:
                add(kind, "failover", failover_once(cl, work, i))
            except (TotalTimeout, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - record it, do not lose the round
                import traceback
                log(f"  {kind}: failover {i} failed: {e!r}\n{traceback.format_exc()}")
                add(kind, "failover", {"failover_ms": None, "error": repr(e)})
                break
    finally:
        cl.stop()
        cl.forget_clients()
        if not CONFIG["keep_data"]:
            cl.delete_data()


# --- summary -------------------------------------------------------------------------------------

def metrics():
    rows = [("start", "cluster start to 3 brokers listed (s)", "s", False, None)]
    for p in CONFIG["partitions"]:
        k = f"pp_p{p}"
        rows += [(k, f"produce acks=all {p}p MB/s", "mb_per_s", True, 1.5),
                 (k, f"produce {p}p p50 ms (unthrottled)", "p50_ms", False, None),
                 (k, f"produce {p}p p99 ms (unthrottled)", "p99_ms", False, 1.0),
                 (k, f"produce {p}p broker CPU s/GB (3 brokers)", "broker_cpu_s_per_gb", False, 0.5),
                 (k, f"produce {p}p load-generator CPU s/GB", "load_cpu_s_per_gb", False, None)]
    if CONFIG["lat_seconds"] > 0:
        mb = CONFIG["lat_rate"] * CONFIG["record_size"] / 1e6
        rows += [("lat", f"produce 1p p50 ms at {mb:g} MB/s", "p50_ms", False, None),
                 ("lat", f"produce 1p p99 ms at {mb:g} MB/s", "p99_ms", False, 1.0),
                 ("lat", f"produce 1p p99.9 ms at {mb:g} MB/s", "p999_ms", False, None),
                 ("lat", "fixed-rate broker CPU s/GB (3 brokers)", "broker_cpu_s_per_gb", False, None)]
    rows += [("failover", "failover ms, median", "failover_ms", False, 1.0),
             ("failover", "failover ms, worst", "failover_ms_worst", False, 1.0),
             ("failover", "restarted node back in the ISR (s)", "rejoin_s", False, None)]
    return rows


def summarize(results, brokers):
    out = []
    for key, label, field, higher, target in metrics():
        row = {"scenario": key, "metric": label, "field": field, "better": "higher" if higher else "lower",
               "target": target}
        have = False
        for b in brokers:
            rs = results.get(b, {}).get(key, [])
            if field == "failover_ms_worst":
                vals = [r["failover_ms"] for r in rs if r.get("failover_ms") is not None]
                failed = sum(1 for r in rs if r.get("failover_ms") is None)
                if vals or failed:
                    have = True
                    worst = None if failed else max(vals)
                    row[b] = {"median": worst, "min": worst, "max": worst, "n": len(vals), "failed": failed}
                continue
            vals = [r[field] for r in rs if r.get(field) is not None]
            if vals:
                have = True
                row[b] = {"median": round(statistics.median(vals), 3), "min": min(vals), "max": max(vals),
                          "n": len(vals)}
                if field == "failover_ms":
                    row[b]["failed"] = sum(1 for r in rs if r.get("failover_ms") is None)
        if not have:
            continue
        ch, ka = row.get("chronik", {}).get("median"), row.get("kafka", {}).get("median")
        if ch is not None and ka:
            row["ratio"] = round(ch / ka, 3)
            if target is not None:
                row["met"] = row["ratio"] >= target if higher else row["ratio"] <= target
        out.append(row)
    return out


def fmt_num(x):
    return bench.fmt_num(x)


def fmt_cell(c):
    if not c:
        return "-"
    if c.get("median") is None:
        return f"failed ({c.get('failed')})"
    s = fmt_num(c["median"]) if c["n"] == 1 or c["min"] == c["max"] else \
        f"{fmt_num(c['median'])} ({fmt_num(c['min'])}–{fmt_num(c['max'])})"
    if c.get("failed"):
        s += f", {c['failed']} failed"
    return s


def render(doc):
    cfg = doc["config"]
    lines = [f"Three brokers: chronik vs Apache Kafka {doc.get('kafka_version', '')}, RF=3, "
             f"min.insync.replicas=2, acks=all — {doc['generated']}" + (f" — {cfg['label']}" if cfg.get("label") else ""),
             f"{cfg['rounds']} round(s); {cfg['records']:,} records of {cfg['record_size']} B per produce run "
             f"(ProducerPerformance, steady state after {cfg['warmup_fraction']:.0%}); {cfg['failovers']} failover(s) "
             f"per round at {cfg['failover_rate']} records/s; session timeout {cfg['session_timeout_ms']} ms; "
             f"medians (min–max) over rounds, failovers pooled; ratio = chronik / kafka; MB = 10^6 B",
             ""]
    m = doc.get("machine") or {}
    hit_runs = sum(1 for b in doc["results"].values() for rs in b.values() for r in rs
                   if isinstance(r, dict) and r.get("other_work_during"))
    if m.get("samples_with_other_work") or doc.get("other_work_at_start"):
        seen = ", ".join(m.get("other_work_seen") or doc.get("other_work_at_start") or [])
        if hit_runs or doc.get("other_work_at_start"):
            lines[-1:-1] = [f"WARNING: other work ran beside this run ({seen} in {m.get('samples_with_other_work')} of "
                            f"{m.get('samples')} 5-s samples, during {hit_runs} measured runs): NOT a clean measurement"]
        else:
            lines[-1:-1] = [f"Note: other work ({seen}) was seen in {m.get('samples_with_other_work')} of {m.get('samples')} "
                            f"5-s samples, none within 5 s of a measured run"]
    hdr = ["metric", "better", "chronik", "kafka", "ratio", "target", "met"]
    body = []
    for r in doc["summary"]:
        tgt = "-"
        if r.get("target") is not None:
            tgt = (f"≥ {r['target']:g}×" if r["better"] == "higher" else f"≤ {r['target']:g}×")
        met = "-" if "met" not in r else ("yes" if r["met"] else "NO")
        body.append([r["metric"], r["better"], fmt_cell(r.get("chronik")), fmt_cell(r.get("kafka")),
                     f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-", tgt, met])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(hdr)]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(hdr, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(b, widths)) + " |")
    wu = []
    for b in doc["results"]:
        for r in doc["results"][b].get("warmup", []):
            wu.append(f"  {b}: {r['runs']} runs in {r['seconds']} s, {'settled' if r['converged'] else 'NOT settled'}; "
                      + "; ".join(f"{p}p MB/s {v}" for p, v in r["mb_per_s"].items()))
    if wu:
        lines += ["", f"Warm-up before the measured runs (ProducerPerformance, {cfg.get('warmup_chunk', 0):,} records "
                      f"per run, until two runs agree within {cfg.get('warmup_tolerance', 0):.0%} or "
                      f"{cfg.get('warmup_seconds')} s):"] + wu
    fo = []
    for b in doc["results"]:
        for r in doc["results"][b].get("failover", []):
            fo.append(f"  {b}: " + (f"{r['failover_ms']} ms" if r.get("failover_ms") is not None else "FAILED")
                      + (f"; fenced after {r['fenced_after_ms']} ms" if r.get("fenced_after_ms") is not None else "")
                      + (f", new leader leads after {r['new_leader_after_ms']} ms" if r.get("new_leader_after_ms") is not None else "")
                      + f" (killed node {r.get('victim')}, controller leader {r.get('controller_leader')}, "
                        f"new leader {r.get('new_leader')}, delivery errors {r.get('delivery_errors')}"
                      + (f", {r['error']}" if r.get("error") else "") + ")")
    if fo:
        lines += ["", "Failovers (kill -9 of the partition leader to the first acknowledgement of a record "
                      "produced after the kill):"] + fo
    errs = []
    for b in doc["results"]:
        for key, rs in doc["results"][b].items():
            for r in rs:
                if isinstance(r, dict) and r.get("errors"):
                    errs.append(f"  {b} {key}: {r['errors']} ({r.get('output')})")
    if errs:
        lines += ["", "Producer errors reported by ProducerPerformance:"] + errs
    hit = []
    for b in doc["results"]:
        for key, rs in doc["results"][b].items():
            n = sum(1 for r in rs if isinstance(r, dict) and r.get("other_work_during"))
            if n:
                hit.append(f"{b} {key} {n}/{len(rs)}")
    if hit:
        lines += ["", "Runs with other work (compiler, tests) on the machine at the time: " + ", ".join(hit)]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------

def run():
    cfg = CONFIG
    brokers = cfg["brokers"]
    for b in brokers:
        if b not in ("chronik", "kafka"):
            sys.exit(f"BROKERS: unknown broker {b!r}")
    if "chronik" in brokers:
        binary = os.environ.get("CHRONIK_BIN_PATH", "/tmp/bench-bin/chronik")
        if not os.access(binary, os.X_OK):
            sys.exit(f"no chronik binary at {binary} (CHRONIK_BIN_PATH)")
    if "kafka" in brokers and not os.path.exists(os.path.join(KAFKA_LIBS, ".complete")):
        sys.exit(f"no Kafka {KAFKA_VERSION} jars in {KAFKA_LIBS}: run tests/kafka/kafka.sh libs")
    run_dir = os.path.join(cfg["bench_dir"], time.strftime("cluster-%Y%m%d-%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    log(f"logs and data under {run_dir}; cores {bench.NCPU}, pinning "
        f"{'brokers->' + BROKER_CPU + ' load->' + LOAD_CPU if PIN else 'off'}")
    log("config " + json.dumps({k: v for k, v in cfg.items() if k != "out"}))
    doc = {"generated": time.strftime("%Y-%m-%d %H:%M:%S %z"), "config": cfg, "kafka_version": KAFKA_VERSION,
           "chronik_bin": os.environ.get("CHRONIK_BIN_PATH", "/tmp/bench-bin/chronik"),
           "host": bench.host_info(), "run_dir": run_dir, "pinning": PIN,
           "results": {b: {} for b in brokers}, "errors": []}
    results = doc["results"]

    def add(b, key, r):
        results[b].setdefault(key, []).append(r)
        log(f"  {b} {key}: " + json.dumps(r))

    doc["other_work_at_start"] = busy_processes()
    if doc["other_work_at_start"]:
        log(f"WARNING: other work is running ({', '.join(doc['other_work_at_start'])}): the figures are "
            f"distorted, not a measurement")
    sampler = BusySampler()
    sampler.start()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.alarm(cfg["total_timeout"])
    t_start = time.monotonic()
    try:
        for rnd in range(1, cfg["rounds"] + 1):
            for b in brokers:
                log(f"round {rnd}/{cfg['rounds']} {b}")
                work = os.path.join(run_dir, f"r{rnd}-{b}")
                os.makedirs(work, exist_ok=True)
                try:
                    session(b, work, add)
                except (TotalTimeout, KeyboardInterrupt):
                    raise
                except Exception as e:  # noqa: BLE001 - keep the other sessions' results
                    import traceback
                    log(f"round {rnd} {b} failed: {e!r}\n{traceback.format_exc()}")
                    doc["errors"].append({"round": rnd, "broker": b, "error": repr(e), "work": work})
    except (TotalTimeout, KeyboardInterrupt) as e:
        log(f"stopped: {e!r}")
        doc["errors"].append({"error": repr(e)})
    finally:
        signal.alarm(0)
        kill_all()
    doc["wall_s"] = round(time.monotonic() - t_start, 1)
    sampler.stop_ev.set()
    sampler.annotate(results)
    doc["machine"] = sampler.summary()
    doc["host"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    doc["summary"] = summarize(results, brokers)
    os.makedirs(os.path.dirname(cfg["out"]), exist_ok=True)
    with open(cfg["out"], "w") as f:
        json.dump(doc, f, indent=2)
    print()
    print(render(doc))
    print(f"\nJSON: {cfg['out']}   logs: {run_dir}   wall {doc['wall_s']} s")
    if doc["machine"]["samples_with_other_work"] or doc["other_work_at_start"]:
        print(f"other work seen on the machine during this run: {doc['machine']}")
    if doc["errors"]:
        print("ERRORS:\n" + "\n".join("  " + json.dumps(e) for e in doc["errors"]))
        sys.exit(1)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "report":
        with open(sys.argv[2] if len(sys.argv) > 2 else CONFIG["out"]) as f:
            print(render(json.load(f)))
        return
    if len(sys.argv) >= 2 and sys.argv[1] != "run":
        sys.exit(__doc__)
    try:
        run()
    finally:
        kill_all()


if __name__ == "__main__":
    main()
