"""Authentication with confluent-kafka (librdkafka): TLS, mTLS, SASL PLAIN, SCRAM-SHA-256/512 and
OAUTHBEARER over SASL_SSL and SASL_PLAINTEXT, the failures that must stay clean (a wrong
password, an expired token, an unknown client certificate, a plaintext hello on a TLS port), and
certificates replaced on disk while clients keep producing.

One broker serves the module; a second one is started for the OAUTHBEARER settings."""
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from security_lib import Issuer, SecureBroker, confluent_conf, make_certs

LISTENERS = [
    {"name": "SASL_SSL", "protocol": "SASL_SSL"},
    {"name": "SASL_PLAIN", "protocol": "SASL_PLAINTEXT", "sasl_mechanisms": ["PLAIN", "SCRAM-SHA-256"]},
    {"name": "MTLS", "protocol": "SSL", "client_auth": "required"},
    {"name": "TLS", "protocol": "SSL"},
    {"name": "PLAIN", "protocol": "PLAINTEXT"},
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory, certs):
    b = SecureBroker(tmp_path_factory.mktemp("broker"), certs, LISTENERS)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def admin_conf(broker, listener="SASL_SSL"):
    return confluent_conf(broker, listener, "PLAIN", "admin", broker.admin_password)


def create_topic(conf, topic):
    admin = AdminClient(conf)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(20)
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, e


def roundtrip(conf, topic, n=20, tag=None):
    """Creates `topic` if needed (with `conf`), produces `n` records and reads them back."""
    tag = tag or uuid.uuid4().hex[:8]
    create_topic(conf, topic)
    errors = []
    p = Producer({**conf, "acks": "all", "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, key=f"{tag}-{i}".encode(), value=f"v{i}".encode(),
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(30) == 0
    assert not errors, errors
    c = Consumer({**conf, "group.id": f"g-{tag}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    seen = []
    deadline = time.time() + 30
    while time.time() < deadline and len(seen) < n:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        if m.key().decode().startswith(tag):
            seen.append(m.key().decode())
    c.close()
    assert seen == [f"{tag}-{i}" for i in range(n)]


def expect_auth_failure(conf, what, timeout=4):
    """A metadata request with `conf` fails with an authentication error (librdkafka reports
    it through its error callback), within `timeout` seconds."""
    seen = []
    conf = {**conf, "error_cb": lambda e: seen.append(e)}
    admin = AdminClient(conf)
    with pytest.raises(KafkaException) as raised:
        admin.list_topics(timeout=timeout)
    seen.append(raised.value.args[0])
    admin.poll(0.5)  # delivers the error callbacks
    return seen


def test_scram_users_are_created_described_and_deleted_with_the_admin_api(broker):
    admin = AdminClient(admin_conf(broker))
    fs = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"carol-pw"),
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-pw"),
        UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"dave-pw"),
    ])
    for f in fs.values():
        f.result(20)
    described = admin.describe_user_scram_credentials(["carol", "dave"])
    carol = {i.mechanism: i.iterations for i in described["carol"].result(20).scram_credential_infos}
    assert carol == {ScramMechanism.SCRAM_SHA_256: 8192, ScramMechanism.SCRAM_SHA_512: 4096}
    everyone = admin.describe_user_scram_credentials().result(20)
    assert {"carol", "dave"} <= set(everyone)
    # Iterations below SCRAM's minimum are refused with Kafka's error.
    bad = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"x")])
    with pytest.raises(KafkaException) as e:
        bad["erin"].result(20)
    assert e.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    # Deleting dave's only credential removes the user; describing him then is RESOURCE_NOT_FOUND.
    for f in admin.alter_user_scram_credentials([
            UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_512)]).values():
        f.result(20)
    with pytest.raises(KafkaException) as e:
        admin.describe_user_scram_credentials(["dave"])["dave"].result(20)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    # Deleting what does not exist is RESOURCE_NOT_FOUND too.
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials([
            UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_512)])["dave"].result(20)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND


@pytest.mark.parametrize("listener,mechanism,user,password", [
    ("SASL_SSL", "SCRAM-SHA-256", "carol", "carol-pw"),
    ("SASL_SSL", "SCRAM-SHA-512", "carol", "carol-pw"),
    ("SASL_SSL", "PLAIN", "admin", None),
    ("SASL_SSL", "PLAIN", "carol", "carol-pw"),  # PLAIN with a SCRAM user's password
    ("SASL_PLAIN", "SCRAM-SHA-256", "carol", "carol-pw"),
    ("SASL_PLAIN", "PLAIN", "admin", None),
])
def test_sasl_mechanisms_produce_consume_and_administer(broker, listener, mechanism, user, password):
    ensure_scram_users(broker)
    password = password or broker.admin_password
    conf = confluent_conf(broker, listener, mechanism, user, password)
    roundtrip(conf, f"sasl-{listener}-{mechanism}-{user}".lower())


def ensure_scram_users(broker):
    admin = AdminClient(admin_conf(broker))
    have = admin.describe_user_scram_credentials().result(20)
    if "carol" not in have:
        for f in admin.alter_user_scram_credentials([
            UserScramCredentialUpsertion("carol", ScramCredentialInfo(m, 4096), b"carol-pw")
            for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]).values():
            f.result(20)


def test_tls_and_mtls_listeners_serve_clients(broker):
    roundtrip(confluent_conf(broker, "TLS"), "tls-plain-client")
    roundtrip(confluent_conf(broker, "MTLS", cert="client"), "mtls-client")


def test_bad_credentials_fail_cleanly_and_disturb_nobody(broker):
    ensure_scram_users(broker)
    # A consumer of another user keeps reading while the bad clients come and go.
    good = confluent_conf(broker, "SASL_SSL", "SCRAM-SHA-512", "carol", "carol-pw")
    topic = "undisturbed"
    stop = threading.Event()
    problems = []

    def keep_producing():
        p = Producer({**good, "acks": "all"})
        i = 0
        while not stop.is_set():
            p.produce(topic, value=str(i).encode(),
                      on_delivery=lambda err, msg: problems.append(err) if err else None)
            p.poll(0)
            i += 1
            time.sleep(0.01)
        assert p.flush(30) == 0
        problems.append(("produced", i))
    create_topic(good, topic)
    t = threading.Thread(target=keep_producing)
    t.start()
    try:
        cases = [
            ("wrong SCRAM-SHA-256 password", confluent_conf(broker, "SASL_SSL", "SCRAM-SHA-256", "carol", "nope")),
            ("wrong SCRAM-SHA-512 password", confluent_conf(broker, "SASL_SSL", "SCRAM-SHA-512", "carol", "nope")),
            ("unknown SCRAM user", confluent_conf(broker, "SASL_SSL", "SCRAM-SHA-512", "mallory", "nope")),
            ("wrong PLAIN password", confluent_conf(broker, "SASL_SSL", "PLAIN", "admin", "nope")),
            ("mechanism the listener does not offer",
             confluent_conf(broker, "SASL_PLAIN", "SCRAM-SHA-512", "carol", "carol-pw")),
            ("client certificate of another CA", confluent_conf(broker, "MTLS", cert="rogue")),
            ("no client certificate on an mTLS listener", confluent_conf(broker, "MTLS")),
        ]
        for what, conf in cases:
            errors = expect_auth_failure(conf, what)
            codes = {e.code() for e in errors}
            assert codes & {KafkaError._AUTHENTICATION, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                            KafkaError._SSL}, (what, errors)
        # SASL credentials refused are reported as authentication failures, with the reason.
        errors = expect_auth_failure(confluent_conf(broker, "SASL_SSL", "SCRAM-SHA-256", "carol", "nope"), "x")
        assert any(e.code() == KafkaError._AUTHENTICATION and "Invalid username or password" in e.str()
                   for e in errors), errors
    finally:
        stop.set()
        t.join(60)
    assert problems and problems[-1][0] == "produced", problems
    assert all(isinstance(p, tuple) for p in problems), problems
    assert broker.alive()


