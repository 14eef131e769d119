#!/usr/bin/env bash
# Apache Kafka's own command-line tools (kafka-tools jar, run with java -cp) against $BOOTSTRAP:
# TopicCommand, ConfigCommand, ConsoleProducer, ConsoleConsumer (assigned partition, no group),
# GetOffsetShell, DeleteRecordsCommand, and ConsumerGroupCommand (kafka-consumer-groups) on a group
# committed by ConsoleConsumer --group. The classpath comes from tests/compat/java/pom.xml.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

CP_FILE=$("$HERE/kafka-tools-classpath.sh") || exit 1
CP=$(cat "$CP_FILE")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "Apache Kafka CLI tools suite against $BOOTSTRAP"

tool() { # CLASS ARGS... ; stdout+stderr to $WORK/out, exit code returned
    local cls=$1
    shift
    timeout 90 java -Xmx256m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$CP" "$cls" "$@" >"$WORK/out" 2>&1
}
has() { [[ -z $1 ]] || grep -qE -- "$1" "$WORK/out"; }
expect() { # NAME PATTERN CLASS ARGS...  (passes when the tool exits 0 and prints PATTERN)
    local name=$1 pattern=$2
    shift 2
    if tool "$@" && has "$pattern"; then ok "$name"; else not_ok "$name" "$(tail -n 8 "$WORK/out")"; fi
}

T=compat-cli-$SUFFIX
TOPICS=org.apache.kafka.tools.TopicCommand
CONFIGS=org.apache.kafka.tools.ConfigCommand

expect "TopicCommand --create with a config" "Created topic $T" \
    $TOPICS --bootstrap-server "$BOOTSTRAP" --create --topic "$T" --partitions 2 --replication-factor 1 \
    --config retention.ms=3600000
expect "TopicCommand --list shows the topic" "^$T\$" $TOPICS --bootstrap-server "$BOOTSTRAP" --list
expect "TopicCommand --describe shows partitions and config" "PartitionCount: 2.*ReplicationFactor: 1.*retention.ms=3600000" \
    $TOPICS --bootstrap-server "$BOOTSTRAP" --describe --topic "$T"
if has "Partition: 1[[:space:]]+Leader: [0-9]+"; then ok "TopicCommand --describe lists partition 1 with a leader"; else not_ok "TopicCommand --describe lists partition 1 with a leader" "$(cat "$WORK/out")"; fi
if tool $TOPICS --bootstrap-server "$BOOTSTRAP" --create --topic "$T" --partitions 1 --replication-factor 1 \
    || ! has "already exists"; then
    not_ok "TopicCommand --create of an existing topic fails" "$(tail -n 5 "$WORK/out")"
else
    ok "TopicCommand --create of an existing topic fails"
fi

expect "ConfigCommand --alter --add-config" "Completed updating config for topic $T" \
    $CONFIGS --bootstrap-server "$BOOTSTRAP" --entity-type topics --entity-name "$T" --alter \
    --add-config retention.ms=7200000,segment.ms=86400000
expect "ConfigCommand --describe shows the new values" "retention.ms=7200000" \
    $CONFIGS --bootstrap-server "$BOOTSTRAP" --entity-type topics --entity-name "$T" --describe
if has "segment.ms=86400000"; then ok "ConfigCommand --describe shows segment.ms"; else not_ok "ConfigCommand --describe shows segment.ms" "$(cat "$WORK/out")"; fi
expect "ConfigCommand --alter --delete-config" "Completed updating config for topic $T" \
    $CONFIGS --bootstrap-server "$BOOTSTRAP" --entity-type topics --entity-name "$T" --alter --delete-config segment.ms
if tool $CONFIGS --bootstrap-server "$BOOTSTRAP" --entity-type topics --entity-name "$T" --describe \
    && has "retention.ms=7200000" && ! has "segment.ms="; then
    ok "ConfigCommand --describe after delete-config"
else
    not_ok "ConfigCommand --describe after delete-config" "$(cat "$WORK/out")"
