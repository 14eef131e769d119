#!/usr/bin/env bash
# moto_server: a lighter S3 emulator than LocalStack (in memory, ready in about a second).
#
#   localstack/moto.sh start   # installs moto[server] into a venv on first use, starts it
#   localstack/moto.sh stop
#
# Environment: MOTO_HOME (default $HOME/.cache/chronik-moto), PORT (default 5000),
# BUCKET (default chronik), READY_TIMEOUT (default 30 seconds), PYTHON (default python3).
set -euo pipefail

MOTO_HOME="${MOTO_HOME:-$HOME/.cache/chronik-moto}"
PORT="${PORT:-5000}"
BUCKET="${BUCKET:-chronik}"
READY_TIMEOUT="${READY_TIMEOUT:-30}"
PYTHON="${PYTHON:-python3}"

VENV="$MOTO_HOME/venv"
LOG="$MOTO_HOME/moto-$PORT.log"
PIDFILE="$MOTO_HOME/moto-$PORT.pid"
ENDPOINT="http://127.0.0.1:$PORT"

log() { printf 'moto: %s\n' "$*" >&2; }

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

install() {
  mkdir -p "$MOTO_HOME"
  if [[ -x "$VENV/bin/moto_server" ]] && "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    return
  fi
  log "installing into $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet 'moto[server]' boto3
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
print(f"moto: bucket {bucket} ready at {endpoint}", file=sys.stderr)
PY
}

start() {
  install
  if running; then
    log "already running (pid $(cat "$PIDFILE"))"
  else
    : > "$LOG"
    setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >>"$LOG" 2>&1 </dev/null &
    echo $! > "$PIDFILE"
    local started=$SECONDS
    until "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "$ENDPOINT/moto-api/" 2>/dev/null; do
      if ! running; then
        log "exited before it was ready:"; tail -n 20 "$LOG" >&2; rm -f "$PIDFILE"; exit 1
      fi
      if (( SECONDS - started >= READY_TIMEOUT )); then
        log "not ready after ${READY_TIMEOUT}s:"; tail -n 20 "$LOG" >&2; exit 1
      fi
      sleep 0.3
    done
    log "ready after $((SECONDS - started))s (pid $(cat "$PIDFILE"))"
  fi
  ensure_bucket
  echo "$ENDPOINT"
}

stop() {
  if ! running; then
    rm -f "$PIDFILE"
    log "not running"
    return
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$PIDFILE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
