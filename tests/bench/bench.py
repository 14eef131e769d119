#!/usr/bin/env python3
"""Chronik vs Apache Kafka benchmark (issue 3), plus W5, the remote tier and its chunk cache on
LocalStack (issue 6, chronik only), and the opt-in `search` scenario (issue 7, chronik only; in
search_bench.py). Started by tests/bench/run.sh, which installs the tools and
sets the environment; see docs/performance.md for what every scenario measures.

    bench.py run                 measure the machine, then both brokers, print the table, write JSON
    bench.py report FILE.json    print the table of an earlier run again

Everything is configured by environment variables (defaults in CONFIG below). The broker runs on
core BROKER_CPU and every load generator on core LOAD_CPU (taskset) when the machine has two
cores or more; this script itself runs on LOAD_CPU too (run.sh pins it).
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

# search_bench.py does `import bench`: let that be this module, not a second copy of it.
sys.modules.setdefault("bench", sys.modules[__name__])
sys.dont_write_bytecode = True  # no __pycache__ in tests/bench from importing search_bench

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.environ.get("CHRONIK_TEST_CACHE", os.path.expanduser("~/.cache/chronik-tests"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The default list. w5 (remote tier on LocalStack, chronik only) adds ~3 min at W5_MB=1000.
ALL_SCENARIOS = ["limits", "w1", "w2", "w3", "w4", "restart", "w5"]
OPT_IN_SCENARIOS = ["search"]   # scenarios that run only when named in SCENARIOS


def env_int(name, default):
    return int(float(os.environ.get(name, default)))


def env_float(name, default):
    return float(os.environ.get(name, default))


CONFIG = {
    "rounds": env_int("ROUNDS", 3),
    "records": env_int("RECORDS", 1_000_000),          # per W1 run and for W4
    "record_size": env_int("RECORD_SIZE", 1024),
    "scenarios": os.environ.get("SCENARIOS", ",".join(ALL_SCENARIOS)).replace(" ", ",").split(","),
    "brokers": os.environ.get("BROKERS", "chronik kafka").split(),
    "lat_seconds": env_float("LAT_SECONDS", 20),       # W2 and W3 duration at the fixed rate
    "lat_warmup_seconds": env_float("LAT_WARMUP", 3),  # excluded from W2/W3 percentiles
    "rate": env_int("RATE", 0),                         # 0: half of Kafka's W1 (1 partition) rate
    "w1_warmup_fraction": env_float("W1_WARMUP", 0.1),  # share of W1 records not in its rate
    # unmeasured produce on the fresh broker of the latency phase, so JIT warm-up is not measured
    "broker_warmup_records": env_int("BROKER_WARMUP_RECORDS", int(os.environ.get("RECORDS", 1_000_000)) // 2),
    "w1_partitions": [int(x) for x in os.environ.get("W1_PARTITIONS", "1 16").split()],
    "bench_dir": os.path.abspath(os.environ.get("BENCH_DIR", "/var/tmp/chronik-bench")),
    "port": env_int("BENCH_PORT", 19092),
    "fio_size": os.environ.get("FIO_SIZE", "2G"),
    "fio_seconds": env_int("FIO_SECONDS", 10),
    "iperf_seconds": env_int("IPERF_SECONDS", 5),
    "load_timeout": env_int("LOAD_TIMEOUT", 300),      # hard limit of any one load process
    "out": os.path.abspath(os.environ.get("OUT", os.path.join(HERE, "results", "latest.json"))),
    "label": os.environ.get("LABEL", ""),
}
CONFIG["scenarios"] = [s for s in CONFIG["scenarios"] if s]



def ephemeral_ports():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


# A client that keeps reconnecting to a port of the ephemeral range while nothing listens there
# can be given that very port as its own and connect to itself; the broker that then starts on it
# cannot bind (it happened to Kafka twice in one evening). Keep every port of the run below it.
if not CONFIG["port"] + 40 < ephemeral_ports()[0]:
    sys.exit(f"BENCH_PORT {CONFIG['port']}: the ports of a run (BENCH_PORT .. BENCH_PORT+40) must lie "
             f"below the ephemeral port range {ephemeral_ports()}")

NCPU = os.cpu_count() or 1
PIN = NCPU >= 2
BROKER_CPU = os.environ.get("BROKER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def on_core(core, cmd):
    return (["taskset", "-c", core] if PIN else []) + cmd


# --- /proc ----------------------------------------------------------------------------------------

def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state): utime = field 14, stime = 15, starttime = 22
    return {"cpu_s": (int(rest[11]) + int(rest[12])) / CLK_TCK, "start_s": int(rest[19]) / CLK_TCK}


def cpu_seconds(pid):
    return proc_stat(pid)["cpu_s"]


def reset_peak_rss(pid):
    """Resets VmHWM to the current RSS (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def boottime():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def can_drop_caches():
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


# --- load processes ------------------------------------------------------------------------------

def run_load(cmd, out_path, timeout=None, cwd=None):
    """Runs cmd to completion (killed after `timeout` s); returns (rc, output, cpu_s, wall_s).

    cpu_s is the user+system CPU time of the process and all its threads (wait4 rusage)."""
    timeout = timeout or CONFIG["load_timeout"]
    with open(out_path, "w") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=cwd)
        done = threading.Event()

        def kill():
            if not done.is_set():
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        done.set()
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
    with open(out_path) as f:
        text = f.read()
    return p.returncode, text, ru.ru_utime + ru.ru_stime, wall


def java_cp():
    path = os.path.join(CACHE, "kafka-cli.classpath")
    with open(path) as f:
        return f.read().strip()


def java_tool(cls, args, heap="1g"):
    return on_core(LOAD_CPU, ["java", f"-Xmx{heap}", "-XX:+UseG1GC", "-cp",
                              java_cp() + os.pathsep + os.path.join(CACHE, "bench-classes"),
                              cls] + args)


# --- brokers -------------------------------------------------------------------------------------

def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def first_produce(port, deadline):
    """Retries one acks=all produce until it is acknowledged; returns CLOCK_BOOTTIME of the ack."""
    from confluent_kafka import Producer
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} not accepting connections")
        time.sleep(0.005)
    while time.monotonic() < deadline:
        p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "acks": "all", "linger.ms": 0,
                      "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100,
                      "retry.backoff.ms": 10, "retry.backoff.max.ms": 100,
                      "message.timeout.ms": 30000})
        res = []
        p.produce("startup-probe", b"x", on_delivery=lambda e, m: res.append((e, boottime())))
        while not res and time.monotonic() < deadline:
            p.poll(0.002)
        if res and res[0][0] is None:
            return res[0][1]
        log(f"  first produce failed ({res[0][0] if res else 'timeout'}), retrying")
        time.sleep(0.05)
    raise RuntimeError("no successful produce before the deadline")


