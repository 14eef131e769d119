"""The checks behind tests/deploy/check.sh (run with the venv it installs).

    python check_deploy.py REPO_ROOT

Every check prints PASS or FAIL with a reason; the last line is "N passed, N failed".
Nothing here opens a network connection: the schemas are files inside the installed packages.
"""

import copy
import glob
import json
import os
import re
import subprocess
import sys
import tomllib

import yaml
from kubernetes_validate import utils as kv

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
K8S_VERSIONS = os.environ.get("K8S_VERSIONS", "1.30.0 1.37.0").split()

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return ok


def rel(path):
    return os.path.relpath(path, ROOT)


def section(title):
    print(f"\n== {title}")


# --- what the docs define ---------------------------------------------------------------------------


def documented_config():
    """(env names, {(section or None, key)}) from the tables of docs/configuration.md."""
    env, keys = set(), set()
    current = None
    in_tables = False
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        for line in f:
            if line.startswith("## "):
                if line.startswith("## Top level"):
                    current, in_tables = None, True
                else:
                    m = re.match(r"## `\[(\w+)\]`", line)
                    in_tables = bool(m)
                    current = m.group(1) if m else None
                continue
            if not in_tables or not line.startswith("| `"):
                continue
            ticks = re.findall(r"`([^`]+)`", line)
            if len(ticks) >= 2 and ticks[1].startswith("CHRONIK_"):
                keys.add((current, ticks[0]))
                env.add(ticks[1])
    return env, keys


def documented_metrics():
    """Metric names and label values (in backticks) of docs/operations.md's metrics table."""
    names, words = set(), set()
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("| `chronik_"):
            cells = line.split("|")
            names.update(re.findall(r"`(chronik_[a-z0-9_]+)`", cells[1]))
            kinds = cells[2].strip()
            for n in re.findall(r"`(chronik_[a-z0-9_]+)`", cells[1]):
                if kinds == "histogram":
                    names.update({n + "_bucket", n + "_sum", n + "_count"})
            words.update(re.findall(r"`([a-z0-9_]+)`", "|".join(cells[3:])))
    return names, words


DOC_ENV, DOC_KEYS = documented_config()
DOC_METRICS, DOC_WORDS = documented_metrics()

# --- Kubernetes -------------------------------------------------------------------------------------


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def validate_k8s(resource, version):
    """None when valid, else the error text. A kind without a schema is an error too."""
    try:
        kv.validate(resource, version, strict=True)
        return None
    except kv.ValidationError as e:
        where = ".".join(str(p) for p in e.path)
        return f"{where}: {e.message}"
    except kv.SchemaNotFoundError as e:
        return f"no schema: {e.message}"
    except Exception as e:  # noqa: BLE001 - report anything else as a failure
        return f"{type(e).__name__}: {e}"


def check_kubernetes():
    section(f"Kubernetes manifests (kubernetes-validate {kv.__version__ if hasattr(kv, '__version__') else ''}"
            f" strict schemas, versions {' '.join(K8S_VERSIONS)})")
    files = sorted(glob.glob(os.path.join(K8S, "*.yaml")))
    check("deploy/kubernetes has manifests", len(files) > 1, "none found")
    resources = {}  # (kind, name) -> resource
    kustomization = None
    for path in files:
        try:
            docs = load_yaml_docs(path)
        except yaml.YAMLError as e:
            check(f"{rel(path)} parses", False, str(e))
            continue
        check(f"{rel(path)} parses ({len(docs)} document(s))", len(docs) > 0, "empty")
        for doc in docs:
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                check(f"{rel(path)}: document has apiVersion and kind", False, repr(doc)[:80])
                continue
            if doc["kind"] == "Kustomization":
                kustomization = (path, doc)
                continue
            name = doc.get("metadata", {}).get("name", "?")
            resources[(doc["kind"], name)] = (path, doc)
            for v in K8S_VERSIONS:
                err = validate_k8s(doc, v)
                check(f"{rel(path)}: {doc['kind']}/{name} valid for Kubernetes {v}", err is None, err)

    # The validator is not vacuous: a wrong field type in a copy of the StatefulSet must fail.
    sts = [d for (k, _), (_, d) in resources.items() if k == "StatefulSet"]
    if sts:
        broken = copy.deepcopy(sts[0])
        broken["spec"]["replicas"] = "one"
        broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9092"
        err = validate_k8s(broken, K8S_VERSIONS[-1])
        check("control: a StatefulSet with replicas: \"one\" is rejected", err is not None,
              "the validator accepted it")
        broken = copy.deepcopy(sts[0])
        broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/"
        err = validate_k8s(broken, K8S_VERSIONS[-1])
        check("control: an unknown field (httpGet.pathh) is rejected", err is not None,
              "the validator accepted it")

    check_kustomization(kustomization, files, resources)
    check_k8s_references(resources)


