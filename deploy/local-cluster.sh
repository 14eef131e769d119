#!/usr/bin/env bash
# A Chronik cluster on this machine: N nodes on 127.0.0.1, each a broker and a controller voter,
# sharing one remote tier on the local file system.
#
#   deploy/local-cluster.sh up N DIR      start nodes 1..N (those not already running) and wait
#                                         until Metadata lists the N brokers
#   deploy/local-cluster.sh stop K DIR    SIGTERM node K and wait for it to exit
#   deploy/local-cluster.sh start K DIR   start node K again on its config and data, and wait
#                                         until it answers on its Kafka port
#   deploy/local-cluster.sh down DIR      stop every node
#   deploy/local-cluster.sh status DIR    pid and state of each node (exit 1 if one is down)
#
# Node K: node_id K, Kafka 127.0.0.1:(KAFKA_PORT_BASE+K-1), admin HTTP (HTTP_PORT_BASE+K-1),
# controller listener (CONTROLLER_PORT_BASE+K-1); config DIR/nodeK.toml, data DIR/nodeK,
# log DIR/nodeK.log, pid DIR/nodeK.pid; the remote tier is file://DIR/remote for all of them.
#
# Environment:
#   KAFKA_PORT_BASE (9092), HTTP_PORT_BASE (9644), CONTROLLER_PORT_BASE (29092): used when `up`
#       writes the configs; a DIR that has them keeps its ports (and its size N).
#   CHRONIK_BIN: the chronik binary; default ${CARGO_TARGET_DIR:-<repo>/target}/release/chronik,
#       built with `cargo build --release` when it is missing.
#   CLUSTER_UP_TIMEOUT (60): seconds `up` and `start` wait.  STOP_TIMEOUT (60): seconds `stop`
#       and `down` wait for a node before SIGKILL.
#   RUST_LOG (info,openraft=warn): the nodes' log filter. No CHRONIK_* variable reaches the nodes (the broker
#       refuses names it does not know); their whole configuration is DIR/nodeK.toml. Logs
#       are plain text (NO_COLOR=1).
set -euo pipefail

PROG=$(basename "$0")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UP_TIMEOUT=${CLUSTER_UP_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}

