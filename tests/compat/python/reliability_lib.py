"""Helpers of the reliability suite (test_reliability_*.py): a chronik broker of the test's own
whose remote tier is an S3 server (LocalStack) on loopback, killed with SIGKILL and restarted on
the same data directory; offsets of the tiered range; the search API on the admin port.

Environment (set by tests/compat/reliability.sh):
  CHRONIK_BIN_PATH       the broker binary (required; the suite is skipped without it)
  REMOTE_TIER_ENDPOINT   http://127.0.0.1:PORT of the S3 server (LocalStack), bucket `chronik`
"""
import json
import os
import random
import signal
import socket
import string
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import OffsetSpec as KpOffsetSpec
from ports import free_port

BUCKET = "chronik"
RUN_ID = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{''.join(random.choices(string.ascii_lowercase, k=5))}"



def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name, default):
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


class Broker:
    """One chronik process on a persistent data directory, tiered to `s3_endpoint`."""

    def __init__(self, workdir, s3_endpoint, prefix, extra_env=None):
        self.workdir = Path(workdir)
        self.bin = os.environ["CHRONIK_BIN_PATH"]
        self.port = free_port()
        self.http_port = free_port()
        self.s3_endpoint = s3_endpoint
        self.tier_url = f"s3://{BUCKET}/{prefix}"
        self.extra_env = extra_env or {}
        self.proc = None
        self.starts = 0
        self.log_path = self.workdir / "chronik.log"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout=60):
        # The broker refuses unknown CHRONIK_* variables: none of the test's own go through.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CHRONIK_") and k not in ("AWS_SESSION_TOKEN", "AWS_PROFILE")}
        env.update({
            "CHRONIK_TIERING_URL": self.tier_url,
            "CHRONIK_TIERING_ENDPOINT": self.s3_endpoint,
            "CHRONIK_TIERING_REGION": "us-east-1",
            "CHRONIK_TIERING_ALLOW_HTTP": "true",
            "CHRONIK_TIERING_INTERVAL_MS": "200",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [self.bin, "serve", "--listen", self.bootstrap,
                 "--http-listen", f"127.0.0.1:{self.http_port}", "--data-dir", str(self.workdir / "data")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
        self.starts += 1
        started = time.monotonic()
        while not port_open(self.port):
            assert self.proc.poll() is None, f"chronik exited with {self.proc.returncode}; see {self.log_path}"
            assert time.monotonic() - started < timeout, f"chronik did not listen within {timeout} s"
            time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2})
        while True:
            try:
                if admin.list_topics(timeout=2).brokers:
                    break
            except Exception:  # noqa: BLE001 - retried until the deadline
                pass
            assert time.monotonic() - started < timeout, "broker did not answer metadata"
            time.sleep(0.1)
        return time.monotonic() - started

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"broker pid {self.proc.pid} survived SIGKILL") from exc

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_count(self, needle):
        try:
            return self.log_path.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def get_json(self, path, timeout=10):
        with urllib.request.urlopen(self.http + path, timeout=timeout) as r:
            return json.load(r)

    def post_json(self, path, body, timeout=30):
        req = urllib.request.Request(self.http + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    def metrics(self):
        """The admin port's Prometheus text as {name{labels}: value}."""
        with urllib.request.urlopen(self.http + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out


class TierOffsets:
    """ListOffsets earliest-local (-4) and latest-tiered (-5), which confluent-kafka lacks."""

    def __init__(self, bootstrap):
        self.client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)

    def get(self, topic, partition):
        tp = KpTopicPartition(topic, partition)
        local = self.client.list_partition_offsets({tp: KpOffsetSpec.EARLIEST_LOCAL})[tp].offset
        tiered = self.client.list_partition_offsets({tp: KpOffsetSpec.LATEST_TIERED})[tp].offset
        return local, tiered

    def close(self):
        self.client.close()


def wait_until(predicate, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def http_error_text(exc):
    if isinstance(exc, urllib.error.HTTPError):
        try:
            return f"{exc.code} {exc.read()[:300]!r}"
        except OSError:
            return str(exc.code)
    return repr(exc)