def check_kustomization(kustomization, files, resources):
    section("kustomization.yaml")
    if not check("deploy/kubernetes/kustomization.yaml exists", kustomization is not None):
        return
    path, k = kustomization
    check("kustomization apiVersion/kind",
          k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and k.get("kind") == "Kustomization",
          f"{k.get('apiVersion')} {k.get('kind')}")
    listed = k.get("resources", [])
    for r in listed:
        check(f"kustomization resource {r} exists", os.path.isfile(os.path.join(K8S, r)))
    for f in files:
        base = os.path.basename(f)
        if base == "kustomization.yaml":
            continue
        if base.endswith(".example.yaml"):
            check(f"template {base} is not applied by kustomize", base not in listed)
        else:
            check(f"{base} is listed in kustomization resources", base in listed)
    known = set(k) - {"apiVersion", "kind", "resources", "images", "labels", "namespace",
                      "commonAnnotations", "configMapGenerator", "secretGenerator", "patches"}
    check("kustomization uses only known fields", not known, ", ".join(sorted(known)))
    images = {i.get("name") for i in k.get("images", [])}
    used = set()
    for (kind, _), (_, d) in resources.items():
        if kind == "StatefulSet":
            for c in d["spec"]["template"]["spec"]["containers"]:
                used.add(c["image"].split(":")[0])
    check("kustomization images rewrite the image the StatefulSet uses",
          not images or images <= used, f"images {sorted(images)} vs used {sorted(used)}")


