#!/usr/bin/env bash
# Stop the LocalStack instance that localstack/start.sh started on $PORT (default 4566).
set -euo pipefail

LOCALSTACK_HOME="${LOCALSTACK_HOME:-$HOME/.cache/chronik-localstack}"
PORT="${PORT:-4566}"
PIDFILE="$LOCALSTACK_HOME/localstack-$PORT.pid"

if [[ ! -f "$PIDFILE" ]]; then
  echo "localstack: not running (no $PIDFILE)" >&2
  exit 0
fi
pid="$(cat "$PIDFILE")"
if kill -0 "$pid" 2>/dev/null; then
  # start.sh runs LocalStack under setsid, so its pid is also its process group: stopping the
  # group also stops the helper processes it spawned.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "localstack: pid $pid ignored SIGTERM for 10s, sending SIGKILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
fi
rm -f "$PIDFILE"
echo "localstack: stopped" >&2