usage() { # [exit code]
    cat >&2 <<EOF
usage: $PROG up N DIR | start K DIR | stop K DIR | down DIR | status DIR
  up N DIR     start an N-node cluster in DIR (idempotent) and wait for N brokers in Metadata
  start K DIR  start node K of the cluster in DIR
  stop K DIR   stop node K (SIGTERM; SIGKILL after STOP_TIMEOUT=${STOP_TIMEOUT}s)
  down DIR     stop every node of the cluster in DIR
  status DIR   print each node's pid and whether it runs
EOF
    exit "${1:-2}"
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

# --- the binary ---------------------------------------------------------------------------------

BIN=
find_bin() {
    [[ -n $BIN ]] && return 0
    if [[ -n ${CHRONIK_BIN:-} ]]; then
        [[ -x $CHRONIK_BIN ]] || die "CHRONIK_BIN=$CHRONIK_BIN is not an executable file"
        BIN=$CHRONIK_BIN
        return 0
    fi
    # A node started again runs the binary its cluster was brought up with.
    if [[ -n $DIR && -s $DIR/chronik-bin ]] && [[ -x $(cat "$DIR/chronik-bin") ]]; then
        BIN=$(cat "$DIR/chronik-bin")
        return 0
    fi
    local target=${CARGO_TARGET_DIR:-$REPO/target}
    BIN=$target/release/chronik
    if [[ ! -x $BIN ]]; then
        echo "$PROG: no binary at $BIN; building it (cargo build --release)" >&2
        (cd "$REPO" && CARGO_TARGET_DIR=$target cargo build --release) >&2 ||
            die "cargo build --release failed"
        [[ -x $BIN ]] || die "cargo build did not produce $BIN"
    fi
}

# --- the cluster directory ----------------------------------------------------------------------

DIR=
set_dir() { # DIR [create]
    if [[ ${2:-} == create ]]; then
        mkdir -p "$1"
    fi
    [[ -d $1 ]] || die "$1 is not a directory"
    DIR=$(cd "$1" && pwd)
}

conf() { echo "$DIR/node$1.toml"; }
pidfile() { echo "$DIR/node$1.pid"; }
logfile() { echo "$DIR/node$1.log"; }

# The node numbers that have a config in DIR, in order.
nodes() {
    local f k
    for f in "$DIR"/node*.toml; do
        [[ -e $f ]] || continue
        k=${f##*/node}
        k=${k%.toml}
        is_count "$k" && echo "$k"
    done | sort -n
}

# The port of `listen` in section [SECTION] of node K's config.
conf_port() { # K SECTION
    awk -v want="[$2]" '
        /^\[/ { section = $1 }
        section == want && $1 == "listen" { gsub(/"/, "", $3); n = split($3, a, ":"); print a[n]; exit }
    ' "$(conf "$1")"
}

write_conf() { # K N
    local k=$1 n=$2 i voters=""
    local kp=$((KAFKA_BASE + k - 1)) hp=$((HTTP_BASE + k - 1))
    for ((i = 1; i <= n; i++)); do
        voters+="${voters:+, }\"$i@127.0.0.1:$((CONTROLLER_BASE + i - 1))\""
    done
    cat >"$(conf "$k")" <<EOF
# Node $k of $n, written by deploy/local-cluster.sh. Edit, then stop/start the node to apply.
node_id = $k
data_dir = "$DIR/node$k"

[kafka]
listen = "127.0.0.1:$kp"
advertised = "127.0.0.1:$kp"

[http]
listen = "127.0.0.1:$hp"

[tiering]
url = "file://$DIR/remote"

[cluster]
voters = [$voters]
EOF
}

# --- processes ----------------------------------------------------------------------------------

# The pid of node K if it runs (its pid file names a live process started on its config).
running_pid() {
    local pid
    pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A recycled pid is some other process: its command line does not name this config.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(conf "$1")" || return 1
    echo "$pid"
}

launch() { # K
    local k=$1 unset_args=() name
    find_bin
    mkdir -p "$DIR/node$k" "$DIR/remote"
    # The broker refuses CHRONIK_* variables it does not know (CHRONIK_BIN, a test's own ...).
    while read -r name; do
        unset_args+=(-u "$name")
    done < <(compgen -e | grep '^CHRONIK_' || true)
    printf '\n=== %s: starting node %s (%s)\n' "$(date '+%F %T')" "$k" "$BIN" >>"$(logfile "$k")"
    # setsid: a session of its own, so the node outlives this script and its terminal.
    setsid nohup env "${unset_args[@]}" RUST_LOG="${RUST_LOG:-info,openraft=warn}" NO_COLOR=1 \
        "$BIN" serve --config "$(conf "$k")" >>"$(logfile "$k")" 2>&1 </dev/null &
    local pid=$! i
    echo "$pid" >"$(pidfile "$k")"
    # Until setsid, nohup and env have exec'd the binary, the pid's command line is this script's.
    for ((i = 0; i < 50; i++)); do
        running_pid "$k" >/dev/null && break
        sleep 0.1
    done
    echo "node $k: started, pid $pid, Kafka 127.0.0.1:$(conf_port "$k" kafka), log $(logfile "$k")"
}

tail_logs() { # K...
    local k
    for k in "$@"; do
        echo "--- node $k: last lines of $(logfile "$k")" >&2
        tail -n 25 "$(logfile "$k")" >&2 2>/dev/null || true
    done
}

# The broker ids node K's Metadata lists, sorted and space-separated; fails if it does not answer.
broker_ids() {
    "$BIN" brokers --bootstrap "127.0.0.1:$(conf_port "$1" kafka)" --json --timeout-ms 2000 2>/dev/null |
        python3 -c 'import json, sys; print(" ".join(str(i) for i in sorted(b["node_id"] for b in json.load(sys.stdin)["brokers"])))' 2>/dev/null
}

# Waits until every node in "$@" answers Metadata and one of the answers lists exactly the brokers
# 1..N (N = the number of nodes in DIR); prints the logs and fails on timeout or when a node exits.
wait_cluster() {
    local n want k ids ok answered seen=() all=() deadline=$((SECONDS + UP_TIMEOUT))
    mapfile -t all < <(nodes)
    n=${#all[@]}
    want=$(seq -s ' ' 1 "$n")
    while :; do
        seen=() ok=0 answered=0
        for k in "$@"; do
            if ! running_pid "$k" >/dev/null; then
                echo "$PROG: node $k exited" >&2
                tail_logs "$k"
                return 1
            fi
            if ids=$(broker_ids "$k"); then
                answered=$((answered + 1))
                seen+=("node $k lists [$ids]")
                [[ $ids == "$want" ]] && ok=1
            else
                seen+=("node $k: no answer")
            fi
        done
        if ((ok && answered == $#)); then
            echo "cluster up: ${seen[*]}"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "$PROG: timed out after ${UP_TIMEOUT}s waiting for Metadata to list brokers [$want]: ${seen[*]}" >&2
            tail_logs "${all[@]}"
            return 1
        fi
        sleep 0.5
    done
}

wait_answers() { # K: node K answers Metadata on its Kafka port
    local k=$1 deadline=$((SECONDS + UP_TIMEOUT))
    until broker_ids "$k" >/dev/null; do
        if ! running_pid "$k" >/dev/null; then
            echo "$PROG: node $k exited" >&2
            tail_logs "$k"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "$PROG: node $k does not answer on 127.0.0.1:$(conf_port "$k" kafka) after ${UP_TIMEOUT}s" \
                "(a node opens its broker once a majority of the voters runs)" >&2
            tail_logs "$k"
            return 1
        fi
        sleep 0.5
    done
    echo "node $k: answering on 127.0.0.1:$(conf_port "$k" kafka)"
}

# SIGTERM to the given nodes, then waits for all of them (SIGKILL after STOP_TIMEOUT).
stop_nodes() { # K...
    local k pid entry pids=() left deadline=$((SECONDS + STOP_TIMEOUT))
    for k in "$@"; do
        if pid=$(running_pid "$k"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$k:$pid")
        else
            echo "node $k: not running"
            rm -f "$(pidfile "$k")"
        fi
    done
    for entry in "${pids[@]}"; do
        k=${entry%%:*} pid=${entry#*:}
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                echo "$PROG: node $k (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
                left=50
                while kill -0 "$pid" 2>/dev/null && ((left-- > 0)); do sleep 0.1; done
                break
            fi
            sleep 0.2
        done
        rm -f "$(pidfile "$k")"
        echo "node $k: stopped (pid $pid)"
    done
}

node_arg() { # K: must be a node of DIR
    is_count "$1" || usage
    [[ -f $(conf "$1") ]] || die "$DIR has no node $1 (no $(conf "$1"); create the cluster with: $PROG up N $DIR)"
}

# --- commands -----------------------------------------------------------------------------------

cmd_up() { # N DIR
    local n=$1 k have pid
    is_count "$n" || usage
    set_dir "$2" create
    have=$(nodes | wc -l)
    if ((have > 0 && have != n)); then
        die "$DIR holds a cluster of $have node(s), not $n (changing the voters is not supported: use another DIR)"
    fi
    KAFKA_BASE=${KAFKA_PORT_BASE:-9092}
    HTTP_BASE=${HTTP_PORT_BASE:-9644}
    CONTROLLER_BASE=${CONTROLLER_PORT_BASE:-29092}
    find_bin
    echo "$BIN" >"$DIR/chronik-bin"
    for ((k = 1; k <= n; k++)); do
        [[ -f $(conf "$k") ]] || write_conf "$k" "$n"
    done
    for ((k = 1; k <= n; k++)); do
        if pid=$(running_pid "$k"); then
            echo "node $k: already running, pid $pid"
        else
            launch "$k"
        fi
    done
    # shellcheck disable=SC2046 # one node number per word
    wait_cluster $(nodes)
    echo "bootstrap: $(for k in $(nodes); do printf '127.0.0.1:%s,' "$(conf_port "$k" kafka)"; done | sed 's/,$//')"
}

cmd_start() { # K DIR
    local pid
    set_dir "$2"
    node_arg "$1"
    find_bin
    if pid=$(running_pid "$1"); then
        echo "node $1: already running, pid $pid"
    else
        launch "$1"
    fi
    wait_answers "$1"
}

cmd_stop() { # K DIR
    set_dir "$2"
    node_arg "$1"
    stop_nodes "$1"
}

cmd_down() { # DIR
    set_dir "$1"
    # shellcheck disable=SC2046 # one node number per word
    stop_nodes $(nodes)
}

cmd_status() { # DIR
    local k pid rc=0
    set_dir "$1"
    for k in $(nodes); do
        if pid=$(running_pid "$k"); then
            echo "node $k: running, pid $pid, Kafka 127.0.0.1:$(conf_port "$k" kafka), admin 127.0.0.1:$(conf_port "$k" http)"
        else
            echo "node $k: not running$(pid=$(cat "$(pidfile "$k")" 2>/dev/null) && echo " (stale pid $pid)")"
            rc=1
        fi
    done
    return "$rc"
}

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
up) (($# == 2)) || usage; cmd_up "$@" ;;
start) (($# == 2)) || usage; cmd_start "$@" ;;
stop) (($# == 2)) || usage; cmd_stop "$@" ;;
down) (($# == 1)) || usage; cmd_down "$@" ;;
status) (($# == 1)) || usage; cmd_status "$@" ;;
-h | --help | help) usage 0 ;;
*) echo "$PROG: unknown command '$cmd'" >&2; usage ;;
esac