def check_k8s_references(resources):
    section("Kubernetes cross-references")
    by_kind = {}
    for (kind, name), (_, d) in resources.items():
        by_kind.setdefault(kind, {})[name] = d
    stss = by_kind.get("StatefulSet", {})
    if not check("one StatefulSet", len(stss) == 1, f"{len(stss)}"):
        return
    sts = next(iter(stss.values()))
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    check("StatefulSet selector matches its pod labels", all(labels.get(k) == v for k, v in sel.items()))
    check("replicas is 1 (no replication yet: each pod would be its own cluster)", spec.get("replicas") == 1)

    services = by_kind.get("Service", {})
    headless = services.get(spec.get("serviceName"))
    check(f"serviceName {spec.get('serviceName')} is a headless Service",
          headless is not None and headless["spec"].get("clusterIP") == "None")
    c = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check("container ports kafka=9092 and http=9644", ports.get("kafka") == 9092 and ports.get("http") == 9644,
          str(ports))
    for name, svc in services.items():
        ssel = svc["spec"].get("selector", {})
        check(f"Service {name} selects the broker pods", ssel and all(labels.get(k) == v for k, v in ssel.items()))
        for p in svc["spec"].get("ports", []):
            t = p.get("targetPort")
            check(f"Service {name} port {p.get('name')} targets a container port",
                  t in ports or t in ports.values(), str(t))

    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        g = c.get(probe, {}).get("httpGet", {})
        check(f"{probe} is GET {path} on the admin port",
              g.get("path") == path and g.get("port") in ("http", 9644), str(g))
    ann = spec["template"]["metadata"].get("annotations", {})
    check("pod has Prometheus scrape annotations for :9644/metrics",
          ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9644"
          and ann.get("prometheus.io/path", "/metrics") == "/metrics", str(ann))
    if any(n.upper().replace("-", "_").startswith("CHRONIK") for n in services):
        check("enableServiceLinks is false (a Service named chronik* would inject CHRONIK_* variables "
              "the broker refuses)", pod.get("enableServiceLinks") is False)

    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    check("/data is mounted from a volumeClaimTemplate", mounts.get("/data") in claims, str(mounts))
    for m in c.get("volumeMounts", []):
        check(f"volumeMount {m['name']} has a volume", m["name"] in vols or m["name"] in claims)
    cms = by_kind.get("ConfigMap", {})
    for v in vols.values():
        if "configMap" in v:
            check(f"ConfigMap {v['configMap']['name']} is defined", v["configMap"]["name"] in cms)
    args = c.get("args", [])
    cfg = args[args.index("--config") + 1] if "--config" in args else None
    cfg_mount = next((p for p, n in mounts.items() if n in vols and "configMap" in vols[n]), None)
    check("--config points into the mounted ConfigMap",
          cfg is not None and cfg_mount is not None and cfg.startswith(cfg_mount + "/"), f"{cfg} vs {cfg_mount}")
    if cfg and cfg_mount:
        key = os.path.basename(cfg)
        cm = next((cms[v["configMap"]["name"]] for v in vols.values() if "configMap" in v), {})
        check(f"ConfigMap has the key {key}", key in cm.get("data", {}))
        if key in cm.get("data", {}):
            check_chronik_toml(cm["data"][key], "ConfigMap chronik.toml")

    env = {e["name"]: e for e in c.get("env", [])}
    adv = env.get("CHRONIK_KAFKA_ADVERTISED", {}).get("value", "")
    check("CHRONIK_KAFKA_ADVERTISED is <pod>.<headless service>...:9092 from the downward API",
          "$(POD_NAME)" in adv and f".{spec.get('serviceName')}." in adv and adv.endswith(":9092"), adv)
    check("POD_NAME comes from metadata.name",
          env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name")
    names = list(env)
    check("POD_NAME/POD_NAMESPACE are defined before they are used",
          "POD_NAME" in names and names.index("POD_NAME") < names.index("CHRONIK_KAFKA_ADVERTISED")
          and "POD_NAMESPACE" in names and names.index("POD_NAMESPACE") < names.index("CHRONIK_KAFKA_ADVERTISED"))
    secrets = by_kind.get("Secret", {})
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef")
        ok = ref is not None and ref["name"] in secrets and ref["key"] in (
            secrets[ref["name"]].get("stringData", {}) | secrets[ref["name"]].get("data", {}))
        check(f"{var} comes from a key of the Secret template", ok, str(ref))
    check_env_names([n for n in env if n.startswith("CHRONIK_")], "statefulset.yaml")
    sa = pod.get("serviceAccountName")
    check(f"ServiceAccount {sa} is defined", sa is None or sa in by_kind.get("ServiceAccount", {}))
    sc = pod.get("securityContext", {})
    check("pod runs as non-root uid 10001 (the image's user)", sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001)


def check_env_names(names, where):
    for n in names:
        check(f"{where}: {n} is a documented config variable", n in DOC_ENV,
              "not in docs/configuration.md: the broker would refuse to start")


def check_chronik_toml(text, where):
    try:
        t = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        check(f"{where} parses as TOML", False, str(e))
        return
    check(f"{where} parses as TOML", True)
    bad = []
    for k, v in t.items():
        if isinstance(v, dict):
            bad += [f"[{k}] {kk}" for kk in v if (k, kk) not in DOC_KEYS]
        elif (None, k) not in DOC_KEYS:
            bad.append(k)
    check(f"{where}: every key is documented in docs/configuration.md", not bad, ", ".join(bad))


# --- compose ----------------------------------------------------------------------------------------


def check_compose():
    section("docker-compose.yml")
    path = os.path.join(DEPLOY, "docker-compose.yml")
    cli = os.environ.get("CHECK_COMPOSE_CLI", "skip")
    if cli == "skip":
        print("SKIP docker compose config -q (no compose plugin here; compose-go and the schema stand in)")
    else:
        check("docker compose config -q (both env files)", cli == "pass")
    r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "check-jsonschema"),
                        "--builtin-schema", "vendor.compose-spec", path],
                       capture_output=True, text=True)
    check("deploy/docker-compose.yml valid against the compose-spec schema (check-jsonschema)",
          r.returncode == 0, (r.stdout + r.stderr).strip())
    with open(path) as f:
        c = yaml.safe_load(f)
    svcs = c.get("services", {})
    vols = set((c.get("volumes") or {}).keys())
    for name, s in svcs.items():
        for dep in (s.get("depends_on") or {}):
            check(f"service {name} depends on an existing service ({dep})", dep in svcs)
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source")
            if src.startswith((".", "/")):
                check(f"service {name} bind mount {src} exists", os.path.exists(os.path.join(DEPLOY, src)))
            else:
                check(f"service {name} volume {src} is declared", src in vols)
        b = s.get("build")
        if b:
            ctx = os.path.normpath(os.path.join(DEPLOY, b.get("context", ".")))
            check(f"service {name} build: Dockerfile exists", os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))))
        env = s.get("environment") or {}
        names = env.keys() if isinstance(env, dict) else [e.split("=")[0] for e in env]
        check_env_names([n for n in names if n.startswith("CHRONIK_")], f"compose service {name}")
    broker = svcs.get("chronik", {})
    check_composecheck(path, svcs, broker)
    ports = " ".join(str(p) for p in broker.get("ports", []))
    check("broker publishes 9092 and 9644", "9092:9092" in ports and "9644:9644" in ports, ports)
    env = broker.get("environment", {})
    check("broker gets AWS credentials", "AWS_ACCESS_KEY_ID" in env and "AWS_SECRET_ACCESS_KEY" in env)
    # Each env file selects a profile and an endpoint served by a service of that profile.
    for ef in ("deploy/.env", "deploy/minio.env"):
        p = os.path.join(ROOT, ef)
        if not check(f"{ef} exists", os.path.isfile(p)):
            continue
        kv_ = dict(l.split("=", 1) for l in open(p).read().splitlines() if l and not l.startswith("#"))
        prof = kv_.get("COMPOSE_PROFILES", "")
        m = re.match(r"https?://([^:/]+)", kv_.get("S3_ENDPOINT", ""))
        host = m.group(1) if m else None
        check(f"{ef}: S3_ENDPOINT host {host} is a service of profile {prof}",
              host in svcs and prof in svcs[host].get("profiles", []))
        inits = [n for n, s in svcs.items() if prof in s.get("profiles", []) and n.endswith("-init")]
        check(f"{ef}: profile {prof} creates the bucket before the broker starts",
              any(n in (broker.get("depends_on") or {}) for n in inits), str(inits))


