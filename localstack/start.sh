#!/usr/bin/env bash
# Start LocalStack's S3 on loopback without Docker, for Chronik's tests and local development.
#
# Idempotent: installs LocalStack into a venv outside the repository on first use, starts it in
# the background, waits until it is ready and makes sure the bucket exists. When an instance
# started by this script is already running and healthy, it only ensures the bucket.
#
# Environment:
#   LOCALSTACK_HOME  venv, state and logs (default: $HOME/.cache/chronik-localstack)
#   PORT             gateway port on 127.0.0.1 (default: 4566)
#   BUCKET           bucket to create (default: chronik)
#   READY_TIMEOUT    seconds to wait for "Ready." (default: 90)
#   PYTHON           interpreter used to create the venv (default: python3)
set -euo pipefail

LOCALSTACK_HOME="${LOCALSTACK_HOME:-$HOME/.cache/chronik-localstack}"
PORT="${PORT:-4566}"
BUCKET="${BUCKET:-chronik}"
READY_TIMEOUT="${READY_TIMEOUT:-90}"
PYTHON="${PYTHON:-python3}"

VENV="$LOCALSTACK_HOME/venv"
STATE="$LOCALSTACK_HOME/state-$PORT"
LOG="$LOCALSTACK_HOME/localstack-$PORT.log"
PIDFILE="$LOCALSTACK_HOME/localstack-$PORT.pid"
ENDPOINT="http://127.0.0.1:$PORT"

# These pins are the combination known to work on Python 3.11 without an account
# (see /work/shared/design/ENVIRONMENT.md); newer releases fail or ask for a login.
PINS=(
  'localstack-core[base-runtime]==4.13.1'
  'cbor2<6'
  'pyopenssl<24.3'
  'cryptography<44'
  'service_identity'
  'boto3'
)

log() { printf 'localstack: %s\n' "$*" >&2; }

install() {
  mkdir -p "$LOCALSTACK_HOME"
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import localstack, boto3' 2>/dev/null \
      && [[ -f "$VENV/.chronik-pins" ]] && [[ "$(cat "$VENV/.chronik-pins")" == "${PINS[*]}" ]]; then
    return
  fi
  log "installing into $VENV (first run, this takes a while)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "${PINS[@]}"
  printf '%s' "${PINS[*]}" > "$VENV/.chronik-pins"
}

running() {
  [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

healthy() {
  # LocalStack answers its own health endpoint with the state of each service.
  "$VENV/bin/python" - "$ENDPOINT" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_localstack/health", timeout=3) as r:
    state = json.load(r).get("services", {}).get("s3")
sys.exit(0 if state in ("running", "available") else 1)
PY
}

ensure_bucket() {
  "$VENV/bin/python" - "$ENDPOINT" "$BUCKET" <<'PY'
import sys, boto3, botocore.exceptions
endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
try:
    s3.head_bucket(Bucket=bucket)
except botocore.exceptions.ClientError:
    s3.create_bucket(Bucket=bucket)
print(f"localstack: bucket {bucket} ready at {endpoint}", file=sys.stderr)
PY
}

start() {
  mkdir -p "$STATE"
  : > "$LOG"
  log "starting on $ENDPOINT (log: $LOG)"
  # OVERRIDE_IN_DOCKER=0: this machine looks like a container, and LocalStack would otherwise
  # assume its Docker layout and write to /var/lib/localstack.
  # GATEWAY_SERVER=hypercorn: LocalStack 4.13's default (twisted) gateway ignores the host part
  # of GATEWAY_LISTEN for IPv4 and binds 0.0.0.0; hypercorn binds 127.0.0.1 as asked.
  (
    cd "$STATE"
    exec env \
      OVERRIDE_IN_DOCKER=0 \
      SERVICES=s3 \
      GATEWAY_LISTEN="127.0.0.1:$PORT" \
      GATEWAY_SERVER="${GATEWAY_SERVER:-hypercorn}" \
      EAGER_SERVICE_LOADING=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 \
      DNS_ADDRESS=0 \
      LOCALSTACK_TELEMETRY_DISABLED=1 \
      FILESYSTEM_ROOT="$STATE" \
      setsid "$VENV/bin/python" -m localstack.runtime.main
  ) >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PIDFILE"

  local started=$SECONDS
  while ! grep -q 'Ready\.' "$LOG"; do
    if ! running; then
      log "exited before it was ready; last lines of $LOG:"
      tail -n 20 "$LOG" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    if (( SECONDS - started >= READY_TIMEOUT )); then
      log "not ready after ${READY_TIMEOUT}s; last lines of $LOG:"
      tail -n 20 "$LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
  log "ready after $((SECONDS - started))s (pid $(cat "$PIDFILE"))"
}

install
if running && healthy; then
  log "already running (pid $(cat "$PIDFILE")), only ensuring the bucket"
elif running; then
  log "pid $(cat "$PIDFILE") is alive but not healthy; stop it with localstack/stop.sh first"
  exit 1
else
  start
fi
ensure_bucket
echo "$ENDPOINT"
