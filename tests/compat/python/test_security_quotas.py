"""Client quotas with real clients: kafka-configs sets and describes them (users, clients,
defaults, a user's client), and Kafka's producer and consumer run at the rate a quota sets while
an unthrottled client on the same broker is not slowed.

Each test starts its own broker (PLAINTEXT, and SASL_PLAINTEXT with PLAIN users where quotas
per user are checked) and stops it in `finally`; every client run is bounded in time.
"""
import re
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from security_lib import SecureBroker, confluent_conf, java_properties, kafka_tool, make_certs, \
    write_properties

pytestmark = pytest.mark.chronik_only

CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
TOPICS = "org.apache.kafka.tools.TopicCommand"
RATE = 1024 * 1024
# As in Kafka, a client that was idle may send up to (window_num - 1) windows' worth of its quota
# in a first burst, and a greedy producer runs in cycles of about window_num windows (a burst when
# the oldest sample leaves the span, then throttles). The producer test uses windows of 100 ms, so
# a 25 s run spans many cycles and its mean is the quota's. The consumer test keeps the default
# windows: a consumer's fetches (1 MB per partition) are then small against the 10 MB a window
# span allows, as they are in practice; with 100 ms windows one fetch would be the whole span's
# allowance and every other fetch would come back throttled.
QUOTA = ""
SHORT_WINDOWS = "[quota]\nwindow_num = 11\nwindow_size_ms = 100\n"


def plaintext_broker(tmp_path, extra=""):
    certs = make_certs(tmp_path / "certs")
    return SecureBroker(tmp_path / "broker", certs,
                        [{"name": "PLAIN", "protocol": "PLAINTEXT"}], extra=QUOTA + extra)


def configs(broker, *args, check=True, props=None):
    cmd = ["--bootstrap-server", broker.bootstrap(props[0] if props else "PLAIN")]
    if props:
        cmd += ["--command-config", props[1]]
    return kafka_tool(CONFIG_COMMAND, *cmd, *args, timeout=60, check=check)


def quota_line(out, kind, name):
    """The values kafka-configs printed for one entity, as a dict."""
    for line in out.splitlines():
        if f"Quota configs for {kind} '{name}' are " in line or \
                (name is None and f"Quota configs for the default {kind} are " in line):
            values = line.split(" are ", 1)[1]
            return dict((k, float(v)) for k, v in
                        (kv.split("=", 1) for kv in values.split(", ") if kv))
    return None


def test_kafka_configs_sets_and_describes_quotas(tmp_path):
    broker = plaintext_broker(tmp_path)
    try:
        broker.start()
        # A client id.
        r = configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "c1",
                    "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152")
        assert "Completed updating config for client c1" in r.stdout, r.stdout
        r = configs(broker, "--describe", "--entity-type", "clients", "--entity-name", "c1")
        assert quota_line(r.stdout, "client-id", "c1") == {
            "producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0}, r.stdout
        # A user (its describe also asks for SCRAM credentials, which may be unsupported here:
        # the quota line is printed before that).
        configs(broker, "--alter", "--entity-type", "users", "--entity-name", "alice",
                "--add-config", "request_percentage=50")
        r = configs(broker, "--describe", "--entity-type", "users", "--entity-name", "alice",
                    check=False)
        assert quota_line(r.stdout, "user-principal", "alice") == {"request_percentage": 50.0}, \
            r.stdout + r.stderr
        # The defaults.
        configs(broker, "--alter", "--entity-type", "users", "--entity-default",
                "--add-config", "producer_byte_rate=4096")
        configs(broker, "--alter", "--entity-type", "clients", "--entity-default",
                "--add-config", "consumer_byte_rate=8192")
        r = configs(broker, "--describe", "--entity-type", "users", "--entity-default")
        assert quota_line(r.stdout, "user-principal", None) == {"producer_byte_rate": 4096.0}, \
            r.stdout
        r = configs(broker, "--describe", "--entity-type", "clients", "--entity-default")
        assert quota_line(r.stdout, "client-id", None) == {"consumer_byte_rate": 8192.0}, r.stdout
        # A user's client id.
        configs(broker, "--alter", "--entity-type", "users", "--entity-name", "alice",
                "--entity-type", "clients", "--entity-name", "app",
                "--add-config", "producer_byte_rate=65536")
        r = configs(broker, "--describe", "--entity-type", "users", "--entity-name", "alice",
                    "--entity-type", "clients", "--entity-name", "app")
        assert "Quota configs for user-principal 'alice', client-id 'app' are " \
               "producer_byte_rate=65536.0" in r.stdout, r.stdout
        # Every client id: c1 and the default.
        r = configs(broker, "--describe", "--entity-type", "clients")
        assert quota_line(r.stdout, "client-id", "c1") is not None, r.stdout
        assert quota_line(r.stdout, "client-id", None) is not None, r.stdout
        assert "alice" not in r.stdout, r.stdout
        # Removal.
        configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "c1",
                "--delete-config", "consumer_byte_rate")
        r = configs(broker, "--describe", "--entity-type", "clients", "--entity-name", "c1")
        assert quota_line(r.stdout, "client-id", "c1") == {"producer_byte_rate": 1048576.0}, \
            r.stdout
        # A byte rate must be a whole number: the broker refuses it with INVALID_REQUEST.
        r = configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "c2",
                    "--add-config", "producer_byte_rate=1.5", check=False)
        assert r.returncode != 0 and "InvalidRequestException" in (r.stdout + r.stderr), \
            r.stdout + r.stderr
        # The quotas survive a restart (they are in the metadata log).
        broker.stop()
        broker.start()
        r = configs(broker, "--describe", "--entity-type", "clients", "--entity-name", "c1")
        assert quota_line(r.stdout, "client-id", "c1") == {"producer_byte_rate": 1048576.0}, \
            r.stdout
    finally:
        broker.stop()