def check_composecheck(path, svcs, broker):
    """The file as `docker compose` would see it, through compose-go (tests/deploy/composecheck)."""
    exe = os.environ.get("COMPOSECHECK", "")
    if not check("composecheck (compose-go) is built", os.access(exe, os.X_OK), exe or "not set"):
        return
    expected = {"deploy/.env": ("localstack", {"chronik", "localstack", "localstack-init"}),
                "deploy/minio.env": ("minio", {"chronik", "minio", "minio-init"})}
    for ef, (profile, want) in expected.items():
        r = subprocess.run([exe, path, os.path.join(ROOT, ef)], capture_output=True, text=True)
        if not check(f"compose-go loads the file with {ef}", r.returncode == 0, r.stderr.strip()):
            continue
        enabled, env = set(), {}
        for line in r.stdout.splitlines():
            if line.startswith("profiles="):
                enabled = set(line.split("services=[", 1)[1].rstrip("]").split())
            elif line.startswith("env chronik "):
                k, _, v = line[len("env chronik "):].partition("=")
                env[k] = v
        check(f"{ef}: profile {profile} runs {sorted(want)}", enabled == want, str(sorted(enabled)))
        m = re.match(r"https?://([^:/]+)", env.get("CHRONIK_TIERING_ENDPOINT", ""))
        check(f"{ef}: the broker's S3 endpoint ({env.get('CHRONIK_TIERING_ENDPOINT')}) is a running service",
              m is not None and m.group(1) in enabled)
        for dep, spec in (broker.get("depends_on") or {}).items():
            if dep not in enabled:
                check(f"{ef}: dependency {dep} of an inactive profile is required: false",
                      isinstance(spec, dict) and spec.get("required") is False)
        bad = [k for k, v in env.items() if k.startswith("CHRONIK_") and v == ""]
        check(f"{ef}: no CHRONIK_* variable is empty after interpolation", not bad, ", ".join(bad))