class Chronik:
    name = "chronik"

    def __init__(self, port, data_dir, extra_env=None, binary=None):
        self.port, self.dir = port, data_dir
        # CHRONIK_* variables of the runner's own environment never reach the broker (every broker
        # runs with its defaults); extra_env is the deliberate way to configure one (W5's remote
        # tier and cache). The broker rejects CHRONIK_* names it does not know.
        self.extra_env = dict(extra_env or {})
        self.bin = binary or os.environ.get("CHRONIK_BIN_PATH") or os.path.join(
            os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/chronik-target")),
            "release", "chronik")

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
        env.update(self.extra_env)
        self.logf = open(os.path.join(self.dir, "chronik.log"), "a")
        self.proc = subprocess.Popen(
            on_core(BROKER_CPU, [self.bin, "serve", "--listen", f"127.0.0.1:{self.port}",
                                 "--data-dir", os.path.join(self.dir, "data")]),
            env=env, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self.pid = self.proc.pid  # taskset execs the broker: same pid
        ack = first_produce(self.port, time.monotonic() + 60)
        return ack - proc_stat(self.pid)["start_s"]

    def kill9(self):
        """Ends the broker like a crash: SIGKILL, no clean shutdown."""
        self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


class Kafka:
    name = "kafka"

    def __init__(self, port, data_dir):
        self.port, self.dir = port, data_dir
        self.script = os.path.join(ROOT, "tests", "kafka", "kafka.sh")

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        pidfile = os.path.join(self.dir, "kafka.pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        env = dict(os.environ, KAFKA_CONTROLLER_PORT=str(self.port + 1))
        # kafka.sh formats the storage, then starts the broker JVM (setsid, inherits the affinity)
        # and returns once the broker logs its start; meanwhile we try to produce.
        starter = subprocess.Popen(on_core(BROKER_CPU, [self.script, "start", str(self.port), self.dir]),
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not os.path.exists(pidfile) or not open(pidfile).read().strip():
            if starter.poll() is not None and starter.returncode != 0:
                raise RuntimeError("kafka.sh start failed: " + starter.stderr.read().decode()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError("kafka.sh did not start the broker")
            time.sleep(0.01)
        self.pid = int(open(pidfile).read().strip())
        start_s = proc_stat(self.pid)["start_s"]
        ack = first_produce(self.port, deadline)
        starter.wait(120)
        if starter.returncode != 0:
            raise RuntimeError("kafka.sh start failed: " + starter.stderr.read().decode()[-2000:])
        return ack - start_s

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=90)


def make_broker(name, run_dir, extra_env=None):
    """chronik: the build under test; chronik-base: another build of Chronik to compare it with
    (CHRONIK_BASE_BIN_PATH, e.g. the commit before a change), on the same port; kafka."""
    port = CONFIG["port"] + (10 if name == "kafka" else 0)
    if name == "chronik":
        return Chronik(port, os.path.join(run_dir, name), extra_env)
    if name == "chronik-base":
        binary = os.environ.get("CHRONIK_BASE_BIN_PATH")
        if not binary:
            raise RuntimeError("BROKERS names chronik-base but CHRONIK_BASE_BIN_PATH is not set")
        return Chronik(port, os.path.join(run_dir, name), extra_env, binary)
    return Kafka(port, os.path.join(run_dir, name))


def create_topic(port, topic, partitions, config=None):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    fut = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                    config=dict(config or {}))],
                          operation_timeout=30)
    fut[topic].result(60)
    # wait until every partition has a leader
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = a.list_topics(topic, timeout=10).topics.get(topic)
        if md and md.error is None and len(md.partitions) == partitions and \
                all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no leaders")


# --- scenario runners ----------------------------------------------------------------------------

PP_RE = re.compile(r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                   r"([\d.]+) ms max latency, ([\d.]+) ms 50th, ([\d.]+) ms 95th, ([\d.]+) ms 99th, "
                   r"([\d.]+) ms 99.9th")


def profiled(broker, work, label, fn):
    """Runs fn(); when BENCH_PERF names this label, under `perf record` of the broker (call graphs
    from DWARF, 499 Hz), written to WORK/perf-LABEL.data for `perf report -i`."""
    if os.environ.get("BENCH_PERF") != label:
        return fn()
    out = os.path.join(work, f"perf-{label}.data")
    perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "--call-graph", "dwarf,16384",
                             "-p", str(broker.pid), "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return fn()
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=120)
        log(f"  perf profile of {label}: {out}")


def measured(broker, fn):
    """Runs fn() and adds the broker's CPU seconds and peak RSS over that interval."""
    hwm_reset = reset_peak_rss(broker.pid)
    c0 = cpu_seconds(broker.pid)
    t0 = time.monotonic()
    r = fn()
    r["broker_cpu_s"] = round(cpu_seconds(broker.pid) - c0, 3)
    r["interval_s"] = round(time.monotonic() - t0, 3)
    r["broker_peak_rss_mb"] = round(peak_rss_mb(broker.pid), 1)
    r["broker_rss_is_lifetime_peak"] = not hwm_reset
    gb = r.get("bytes", 0) / 1e9
    if gb > 0:
        r["broker_cpu_s_per_gb"] = round(r["broker_cpu_s"] / gb, 3)
        if "load_cpu_s" in r:
            r["load_cpu_s_per_gb"] = round(r["load_cpu_s"] / gb, 3)
    return r


def producer_perf(broker, work, topic, records, throughput, warmup=0, payload_file=None, payload_bytes=None):
    """One ProducerPerformance run. With payload_file (one UTF-8 record per line, each send picks
    a random line) instead of RECORD_SIZE random bytes, payload_bytes is the mean line length."""
    size = payload_bytes if payload_file else CONFIG["record_size"]
    args = ["--bootstrap-server", f"127.0.0.1:{broker.port}", "--topic", topic,
            "--num-records", str(records),
            *(["--payload-file", payload_file] if payload_file else ["--record-size", str(size)]),
            "--throughput", str(throughput), "--command-property", "acks=all"]
    if warmup:
        args += ["--warmup-records", str(warmup)]
    out = os.path.join(work, f"{topic}.out")
    rc, text, cpu, wall = run_load(java_tool("org.apache.kafka.tools.ProducerPerformance", args), out)
    matches = PP_RE.findall(text)
    if rc != 0 or not matches:
        raise RuntimeError(f"ProducerPerformance failed (rc {rc}), see {out}:\n{text[-1500:]}")
    # With --warmup-records the last summary is the steady state (records after the warm-up);
    # the first one covers every record, which is what the CPU-per-GB figures divide by.
    m = matches[-1]
    n = int(matches[0][0])
    rps = float(m[1])
    return {"records": n, "bytes": round(n * size), "steady_records": int(m[0]),
            "records_per_s": rps, "all_records_per_s": float(matches[0][1]),
            "mb_per_s": round(rps * size / 1e6, 2),
            "lat_avg_ms": float(m[3]), "lat_max_ms": float(m[4]), "p50_ms": float(m[5]),
            "p95_ms": float(m[6]), "p99_ms": float(m[7]), "p999_ms": float(m[8]),
            "load_cpu_s": round(cpu, 3), "load_wall_s": round(wall, 3)}


def w1_java(broker, work, partitions):
    topic = f"w1-p{partitions}"
    create_topic(broker.port, topic, partitions)
    warm = int(CONFIG["records"] * CONFIG["w1_warmup_fraction"])
    return measured(broker, lambda: producer_perf(broker, work, topic, CONFIG["records"], -1, warmup=warm))


def w1_rdkafka(broker, work, partitions=1):
    topic = "w1-rdkafka" if partitions == 1 else f"w1-rdkafka-p{partitions}"
    create_topic(broker.port, topic, partitions)
    py = os.path.join(CACHE, "venv", "bin", "python")

    def run():
        cmd = on_core(LOAD_CPU, [py, os.path.join(HERE, "rdkafka_produce.py"), f"127.0.0.1:{broker.port}",
                                 topic, str(CONFIG["records"]), str(CONFIG["record_size"]),
                                 # -1: librdkafka's partitioner spreads the records over the topic
                                 # (the tool's default, 0, sent every record of the 16-partition
                                 # run to partition 0).
                                 "--partition", "0" if partitions == 1 else "-1",
                                 "--timeout", str(CONFIG["load_timeout"] - 10)])
        out = os.path.join(work, f"{topic}.out")
        rc, text, cpu, wall = run_load(cmd, out)
        lines = [l for l in text.splitlines() if l.startswith("{")]
        if rc != 0 or not lines:
            raise RuntimeError(f"rdkafka_produce failed (rc {rc}), see {out}:\n{text[-1500:]}")
        r = json.loads(lines[-1])
        r.update(load_cpu_s=round(cpu, 3), load_wall_s=round(wall, 3))
        return r
    return measured(broker, run)


