#!/usr/bin/env bash
# Validates deploy/ without a Docker engine, a cluster or the network:
#   - every Kubernetes manifest in deploy/kubernetes against the Kubernetes JSON schemas (strict:
#     unknown fields fail), for several Kubernetes versions, plus cross-references (selectors,
#     ports, ConfigMap/Secret names, kustomization resources);
#   - deploy/docker-compose.yml loaded with each env file by compose-go (the library of
#     `docker compose`: interpolation, profiles, its schema), against the compose-spec schema of
#     check-jsonschema, plus references between services (and `docker compose config -q` too where
#     the compose plugin exists);
#   - the chronik.toml in the ConfigMap and every CHRONIK_* variable against docs/configuration.md;
#   - deploy/Dockerfile's essentials;
#   - deploy/grafana/chronik-dashboard.json parses and uses only metrics of docs/operations.md;
#   - deploy/local-cluster.sh: bash -n, shellcheck, its usage errors, and real runs with the chronik
#     binary (up 1, `chronik brokers`, stop, start, down; then up 3, stop/start one node, down) on
#     free loopback ports, every step under a timeout. Skipped without a binary, failed under CI.
#
# The validators come from PyPI, installed once (idempotent) into
# ${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}/deploy-venv; the schemas are files inside those
# packages. tests/deploy/composecheck (Go, compose-go from the Go module proxy) is built once into
# .../deploy-bin. The checks then run in a network namespace of their own where `unshare --net` is
# allowed: nothing but a loopback interface (for the local cluster), to prove nothing is fetched.
#
# Environment: K8S_VERSIONS (default "1.30.0 1.37.0"), PYTHON (default python3), CHRONIK_BIN_PATH
# (default ${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}/release/chronik: the local cluster's
# binary).
# Prints "N passed, N failed" and exits non-zero when anything failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${CHRONIK_TEST_CACHE:-$HOME/.cache/chronik-tests}
VENV=$CACHE/deploy-venv
PYTHON=${PYTHON:-python3}
REQ=$HERE/requirements.txt

# --- install (idempotent: redone only when requirements.txt changes) ------------------------------
stamp=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.stamp" 2>/dev/null) != "$stamp" ]]; then
    echo "== installing validators into $VENV"
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" ||
        ! "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"; then
        echo "check.sh: cannot install $REQ into $VENV" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "$stamp" >"$VENV/.stamp"
fi

# --- composecheck: the compose file loaded by compose-go, the library `docker compose` is built on --
# (Go module proxy; built once per source change, single-threaded to stay light on the machine.)
BIN=$CACHE/deploy-bin
src_stamp=$(cat "$HERE/composecheck/main.go" "$HERE/composecheck/go.mod" "$HERE/composecheck/go.sum" | sha256sum | cut -d' ' -f1)
if [[ ! -x $BIN/composecheck || $(cat "$BIN/composecheck.stamp" 2>/dev/null) != "$src_stamp" ]]; then
    echo "== building composecheck (compose-go) into $BIN"
    mkdir -p "$BIN"
    if command -v go >/dev/null &&
        (cd "$HERE/composecheck" && GOFLAGS=-mod=readonly GOMAXPROCS=1 nice -n 10 go build -p 1 -o "$BIN/composecheck" .); then
        echo "$src_stamp" >"$BIN/composecheck.stamp"
    else
        echo "check.sh: cannot build tests/deploy/composecheck (needs Go and the Go module proxy)" >&2
        rm -f "$BIN/composecheck"
    fi
fi
export COMPOSECHECK=$BIN/composecheck

# --- optional: the real compose parser, when a compose plugin is installed -----------------------
compose_result=skip
if docker compose version >/dev/null 2>&1; then
    if (cd "$ROOT" && docker compose -f deploy/docker-compose.yml config -q &&
        docker compose --env-file deploy/minio.env -f deploy/docker-compose.yml config -q); then
        compose_result=pass
    else
        compose_result=fail
    fi
fi
export CHECK_COMPOSE_CLI=$compose_result
export LOCAL_CLUSTER_BIN=${CHRONIK_BIN_PATH:-${CARGO_TARGET_DIR:-$HOME/.cache/chronik-target}/release/chronik}

# --- the checks, offline --------------------------------------------------------------------------
run=("$VENV/bin/python" "$HERE/check_deploy.py" "$ROOT")
# shellcheck disable=SC2016 # $@ is expanded by the inner shell
if unshare --net sh -c 'ip link set lo up' 2>/dev/null; then
    echo "== running offline (unshare --net: no network interface but the loopback)"
    exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh "${run[@]}"
fi
echo "== unshare --net not permitted here; running with the network present (nothing is fetched)"
exec "${run[@]}"