fi
if tool $CONFIGS --bootstrap-server "$BOOTSTRAP" --entity-type topics --entity-name "$T" --alter \
    --add-config retention.ms=soon || ! has "InvalidConfigurationException|Invalid value"; then
    not_ok "ConfigCommand rejects an invalid value" "$(tail -n 5 "$WORK/out")"
else
    ok "ConfigCommand rejects an invalid value"
fi

# Produce 25 keyed lines to partition 0 with the console producer, read them back.
for i in $(seq 1 25); do printf 'key%d\tvalue %d ✓\n' "$i" "$i"; done >"$WORK/lines"
if timeout 90 java -Xmx256m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CP" \
    org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic "$T" \
    --property parse.key=true --property "key.separator=	" --compression-codec zstd \
    --producer-property partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner \
    --producer-property acks=all --sync <"$WORK/lines" >"$WORK/out" 2>&1; then
    ok "ConsoleProducer sends 25 keyed lines (zstd)"
else
    not_ok "ConsoleProducer sends 25 keyed lines (zstd)" "$(tail -n 5 "$WORK/out")"
fi

tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$T" --time -1
latest=$(grep -E "^$T:[0-9]+:[0-9]+" "$WORK/out" | sort)
total=$(awk -F: '{s += $3} END {print s+0}' <<<"$latest")
check_eq "GetOffsetShell --time -1: two partitions, 25 records in all" "2 25" "$(wc -l <<<"$latest" | tr -d ' ') $total"
expect "GetOffsetShell --time -2 gives 0 for partition 0" "^$T:0:0\$" \
    org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$T" --partitions 0 --time -2
p0_end=$(grep "^$T:0:" <<<"$latest" | cut -d: -f3)

tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$T" \
    --partition 0 --offset earliest --max-messages "${p0_end:-0}" --timeout-ms 20000 \
    --property print.key=true --property print.offset=true
# Lines look like "Offset:N<TAB>keyK<TAB>value K ✓"; turn them into "N K K".
consumed=$(grep -E '^Offset:[0-9]+' "$WORK/out" | sed -E 's/^Offset:([0-9]+)\tkey([0-9]+)\tvalue ([0-9]+) ✓$/\1 \2 \3/')
# Offsets must be 0..n-1 in order, each key must carry its own value, and keys must be unique.
bad=$(awk -v n="${p0_end:-0}" '{ if ($1 != NR - 1 || $2 != $3 || NF != 3) e++ } END { if (NR != n || n == 0) e++; print e + 0 }' <<<"$consumed")
dups=$(awk '{print $2}' <<<"$consumed" | sort | uniq -d | wc -l)
check_eq "ConsoleConsumer (assigned partition 0, no group) reads offsets 0..$((${p0_end:-0} - 1)) with matching keys/values" \
    "0 0" "$bad $dups"

printf '{"version":1,"partitions":[{"topic":"%s","partition":0,"offset":3}]}\n' "$T" >"$WORK/delete.json"
expect "DeleteRecordsCommand up to offset 3" "low_watermark: 3" \
    org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$BOOTSTRAP" --offset-json-file "$WORK/delete.json"
expect "GetOffsetShell --time -2 after delete-records gives 3" "^$T:0:3\$" \
    org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$T" --partitions 0 --time -2

expect "TopicCommand --alter --partitions 3" "" \
    $TOPICS --bootstrap-server "$BOOTSTRAP" --alter --topic "$T" --partitions 3
expect "TopicCommand --describe shows 3 partitions" "PartitionCount: 3" \
    $TOPICS --bootstrap-server "$BOOTSTRAP" --describe --topic "$T"
expect "TopicCommand --delete" "" $TOPICS --bootstrap-server "$BOOTSTRAP" --delete --topic "$T"
gone=no
for _ in $(seq 1 20); do
    tool $TOPICS --bootstrap-server "$BOOTSTRAP" --list
    if ! has "^$T\$"; then gone=yes; break; fi
    sleep 1
done
check_eq "topic is gone from --list after --delete" yes "$gone"