# --- Dockerfile -------------------------------------------------------------------------------------


def check_dockerfile():
    section("Dockerfile")
    path = os.path.join(DEPLOY, "Dockerfile")
    text = open(path).read()
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("#") and not cur:
            continue
        cur += " " + s.rstrip("\\").strip() if cur else s.rstrip("\\").strip()
        if not s.endswith("\\"):
            if cur:
                lines.append(cur)
            cur = ""
    instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
    froms = [a for i, a in instr if i == "FROM"]
    check("multi-stage: a rust builder and a slim runtime", len(froms) >= 2 and froms[0].startswith("rust:")
          and ("slim" in froms[-1] or "distroless" in froms[-1]), str(froms))
    check("builds with cargo build --release --locked",
          any(i == "RUN" and "cargo build --release --locked" in a for i, a in instr))
    users = [a for i, a in instr if i == "USER"]
    check("runs as a non-root user", users and users[-1].split(":")[0] not in ("root", "0"), str(users))
    exposed = " ".join(a for i, a in instr if i == "EXPOSE").split()
    check("EXPOSE 9092 9644", "9092" in exposed and "9644" in exposed, str(exposed))
    check("VOLUME /data", any(i == "VOLUME" and "/data" in a for i, a in instr))
    hc = " ".join(a for i, a in instr if i == "HEALTHCHECK")
    check("HEALTHCHECK on /health", "/health" in hc and "9644" in hc, hc)
    ep = next((a for i, a in reversed(instr) if i == "ENTRYPOINT"), "[]")
    try:
        ep = json.loads(ep)
    except json.JSONDecodeError:
        ep = []
    want = ["serve", "--listen", "0.0.0.0:9092", "--http-listen", "0.0.0.0:9644", "--data-dir", "/data"]
    check("ENTRYPOINT chronik serve with listen/http-listen/data-dir", ep[:1] == ["chronik"] and
          all(w in ep for w in want) and ep[ep.index("--listen") + 1] == "0.0.0.0:9092", str(ep))
    envs = re.findall(r"\b(CHRONIK_[A-Z0-9_]+)=", " ".join(a for i, a in instr if i == "ENV"))
    check("ENV sets CHRONIK_KAFKA_ADVERTISED", "CHRONIK_KAFKA_ADVERTISED" in envs)
    check_env_names(envs, "Dockerfile")
    for i, a in instr:
        if i == "COPY" and "--from" not in a:
            for src in a.split()[:-1]:
                check(f"COPY source {src} exists in the repository", os.path.exists(os.path.join(ROOT, src)))
    ign = os.path.join(DEPLOY, "Dockerfile.dockerignore")
    check("deploy/Dockerfile.dockerignore exists (keeps target/ and .git out of the context)", os.path.isfile(ign))


