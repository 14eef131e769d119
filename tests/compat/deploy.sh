#!/usr/bin/env bash
# deploy suite: static checks of deploy/ (Kubernetes manifests against their schemas, the compose
# file, the Dockerfile, the Grafana dashboard's metric names) — offline, no broker needed — and
# deploy/local-cluster.sh run with the chronik binary (CHRONIK_BIN_PATH or
# $CARGO_TARGET_DIR/release/chronik) on loopback ports.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$HERE/../deploy/check.sh" "$@"
