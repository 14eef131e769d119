#!/usr/bin/env bash
# kcat (Debian: kcat 1.7.1 on librdkafka 2.0.2) against the broker at $BOOTSTRAP.
# Topics are created by producing to them (broker-side auto-creation), except the multi-partition
# topic of the balanced-consumer (-G) tests, created with the venv's confluent-kafka admin client.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

command -v kcat >/dev/null || { echo "kcat not installed (tests/run.sh setup installs it)"; exit 1; }
KCAT=(timeout 60 kcat -b "$BOOTSTRAP" -X socket.timeout.ms=20000 -X topic.metadata.refresh.interval.ms=1000)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "kcat suite against $BOOTSTRAP ($(kcat -V 2>&1 | grep -o 'Version [^ ]* .*librdkafka [0-9.]*' | head -1))"

# Build the input lines "key:value". Values contain the delimiter, UTF-8, tabs and a long line;
# kcat splits the key at the first ':' only.
make_input() {
    local codec=$1 n=$2 i
    for ((i = 0; i < n; i++)); do
        case $((i % 5)) in
        0) printf 'k-%s-%d:plain value %d\n' "$codec" "$i" "$i" ;;
        1) printf 'k-%s-%d:value:with:colons %d\n' "$codec" "$i" "$i" ;;
        2) printf 'k-%s-%d:utf8 ✓ ü ß 日本 %d\ttab\n' "$codec" "$i" "$i" ;;
        3) printf 'k-%s-%d:%s\n' "$codec" "$i" "$(head -c 3000 /dev/zero | tr '\0' 'x')$i" ;;
        4) printf 'k-%s-%d:%d\n' "$codec" "$i" "$((i * 7919))" ;;
        esac
    done
}