# --- consumer groups: ConsumerGroupCommand (bin/kafka-consumer-groups.sh) ------------------------
GT=compat-cli-groups-$SUFFIX
G=compat-cli-group-$SUFFIX
CG=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
console_produce() { # TOPIC PREFIX COUNT: COUNT lines spread round-robin over the partitions
    local i
    for i in $(seq 1 "$3"); do echo "$2$i"; done | timeout 90 java -Xmx256m -XX:TieredStopAtLevel=1 \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CP" org.apache.kafka.tools.ConsoleProducer \
        --bootstrap-server "$BOOTSTRAP" --topic "$1" --sync \
        --command-property partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner >"$WORK/out" 2>&1
}
log_ends() { # TOPIC -> "partition end" lines, sorted
    tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$1" --time -1
    grep -E "^$1:[0-9]+:[0-9]+\$" "$WORK/out" | awk -F: '{print $2, $3}' | sort -n
}
describe_rows() { # -> "partition current end lag consumer-id" lines of group $G on topic $GT, sorted
    tool $CG --bootstrap-server "$BOOTSTRAP" --describe --group "$G"
    awk -v g="$G" -v t="$GT" '$1 == g && $2 == t {print $3, $4, $5, $6, $7}' "$WORK/out" | sort -n
}

expect "TopicCommand --create a 3-partition topic for the group tests" "Created topic $GT" \
    $TOPICS --bootstrap-server "$BOOTSTRAP" --create --topic "$GT" --partitions 3 --replication-factor 1
console_produce "$GT" v 30 || not_ok "ConsoleProducer sends 30 lines for the group tests" "$(tail -n 5 "$WORK/out")"
ends1=$(log_ends "$GT")
tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$GT" --group "$G" \
    --from-beginning --max-messages 30 --timeout-ms 20000
check_eq "ConsoleConsumer --group --from-beginning reads all 30 records (and commits on exit)" \
    30 "$(grep -cE '^v[0-9]+$' "$WORK/out")"
expect "ConsumerGroupCommand --list shows the group" "^$G\$" $CG --bootstrap-server "$BOOTSTRAP" --list
console_produce "$GT" w 6 || not_ok "ConsoleProducer sends 6 more lines" "$(tail -n 5 "$WORK/out")"
ends2=$(log_ends "$GT")
# Expected rows: the committed offset is the log end before the 6 new lines, the lag the difference.
expected=$(join <(echo "$ends1") <(echo "$ends2") | awk '{print $1, $2, $3, $3 - $2, "-"}')
check_eq "--describe of the inactive group: CURRENT-OFFSET, LOG-END-OFFSET and LAG per partition" \
    "$expected" "$(describe_rows)"
if has "Consumer group '$G' has no active members"; then ok "--describe says the group has no active members"; else not_ok "--describe says the group has no active members" "$(cat "$WORK/out")"; fi
check_eq "the lags add up to the 6 new records" 6 "$(awk '{s += $4} END {print s + 0}' <<<"$expected")"

# An active member: a ConsoleConsumer in the group in the background (it leaves on SIGTERM).
timeout 60 java -Xmx256m -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CP" \
    org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$GT" --group "$G" \
    --timeout-ms 45000 --consumer-property auto.commit.interval.ms=500 >"$WORK/bg" 2>&1 &
BG=$!
active=no
for _ in $(seq 1 40); do
    rows=$(describe_rows)
    # every partition owned by a member (CONSUMER-ID not "-") and consumed up to the log end
    if [[ $(awk '$5 != "-" && $4 == 0' <<<"$rows" | wc -l) == 3 ]]; then active=yes; break; fi
    sleep 0.5
done
check_eq "--describe of an active group: one member owns every partition, lag 0 after it consumed" yes "$active"
[[ $active == yes ]] || echo "       last describe: $(cat "$WORK/out")"
check_eq "the active member consumed the 6 new lines" 6 "$(grep -cE '^w[0-9]+$' "$WORK/bg")"
expect "--describe --state: Stable, range assignor, 1 member" "^$G +[^ ]+ +\([0-9]+\) +range +Stable +1 *\$" \
    $CG --bootstrap-server "$BOOTSTRAP" --describe --group "$G" --state
