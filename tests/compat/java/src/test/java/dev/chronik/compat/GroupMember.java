package dev.chronik.compat;

import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * One consumer-group member run in its own JVM by {@link GroupsCompatTest}, so that the test can
 * kill it with SIGKILL (no LeaveGroup, no last commit). It reports on stdout, one line each:
 * {@code ASSIGNED p,p,...} whenever its assignment changes, {@code REC p offset} per record and
 * {@code COMMIT p offset} per committed position. It exits by itself after 150 s.
 *
 * <p>Arguments: bootstrap topic group assignorClass sessionTimeoutMs
 */
public final class GroupMember {
    private GroupMember() {}

    public static void main(String[] args) {
        Properties p = GroupsCompatTest.memberProps(args[0], args[2], args[3], Integer.parseInt(args[4]));
        long end = System.nanoTime() + Duration.ofSeconds(150).toNanos();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            c.subscribe(List.of(args[1]));
            String last = null;
            while (System.nanoTime() < end) {
                ConsumerRecords<byte[], byte[]> records = c.poll(Duration.ofMillis(100));
                StringBuilder out = new StringBuilder();
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    out.append("REC ").append(r.partition()).append(' ').append(r.offset()).append('\n');
                }
                if (!records.isEmpty()) {
                    try {
                        c.commitSync(Duration.ofSeconds(10));
                        for (TopicPartition tp : records.partitions()) {
                            out.append("COMMIT ").append(tp.partition()).append(' ').append(c.position(tp)).append('\n');
                        }
                    } catch (RebalanceInProgressException | CommitFailedException e) {
                        // the records are consumed again by the partition's next owner
                    }
                }
                Set<Integer> owned = new TreeSet<>();
                c.assignment().forEach(tp -> owned.add(tp.partition()));
                String now = owned.toString().replaceAll("[\\[\\] ]", "");
                if (!now.equals(last)) {
                    out.append("ASSIGNED ").append(now).append('\n');
                    last = now;
                }
                if (out.length() > 0) {
                    System.out.print(out);
                    System.out.flush();
                }
            }
        }
    }
}