# Expected consumer output for the format  %k|%K|%s|%S|%h|%o  (offsets start at 0).
expected_output() {
    local input=$1 headers=$2 off=0 line key value
    while IFS= read -r line; do
        key=${line%%:*}
        value=${line#*:}
        printf '%s|%d|%s|%d|%s|%d\n' "$key" "$(printf '%s' "$key" | wc -c)" "$value" \
            "$(printf '%s' "$value" | wc -c)" "$headers" "$off"
        off=$((off + 1))
    done <"$input"
}

produce() { # topic codec input-file
    local topic=$1 codec=$2 input=$3
    "${KCAT[@]}" -P -t "$topic" -K: -H "codec=$codec" -H "suite=kcat" \
        -X compression.codec="$codec" -X acks=all -X message.timeout.ms=30000 -l "$input" 2>"$WORK/produce.err"
}

consume_all() { # topic [extra args]
    local topic=$1
    shift
    "${KCAT[@]}" -C -t "$topic" -p 0 -e -q -o beginning "$@" -f '%k|%K|%s|%S|%h|%o\n' 2>"$WORK/consume.err"
}

# --- round trip under every codec -------------------------------------------------------------
N=40
for codec in none gzip snappy lz4 zstd; do
    topic="compat-kcat-$codec-$SUFFIX"
    make_input "$codec" "$N" >"$WORK/in-$codec"
    if produce "$topic" "$codec" "$WORK/in-$codec"; then
        ok "produce $N keyed messages with headers, compression.codec=$codec"
    else
        not_ok "produce $N keyed messages with headers, compression.codec=$codec" "$(tail -3 "$WORK/produce.err")"
        continue
    fi
    expected=$(expected_output "$WORK/in-$codec" "codec=$codec,suite=kcat")
    actual=$(consume_all "$topic")
    check_eq "consume back byte-identical and in order, codec=$codec" "$expected" "$actual"
done

# --- metadata ---------------------------------------------------------------------------------
topic="compat-kcat-none-$SUFFIX"
meta=$("${KCAT[@]}" -L -t "$topic" 2>&1)
if grep -q "topic \"$topic\" with 1 partitions" <<<"$meta" && grep -Eq 'partition 0, leader [0-9]+' <<<"$meta" \
    && grep -Eq '^ *[0-9]+ brokers:' <<<"$meta"; then
    ok "metadata for one topic (-L -t)"
else
    not_ok "metadata for one topic (-L -t)" "$meta"
fi
meta_all=$("${KCAT[@]}" -L -J 2>&1)
if python3 - "$meta_all" "$SUFFIX" <<'EOF'; then
import json, sys
m = json.loads(sys.argv[1])
names = {t["topic"] for t in m["topics"]}
want = {f"compat-kcat-{c}-{sys.argv[2]}" for c in ("none", "gzip", "snappy", "lz4", "zstd")}
assert want <= names, (want - names)
assert len(m["brokers"]) >= 1, m["brokers"]
for t in m["topics"]:
    if t["topic"] in want:
        assert [p["partition"] for p in t["partitions"]] == [0], t
        assert t["partitions"][0]["leader"] >= 0, t
EOF
    ok "metadata for all topics as JSON (-L -J) lists the new topics"
else
    not_ok "metadata for all topics as JSON (-L -J) lists the new topics" "${meta_all:0:500}"
fi

# --- offsets by timestamp ---------------------------------------------------------------------
topic="compat-kcat-time-$SUFFIX"
make_input early 5 >"$WORK/in-early"
make_input late 5 >"$WORK/in-late"
produce "$topic" none "$WORK/in-early" || not_ok "produce first half for timestamp test" "$(cat "$WORK/produce.err")"
sleep 1.2
mid_ms=$(($(date +%s%N) / 1000000))
sleep 1.2
produce "$topic" none "$WORK/in-late" || not_ok "produce second half for timestamp test" "$(cat "$WORK/produce.err")"

q=$("${KCAT[@]}" -Q -t "$topic:0:$mid_ms" 2>&1)
check_eq "query offset by timestamp between batches (-Q) gives first later offset" \
    "$topic [0] offset 5" "$(grep -o "$topic \[0\] offset -\?[0-9]*" <<<"$q")"
q=$("${KCAT[@]}" -Q -t "$topic:0:0" 2>&1)
check_eq "query offset by timestamp 0 gives offset 0" \
    "$topic [0] offset 0" "$(grep -o "$topic \[0\] offset -\?[0-9]*" <<<"$q")"
future=$(($(date +%s%N) / 1000000 + 3600000))
q=$("${KCAT[@]}" -Q -t "$topic:0:$future" 2>&1)
check_eq "query offset by a future timestamp gives -1 (no such record)" \
    "$topic [0] offset -1" "$(grep -o "$topic \[0\] offset -\?[0-9]*" <<<"$q")"

actual=$(consume_all "$topic" -o "s@$mid_ms" | cut -d'|' -f1,6)
check_eq "consume starting at a timestamp (-o s@ts)" \
    "$(printf 'k-late-%d|%d\n' 0 5 1 6 2 7 3 8 4 9)" "$actual"
actual=$(consume_all "$topic" -o -3 | cut -d'|' -f6 | tr '\n' ' ')
check_eq "consume the last 3 messages (-o -3)" "7 8 9 " "$actual"
actual=$(consume_all "$topic" -o 4 -c 2 | cut -d'|' -f1,6 | tr '\n' ' ')
check_eq "consume from an absolute offset with a count (-o 4 -c 2)" "k-early-4|4 k-late-0|5 " "$actual"

# --- explicit partition and null-free empty values --------------------------------------------
topic="compat-kcat-empty-$SUFFIX"
printf 'a:\nb:x\n' >"$WORK/in-empty"
if produce "$topic" lz4 "$WORK/in-empty"; then
    actual=$(consume_all "$topic" | cut -d'|' -f1-4,6 | tr '\n' ' ')
    check_eq "empty value round trip" "a|1||0|0 b|1|x|1|1 " "$actual"
else
    not_ok "empty value round trip" "$(cat "$WORK/produce.err")"
fi


# --- balanced consumer groups (-G) ------------------------------------------------------------
topic="compat-kcat-group-$SUFFIX"
group="compat-kcat-group-$SUFFIX"
if "$CACHE/venv/bin/python" - "$BOOTSTRAP" "$topic" <<'EOF'; then
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
admin.create_topics([NewTopic(sys.argv[2], num_partitions=4, replication_factor=1)])[sys.argv[2]].result(30)
EOF
    ok "create a 4-partition topic for the -G tests"
else
    not_ok "create a 4-partition topic for the -G tests"
fi
GROUP_KCAT=(kcat -b "$BOOTSTRAP" -X socket.timeout.ms=20000 -X topic.metadata.refresh.interval.ms=1000
    -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 -X auto.commit.interval.ms=500 -X auto.offset.reset=earliest)
# Two balanced consumers in one group; each prints "partition offset value" per record, and its
# rebalance lines ("assigned: topic [p], …") go to stderr.
for m in a b; do
    timeout 90 "${GROUP_KCAT[@]}" -G "$group" -f '%p %o %s\n' "$topic" >"$WORK/g-$m.out" 2>"$WORK/g-$m.err" &
    eval "pid_$m=\$!"
done
last_assigned() { # member -> its current partitions, sorted, space separated
    grep -E 'rebalanced|assigned' "$WORK/g-$1.err" | tail -1 | grep 'assigned:' \
        | grep -oE '\[[0-9]+\]' | tr -d '[]' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
split=no
for _ in $(seq 1 150); do
    pa=$(last_assigned a) pb=$(last_assigned b)
    all=$(printf '%s %s' "$pa" "$pb" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')
    if [[ -n $pa && -n $pb && $all == "0 1 2 3 " ]]; then split=yes; break; fi
    sleep 0.2
done
check_eq "two -G consumers split the 4 partitions between them (a: ${pa:-none}, b: ${pb:-none})" yes "$split"
[[ $split == yes ]] || { echo "       a: $(tail -3 "$WORK/g-a.err")"; echo "       b: $(tail -3 "$WORK/g-b.err")"; }
# 40 keyed records; the keys spread them over the partitions.
for i in $(seq 0 39); do printf 'key%d:g%d\n' "$i" "$i"; done >"$WORK/in-group"
produce "$topic" none "$WORK/in-group" || not_ok "produce 40 records for the -G consumers" "$(tail -3 "$WORK/produce.err")"
for _ in $(seq 1 100); do
    (($(cat "$WORK/g-a.out" "$WORK/g-b.out" | wc -l) >= 40)) && break
    sleep 0.2
done
sleep 1.5 # let both commit (auto.commit.interval.ms=500) before leaving
kill -INT "$pid_a" "$pid_b" 2>/dev/null
wait "$pid_a" "$pid_b" 2>/dev/null
check_eq "the two -G consumers together read each of the 40 records exactly once" \
    "$(seq 0 39 | sed 's/^/g/')" "$(cat "$WORK/g-a.out" "$WORK/g-b.out" | awk '{print $3}' | sort -V)"
wrong=$(awk -v own=" $pa " 'index(own, " " $1 " ") == 0' "$WORK/g-a.out"; awk -v own=" $pb " 'index(own, " " $1 " ") == 0' "$WORK/g-b.out")
check_eq "each -G consumer read only its own partitions" "" "$wrong"
# A later member of the group resumes after the committed offsets: it sees only new records.
for i in $(seq 40 44); do printf 'key%d:g%d\n' "$i" "$i"; done >"$WORK/in-group2"
produce "$topic" none "$WORK/in-group2" || not_ok "produce 5 more records" "$(tail -3 "$WORK/produce.err")"
actual=$(timeout 60 "${GROUP_KCAT[@]}" -G "$group" -e -q -f '%s\n' "$topic" 2>"$WORK/g-c.err" | sort -V | tr '\n' ' ')
check_eq "a new -G consumer of the group resumes after the committed offsets (-e)" "g40 g41 g42 g43 g44 " "$actual"
[[ $actual == "g40 g41 g42 g43 g44 " ]] || echo "       $(tail -5 "$WORK/g-c.err")"

finish