# --- Grafana ----------------------------------------------------------------------------------------

PROMQL_FUNCS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "label_values",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "last_over_time", "clamp_min",
    "clamp_max", "abs", "ceil", "floor", "round", "predict_linear", "vector", "scalar", "time", "changes",
    "resets", "absent", "label_replace", "sort", "sort_desc",
}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                   "offset", "bool", "inf", "nan"}


def promql_metrics(expr):
    """(metric names, unknown function names, `what` label values) used in a PromQL expression."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                      # strings
    whats = []
    for m in re.finditer(r'what\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"', expr):
        whats += m.group(2).split("|") if m.group(1) == "=~" else [m.group(2)]
    s = re.sub(r"\{[^}]*\}", "", s)                                   # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)                                  # ranges
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    s = re.sub(r"\$\w+", "", s)
    s = re.sub(r",\s*\w+\s*\)", ")", s) if s.lstrip().startswith("label_values") else s
    metrics, funcs = set(), set()
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call:
            if word not in PROMQL_FUNCS:
                funcs.add(word)
        elif word not in PROMQL_KEYWORDS and not re.fullmatch(r"\d.*", word):
            metrics.add(word)
    return metrics, funcs, whats


def check_grafana():
    section("Grafana dashboard")
    path = os.path.join(DEPLOY, "grafana", "chronik-dashboard.json")
    try:
        d = json.load(open(path))
    except (OSError, json.JSONDecodeError) as e:
        check(f"{rel(path)} parses", False, str(e))
        return
    check(f"{rel(path)} parses", True)
    check("dashboard has uid, title and panels", d.get("uid") and d.get("title") and d.get("panels"))
    panels = d.get("panels", [])
    ids = [p.get("id") for p in panels]
    check("panel ids are unique", len(ids) == len(set(ids)))
    exprs = []
    for p in panels:
        for t in p.get("targets", []):
            exprs.append((p.get("title"), t.get("expr", "")))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            exprs.append((f"variable ${v['name']}", q))
    check("dashboard has queries", len(exprs) > 10, str(len(exprs)))
    used = set()
    for title, e in exprs:
        metrics, funcs, whats = promql_metrics(e)
        used |= metrics
        unknown = sorted(m for m in metrics if m not in DOC_METRICS)
        check(f"panel '{title}': metrics are documented ({', '.join(sorted(metrics)) or 'none'})",
              metrics and not unknown, "not in docs/operations.md: " + ", ".join(unknown))
        if funcs:
            check(f"panel '{title}': PromQL functions known", False, ", ".join(sorted(funcs)))
        bad = [w for w in whats if w not in DOC_WORDS]
        if whats:
            check(f"panel '{title}': what= values are documented", not bad, ", ".join(bad))
        check(f"panel '{title}': balanced parentheses/braces",
              e.count("(") == e.count(")") and e.count("{") == e.count("}") and e.count("[") == e.count("]"))
    wanted = {"chronik_kafka_requests_total", "chronik_kafka_request_duration_seconds_bucket",
              "chronik_topic_bytes_in_total", "chronik_topic_bytes_out_total", "chronik_log_partition_size_bytes",
              "chronik_tiering_partition_remote_size_bytes", "chronik_log_end_offset", "chronik_tiering_counter",
              "chronik_object_store_requests_total", "chronik_object_store_errors_total", "chronik_cache_counter",
              "chronik_network_connections"}
    check("dashboard covers requests, latency, topics, sizes, offsets, tiering, object store, cache, connections",
          wanted <= used, "missing: " + ", ".join(sorted(wanted - used)))


def main():
    print(f"repo {ROOT}; {len(DOC_ENV)} config variables and {len(DOC_METRICS)} metric names read from docs/")
    if not DOC_ENV or not DOC_METRICS:
        check("docs/configuration.md and docs/operations.md could be read", False)
    check_kubernetes()
    check_compose()
    check_dockerfile()
    check_grafana()
    print()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