tool $CG --bootstrap-server "$BOOTSTRAP" --reset-offsets --to-earliest --group "$G" --topic "$GT" --execute
if has "can only be reset if the group '$G' is inactive"; then ok "--reset-offsets is refused while the group has a member"; else not_ok "--reset-offsets is refused while the group has a member" "$(cat "$WORK/out")"; fi
kill -TERM "$BG" 2>/dev/null
wait "$BG" 2>/dev/null
empty=no
for _ in $(seq 1 40); do
    tool $CG --bootstrap-server "$BOOTSTRAP" --describe --group "$G" --state
    if grep -qE "^$G +[^ ]+ +\([0-9]+\) +[^ ]* *Empty +0 *\$" "$WORK/out"; then empty=yes; break; fi
    sleep 0.5
done
check_eq "the group is Empty once its member left (--describe --state)" yes "$empty"

tool $CG --bootstrap-server "$BOOTSTRAP" --reset-offsets --to-earliest --group "$G" --topic "$GT" --execute
check_eq "--reset-offsets --to-earliest --execute prints NEW-OFFSET 0 for every partition" "0 0
1 0
2 0" "$(awk -v g="$G" -v t="$GT" '$1 == g && $2 == t {print $3, $4}' "$WORK/out" | sort -n)"
tool $CG --bootstrap-server "$BOOTSTRAP" --reset-offsets --to-offset 2 --group "$G" --topic "$GT:1" --execute
check_eq "--reset-offsets --to-offset 2 --topic T:1 --execute" "1 2" \
    "$(awk -v g="$G" -v t="$GT" '$1 == g && $2 == t {print $3, $4}' "$WORK/out")"
expected=$(awk '{c = ($1 == 1) ? 2 : 0; print $1, c, $2, $2 - c, "-"}' <<<"$ends2")
check_eq "--describe after the resets: offsets 0/2/0 and the lag grown accordingly" "$expected" "$(describe_rows)"
# A group consumer now resumes from the reset offsets: everything again but the first 2 of partition 1.
total=$(awk '{s += $2} END {print s + 0}' <<<"$ends2")
tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$GT" --group "$G" \
    --timeout-ms 6000 --property print.partition=true --property print.offset=true
check_eq "a group consumer resumes at the reset offsets (reads $((total - 2)) records, none of partition 1 below offset 2)" \
    "$((total - 2)) 0" "$(grep -cE 'Partition:[0-9]+' "$WORK/out") $(grep -cE 'Partition:1[[:space:]]+Offset:[01][[:space:]]' "$WORK/out")"
expected=$(awk '{print $1, $2, $2, 0, "-"}' <<<"$ends2")
check_eq "--describe after it: committed at the log end, lag 0" "$expected" "$(describe_rows)"

tool $CG --bootstrap-server "$BOOTSTRAP" --delete-offsets --group "$G" --topic "$GT:0"
if has "^$GT +0 +Successful"; then ok "--delete-offsets --topic T:0"; else not_ok "--delete-offsets --topic T:0" "$(cat "$WORK/out")"; fi
check_eq "--describe after --delete-offsets lists only partitions 1 and 2" "1 2" "$(describe_rows | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//')"
expect "--delete --group" "Deletion of requested consumer groups \('$G'\) was successful" \
    $CG --bootstrap-server "$BOOTSTRAP" --delete --group "$G"
if tool $CG --bootstrap-server "$BOOTSTRAP" --list && ! has "^$G\$"; then ok "--list no longer shows the deleted group"; else not_ok "--list no longer shows the deleted group" "$(cat "$WORK/out")"; fi
tool $CG --bootstrap-server "$BOOTSTRAP" --delete --group "$G"
if has "GroupIdNotFoundException"; then ok "--delete of an unknown group reports GroupIdNotFoundException"; else not_ok "--delete of an unknown group reports GroupIdNotFoundException" "$(cat "$WORK/out")"; fi
tool $CG --bootstrap-server "$BOOTSTRAP" --describe --group "$G"
if has "GroupIdNotFoundException|does not exist"; then ok "--describe of the deleted group says it does not exist"; else not_ok "--describe of the deleted group says it does not exist" "$(cat "$WORK/out")"; fi

finish
