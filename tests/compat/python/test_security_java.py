"""Authentication with Kafka's own CLI tools and Java client (Kafka 4.4), configured the way an
operator would: a properties file per client given with `--command-config`. Over SASL_SSL with
SCRAM-SHA-256, SCRAM-SHA-512, PLAIN and OAUTHBEARER (Kafka's OAuthBearerLoginCallbackHandler
reading the JWT from a file:// token endpoint), and over SSL with a client certificate (mTLS).

Each mechanism gets two tests: a topic created with TopicCommand, records written with
ConsoleProducer and read back exactly with ConsoleConsumer; and bad credentials (a wrong
password, an expired or foreign token, a certificate of another CA) making the tool fail with an
authentication error, after which the broker still serves a good client. SCRAM users are made
and described with ConfigCommand as the PLAIN super user `admin`.

One broker serves the module."""
import re
import uuid

import pytest

from security_lib import (Issuer, SecureBroker, java_properties, kafka_tool, make_certs,
                          oauth_jvm_args, oauth_sasl_settings, write_properties)

LISTENERS = [
    {"name": "SASL_SSL", "protocol": "SASL_SSL", "sasl_mechanisms": ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
    {"name": "OAUTH", "protocol": "SASL_SSL", "sasl_mechanisms": ["OAUTHBEARER"]},
    {"name": "MTLS", "protocol": "SSL", "client_auth": "required"},
]
CONFIG = "org.apache.kafka.tools.ConfigCommand"
TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
SCRAM_USER, SCRAM_PASSWORD = "alice", "alice-secret-pw"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    work = tmp_path_factory.mktemp("broker")
    issuer = Issuer(work)
    b = SecureBroker(work, certs, LISTENERS, sasl=oauth_sasl_settings(work, issuer))
    b.start()
    b.issuer = issuer
    try:
        yield b
    finally:
        b.stop()


class Client:
    """One Java client identity: a properties file and, for OAUTHBEARER, the JVM flags that let
    Kafka's login handler read the token file."""

    def __init__(self, broker, listener, path, jvm_args=(), **settings):
        self.broker = broker
        self.bootstrap = broker.bootstrap(listener)
        self.config = write_properties(path, java_properties(broker, listener, **settings))
        self.jvm_args = tuple(jvm_args)

    def run(self, main_class, *args, **kw):
        return kafka_tool(main_class, "--bootstrap-server", self.bootstrap, "--command-config", self.config,
                          *args, jvm_args=self.jvm_args, **kw)

    def create_topic(self, topic):
        self.run(TOPICS, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")

    def produce(self, topic, lines):
        self.run(PRODUCER, "--topic", topic, "--command-property", "acks=all",
                 input="".join(f"{line}\n" for line in lines))

    def consume(self, topic, n):
        r = self.run(CONSUMER, "--topic", topic, "--from-beginning", "--max-messages", str(n),
                     "--timeout-ms", "30000", "--group", f"g-{topic}")
        return r.stdout.splitlines()

    def list_topics(self, check=True):
        return self.run(TOPICS, "--list", check=check, timeout=90)


def make_client(broker, tmp_path, mechanism, password=None, token=None, cert=None):
    """A client of `mechanism` ("MTLS" for a client certificate); `password`, `token` and
    `cert` replace the good ones."""
    name = f"{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.properties"
    if mechanism == "MTLS":
        return Client(broker, "MTLS", path, cert=cert or "client")
    if mechanism == "OAUTHBEARER":
        token_file = tmp_path / f"{name}.jwt"
        token_file.write_text(token or broker.issuer.token("svc-java", lifetime_s=600)[0])
        return Client(broker, "OAUTH", path, oauth_jvm_args(token_file), mechanism="OAUTHBEARER",
                      token_file=token_file)
    if mechanism == "PLAIN":
        return Client(broker, "SASL_SSL", path, mechanism="PLAIN", user="admin",
                      password=password or broker.admin_password)
    return Client(broker, "SASL_SSL", path, mechanism=mechanism, user=SCRAM_USER,
                  password=password or SCRAM_PASSWORD)


def admin_client(broker, tmp_path):
    return make_client(broker, tmp_path, "PLAIN")


@pytest.fixture(scope="module")
def scram_user(broker, tmp_path_factory):
    """alice, with a SCRAM-SHA-256 credential of 8192 iterations and a SCRAM-SHA-512 one of the
    default count, made with ConfigCommand."""
    admin = admin_client(broker, tmp_path_factory.mktemp("admin"))
    r = admin.run(CONFIG, "--alter", "--entity-type", "users", "--entity-name", SCRAM_USER, "--add-config",
                  f"SCRAM-SHA-256=[iterations=8192,password={SCRAM_PASSWORD}],SCRAM-SHA-512=[password={SCRAM_PASSWORD}]")
    assert f"Completed updating config for user {SCRAM_USER}" in r.stdout, r.stdout
    return admin


def config_describe(admin, *args):
    """ConfigCommand --describe; on failure, the assertion names the tool's error lines."""
    r = admin.run(CONFIG, "--describe", *args, check=False)
    errors = [l for l in (r.stdout + r.stderr).splitlines()
              if "Exception" in l or l.startswith("Error while executing")]
    assert r.returncode == 0, f"ConfigCommand --describe {' '.join(args)} exited {r.returncode}: {errors[:3]}"
    return r.stdout


def test_config_command_creates_and_describes_scram_users(broker, scram_user):
    # ConfigCommand describes a user's client quotas (DescribeClientQuotas) before its SCRAM
    # credentials (DescribeUserScramCredentials), with --entity-name or without.
    out = config_describe(scram_user, "--entity-type", "users", "--entity-name", SCRAM_USER)
    assert f"SCRAM credential configs for user-principal '{SCRAM_USER}' are " in out, out
    # As in "SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096" (4096 is the default).
    found = dict(re.findall(r"(SCRAM-SHA-(?:256|512))=iterations=(\d+)", out))
    assert found == {"SCRAM-SHA-256": "8192", "SCRAM-SHA-512": "4096"}, out
    # All users at once: alice is among them.
    everyone = config_describe(scram_user, "--entity-type", "users")
    assert f"user-principal '{SCRAM_USER}'" in everyone, everyone


MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "OAUTHBEARER", "MTLS"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_cli_tools_create_produce_and_consume(broker, scram_user, tmp_path, mechanism):
    client = make_client(broker, tmp_path, mechanism)
    topic = f"java-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    client.create_topic(topic)
    records = [f"{mechanism}-record-{i}-{uuid.uuid4().hex[:4]}" for i in range(25)]
    client.produce(topic, records)
    assert client.consume(topic, len(records)) == records


def bad_clients(broker, tmp_path, mechanism):
    """(what, client, what the tool must print) for `mechanism`'s bad credentials: TopicCommand
    reports the broker's reason as "Error while executing topic command : <reason>"."""
    failed = "Error while executing topic command : "
    if mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"):
        return [("wrong password", make_client(broker, tmp_path, mechanism, password="not-the-password"),
                 failed + "Authentication failed: Invalid username or password")]
    if mechanism == "OAUTHBEARER":
        # Kafka's client sends both tokens as they are; the broker is the one that refuses them.
        stranger = Issuer(tmp_path, kid=broker.issuer.kid)  # the same key id, another key
        expired = broker.issuer.token("svc-java", lifetime_s=-120)[0]
        return [
            ("expired token", make_client(broker, tmp_path, mechanism, token=expired),
             failed + "Authentication failed: Invalid JWT: the token has expired"),
            ("token signed by an unknown key", make_client(broker, tmp_path, mechanism,
                                                           token=stranger.token("svc-java")[0]),
             failed + "Authentication failed: Invalid JWT: signature verification failed"),
        ]
    return [("client certificate of another CA", make_client(broker, tmp_path, mechanism, cert="rogue"),
             "org.apache.kafka.common.errors.SslAuthenticationException")]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_bad_credentials_fail_with_an_authentication_error(broker, scram_user, tmp_path, mechanism):
    for what, client, expected in bad_clients(broker, tmp_path, mechanism):
        r = client.list_topics(check=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0, (what, out)
        assert expected in out, (what, out)
        assert broker.alive(), (what, broker.log_tail())
        # A good client of the same mechanism is served right after.
        good = make_client(broker, tmp_path, mechanism)
        topic = f"after-bad-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
        good.create_topic(topic)
        assert topic in good.list_topics().stdout.split()