def restart_times(work):
    """S1: fills one partition with RESTART_GB of 1 KiB records (librdkafka, acks=all), then
    measures start-to-first-produce after a clean shutdown and after kill -9. chronik only: the
    targets are absolute (under 1 s and under 5 s)."""
    gb = env_float("RESTART_GB", 10.0)
    records = int(gb * 1e9 / CONFIG["record_size"])
    br = make_broker("chronik", work)
    out = {"gb": gb, "records": records}
    try:
        br.start()
        create_topic(br.port, "bulk", 1)
        py = os.path.join(CACHE, "venv", "bin", "python")
        cmd = on_core(LOAD_CPU, [py, os.path.join(HERE, "rdkafka_produce.py"), f"127.0.0.1:{br.port}",
                                 "bulk", str(records), str(CONFIG["record_size"]),
                                 "--timeout", str(max(CONFIG["load_timeout"], int(gb * 60)))])
        rc, text, _, wall = run_load(cmd, os.path.join(work, "bulk.out"), timeout=max(CONFIG["load_timeout"], int(gb * 60)) + 30)
        if rc != 0:
            raise RuntimeError(f"filling the log failed (rc {rc}):\n{text[-1500:]}")
        out["fill_s"] = round(wall, 1)
        log(f"  filled {gb} GB in {wall:.1f}s")
        br.stop()
        subprocess.run(["sync"])
        out["clean_ms"] = round(br.start() * 1000, 1)
        log(f"  start after clean shutdown: {out['clean_ms']} ms")
        br.kill9()
        subprocess.run(["sync"])
        out["kill9_ms"] = round(br.start() * 1000, 1)
        log(f"  start after kill -9: {out['kill9_ms']} ms")
    finally:
        br.stop()
        shutil.rmtree(os.path.join(work, "chronik"), ignore_errors=True)
    return out


