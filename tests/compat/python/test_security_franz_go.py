"""franz-go (kgo, kadm, pkg/sasl) against a broker with secured listeners: runs the Go module's
TestSecurity* tests (tests/compat/go/security_test.go) once against a broker of this module,
with the SCRAM user made through confluent-kafka's admin API and the tokens made here, and
reports each Go test as a test of its own. Every TestSecurity* function of the Go file must run
and pass: a skip (the environment not reaching the Go tests) is a failure."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from security_lib import Issuer, SecureBroker, confluent_conf, make_certs, oauth_sasl_settings

GO_DIR = Path(__file__).resolve().parents[1] / "go"
GO_FILE = GO_DIR / "security_test.go"
GO_TESTS = re.findall(r"^func (TestSecurity\w+)\(t \*testing\.T\)", GO_FILE.read_text(), re.M)
LISTENERS = [
    {"name": "SASL_SSL", "protocol": "SASL_SSL", "sasl_mechanisms": ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
    {"name": "OAUTH", "protocol": "SASL_SSL", "sasl_mechanisms": ["OAUTHBEARER"]},
    {"name": "MTLS", "protocol": "SSL", "client_auth": "required"},
]
USER, PASSWORD = "gopher", "gopher-secret-pw"
ITERATIONS = {ScramMechanism.SCRAM_SHA_256: 8192, ScramMechanism.SCRAM_SHA_512: 4096}
GO_TIMEOUT_S = 600


def create_scram_user(broker):
    admin = AdminClient(confluent_conf(broker, "SASL_SSL", "PLAIN", "admin", broker.admin_password))
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(USER, ScramCredentialInfo(m, n), PASSWORD.encode())
        for m, n in ITERATIONS.items()])
    for f in futures.values():
        f.result(20)


def split_by_test(output):
    """{top-level test name: its lines of `go test -v` output} (subtests stay with their parent)."""
    parts, current = {}, None
    for line in output.splitlines():
        m = re.match(r"=== (?:RUN|CONT|PAUSE|NAME)\s+(Test\w+)", line)
        if m:
            current = m.group(1)
        if current:
            parts.setdefault(current, []).append(line)
    return parts


@pytest.fixture(scope="module")
def go_run(tmp_path_factory):
    """Runs the Go tests once against a broker of the module's own; returns (output, results)
    with results {test name: PASS | FAIL | SKIP} for top-level and sub tests."""
    go = shutil.which("go")
    assert go, "the go toolchain is not on PATH"
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    work = tmp_path_factory.mktemp("broker")
    issuer = Issuer(work)
    broker = SecureBroker(work, certs, LISTENERS, sasl=oauth_sasl_settings(work, issuer))
    broker.start()
    try:
        create_scram_user(broker)
        stranger_dir = work / "stranger"
        stranger_dir.mkdir()
        stranger = Issuer(stranger_dir, kid=issuer.kid)  # the same key id, another key
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_SECURE_")}
        env.update({
            "CHRONIK_SECURE_SASL_SSL": broker.bootstrap("SASL_SSL"),
            "CHRONIK_SECURE_OAUTH": broker.bootstrap("OAUTH"),
            "CHRONIK_SECURE_MTLS": broker.bootstrap("MTLS"),
            "CHRONIK_SECURE_CERTS": str(certs),
            "CHRONIK_SECURE_SCRAM_USER": USER,
            "CHRONIK_SECURE_SCRAM_PASSWORD": PASSWORD,
            "CHRONIK_SECURE_SCRAM_ITERATIONS_256": str(ITERATIONS[ScramMechanism.SCRAM_SHA_256]),
            "CHRONIK_SECURE_SCRAM_ITERATIONS_512": str(ITERATIONS[ScramMechanism.SCRAM_SHA_512]),
            # Long enough for the whole run, short of the broker's patience.
            "CHRONIK_SECURE_TOKEN": issuer.token("svc-go", lifetime_s=GO_TIMEOUT_S + 300)[0],
            "CHRONIK_SECURE_EXPIRED_TOKEN": issuer.token("svc-go", lifetime_s=-120)[0],
            "CHRONIK_SECURE_FOREIGN_TOKEN": stranger.token("svc-go")[0],
        })
        try:
            r = subprocess.run([go, "test", "-count=1", "-v", f"-timeout={GO_TIMEOUT_S - 30}s",
                                "-run", "^TestSecurity", "./..."], cwd=GO_DIR, env=env,
                               capture_output=True, text=True, timeout=GO_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"go test ran over {GO_TIMEOUT_S}s:\n{e.stdout}\n{e.stderr}")
        output = r.stdout + r.stderr
        results = dict((name, verdict) for verdict, name in
                       re.findall(r"--- (PASS|FAIL|SKIP): (\S+)", output))
        assert broker.alive(), broker.log_tail()
        return output, results, r.returncode
    finally:
        broker.stop()


def test_the_go_file_has_a_test_pair_per_mechanism():
    # Two per mechanism (a round trip and a refusal) for SCRAM-SHA-256/512, PLAIN, OAUTHBEARER, mTLS.
    assert len(GO_TESTS) == 10, GO_TESTS


def test_no_go_test_was_skipped_and_the_run_succeeded(go_run):
    output, results, code = go_run
    skipped = [n for n, v in results.items() if v == "SKIP"]
    assert not skipped, f"skipped: {skipped}\n{output}"
    assert code == 0, output


@pytest.mark.parametrize("name", GO_TESTS)
def test_franz_go(go_run, name):
    output, results, _ = go_run
    own = "\n".join(split_by_test(output).get(name, [])) or output
    assert results.get(name) == "PASS", f"{name}: {results.get(name, 'did not run')}\n{own}"
    subtests = {n: v for n, v in results.items() if n.startswith(name + "/")}
    assert all(v == "PASS" for v in subtests.values()), f"{name}: {subtests}\n{own}"
