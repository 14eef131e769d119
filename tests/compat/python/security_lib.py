"""Helpers of the security suite (test_security_*.py): certificates made by the secure example's
own `gen-certs.sh`, a chronik broker of the test's own with secured listeners, and client
settings for each mechanism.

Environment (set by tests/compat/security.sh):
  CHRONIK_BIN_PATH         the broker binary (required)
  CHRONIK_TOOLS_CLASSPATH  file holding the classpath of Kafka's CLI tools and Java client
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ports import free_port
from reliability_lib import port_open, wait_until

ROOT = Path(__file__).resolve().parents[3]
GEN_CERTS = ROOT / "deploy" / "examples" / "secure" / "gen-certs.sh"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def make_certs(outdir):
    """CA, broker and client certificates, the admin password and PLAIN users file in `outdir`
    (the example's gen-certs.sh), plus a second CA and a client certificate it signed, which the
    broker must refuse. Returns `outdir` as a Path."""
    out = Path(outdir)
    subprocess.run([str(GEN_CERTS), str(out)], check=True, capture_output=True)
    rogue = out / "rogue"
    rogue.mkdir(exist_ok=True)
    if not (rogue / "client.pem").exists():
        subprocess.run([str(GEN_CERTS), str(rogue)], check=True, capture_output=True)
    return out


def toml_str(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


class SecureBroker:
    """A broker with the listeners given as dicts (name, protocol, and optionally client_auth,
    sasl_mechanisms); each gets a free port. `sasl` holds more `[sasl]` lines; `extra` is
    appended to chronik.toml as is (other tables)."""

    def __init__(self, workdir, certs, listeners, extra="", http=False, sasl=""):
        self.work = Path(workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.certs = Path(certs)
        self.listeners = []
        for spec in listeners:
            spec = dict(spec)
            spec["port"] = free_port()
            self.listeners.append(spec)
        self.http_port = free_port() if http else None
        self.extra = extra
        self.sasl = sasl
        self.proc = None
        self.log_path = self.work / "chronik.log"
        self.config_path = self.work / "chronik.toml"
        self.admin_password = (self.certs / "admin.password").read_text().strip()

    def port(self, name):
        return next(l["port"] for l in self.listeners if l["name"] == name)

    def bootstrap(self, name):
        return f"127.0.0.1:{self.port(name)}"

    def write_config(self):
        lines = [f"data_dir = {toml_str(self.work / 'data')}", ""]
        for l in self.listeners:
            lines += ["[[kafka.listeners]]",
                      f"name = {toml_str(l['name'])}",
                      f"listen = \"127.0.0.1:{l['port']}\"",
                      f"protocol = {toml_str(l['protocol'])}"]
            if "client_auth" in l:
                lines.append(f"client_auth = {toml_str(l['client_auth'])}")
            if "sasl_mechanisms" in l:
                lines.append("sasl_mechanisms = [" + ", ".join(toml_str(m) for m in l["sasl_mechanisms"]) + "]")
            lines.append("")
        lines += ["[tls]",
                  f"cert_file = {toml_str(self.certs / 'broker.pem')}",
                  f"key_file = {toml_str(self.certs / 'broker.key')}",
                  f"client_ca_file = {toml_str(self.certs / 'ca.pem')}",
                  "reload_check_ms = 200", "",
                  "[sasl]",
                  f"plain_users_file = {toml_str(self.certs / 'plain-users.txt')}",
                  self.sasl, ""]
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra + "\n")

    def start(self, timeout=60):
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONIK_")}
        env["CHRONIK_HTTP_LISTEN"] = f'"127.0.0.1:{self.http_port}"' if self.http_port else '""'
        env["RUST_LOG"] = os.environ.get("SECURITY_RUST_LOG", "info")
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [os.environ["CHRONIK_BIN_PATH"], "serve", "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited ({self.proc.returncode}):\n{self.log_tail()}")
            return "broker ready" in self.log_text()
        wait_until(ready, timeout, what="broker ready")
        for l in self.listeners:
            wait_until(lambda: port_open(l["port"]), timeout, what=f"listener {l['name']}")
        return self

    def log_text(self):
        try:
            return ANSI.sub("", self.log_path.read_text(errors="replace")).rsplit("=== start at", 1)[-1]
        except OSError:
            return ""

    def log_tail(self, n=20):
        return "\n".join(self.log_text().splitlines()[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def confluent_conf(broker, listener, mechanism=None, user=None, password=None, cert=None,
                   **extra):
    """librdkafka settings for `listener` of `broker`: SASL with `mechanism` when the listener
    has SASL, TLS trusting the example CA when it has TLS, `cert` ("client" or "rogue") as the
    client certificate."""
    spec = next(l for l in broker.listeners if l["name"] == listener)
    protocol = spec["protocol"]
    conf = {"bootstrap.servers": broker.bootstrap(listener),
            "security.protocol": protocol.lower()}
    if protocol in ("SSL", "SASL_SSL"):
        conf["ssl.ca.location"] = str(broker.certs / "ca.pem")
        conf["ssl.endpoint.identification.algorithm"] = "https"
    if cert:
        base = broker.certs if cert == "client" else broker.certs / "rogue"
        conf["ssl.certificate.location"] = str(base / "client.pem")
        conf["ssl.key.location"] = str(base / "client.key")
    if mechanism:
        conf["sasl.mechanisms"] = mechanism
        conf["sasl.username"] = user
        conf["sasl.password"] = password
    conf.update(extra)
    return conf


def java_properties(broker, listener, mechanism=None, user=None, password=None, cert=None,
                    token_file=None):
    """The same settings as Kafka's Java client and CLI tools take them (`--command-config`)."""
    spec = next(l for l in broker.listeners if l["name"] == listener)
    protocol = spec["protocol"]
    props = {"security.protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = str(broker.certs / "ca.pem")
    if cert:
        base = broker.certs if cert == "client" else broker.certs / "rogue"
        # Java's PEM key store wants the certificate chain and the PKCS#8 key in one file.
        bundle = broker.work / f"{cert}-keystore.pem"
        if not bundle.exists():
            key = subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(base / "client.key")],
                                 check=True, capture_output=True, text=True).stdout
            bundle.write_text(key + (base / "client.pem").read_text())
        props["ssl.keystore.type"] = "PEM"
        props["ssl.keystore.location"] = str(bundle)
    if mechanism == "OAUTHBEARER":
        # `token_file`: Kafka's own login handler reads the JWT from a file:// "token endpoint";
        # the JVM must allow that URL (oauth_jvm_args).
        props["sasl.mechanism"] = mechanism
        props["sasl.login.callback.handler.class"] = \
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
        props["sasl.oauthbearer.token.endpoint.url"] = Path(token_file).resolve().as_uri()
        props["sasl.jaas.config"] = \
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;"
    elif mechanism:
        props["sasl.mechanism"] = mechanism
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        props["sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
    return props


def oauth_jvm_args(token_file):
    """Kafka 4 reads OAuth URLs and files only when the JVM allows them by name."""
    path = Path(token_file).resolve()
    return (f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={path.as_uri()}",
            f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.files={path}")


def write_properties(path, props):
    Path(path).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return str(path)


def kafka_tool(main_class, *args, timeout=120, check=True, jvm_args=(), input=None):
    """Runs one of Kafka's CLI tools (by main class) on the classpath the suite prepared;
    `jvm_args` go before the class (system properties), `input` is its standard input."""
    cp = Path(os.environ["CHRONIK_TOOLS_CLASSPATH"]).read_text().strip()
    java = shutil.which("java") or "java"
    r = subprocess.run([java, *jvm_args, "-cp", cp, main_class, *args], capture_output=True, text=True,
                       timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{main_class} {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


# --- OAUTHBEARER ------------------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An RSA key made with openssl, its JWKS, and RS256 tokens signed with it."""

    def __init__(self, workdir, kid="k1"):
        self.key = workdir / f"{kid}.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", str(self.key)], check=True, capture_output=True)
        modulus = subprocess.run(["openssl", "rsa", "-in", str(self.key), "-noout", "-modulus"],
                                 check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
        self.kid = kid
        self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                    "n": b64url(bytes.fromhex(modulus)), "e": b64url((65537).to_bytes(3, "big"))}

    def token(self, sub, lifetime_s=300, iss="https://issuer.example", aud="chronik", **extra):
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        claims = {"sub": sub, "iss": iss, "aud": aud, "iat": now, "exp": now + lifetime_s, **extra}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{b64url(sig)}", now + lifetime_s


def oauth_sasl_settings(workdir, issuer, audience="chronik", iss="https://issuer.example"):
    """`[sasl]` lines that make the broker trust `issuer`'s key (a JWKS file in `workdir`)."""
    jwks = Path(workdir) / "jwks.json"
    jwks.write_text(json.dumps({"keys": [issuer.jwk]}))
    return "\n".join([f"oauthbearer_jwks = {toml_str(jwks)}",
                      f"oauthbearer_issuer = {toml_str(iss)}",
                      f"oauthbearer_audience = [{toml_str(audience)}]",
                      "oauthbearer_clock_skew_s = 0"])
