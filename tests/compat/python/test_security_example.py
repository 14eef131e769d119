"""deploy/examples/secure/ as its README walks through it: gen-certs.sh, the broker run from the
output directory with the example's own chronik.toml, a SCRAM user made with kafka-configs, ACLs
with kafka-acls, producing and consuming as that user, consuming with the client certificate
(whose subject maps to User:client), and a search over HTTPS.

The example listens on 127.0.0.1:9093, 9094 and 9644. When one of them is taken on this machine,
the copied chronik.toml gets free ports instead (and the test says so)."""
import base64
import json
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from ports import free_port
from reliability_lib import port_open, wait_until
from security_lib import ANSI, GEN_CERTS, kafka_tool


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("secure-example")
    subprocess.run([str(GEN_CERTS), str(out)], check=True, capture_output=True)
    config = (out / "chronik.toml").read_text()
    ports = {}
    for port in (9093, 9094, 9644):
        new = port if not port_open(port) else free_port()
        if new != port:
            print(f"port {port} is taken here; the example runs on {new} instead")
            config = config.replace(f"127.0.0.1:{port}", f"127.0.0.1:{new}")
        ports[port] = new
    (out / "chronik.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
    log = open(out / "chronik.log", "wb")
    proc = subprocess.Popen([os.environ["CHRONIK_BIN_PATH"], "serve", "--config", "chronik.toml"],
                            cwd=out, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)

    def ready():
        assert proc.poll() is None, ANSI.sub("", (out / "chronik.log").read_text())[-3000:]
        return "broker ready" in (out / "chronik.log").read_text()
    try:
        wait_until(ready, 60, what="the example broker")
        for p in ports.values():
            wait_until(lambda: port_open(p), 30, what=f"port {p}")
        yield out, ports
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def admin_tool(example, main_class, *args):
    out, ports = example
    return kafka_tool(main_class, "--bootstrap-server", f"127.0.0.1:{ports[9093]}",
                      "--command-config", str(out / "admin.properties"), *args)


def alice(example, **extra):
    out, ports = example
    return {"bootstrap.servers": f"127.0.0.1:{ports[9093]}", "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(out / "ca.pem"), "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "alice", "sasl.password": "alice-secret", **extra}


def client_cert(example, **extra):
    out, ports = example
    return {"bootstrap.servers": f"127.0.0.1:{ports[9094]}", "security.protocol": "SSL",
            "ssl.ca.location": str(out / "ca.pem"), "ssl.certificate.location": str(out / "client.pem"),
            "ssl.key.location": str(out / "client.key"), **extra}


def consume(conf, group, n, timeout=30):
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    got = []
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and len(got) < n:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got.append(json.loads(m.value()))
    finally:
        c.close()
    return got


def https(example, path, user=None, password=None):
    out, ports = example
    req = urllib.request.Request(f"https://127.0.0.1:{ports[9644]}{path}")
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    ctx = ssl.create_default_context(cafile=str(out / "ca.pem"))
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_secure_example_runs_as_its_readme_says(example):
    out, _ = example
    # No password of the example is in the repository: gen-certs.sh made it.
    admin_password = (out / "admin.password").read_text().strip()
    assert len(admin_password) >= 20
    # 3. A SCRAM user, a searchable topic, ACLs.
    admin_tool(example, "org.apache.kafka.tools.ConfigCommand", "--alter", "--entity-type", "users",
               "--entity-name", "alice", "--add-config", "SCRAM-SHA-512=[password=alice-secret]")
    admin_tool(example, "org.apache.kafka.tools.TopicCommand", "--create", "--topic", "orders",
               "--partitions", "3")
    # Before any ACL, alice is refused.
    p = Producer(alice(example, **{"message.timeout.ms": 5000}))
    errors = []
    p.produce("orders", value=b"{}", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    admin_tool(example, "org.apache.kafka.tools.AclCommand", "--add", "--allow-principal", "User:alice",
               "--producer", "--consumer", "--topic", "orders", "--group", "orders-app")
    # 4. Produce and consume as alice.
    run = uuid.uuid4().hex[:6]
    p = Producer(alice(example))
    for order, status in ((1, "paid"), (2, "refunded")):
        p.produce("orders", key=str(order).encode(),
                  value=json.dumps({"order": order, "status": status, "run": run}).encode())
    assert p.flush(30) == 0
    got = consume(alice(example), "orders-app", 2)
    assert sorted(o["order"] for o in got) == [1, 2]
    # 5. The client certificate is User:client: refused until it has its ACL.
    with pytest.raises(KafkaException) as e:
        consume(client_cert(example), "reports", 1, timeout=10)
    assert e.value.args[0].code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED), e.value
    admin_tool(example, "org.apache.kafka.tools.AclCommand", "--add", "--allow-principal", "User:client",
               "--operation", "Read", "--operation", "Describe", "--topic", "orders", "--group", "reports")
    got = consume(client_cert(example), "reports", 2)
    assert sorted(o["order"] for o in got) == [1, 2]
    # 6. Search as alice; health is open; no credentials is 401.
    deadline = time.time() + 60
    while True:
        status, body = https(example, "/topics/orders/_search?q=json.status:refunded", "alice", "alice-secret")
        if status == 200 and body["total"] == 1:
            break
        assert time.time() < deadline, (status, body)
        time.sleep(0.5)
    assert body["hits"][0]["key"] == "2"
    assert https(example, "/health")[0] == 200
    assert https(example, "/topics/orders/_search?q=paid")[0] == 401
    assert https(example, "/topics/orders/_search?q=paid", "alice", "wrong")[0] == 401
    assert re.search(r"kafka listener ready.*MTLS", ANSI.sub("", (out / "chronik.log").read_text()))