INTERVAL = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec \([\d.]+ MB/sec\), "
                      r"[\d.]+ ms avg latency, [\d.]+ ms max latency\.$", re.M)
TOTAL = re.compile(r"records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def perf_test(broker, topic, client_id, records, warmup=0, timeout=90):
    args = ["--topic", topic, "--num-records", str(records), "--record-size", "1000",
            "--throughput", "-1", "--producer-props",
            f"bootstrap.servers={broker.bootstrap('PLAIN')}", f"client.id={client_id}",
            "acks=1", "linger.ms=5"]
    if warmup:
        args += ["--warmup-records", str(warmup)]
    started = time.monotonic()
    r = kafka_tool(PRODUCER_PERF, *args, timeout=timeout)
    return r.stdout, time.monotonic() - started


def create_topic(broker, topic, partitions=1):
    kafka_tool(TOPICS, "--bootstrap-server", broker.bootstrap("PLAIN"), "--create", "--topic",
               topic, "--partitions", str(partitions), "--replication-factor", "1", timeout=60)


def test_producer_byte_rate_is_enforced(tmp_path):
    broker = plaintext_broker(tmp_path, SHORT_WINDOWS)
    try:
        broker.start()
        create_topic(broker, "quota-produce")
        configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "slow-producer",
                "--add-config", f"producer_byte_rate={RATE}")
        results = {}

        def unthrottled():
            # Started once the throttled producer is past its first burst.
            time.sleep(8)
            results["fast"] = perf_test(broker, "quota-produce", "fast-producer", 30_000,
                                        timeout=60)

        other = threading.Thread(target=unthrottled)
        other.start()
        # ~27 MB: about 27 s at the quota. The tool reports every 5 s; the first report holds
        # the first burst, the later ones (about 20 s) are the steady rate. The quota counts
        # request bytes, the tool payload bytes (about 1 % less).
        out, elapsed = perf_test(broker, "quota-produce", "slow-producer", 27_000, timeout=90)
        other.join(90)
        print(out)
        reports = [(int(n), float(r)) for n, r in INTERVAL.findall(out)]
        assert len(reports) >= 4, out
        steady = reports[1:]
        records = sum(n for n, _ in steady)
        seconds = sum(n / r for n, r in steady if r > 0)
        mb_s = records * 1000 / seconds / RATE
        print(f"throttled producer: {mb_s:.3f} MB/s over {seconds:.1f} s after the first report "
              f"({elapsed:.1f} s in all)")
        assert 0.9 <= mb_s <= 1.1, out
        fast_out, fast_elapsed = results["fast"]
        fast = float(TOTAL.findall(fast_out)[-1][1])
        print(f"unthrottled producer meanwhile: {fast:.1f} MB/s")
        assert fast > 5.0, fast_out
    finally:
        broker.stop()


def consume_for(broker, topic, client_id, seconds, group):
    """Bytes of record values read per second by a consumer in `seconds`: a list of
    (elapsed, total bytes) samples."""
    c = Consumer(confluent_conf(broker, "PLAIN", **{
        "group.id": group, "client.id": client_id, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "fetch.max.bytes": 52428800}))
    samples = []
    try:
        c.subscribe([topic])
        total = 0
        start = None
        deadline = time.monotonic() + seconds + 20
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.5)
            now = time.monotonic()
            for m in msgs:
                if m.error() is None:
                    if start is None:
                        start = now
                    total += len(m.value())
            if start is not None:
                samples.append((now - start, total))
                if now - start >= seconds:
                    break
    finally:
        c.close()
    return samples