def consumer_perf(broker, work, topic, records, label, heap="1g"):
    """One ConsumerPerformance run (group `bench-LABEL`); its fetch-phase rate and rusage."""
    args = ["--bootstrap-server", f"127.0.0.1:{broker.port}", "--topic", topic,
            "--num-records", str(records), "--timeout", "30000", "--group", f"bench-{label}"]
    out = os.path.join(work, f"w4-{label}.out")
    rc, text, cpu, wall = run_load(java_tool("org.apache.kafka.tools.ConsumerPerformance", args, heap=heap), out)
    lines = [l.strip() for l in text.splitlines()]
    # The tool logs to stdout too: the header is the line starting with start.time and the
    # values are the next line with as many comma-separated fields that starts with a date.
    hdr = next((l for l in lines if l.startswith("start.time")), None)
    keys = [k.strip() for k in hdr.split(",")] if hdr else []
    row = next((l for l in lines if re.match(r"\d{4}-\d\d-\d\d ", l) and len(l.split(",")) == len(keys)),
               None)
    if rc != 0 or not keys or row is None:
        raise RuntimeError(f"ConsumerPerformance failed (rc {rc}), see {out}:\n{text[-1500:]}")
    vals = [v.strip() for v in row.split(",")]
    d = dict(zip(keys, vals))
    n = int(float(d["data.consumed.in.nMsg"]))
    fetch_ms = float(d["fetch.time.ms"])
    if n < records:
        raise RuntimeError(f"ConsumerPerformance read {n} of {records} records, see {out}")
    r = {"records": n, "bytes": n * CONFIG["record_size"],
            "records_per_s": round(n / (fetch_ms / 1000.0), 1),
            "mb_per_s": round(n * CONFIG["record_size"] / (fetch_ms / 1000.0) / 1e6, 2),
            "fetch_ms": fetch_ms, "rebalance_ms": float(d["rebalance.time.ms"]),
            "load_cpu_s": round(cpu, 3), "load_wall_s": round(wall, 3)}
    try:  # wall-clock end of the fetch phase ("2026-11-27 15:44:52:123"), to line up parallel runs
        day, hms = d["end.time"].rsplit(" ", 1)
        h, mi, sec, ms = hms.split(":")
        end = time.mktime(time.strptime(f"{day} {h}:{mi}:{sec}", "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000.0
        r["fetch_end_epoch"], r["fetch_start_epoch"] = end, end - fetch_ms / 1000.0
    except (KeyError, ValueError):
        pass
    return r


def w4_consume(broker, work, topic, records, label):
    return measured(broker, lambda: consumer_perf(broker, work, topic, records, label))


def w2_latency(broker, work, rate):
    topic = "w2-latency"
    create_topic(broker.port, topic, 1)
    total = int(rate * CONFIG["lat_seconds"])
    warm = int(rate * CONFIG["lat_warmup_seconds"])
    return measured(broker, lambda: producer_perf(broker, work, topic, total, rate, warmup=warm))


def w3_run(broker, work, topic, tool, rate):
    """One W3 run of `tool` (a command prefix taking BOOTSTRAP TOPIC RATE SECONDS RECORD_SIZE
    WARMUP_SECONDS and printing E2eLatency's JSON line) on a new one-partition topic."""
    create_topic(broker.port, topic, 1)

    def run():
        cmd = tool + [f"127.0.0.1:{broker.port}", topic, str(rate), str(CONFIG["lat_seconds"]),
                      str(CONFIG["record_size"]), str(CONFIG["lat_warmup_seconds"])]
        out = os.path.join(work, f"{topic}.out")
        rc, text, cpu, wall = run_load(cmd, out)
        lines = [l for l in text.splitlines() if l.startswith("{")]
        if rc != 0 or not lines:
            raise RuntimeError(f"{topic} failed (rc {rc}), see {out}:\n{text[-1500:]}")
        r = json.loads(lines[-1])
        r.update(bytes=r["sent"] * CONFIG["record_size"], load_cpu_s=round(cpu, 3), load_wall_s=round(wall, 3))
        return r
    return measured(broker, run)


def w3_e2e(broker, work, rate):
    return w3_run(broker, work, "w3-e2e", java_tool("E2eLatency", []), rate)


def w3_rdkafka(broker, work, rate):
    """W3 again with librdkafka (rdkafka_e2e.py: a producer process and a consumer process), whose
    client costs a third of a core at the W3 rate where the Java tool fills the load core."""
    py = os.path.join(CACHE, "venv", "bin", "python")
    tool = on_core(LOAD_CPU, [py, os.path.join(HERE, "rdkafka_e2e.py")])
    return w3_run(broker, work, "w3-e2e-rdkafka", tool, rate)


# --- W5: the remote tier and its chunk cache (chronik only) --------------------------------------

W5 = {
    "mb": env_float("W5_MB", 1000),                          # MB (10^6 B) produced to the tiered topic
    "segment_bytes": env_int("W5_SEGMENT_BYTES", 64 << 20),
    "memory_bytes": env_int("W5_CACHE_MEMORY_BYTES", 256 << 20),
    "disk_bytes": env_int("W5_CACHE_DISK_BYTES", 4 << 30),
    "chunk_bytes": env_int("W5_CACHE_CHUNK_BYTES", 4 << 20),
    "small_memory_bytes": env_int("W5_SMALL_MEMORY_BYTES", 64 << 20),   # (g) working set 2x the cache
    "small_disk_bytes": env_int("W5_SMALL_DISK_BYTES", 256 << 20),
    "fanout": env_int("W5_FANOUT", 10),                      # (f) concurrent consumers
    "fanout_mb": env_float("W5_FANOUT_MB", 256),             # (f) the range they all read
    "fanout_heap": os.environ.get("W5_FANOUT_HEAP", "256m"),
    "s3_port": env_int("W5_S3_PORT", env_int("BENCH_PORT", 19092) + 30),
    "s3_cpu": os.environ.get("W5_S3_CPU", BROKER_CPU),       # LocalStack's core (taskset)
    "tier_timeout": env_int("W5_TIER_TIMEOUT", 900),         # s to wait for the uploads
}


class LocalStack:
    """localstack/start.sh on its own port; stopped at the end only if this run started it."""

    def __init__(self, port):
        self.port = port
        self.home = os.environ.get("LOCALSTACK_HOME", os.path.expanduser("~/.cache/chronik-localstack"))
        self.logfile = os.path.join(self.home, f"localstack-{port}.log")
        self.pidfile = os.path.join(self.home, f"localstack-{port}.pid")
        self.endpoint = f"http://127.0.0.1:{port}"
        self.python = os.path.join(self.home, "venv", "bin", "python")
        self.started = False

    def _alive(self):
        try:
            os.kill(int(open(self.pidfile).read().strip()), 0)
            return True
        except (OSError, ValueError):
            return False

    def start(self):
        self.started = not self._alive()
        env = dict(os.environ, PORT=str(self.port), BUCKET="chronik")
        r = subprocess.run(on_core(W5["s3_cpu"], [os.path.join(ROOT, "localstack", "start.sh")]), env=env,
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"localstack/start.sh failed:\n{r.stderr[-2000:]}")
        self.pid = int(open(self.pidfile).read().strip())
        log(f"  LocalStack {self.endpoint} pid {self.pid} ({'started' if self.started else 'already running'}), "
            f"log {self.logfile}")

    def stop(self):
        if self.started:
            subprocess.run([os.path.join(ROOT, "localstack", "stop.sh")], env=dict(os.environ, PORT=str(self.port)),
                           capture_output=True, timeout=60)

    def cpu_s(self):
        """CPU seconds of the LocalStack process (all its threads); None if unreadable."""
        try:
            return cpu_seconds(self.pid)
        except OSError:
            return None

    def mark(self):
        """A point in LocalStack's log and CPU time, for ops_since() and cpu_since()."""
        return (os.path.getsize(self.logfile), self.cpu_s())

    def cpu_since(self, mark):
        now = self.cpu_s()
        return round(now - mark[1], 3) if now is not None and mark[1] is not None else None

    def ops_since(self, mark):
        """S3 operations LocalStack logged after `mark`, by name."""
        counts = {}
        with open(self.logfile, "rb") as f:
            f.seek(mark[0])
            for m in re.finditer(rb"AWS s3\.(\w+) => (\d+)", f.read()):
                k = m.group(1).decode()
                counts[k] = counts.get(k, 0) + 1
        return counts


def broker_has_http(binary):
    """Whether this chronik binary has the admin HTTP port (`--http-listen`, /metrics)."""
    try:
        out = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, timeout=30)
        return "--http-listen" in out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        return False


def cache_counters(http_port):
    """chronik_cache_counter and chronik_tiering_counter from /metrics, as {"cache.what": value};
    {} when the port does not answer."""
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for m in re.finditer(r'^chronik_(cache|tiering)_counter\{what="(\w+)"\} (\S+)$', text, re.M):
        out[f"{m.group(1)}.{m.group(2)}"] = float(m.group(3))
    return out


def get_offset(port, topic, spec, work):
    """ListOffsets through Kafka's GetOffsetShell (`--time -1|-2|-4|-5`); None when absent."""
    out = os.path.join(work, f"offsets-{topic}{spec}.out")
    rc, text, _, _ = run_load(java_tool("org.apache.kafka.tools.GetOffsetShell",
                                        ["--bootstrap-server", f"127.0.0.1:{port}", "--topic", topic,
                                         "--partitions", "0", "--time", str(spec)], heap="256m"), out, timeout=60)
    m = re.search(rf"^{re.escape(topic)}:0:(-?\d+)\s*$", text, re.M)
    return int(m.group(1)) if m else None


def local_segments(data_dir, topic):
    """The .log files of partition 0 of `topic` in the broker's data directory."""
    found = []
    for d, _, files in os.walk(data_dir):
        if os.path.basename(d) == f"{topic}-0":
            found += [os.path.join(d, f) for f in files if f.endswith(".log")]
    return sorted(found)


def disk_usage(path):
    """Allocated bytes under path (like du)."""
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return None


def remote_tier_env(ls, prefix, http_port, memory, disk):
    """The broker's environment for a remote tier on LocalStack `ls` under s3://chronik/PREFIX,
    with this chunk cache, and the admin HTTP port on 127.0.0.1:HTTP_PORT (None: not set)."""
    env = {"CHRONIK_HTTP_LISTEN": f"127.0.0.1:{http_port}"} if http_port else {}
    return env | {"CHRONIK_TIERING_URL": f"s3://chronik/{prefix}",
                  "CHRONIK_TIERING_ENDPOINT": ls.endpoint,
                  "CHRONIK_TIERING_ALLOW_HTTP": "true",
                  "CHRONIK_TIERING_REGION": "us-east-1",
                  "CHRONIK_TIERING_INTERVAL_MS": "200",
                  "CHRONIK_CACHE_MEMORY_BYTES": str(memory),
                  "CHRONIK_CACHE_DISK_BYTES": str(disk),
                  "CHRONIK_CACHE_CHUNK_BYTES": str(W5["chunk_bytes"]),
                  "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                  "AWS_EC2_METADATA_DISABLED": "true"}


def delete_remote_topics(br, ls, topics, what):
    """Deletes `topics` on a running broker and waits (at most 30 s) until LocalStack logged a
    DeleteObject: used when the LocalStack instance is someone else's, so our objects go."""
    try:
        from confluent_kafka.admin import AdminClient
        a = AdminClient({"bootstrap.servers": f"127.0.0.1:{br.port}"})
        mark = ls.mark()
        for f in a.delete_topics(list(topics), operation_timeout=30).values():
            f.result(60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ls.ops_since(mark).get("DeleteObject"):
            time.sleep(1)
        time.sleep(2)
    except Exception as e:  # noqa: BLE001 - cleanup only
        log(f"  {what}: could not delete the remote objects of {list(topics)}: {e}")


def w5_remote(work, add):
    """W5 (issue 6): consume from the remote tier (LocalStack S3) through the chunk cache: cold and
    warm against a local read and the raw ranged-GET rate, GETs per MB, ten consumers on one cold
    range, and a working set twice the cache. Adds its results with add("chronik", key, r) and
    returns the summary of its targets."""
    w = W5
    rs = CONFIG["record_size"]
    ls = LocalStack(w["s3_port"])
    ls.start()
    prefix = f"bench-{os.urandom(4).hex()}"
    data = os.path.join(work, "chronik", "data")
    cache_dir = os.path.join(data, "cache")

    http_port = CONFIG["port"] + 31
    http = broker_has_http(Chronik(0, work).bin)

    def broker_env(memory, disk):
        return remote_tier_env(ls, prefix, http_port if http else None, memory, disk)

    br = make_broker("chronik", work, broker_env(w["memory_bytes"], w["disk_bytes"]))
    summary = {"prefix": prefix, "endpoint": ls.endpoint, "localstack_started_here": ls.started,
               "config": dict(w)}
    can_drop = can_drop_caches()

    def cold_restart(env=None):
        """Clean stop, empty cache directory, page caches dropped, start again."""
        br.stop()
        shutil.rmtree(cache_dir, ignore_errors=True)
        if env is not None:
            br.extra_env = env
        if can_drop:
            drop_caches()
        else:
            subprocess.run(["sync"])
        br.start()

    def take_mark():
        return ls.mark() + ((cache_counters(http_port) if http else {}),)

    py = os.path.join(CACHE, "venv", "bin", "python")
    try:
        br.start()
        topic = "w5-remote"
        create_topic(br.port, topic, 1, {"remote.storage.enable": "true",
                                         "segment.bytes": str(w["segment_bytes"]),
                                         "local.retention.bytes": "1"})
        records = int(w["mb"] * 1e6 / rs)
        log(f"W5: producing {records:,} records ({w['mb']:.0f} MB) to {topic} (librdkafka)")
        cmd = on_core(LOAD_CPU, [py, os.path.join(HERE, "rdkafka_produce.py"), f"127.0.0.1:{br.port}",
                                 topic, str(records), str(rs), "--timeout", str(CONFIG["load_timeout"] - 10)])
        rc, text, _, wall = run_load(cmd, os.path.join(work, f"{topic}.out"))
        if rc != 0:
            raise RuntimeError(f"rdkafka_produce failed (rc {rc}):\n{text[-1500:]}")
        summary["produce_s"] = round(wall, 1)

        # Wait until everything but the active segment left local disk: one local .log file, and
        # ListOffsets earliest-local (-4) at its base offset.
        log("W5: waiting for the uploads (ListOffsets -4 via GetOffsetShell)")
        t0 = time.monotonic()
        deadline = t0 + w["tier_timeout"]
        earliest_local = None
        while True:
            segs = local_segments(data, topic)
            if len(segs) == 1:
                base = int(os.path.basename(segs[0]).split(".")[0])
                earliest_local = get_offset(br.port, topic, -4, work)
                if earliest_local is not None and earliest_local == base and base > 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"W5: not tiered after {w['tier_timeout']} s: {len(segs)} local segments, "
                                   f"earliest-local {earliest_local}")
            time.sleep(2)
        summary["tier_wait_s"] = round(time.monotonic() - t0, 1)
        end = get_offset(br.port, topic, -1, work)
        summary.update(records=records, end_offset=end, earliest_local=earliest_local,
                       latest_tiered=get_offset(br.port, topic, -5, work),
                       earliest=get_offset(br.port, topic, -2, work))
        remote_records = earliest_local
        log(f"W5: tiered after {summary['tier_wait_s']} s; remote range 0..{remote_records} of {end}")

        # (d) raw ranged GETs of the uploaded .log objects, one at a time, chunk-sized.
        if can_drop:
            drop_caches()
        mark = take_mark()
        cmd = on_core(LOAD_CPU, [ls.python, os.path.join(HERE, "s3_ranged_get.py"), ls.endpoint, "chronik",
                                 prefix + "/", "--chunk", str(w["chunk_bytes"])])
        rc, text, cpu, wall = run_load(cmd, os.path.join(work, "w5-raw-get.out"))
        lines = [l for l in text.splitlines() if l.startswith("{")]
        if rc != 0 or not lines:
            raise RuntimeError(f"s3_ranged_get failed (rc {rc}):\n{text[-1500:]}")
        raw = json.loads(lines[-1])
        raw.update(load_cpu_s=round(cpu, 3), logged_ops=ls.ops_since(mark), s3_cpu_s=ls.cpu_since(mark))
        add("chronik", "w5_raw_get", raw)
        segments = raw["objects"]
        # Ideal cold read of the remote range: one GET per chunk of every .log object plus one
        # index read per segment.
        bound_gets = raw["gets"] + segments

        def with_gets(r, mark, bytes_read=None):
            # The broker's own cache counters over the step (hits per tier, misses, read-ahead).
            c0, c1 = mark[2], cache_counters(http_port) if http else {}
            if c0 and c1:
                r["cache"] = {k: int(c1[k] - c0.get(k, 0)) for k in c1
                              if not k.endswith("_bytes") and c1[k] - c0.get(k, 0)}
            ops = ls.ops_since(mark)
            r["s3_ops"] = ops
            r["s3_cpu_s"] = ls.cpu_since(mark)  # LocalStack's CPU over the scenario
            r["gets"] = ops.get("GetObject", 0)
            mb = (bytes_read or r["bytes"]) / 1e6
            r["gets_per_mb"] = round(r["gets"] / mb, 4)
            return r

        # (a) cold: restart, empty cache, dropped page caches.
        cold_restart()
        mark = take_mark()
        r = with_gets(profiled(br, work, "w5-cold",
                               lambda: w4_consume(br, work, topic, remote_records, "w5-cold")), mark)
        r["bound_gets"] = bound_gets
        r["bound_gets_per_mb"] = round(bound_gets / (r["bytes"] / 1e6), 4)
        r["cache_disk_mb"] = round(disk_usage(cache_dir) / 1e6, 1)
        add("chronik", "w5_cold", r)
        cold = r
        # (b) warm: the same range again on the same broker.
        mark = take_mark()
        warm = with_gets(w4_consume(br, work, topic, remote_records, "w5-warm"), mark)
        add("chronik", "w5_warm", warm)
        # (b') the disk tier after a clean restart (cache directory kept, page caches dropped):
        # only the disk tier can serve this read.
        br.stop()
        if can_drop:
            drop_caches()
        br.start()
        mark = take_mark()
        rwarm = with_gets(w4_consume(br, work, topic, remote_records, "w5-restart-warm"), mark)
        add("chronik", "w5_restart_warm", rwarm)

        # (c) local tier: the same number of records on a topic that is not tiered, read right
        # after it was written (W4 warm).
        ltopic = "w5-local"
        create_topic(br.port, ltopic, 1, {"segment.bytes": str(w["segment_bytes"])})
        cmd = on_core(LOAD_CPU, [py, os.path.join(HERE, "rdkafka_produce.py"), f"127.0.0.1:{br.port}",
                                 ltopic, str(remote_records), str(rs), "--timeout", str(CONFIG["load_timeout"] - 10)])
        rc, text, _, _ = run_load(cmd, os.path.join(work, f"{ltopic}.out"))
        if rc != 0:
            raise RuntimeError(f"rdkafka_produce failed (rc {rc}):\n{text[-1500:]}")
        local = w4_consume(br, work, ltopic, remote_records, "w5-local")
        add("chronik", "w5_local", local)

        # (f) fan-out: one consumer, then FANOUT consumers at once, each on a cold cache, over the
        # same first FANOUT_MB of the remote range.
        frecs = min(remote_records, int(w["fanout_mb"] * 1e6 / rs))
        cold_restart()
        mark = take_mark()
        single = with_gets(measured(br, lambda: consumer_perf(br, work, topic, frecs, "w5-fan-1",
                                                              heap=w["fanout_heap"])), mark)
        add("chronik", "w5_fanout_single", single)
        cold_restart()
        mark = take_mark()

        def fan():
            res = [None] * w["fanout"]

            def one(i):
                try:
                    res[i] = consumer_perf(br, work, topic, frecs, f"w5-fan-{w['fanout']}-{i}",
                                           heap=w["fanout_heap"])
                except Exception as e:  # noqa: BLE001 - reported below
                    res[i] = e
            t0 = time.monotonic()
            ts = [threading.Thread(target=one, args=(i,)) for i in range(w["fanout"])]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            errs = [e for e in res if isinstance(e, Exception)]
            if errs:
                raise RuntimeError(f"{len(errs)} of {w['fanout']} consumers failed: {errs[0]}")
            wall = time.monotonic() - t0
            total = sum(r["bytes"] for r in res)
            # Aggregate over the union of the fetch phases (JVM start and group joins excluded).
            span = (max(r["fetch_end_epoch"] for r in res) - min(r["fetch_start_epoch"] for r in res)) \
                if all("fetch_end_epoch" in r for r in res) else wall
            return {"consumers": w["fanout"], "records": frecs, "bytes": total, "range_bytes": frecs * rs,
                    "per_consumer_mb_per_s": sorted(r["mb_per_s"] for r in res),
                    "min_mb_per_s": min(r["mb_per_s"] for r in res),
                    "median_mb_per_s": statistics.median(r["mb_per_s"] for r in res),
                    "aggregate_mb_per_s": round(total / span / 1e6, 2), "fetch_span_s": round(span, 2),
                    "wall_s": round(wall, 2),
                    "load_cpu_s": round(sum(r["load_cpu_s"] for r in res), 3), "load_wall_s": round(wall, 3)}
        fanout = with_gets(measured(br, fan), mark, bytes_read=frecs * rs)
        fanout["gets_vs_single"] = round(fanout["gets"] / single["gets"], 3) if single["gets"] else None
        add("chronik", "w5_fanout", fanout)

        # (g) working set twice the cache: a small cache, read twice its disk size from remote.
        smem, sdisk = w["small_memory_bytes"], w["small_disk_bytes"]
        cold_restart(broker_env(smem, sdisk))
        time.sleep(1)
        baseline = rss_mb(br.pid)
        precs = min(remote_records, int(2 * sdisk / rs))
        samples = {"max": 0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples["max"] = max(samples["max"], disk_usage(cache_dir))
                stop.wait(0.5)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        mark = take_mark()
        try:
            p = with_gets(w4_consume(br, work, topic, precs, "w5-pressure"), mark)
        finally:
            stop.set()
            th.join()
        du_end = disk_usage(cache_dir)
        block = w["chunk_bytes"] * 4
        p.update(memory_budget_mb=round(smem / 2**20, 1), disk_budget_mb=round(sdisk / 2**20, 1),
                 read_vs_disk_budget=round(precs * rs / sdisk, 2),
                 baseline_rss_mb=round(baseline, 1),
                 rss_over_baseline_mb=round(p["broker_peak_rss_mb"] - baseline, 1),
                 cache_du_max_mb=round(max(samples["max"], du_end) / 2**20, 1),
                 cache_du_end_mb=round(du_end / 2**20, 1))
        p["rss_within_budget"] = p["broker_peak_rss_mb"] <= baseline + smem / 2**20
        p["du_within_budget"] = max(samples["max"], du_end) <= sdisk + block
        add("chronik", "w5_pressure", p)

        # Where the cold read's time went: CPU per second of its fetch phase (the broker and
        # LocalStack share W5_S3_CPU = the broker's core by default).
        fs = cold["fetch_ms"] / 1000.0
        summary["cold_fetch_phase_core_use"] = {
            "broker": round(cold["broker_cpu_s"] / fs, 2),
            "localstack": round((cold["s3_cpu_s"] or 0) / fs, 2),
            "raw_get_localstack": round((raw["s3_cpu_s"] or 0) / raw["seconds"], 2)}
        summary["targets"] = {
            "remote_warm_vs_local": {"value": round(warm["mb_per_s"] / local["mb_per_s"], 3), "target": ">= 0.9"},
            "warm_gets": {"value": warm["gets"], "target": f"0 (the {remote_records * rs / 1e6:.0f} MB range fits "
                          f"the {w['disk_bytes'] >> 20} MiB disk tier)"},
            "warm_after_restart_gets": {"value": rwarm["gets"], "target": "0 (disk tier warm after a restart)"},
            "remote_cold_vs_raw_get": {"value": round(cold["mb_per_s"] / raw["mb_per_s"], 3), "target": ">= 0.7"},
            "cold_gets_per_mb": {"value": cold["gets_per_mb"], "target": f"<= {cold['bound_gets_per_mb']} "
                                 f"(1 per {w['chunk_bytes'] / 1e6:.2f} MB chunk + 1 index read per segment)"},
            "fanout_gets_vs_single": {"value": fanout["gets_vs_single"], "target": "~1 (single flight)"},
            "pressure_rss_mb": {"value": p["broker_peak_rss_mb"],
                                "target": f"<= baseline {p['baseline_rss_mb']} + memory {p['memory_budget_mb']} MiB"},
            "pressure_cache_du_mb": {"value": p["cache_du_max_mb"],
                                     "target": f"<= disk {p['disk_budget_mb']} MiB (+ one {block >> 20} MiB block)"},
        }
        return summary
    finally:
        finish_remote_step(br, ls, work, ["w5-remote"], f"W5 ({prefix})")


def finish_remote_step(br, ls, work, topics, label):
    """Ends a step that ran its own broker on a remote tier: on someone else's LocalStack its
    topics are deleted first (so the broker deletes their objects); then the broker stops, its log
    is kept as WORK/chronik-broker.log, its data directory goes, and a LocalStack started here
    stops."""
    blog = os.path.join(work, "chronik", "chronik.log")
    running = getattr(br, "proc", None) is not None
    if not ls.started and running and br.proc.poll() is None:
        delete_remote_topics(br, ls, topics, label)
    if running:
        br.stop()
    if os.path.exists(blog):
        shutil.copy(blog, os.path.join(work, "chronik-broker.log"))
    shutil.rmtree(os.path.join(work, "chronik"), ignore_errors=True)
    ls.stop()


# --- machine limits ------------------------------------------------------------------------------

def limits(work):
    res = {}
    d = os.path.join(work, "fio")
    os.makedirs(d, exist_ok=True)
    log(f"limits: fio sequential buffered write {CONFIG['fio_size']} + fsync at the end ({d})")
    f = os.path.join(d, "seq")
    t0 = time.monotonic()
    rc, text, _, _ = run_load(on_core(LOAD_CPU, [
        "fio", "--name=seqwrite", f"--filename={f}", "--rw=write", "--bs=1M", f"--size={CONFIG['fio_size']}",
        "--ioengine=psync", "--end_fsync=1", "--output-format=json"]), os.path.join(work, "fio-seq.json"))
    wall = time.monotonic() - t0
    j = json.loads(text[text.index("{"):])
    job = j["jobs"][0]
    nbytes = job["write"]["io_bytes"]
    res["seq_write_fsync_mb_per_s"] = round(nbytes / wall / 1e6, 1)  # includes the final fsync
    res["seq_write_fio_bw_mb_per_s"] = round(job["write"]["bw_bytes"] / 1e6, 1)
    os.unlink(f)

    log(f"limits: fio 4 KiB write + fsync, {CONFIG['fio_seconds']} s")
    f = os.path.join(d, "sync")
    rc, text, _, _ = run_load(on_core(LOAD_CPU, [
        "fio", "--name=fsync4k", f"--filename={f}", "--rw=write", "--bs=4k", "--size=256M",
        "--ioengine=sync", "--fsync=1", f"--runtime={CONFIG['fio_seconds']}", "--time_based",
        "--output-format=json"]), os.path.join(work, "fio-fsync.json"))
    j = json.loads(text[text.index("{"):])
    job = j["jobs"][0]
    sync = job.get("sync", {})
    pct = sync.get("lat_ns", {}).get("percentile", {})
    runtime_s = job["job_runtime"] / 1000.0 if job.get("job_runtime") else CONFIG["fio_seconds"]
    res["fsync_4k_per_s"] = round(sync.get("total_ios", job["write"]["total_ios"]) / runtime_s, 1)
    res["fsync_4k_p50_ms"] = round(pct.get("50.000000", 0) / 1e6, 3)
    res["fsync_4k_p99_ms"] = round(pct.get("99.000000", 0) / 1e6, 3)
    os.unlink(f)

    port = CONFIG["port"] + 20
    log(f"limits: iperf3 loopback TCP, {CONFIG['iperf_seconds']} s")
    srv = subprocess.Popen(on_core(BROKER_CPU, ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # no probe connection: iperf3 -1 would take it as its one test client
        if srv.poll() is not None:
            raise RuntimeError(f"iperf3 server did not start on port {port}")
        rc, text, _, _ = run_load(on_core(LOAD_CPU, ["iperf3", "-c", "127.0.0.1", "-p", str(port),
                                                     "-t", str(CONFIG["iperf_seconds"]), "-J"]),
                                  os.path.join(work, "iperf3.json"), timeout=CONFIG["iperf_seconds"] + 30)
        j = json.loads(text[text.index("{"):])
        res["loopback_tcp_gb_per_s"] = round(j["end"]["sum_received"]["bits_per_second"] / 8 / 1e9, 2)
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()
    return res


# --- aggregation and the table -------------------------------------------------------------------

# (key, label, field in the scenario result, higher_is_better, format)
METRICS = [
    ("startup", "start to first acked produce (ms)", "ms", False),
    ("restart", "S1 start with a full local log, clean shutdown (ms)", "clean_ms", False),
    ("restart", "S1 start with a full local log, after kill -9 (ms)", "kill9_ms", False),
    ("w1_p1", "W1 produce 1 partition, MB/s", "mb_per_s", True),
    ("w1_p1", "W1 produce 1 partition, records/s", "records_per_s", True),
    ("w1_p1", "W1 1p broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w1_p1", "W1 1p load-generator CPU s/GB", "load_cpu_s_per_gb", False),
    ("w1_p1", "W1 1p broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w1_p16", "W1 produce 16 partitions, MB/s", "mb_per_s", True),
    ("w1_p16", "W1 produce 16 partitions, records/s", "records_per_s", True),
    ("w1_p16", "W1 16p broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w1_p16", "W1 16p load-generator CPU s/GB", "load_cpu_s_per_gb", False),
    ("w1_p16", "W1 16p broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w1_rdkafka", "W1 librdkafka 1 partition, MB/s", "mb_per_s", True),
    ("w1_rdkafka", "W1 librdkafka broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w1_rdkafka", "W1 librdkafka load-generator CPU s/GB", "load_cpu_s_per_gb", False),
    ("w1_rdkafka", "W1 librdkafka broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w1_rdkafka_p16", "W1 librdkafka 16 partitions, MB/s", "mb_per_s", True),
    ("w1_rdkafka_p16", "W1 librdkafka 16p broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w1_rdkafka_p16", "W1 librdkafka 16p load-generator CPU s/GB", "load_cpu_s_per_gb", False),
    ("w2", "W2 produce latency p50 (ms)", "p50_ms", False),
    ("w2", "W2 produce latency p99 (ms)", "p99_ms", False),
    ("w2", "W2 produce latency p99.9 (ms)", "p999_ms", False),
    ("w2", "W2 achieved records/s", "records_per_s", True),
    ("w2", "W2 broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w2", "W2 broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w3", "W3 end-to-end latency p50 (ms)", "p50_ms", False),
    ("w3", "W3 end-to-end latency p99 (ms)", "p99_ms", False),
    ("w3", "W3 end-to-end latency p99.9 (ms)", "p999_ms", False),
    ("w3", "W3 broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w3", "W3 broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w3_rdkafka", "W3 librdkafka end-to-end latency p50 (ms)", "p50_ms", False),
    ("w3_rdkafka", "W3 librdkafka end-to-end latency p99 (ms)", "p99_ms", False),
    ("w3_rdkafka", "W3 librdkafka end-to-end latency p99.9 (ms)", "p999_ms", False),
    ("w3_rdkafka", "W3 librdkafka broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w3_rdkafka", "W3 librdkafka load-generator CPU s/GB", "load_cpu_s_per_gb", False),
    ("w4_warm", "W4 consume, warm page cache, MB/s", "mb_per_s", True),
    ("w4_warm", "W4 warm broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w4_warm", "W4 warm load-generator CPU s/GB", "load_cpu_s_per_gb", False),
    ("w4_warm", "W4 warm broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w4_cold", "W4 consume, after drop_caches, MB/s", "mb_per_s", True),
    ("w4_cold", "W4 cold broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w4_cold", "W4 cold broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w5_raw_get", "W5 raw ranged GET of LocalStack (chunk-sized, sequential), MB/s", "mb_per_s", True),
    ("w5_raw_get", "W5 raw GET LocalStack CPU s", "s3_cpu_s", False),
    ("w5_cold", "W5 remote consume, cold cache, MB/s", "mb_per_s", True),
    ("w5_cold", "W5 cold GETs per MB consumed", "gets_per_mb", False),
    ("w5_cold", "W5 cold GETs per MB, bound (chunks + index reads)", "bound_gets_per_mb", False),
    ("w5_cold", "W5 cold broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w5_cold", "W5 cold broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w5_cold", "W5 cold LocalStack CPU s", "s3_cpu_s", False),
    ("w5_warm", "W5 remote consume, warm cache, MB/s", "mb_per_s", True),
    ("w5_warm", "W5 warm GETs", "gets", False),
    ("w5_warm", "W5 warm broker CPU s/GB", "broker_cpu_s_per_gb", False),
    ("w5_restart_warm", "W5 remote consume after a clean restart (disk tier kept), MB/s", "mb_per_s", True),
    ("w5_restart_warm", "W5 after-restart GETs", "gets", False),
    ("w5_local", "W5 local-tier consume (same records), MB/s", "mb_per_s", True),
    ("w5_fanout_single", "W5 one consumer, cold range: GETs", "gets", False),
    ("w5_fanout", "W5 fan-out consumers at once, cold range: GETs", "gets", False),
    ("w5_fanout", "W5 fan-out slowest consumer MB/s", "min_mb_per_s", True),
    ("w5_fanout", "W5 fan-out aggregate MB/s", "aggregate_mb_per_s", True),
    ("w5_pressure", "W5 working set 2x cache: consume MB/s", "mb_per_s", True),
    ("w5_pressure", "W5 working set 2x cache: GETs per MB", "gets_per_mb", False),
    ("w5_pressure", "W5 working set 2x cache: broker peak RSS MB", "broker_peak_rss_mb", False),
    ("w5_pressure", "W5 working set 2x cache: RSS baseline MB", "baseline_rss_mb", False),
    ("w5_pressure", "W5 working set 2x cache: cache dir du max MiB", "cache_du_max_mb", False),
]


def summarize(results, brokers):
    """results[broker][scenario] = list of per-round dicts -> summary rows."""
    rows = []
    for key, label, field, higher in METRICS:
        row = {"scenario": key, "metric": label, "field": field,
               "better": "higher" if higher else "lower"}
        have = False
        for b in brokers:
            vals = [r[field] for r in results.get(b, {}).get(key, []) if r.get(field) is not None]
            if vals:
                have = True
                row[b] = {"median": round(statistics.median(vals), 3), "min": min(vals), "max": max(vals),
                          "n": len(vals)}
        if not have:
            continue
        if "chronik" in row and "kafka" in row and row["kafka"]["median"]:
            row["ratio"] = round(row["chronik"]["median"] / row["kafka"]["median"], 3)
        if "chronik" in row and "chronik-base" in row and row["chronik-base"]["median"]:
            row["ratio_base"] = round(row["chronik"]["median"] / row["chronik-base"]["median"], 3)
        rows.append(row)
    return rows


def fmt_num(x):
    if x is None:
        return "-"
    ax = abs(x)
    if ax >= 10000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_cell(c):
    if not c:
        return "-"
    if c["n"] == 1:
        return fmt_num(c["median"])
    return f"{fmt_num(c['median'])} ({fmt_num(c['min'])}–{fmt_num(c['max'])})"


def render(doc):
    lines = []
    cfg = doc["config"]
    lines.append(f"Chronik vs Apache Kafka {doc.get('kafka_version', '')} — {doc['generated']}"
                 f"{' — ' + cfg['label'] if cfg.get('label') else ''}")
    lines.append(f"{cfg['rounds']} round(s), {cfg['records']:,} records of {cfg['record_size']} B per "
                 f"throughput run, fixed rate {doc.get('rate') or '-'} records/s for W2/W3; "
                 f"medians (min–max); MB = 10^6 bytes; ratio = chronik / kafka")
    lim = doc.get("limits")
    if lim:
        lines.append("Machine: sequential buffered write + fsync {} MB/s, 4 KiB write+fsync {}/s "
                     "(p50 {} ms, p99 {} ms), loopback TCP {} GB/s".format(
                         lim.get("seq_write_fsync_mb_per_s"), lim.get("fsync_4k_per_s"),
                         lim.get("fsync_4k_p50_ms"), lim.get("fsync_4k_p99_ms"),
                         lim.get("loopback_tcp_gb_per_s")))
    lines.append("")
    if not doc["summary"] and doc.get("search"):
        # SCENARIOS=search alone: no Kafka table, only the search section below.
        import search_bench
        return "\n".join([f"Chronik benchmark — {doc['generated']}"
                          f"{' — ' + cfg['label'] if cfg.get('label') else ''}"] +
                         search_bench.render_lines(doc["search"]))
    hdr = ["metric", "better", "chronik", "kafka", "ratio"]
    base = any("chronik-base" in r for r in doc["summary"])
    if base:
        hdr += ["chronik-base", "chronik / base"]
    body = []
    for r in doc["summary"]:
        row = [r["metric"], r["better"], fmt_cell(r.get("chronik")), fmt_cell(r.get("kafka")),
               f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"]
        if base:
            row += [fmt_cell(r.get("chronik-base")),
                    f"{r['ratio_base']:.3f}" if r.get("ratio_base") is not None else "-"]
        body.append(row)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(hdr)]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(hdr, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(b, widths)) + " |")
    w5 = doc.get("w5")
    if w5 and w5.get("error"):
        lines.append("")
        lines.append(f"W5 failed: {w5['error']}")
    if w5 and w5.get("targets"):
        lines.append("")
        lines.append(f"W5 targets (remote tier on LocalStack {w5.get('endpoint')}, remote range "
                     f"{w5.get('earliest_local', 0):,} records in {w5.get('config', {}).get('segment_bytes', 0) >> 20} MiB "
                     f"segments; uploads took {w5.get('tier_wait_s')} s after the produce):")
        for k, t in w5["targets"].items():
            lines.append(f"  {k}: {t['value']}   target {t['target']}")
        if w5.get("cold_fetch_phase_core_use"):
            lines.append("  core use in the cold read's fetch phase (CPU s / s): " + ", ".join(
                f"{k} {v}" for k, v in w5["cold_fetch_phase_core_use"].items()))
    if doc.get("search"):
        import search_bench
        lines.append("")
        lines += search_bench.render_lines(doc["search"])
    util = doc.get("utilisation")
    if util:
        lines.append("")
        lines.append("Core use during the throughput and W3 runs (CPU seconds / wall seconds of the load process; "
                     "1.00 = one core busy):")
        for k, v in util.items():
            lines.append(f"  {k}: " + ", ".join(f"{b} broker {x['broker']:.2f} load {x['load']:.2f}"
                                                 for b, x in v.items()))
    return "\n".join(lines)


def utilisation(results, brokers):
    out = {}
    for key in ("w1_p1", "w1_p16", "w1_rdkafka", "w1_rdkafka_p16", "w3", "w3_rdkafka", "w4_warm", "w4_cold",
                "w5_cold", "w5_warm", "w5_restart_warm", "w5_local", "w5_fanout", "w5_pressure"):
        per = {}
        for b in brokers:
            rs = [r for r in results.get(b, {}).get(key, []) if r.get("load_wall_s")]
            if rs:
                per[b] = {"broker": statistics.median(r["broker_cpu_s"] / r["interval_s"] for r in rs),
                          "load": statistics.median(r["load_cpu_s"] / r["load_wall_s"] for r in rs)}
        if per:
            out[key] = per
    return out


# --- main ----------------------------------------------------------------------------------------

def kafka_version():
    return os.environ.get("KAFKA_VERSION", "4.4.0")


def run():
    cfg = CONFIG
    scen = set(cfg["scenarios"])
    unknown = scen - set(ALL_SCENARIOS) - set(OPT_IN_SCENARIOS) - {"startup"}
    if unknown:
        sys.exit(f"unknown scenarios {sorted(unknown)}; known: {ALL_SCENARIOS + OPT_IN_SCENARIOS}")
    brokers = cfg["brokers"]
    run_dir = os.path.join(cfg["bench_dir"], time.strftime("run-%Y%m%d-%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    log(f"data dir {run_dir} (filesystem {fs_of(run_dir)}), cores {NCPU}, pinning "
        f"{'broker->' + BROKER_CPU + ' load->' + LOAD_CPU if PIN else 'off'}")
    log("config " + json.dumps({k: v for k, v in cfg.items() if k != "out"}))
    doc = {"generated": time.strftime("%Y-%m-%d %H:%M:%S %z"), "config": cfg, "kafka_version": kafka_version(),
           "host": host_info(), "run_dir": run_dir, "pinning": PIN, "results": {b: {} for b in brokers}}
    results = doc["results"]

    def add(b, key, r):
        results[b].setdefault(key, []).append(r)
        log(f"  {b} {key}: " + json.dumps(r))

    if "limits" in scen:
        doc["limits"] = limits(run_dir)
        log("limits " + json.dumps(doc["limits"]))

    cold = "w4" in scen and can_drop_caches()
    if "w4" in scen and not cold:
        log("W4 cold: /proc/sys/vm/drop_caches is not writable (needs root); cold-cache run skipped")

    # Phase 1: throughput (W1, W4) on a fresh broker per round, brokers alternating A B A B ...
    if scen & {"w1", "w4", "startup"}:
        for rnd in range(1, cfg["rounds"] + 1):
            for b in brokers:
                log(f"round {rnd}/{cfg['rounds']} {b}: throughput phase")
                work = os.path.join(run_dir, f"r{rnd}-{b}-tput")
                os.makedirs(work, exist_ok=True)
                subprocess.run(["sync"])
                br = make_broker(b, work)
                try:
                    add(b, "startup", {"ms": round(br.start() * 1000, 1)})
                    if "w1" in scen or "w4" in scen:
                        add(b, "w1_p1", w1_java(br, work, 1))
                    if "w1" in scen:
                        for p in cfg["w1_partitions"]:
                            if p != 1:
                                add(b, f"w1_p{p}", w1_java(br, work, p))
                        add(b, "w1_rdkafka", w1_rdkafka(br, work))
                        for p in cfg["w1_partitions"]:
                            if p != 1:
                                add(b, f"w1_rdkafka_p{p}", w1_rdkafka(br, work, p))
                    if "w4" in scen:
                        add(b, "w4_warm", w4_consume(br, work, "w1-p1", cfg["records"], f"warm-{rnd}"))
                        if cold:
                            drop_caches()
                            add(b, "w4_cold", w4_consume(br, work, "w1-p1", cfg["records"], f"cold-{rnd}"))
                finally:
                    br.stop()
                    shutil.rmtree(os.path.join(work, b), ignore_errors=True)

    if "restart" in scen and "chronik" in brokers:
        log("restart: start times with a full local log (chronik)")
        work = os.path.join(run_dir, "restart")
        os.makedirs(work, exist_ok=True)
        results["chronik"].setdefault("restart", []).append(restart_times(work))

    if "w5" in scen and "chronik" in brokers:
        log("W5: the remote tier (LocalStack S3) and its chunk cache (chronik)")
        work = os.path.join(run_dir, "w5")
        os.makedirs(work, exist_ok=True)
        subprocess.run(["sync"])
        try:
            doc["w5"] = w5_remote(work, add)
            log("W5 targets " + json.dumps(doc["w5"]["targets"]))
        except Exception as e:  # noqa: BLE001 - keep the other scenarios' results; fail at the end
            log(f"W5 failed: {e!r}")
            doc["w5"] = {"error": repr(e)}

    if "search" in scen and "chronik" in brokers:
        log("search: indexing throughput, queries over remote splits, freshness (chronik)")
        work = os.path.join(run_dir, "search")
        os.makedirs(work, exist_ok=True)
        subprocess.run(["sync"])
        import search_bench
        doc["search"] = {}  # filled step by step, so a failure keeps what was measured
        try:
            search_bench.run_search(work, add, doc["search"])
            log("search targets " + json.dumps(doc["search"].get("targets")))
        except Exception as e:  # noqa: BLE001 - keep the other scenarios' results; fail at the end
            log(f"search failed: {e!r}")
            doc["search"]["error"] = repr(e)

    # The fixed rate of W2/W3: half of Kafka's W1 single-partition rate.
    rate = cfg["rate"]
    if not rate:
        base = [r["records_per_s"] for r in results.get("kafka", {}).get("w1_p1", [])]
        if not base:
            base = [r["records_per_s"] for b in brokers for r in results[b].get("w1_p1", [])]
        rate = int(statistics.median(base) / 2) if base else 20000
    doc["rate"] = rate

    # Phase 2: latency at the fixed rate (W2, W3).
    if scen & {"w2", "w3"}:
        log(f"fixed rate for W2/W3: {rate} records/s ({rate * cfg['record_size'] / 1e6:.1f} MB/s)")
        for rnd in range(1, cfg["rounds"] + 1):
            for b in brokers:
                log(f"round {rnd}/{cfg['rounds']} {b}: latency phase")
                work = os.path.join(run_dir, f"r{rnd}-{b}-lat")
                os.makedirs(work, exist_ok=True)
                subprocess.run(["sync"])
                br = make_broker(b, work)
                try:
                    add(b, "startup", {"ms": round(br.start() * 1000, 1)})
                    if cfg["broker_warmup_records"] > 0:
                        create_topic(br.port, "warmup", 1)
                        r = producer_perf(br, work, "warmup", cfg["broker_warmup_records"], -1)
                        log(f"  {b} broker warm-up: {r['records']} records at {r['records_per_s']:.0f}/s")
                    if "w2" in scen:
                        add(b, "w2", w2_latency(br, work, rate))
                    if "w3" in scen:
                        add(b, "w3", w3_e2e(br, work, rate))
                        add(b, "w3_rdkafka", w3_rdkafka(br, work, rate))
                finally:
                    br.stop()
                    shutil.rmtree(os.path.join(work, b), ignore_errors=True)

    doc["summary"] = summarize(results, brokers)
    doc["utilisation"] = utilisation(results, brokers)
    os.makedirs(os.path.dirname(cfg["out"]), exist_ok=True)
    with open(cfg["out"], "w") as f:
        json.dump(doc, f, indent=2)
    print()
    print(render(doc))
    print(f"\nJSON: {cfg['out']}   logs: {run_dir}")
    if doc.get("w5", {}).get("error"):
        sys.exit(f"W5 failed: {doc['w5']['error']}")
    if doc.get("search", {}).get("error"):
        sys.exit(f"search failed: {doc['search']['error']}")


def fs_of(path):
    try:
        out = subprocess.run(["df", "--output=source,fstype", path], capture_output=True, text=True).stdout
        return " ".join(out.splitlines()[-1].split())
    except Exception:
        return "?"


def host_info():
    info = {"cores": NCPU, "kernel": os.uname().release}
    try:
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "report":
        with open(sys.argv[2] if len(sys.argv) > 2 else CONFIG["out"]) as f:
            print(render(json.load(f)))
        return
    if len(sys.argv) >= 2 and sys.argv[1] != "run":
        sys.exit(__doc__)
    run()


if __name__ == "__main__":
    main()