def raw_exchange(port, payload, tls=False, timeout=5):
    """Sends `payload` to the listener and returns what comes back before the broker closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


def api_versions_frame(correlation=7):
    body = (18).to_bytes(2, "big") + (3).to_bytes(2, "big") + correlation.to_bytes(4, "big") \
        + (4).to_bytes(2, "big") + b"test" + b"\x00" + b"\x02c\x02v\x00"
    return len(body).to_bytes(4, "big") + body


def metadata_frame(correlation=9):
    body = (3).to_bytes(2, "big") + (1).to_bytes(2, "big") + correlation.to_bytes(4, "big") \
        + (4).to_bytes(2, "big") + b"test" + (-1).to_bytes(4, "big", signed=True)
    return len(body).to_bytes(4, "big") + body


def test_plaintext_on_tls_ports_and_requests_before_sasl_are_refused(broker):
    # A Kafka request in the clear on a TLS port: the handshake fails; the broker answers with
    # a TLS alert at most, never a Kafka response, and keeps serving.
    for name in ("TLS", "MTLS", "SASL_SSL"):
        reply = raw_exchange(broker.port(name), api_versions_frame())
        assert not reply or reply[0] == 0x15, (name, reply[:16])  # 0x15: a TLS alert record
    # On a SASL listener ApiVersions is answered, but a Metadata request before authenticating
    # closes the connection without an answer.
    port = broker.port("SASL_PLAIN")
    reply = raw_exchange(port, api_versions_frame(11))
    assert reply[4:8] == (11).to_bytes(4, "big")
    reply = raw_exchange(port, metadata_frame())
    assert reply == b""
    # Everyone else is served as before.
    roundtrip(confluent_conf(broker, "PLAIN"), "plain-after-abuse")
    roundtrip(confluent_conf(broker, "SASL_SSL", "PLAIN", "admin", broker.admin_password), "sasl-after-abuse")


def served_certificate_serial(port, cafile):
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("=", 1)[1]


def test_certificates_replaced_on_disk_are_used_without_a_restart_or_a_dropped_connection(broker, tmp_path):
    certs = broker.certs
    before = served_certificate_serial(broker.port("TLS"), certs / "ca.pem")
    # A new broker certificate from the same CA.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for f in ("ca.pem", "ca.key", "admin.password"):
        shutil.copy(certs / f, fresh / f)
    from security_lib import GEN_CERTS
    subprocess.run([str(GEN_CERTS), str(fresh)], check=True, capture_output=True)
    topic = "rotation"
    conf = confluent_conf(broker, "SASL_SSL", "PLAIN", "admin", broker.admin_password)
    create_topic(conf, topic)
    errors, delivered = [], []
    p = Producer({**conf, "acks": "all", "enable.idempotence": True,
                  "error_cb": lambda e: errors.append(e)})
    deadline = time.time() + 6
    swapped = False
    i = 0
    while time.time() < deadline:
        p.produce(topic, value=str(i).encode(),
                  on_delivery=lambda err, msg: errors.append(err) if err else delivered.append(1))
        p.poll(0)
        i += 1
        if not swapped and time.time() > deadline - 4:
            # Replace the pair as an operator would: new files renamed over the old ones.
            for name in ("broker.key", "broker.pem"):
                shutil.copy(fresh / name, certs / (name + ".new"))
            for name in ("broker.key", "broker.pem"):
                (certs / (name + ".new")).rename(certs / name)
            swapped = True
        time.sleep(0.005)
    assert p.flush(30) == 0
    assert not errors, errors
    assert len(delivered) == i
    after = None
    wait_deadline = time.time() + 10
    while time.time() < wait_deadline:
        after = served_certificate_serial(broker.port("TLS"), certs / "ca.pem")
        if after != before:
            break
        time.sleep(0.3)
    assert after != before, "the new certificate is not served"
    roundtrip(confluent_conf(broker, "MTLS", cert="client"), "after-rotation")


# --- OAUTHBEARER ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def oauth_broker(tmp_path_factory, certs):
    work = tmp_path_factory.mktemp("oauth")
    issuer = Issuer(work)
    jwks = work / "jwks.json"
    jwks.write_text(json.dumps({"keys": [issuer.jwk]}))
    b = SecureBroker(work, certs, [
        {"name": "OAUTH", "protocol": "SASL_SSL", "sasl_mechanisms": ["OAUTHBEARER"]},
    ], sasl="\n".join([
        f"oauthbearer_jwks = \"{jwks}\"",
        "oauthbearer_issuer = \"https://issuer.example\"",
        "oauthbearer_audience = [\"chronik\"]",
        "oauthbearer_clock_skew_s = 0",
    ]))
    b.start()
    b.issuer = issuer
    try:
        yield b
    finally:
        b.stop()


def other_dir(broker):
    d = broker.work / "other-issuer"
    d.mkdir(exist_ok=True)
    return d


def oauth_conf(broker, make_token, trust_expiry=True):
    """`trust_expiry=False` tells librdkafka a far expiry whatever the token says: it refuses a
    token it believes expired, and the broker is the one that must judge it."""
    conf = confluent_conf(broker, "OAUTH")
    conf["sasl.mechanisms"] = "OAUTHBEARER"

    def cb(_config):
        token, expiry = make_token()
        if not trust_expiry:
            expiry = max(expiry, time.time() + 300)
        return token, float(expiry)
    conf["oauth_cb"] = cb
    return conf


def test_oauthbearer_tokens_authenticate_and_bad_ones_fail(oauth_broker):
    issuer = oauth_broker.issuer
    roundtrip(oauth_conf(oauth_broker, lambda: issuer.token("svc-orders")), "oauth-ok")
    bad_tokens = {
        "expired": lambda: issuer.token("svc", lifetime_s=-60),
        "wrong audience": lambda: issuer.token("svc", aud="someone-else"),
        "wrong issuer": lambda: issuer.token("svc", iss="https://evil.example"),
        "unknown key": lambda: Issuer(other_dir(oauth_broker), kid="k1").token("svc"),
    }
    for what, make in bad_tokens.items():
        token = make()
        conf = oauth_conf(oauth_broker, lambda t=token: t, trust_expiry=False)
        errors = expect_auth_failure(conf, what)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), (what, errors)
    assert oauth_broker.alive()


def test_oauthbearer_sessions_end_with_the_token_and_clients_reauthenticate(oauth_broker):
    """Tokens live 6 s; a producer keeps producing for 15 s over one connection, getting a new
    token each time (KIP-368 re-authentication). Every record is delivered."""
    issuer = oauth_broker.issuer
    issued = []

    def make():
        issued.append(time.time())
        return issuer.token("svc-short", lifetime_s=6)
    conf = oauth_conf(oauth_broker, make)
    topic = "oauth-reauth"
    create_topic(conf, topic)
    errors, delivered = [], []
    p = Producer({**conf, "acks": "all", "error_cb": lambda e: errors.append(e)})
    deadline = time.time() + 15
    i = 0
    while time.time() < deadline:
        p.produce(topic, value=str(i).encode(),
                  on_delivery=lambda err, msg: errors.append(err) if err else delivered.append(1))
        p.poll(0.05)
        i += 1
    assert p.flush(30) == 0
    assert not errors, errors
    assert len(delivered) == i
    assert len(issued) >= 3, f"tokens issued: {len(issued)}"