def rate_between(samples, t0, t1):
    """Bytes per second between the samples nearest t0 and t1."""
    a = min(samples, key=lambda s: abs(s[0] - t0))
    b = min(samples, key=lambda s: abs(s[0] - t1))
    return (b[1] - a[1]) / (b[0] - a[0])


def test_consumer_byte_rate_is_enforced(tmp_path):
    broker = plaintext_broker(tmp_path)
    try:
        broker.start()
        create_topic(broker, "quota-fetch")
        perf_test(broker, "quota-fetch", "loader", 60_000, timeout=120)
        configs(broker, "--alter", "--entity-type", "clients", "--entity-name", "slow-consumer",
                "--add-config", f"consumer_byte_rate={RATE}")
        results = {}

        def unthrottled():
            time.sleep(12)
            results["fast"] = consume_for(broker, "quota-fetch", "fast-consumer", 5,
                                          f"fast-{uuid.uuid4()}")

        other = threading.Thread(target=unthrottled)
        other.start()
        samples = consume_for(broker, "quota-fetch", "slow-consumer", 34,
                              f"slow-{uuid.uuid4()}")
        other.join(60)
        # After the first burst (10 windows' worth: 10 MB), over two window spans.
        rate = rate_between(samples, 12, 34) / RATE
        print(f"throttled consumer: {rate:.3f} MB/s between 12 s and 34 s; "
              f"{samples[-1][1] / samples[-1][0] / RATE:.3f} MB/s in all")
        assert 0.9 <= rate <= 1.1, samples[::20]
        fast = results["fast"]
        fast_rate = fast[-1][1] / max(fast[-1][0], 0.001) / RATE
        print(f"unthrottled consumer meanwhile: {fast_rate:.1f} MB/s ({fast[-1][1]} bytes)")
        assert fast[-1][1] >= 50_000_000 or fast_rate > 5.0, fast[-5:]
    finally:
        broker.stop()


def test_user_quota_over_sasl(tmp_path):
    """A quota on a SASL user applies to that user's connections only; unauthenticated
    connections count as user ANONYMOUS."""
    certs = make_certs(tmp_path / "certs")
    users = certs / "plain-users.txt"
    users.write_text(users.read_text() + "slowuser:slowpass\nfastuser:fastpass\n")
    broker = SecureBroker(tmp_path / "broker", certs,
                          [{"name": "PLAIN", "protocol": "PLAINTEXT"},
                           {"name": "SASL", "protocol": "SASL_PLAINTEXT",
                            "sasl_mechanisms": ["PLAIN"]}], extra=QUOTA)
    try:
        broker.start()
        create_topic(broker, "quota-user")
        admin = write_properties(tmp_path / "admin.properties",
                                 java_properties(broker, "SASL", "PLAIN", "admin",
                                                 broker.admin_password))
        configs(broker, "--alter", "--entity-type", "users", "--entity-name", "slowuser",
                "--add-config", "producer_byte_rate=102400", props=("SASL", admin))
        configs(broker, "--alter", "--entity-type", "users", "--entity-name", "ANONYMOUS",
                "--add-config", "producer_byte_rate=102400")

        def produce(conf, seconds=6):
            """Bytes per second delivered in `seconds` of producing as fast as allowed."""
            p = Producer({**conf, "linger.ms": 5, "queue.buffering.max.kbytes": 1024})
            payload = b"x" * 1000
            delivered = [0]

            def done(err, _msg):
                if err is None:
                    delivered[0] += 1000
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    p.produce("quota-user", payload, on_delivery=done)
                except BufferError:
                    p.poll(0.05)
                p.poll(0)
            got = delivered[0]
            p.purge()
            p.flush(10)
            return got / seconds

        slow = produce(confluent_conf(broker, "SASL", "PLAIN", "slowuser", "slowpass"))
        fast = produce(confluent_conf(broker, "SASL", "PLAIN", "fastuser", "fastpass"))
        anon = produce(confluent_conf(broker, "PLAIN"))
        print(f"slowuser {slow / 1024:.0f} KB/s, fastuser {fast / 1024:.0f} KB/s, "
              f"ANONYMOUS {anon / 1024:.0f} KB/s")
        # 100 KB/s for ~6 s after a first burst of 10 windows: well under 1 MB/s in all.
        assert slow < 400 * 1024, slow
        assert anon < 400 * 1024, anon
        assert fast > 4 * 1024 * 1024, fast
    finally:
        broker.stop()
