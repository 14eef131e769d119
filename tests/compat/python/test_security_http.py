"""The admin HTTP port secured: HTTPS with the listeners' certificate, HTTP basic (a PLAIN user,
or a SCRAM user's password) or a bearer JWT, open health paths, and a search that needs READ on
the topic (ACLs from Kafka's AdminClient). Clients: Python's HTTPS client and confluent-kafka."""
import base64
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)

from security_lib import SecureBroker, confluent_conf, make_certs
from security_lib import Issuer

TOPIC = "app-logs"
RECORDS = 200


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    work = tmp_path_factory.mktemp("http")
    issuer = Issuer(work)
    jwks = work / "jwks.json"
    jwks.write_text(json.dumps({"keys": [issuer.jwk]}))
    b = SecureBroker(work, certs, [{"name": "SASL", "protocol": "SASL_PLAINTEXT"}], http=True,
                     sasl="\n".join([f'oauthbearer_jwks = "{jwks}"',
                                     'oauthbearer_issuer = "https://issuer.example"',
                                     'oauthbearer_audience = ["chronik"]']),
                     extra="\n".join(["[http]", "tls = true", 'auth = "required"', "",
                                      "[authorization]", "enabled = true",
                                      'super_users = ["User:admin"]', ""]))
    b.start()
    b.issuer = issuer
    try:
        admin_conf = confluent_conf(b, "SASL", "PLAIN", "admin", b.admin_password)
        admin = AdminClient(admin_conf)
        for f in admin.alter_user_scram_credentials([
                UserScramCredentialUpsertion(u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), f"{u}-pw".encode())
                for u in ("alice", "bob")]).values():
            f.result(20)
        admin.create_topics([NewTopic(TOPIC, 2, 1, config={"search.enabled": "true"})])[TOPIC].result(20)
        for f in admin.create_acls([AclBinding(ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL,
                                               "User:alice", "*", AclOperation.READ,
                                               AclPermissionType.ALLOW)]).values():
            f.result(20)
        p = Producer({**admin_conf, "acks": "all"})
        for i in range(RECORDS):
            msg = "disk full on node 3" if i % 4 == 0 else f"request {i} served"
            p.produce(TOPIC, key=str(i).encode(), value=json.dumps({"msg": msg, "n": i}).encode())
        assert p.flush(30) == 0
        yield b
    finally:
        b.stop()


def call(broker, path, auth=None, scheme="https", timeout=10):
    """(status, JSON body or text, headers) of GET `path` on the admin port."""
    url = f"{scheme}://127.0.0.1:{broker.http_port}{path}"
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", auth)
    ctx = ssl.create_default_context(cafile=str(broker.certs / "ca.pem"))
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx if scheme == "https" else None) as r:
            body = r.read().decode()
            status, headers = r.status, r.headers
    except urllib.error.HTTPError as e:
        body, status, headers = e.read().decode(), e.code, e.headers
    try:
        return status, json.loads(body), headers
    except ValueError:
        return status, body, headers


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


SEARCH = f"/topics/{TOPIC}/_search?q=json.msg:disk&size=100"


def test_open_paths_answer_without_credentials_and_others_do_not(broker):
    for path in ("/health", "/ready", "/metrics"):
        status, _, _ = call(broker, path)
        assert status == 200, path
    status, body, headers = call(broker, SEARCH)
    assert status == 401, body
    assert "Basic" in headers.get("WWW-Authenticate", "")
    assert body["error"]["type"] == "authentication_failed"
    for auth in (basic("alice", "wrong"), basic("mallory", "x"), "Bearer not.a.jwt", "Digest abc"):
        status, body, _ = call(broker, SEARCH, auth)
        assert status == 401, (auth, body)


def test_the_port_speaks_only_tls(broker):
    with pytest.raises(Exception):
        call(broker, "/health", scheme="http", timeout=3)
    assert call(broker, "/health")[0] == 200


def wait_for_hits(broker, auth, want=RECORDS // 4, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = call(broker, SEARCH, auth)
        if last[0] == 200 and last[1].get("total") == want:
            return last
        time.sleep(0.5)
    raise AssertionError(f"no {want} hits within {timeout}s: {last[:2]}")


def test_search_needs_read_on_the_topic(broker):
    # alice has READ (SCRAM password through basic authentication).
    status, body, _ = wait_for_hits(broker, basic("alice", "alice-pw"))
    assert all("disk full" in json.dumps(h) for h in body["hits"])
    # admin is a super user (a PLAIN user).
    assert call(broker, SEARCH, basic("admin", broker.admin_password))[0] == 200
    # bob authenticates but may not read the topic.
    status, body, _ = call(broker, SEARCH, basic("bob", "bob-pw"))
    assert status == 403, body
    assert body["error"]["type"] == "authorization_failed"
    # The indexing status needs DESCRIBE, which READ implies.
    assert call(broker, f"/topics/{TOPIC}/_search/status", basic("alice", "alice-pw"))[0] == 200
    assert call(broker, f"/topics/{TOPIC}/_search/status", basic("bob", "bob-pw"))[0] == 403


def test_bearer_tokens_name_the_caller(broker):
    token, _ = broker.issuer.token("alice")
    status, body, _ = call(broker, SEARCH, f"Bearer {token}")
    assert status == 200, body
    token, _ = broker.issuer.token("bob")
    assert call(broker, SEARCH, f"Bearer {token}")[0] == 403
    expired, _ = broker.issuer.token("alice", lifetime_s=-120)
    status, body, _ = call(broker, SEARCH, f"Bearer {expired}")
    assert status == 401, body
