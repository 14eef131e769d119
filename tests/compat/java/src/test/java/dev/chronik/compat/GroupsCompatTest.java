package dev.chronik.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Classic consumer groups with the Java client: three members on a six-partition topic, one of
 * them a separate JVM killed with SIGKILL; the survivors must take over its partitions after its
 * session times out, every record must be consumed at least once, and the group's committed
 * offsets (sampled through the Admin API while the test runs) must never move backwards.
 */
@Timeout(value = 150, unit = TimeUnit.SECONDS)
class GroupsCompatTest {
    private static final String RUN = Long.toString(System.currentTimeMillis(), 36)
            + Integer.toString(new Random().nextInt(1 << 20), 36);
    private static final int PARTITIONS = 6;
    private static final int PER_PARTITION = 50;
    private static final int SESSION_MS = 6000;
    private static String bootstrap;
    private static Admin admin;

    @BeforeAll
    static void connect() {
        bootstrap = BrokerConnection.bootstrap();
        admin = BrokerConnection.admin(bootstrap);
    }

    @AfterAll
    static void close() {
        BrokerConnection.close(admin);
    }

    /** Consumer settings shared by the in-process members and {@link GroupMember}. */
    static Properties memberProps(String bootstrap, String group, String assignor, int sessionMs) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionMs);
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 30000);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 200);
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 20);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return p;
    }

    private static void waitUntil(String what, int seconds, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            if (condition.getAsBoolean()) {
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError("timed out after " + seconds + "s waiting for " + what);
    }

    /** An in-process member: polls, records what it consumed, commits after every poll. */
    private static final class Member implements Runnable {
        final String name;
        final KafkaConsumer<byte[], byte[]> consumer;
        final Set<String> consumed;
        final AtomicReference<Set<Integer>> owned = new AtomicReference<>(Set.of());
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        volatile boolean stop;
        final Thread thread;

        Member(String name, String topic, String group, String assignor, Set<String> consumed) {
            this.name = name;
            this.consumed = consumed;
            this.consumer = new KafkaConsumer<>(memberProps(bootstrap, group, assignor, SESSION_MS),
                    new ByteArrayDeserializer(), new ByteArrayDeserializer());
            this.consumer.subscribe(List.of(topic));
            this.thread = new Thread(this, "member-" + name);
            this.thread.start();
        }

        @Override
        public void run() {
            try {
                long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(140);
                while (!stop && System.nanoTime() < end) {
                    ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<byte[], byte[]> r : records) {
                        consumed.add(r.partition() + ":" + r.offset());
                    }
                    if (!records.isEmpty()) {
                        try {
                            consumer.commitSync(Duration.ofSeconds(10));
                        } catch (RebalanceInProgressException | CommitFailedException e) {
                            // consumed again by the partition's next owner: at least once
                        }
                    }
                    Set<Integer> now = new TreeSet<>();
                    consumer.assignment().forEach(tp -> now.add(tp.partition()));
                    owned.set(now);
                }
            } catch (Throwable t) {
                failure.set(t);
            } finally {
                consumer.close(Duration.ofSeconds(10));
            }
        }

        void stopAndJoin() throws InterruptedException {
            stop = true;
            thread.join(20000);
        }
    }

    /** Samples the group's committed offsets and notes every move backwards. */
    private static final class CommitChecker implements Runnable {
        final String group;
        final Map<Integer, Long> highest = new ConcurrentHashMap<>();
        final List<String> backwards = Collections.synchronizedList(new ArrayList<>());
        volatile int samples;
        volatile boolean stop;
        final Thread thread = new Thread(this, "commit-checker");

        CommitChecker(String group) {
            this.group = group;
            thread.start();
        }

        @Override
        public void run() {
            while (!stop) {
                try {
                    Map<TopicPartition, OffsetAndMetadata> offsets =
                            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(10, TimeUnit.SECONDS);
                    offsets.forEach((tp, om) -> {
                        if (om == null) {
                            return;
                        }
                        Long before = highest.get(tp.partition());
                        if (before != null && om.offset() < before) {
                            backwards.add(tp + ": " + before + " -> " + om.offset());
                        }
                        highest.merge(tp.partition(), om.offset(), Math::max);
                    });
                    samples++;
                    Thread.sleep(100);
                } catch (InterruptedException e) {
                    return;
                } catch (Exception e) {
                    // a failed sample is no evidence either way
                }
            }
        }

        void stopAndJoin() throws InterruptedException {
            stop = true;
            thread.join(15000);
        }
    }

    private static void produce(String topic, int round) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int part = 0; part < PARTITIONS; part++) {
                for (int i = 0; i < PER_PARTITION; i++) {
                    producer.send(new ProducerRecord<>(topic, part, null, ("r" + round + "-" + i).getBytes(StandardCharsets.UTF_8)));
                }
            }
            producer.flush();
        }
    }

    private static Set<Integer> union(List<Set<Integer>> sets) {
        Set<Integer> all = new TreeSet<>();
        sets.forEach(all::addAll);
        return all;
    }

    private static boolean partitionsSplit(List<Set<Integer>> sets) {
        int total = 0;
        for (Set<Integer> s : sets) {
            if (s.isEmpty()) {
                return false;
            }
            total += s.size();
        }
        return total == PARTITIONS && union(sets).size() == PARTITIONS;
    }

    @ParameterizedTest(name = "three members ({0}), one killed with SIGKILL")
    @ValueSource(strings = {"cooperative-sticky", "range"})
    void threeMembersOneKilled(String strategy) throws Exception {
        String assignor = strategy.equals("range") ? RangeAssignor.class.getName() : CooperativeStickyAssignor.class.getName();
        String topic = "compat-java-grp-" + strategy + "-" + RUN;
        String group = "compat-java-grp-" + strategy + "-" + RUN;
        admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(20, TimeUnit.SECONDS);
        waitUntil("metadata of " + topic, 20, () -> {
            try {
                return admin.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS)
                        .get(topic).partitions().size() == PARTITIONS;
            } catch (Exception e) {
                return false;
            }
        });
        produce(topic, 0);

        // The member to be killed runs in its own JVM on this test's classpath.
        String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        Process child = new ProcessBuilder(java, "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", classpath,
                GroupMember.class.getName(), bootstrap, topic, group, assignor, Integer.toString(SESSION_MS))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        Set<String> consumed = ConcurrentHashMap.newKeySet();
        AtomicReference<Set<Integer>> childOwned = new AtomicReference<>(Set.of());
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    String[] f = line.split(" ");
                    if (f[0].equals("REC")) {
                        consumed.add(f[1] + ":" + f[2]);
                    } else if (f[0].equals("ASSIGNED")) {
                        Set<Integer> s = new TreeSet<>();
                        if (f.length > 1) {
                            for (String x : f[1].split(",")) {
                                s.add(Integer.parseInt(x));
                            }
                        }
                        childOwned.set(s);
                    }
                }
            } catch (Exception e) {
                // the child was killed
            }
        }, "child-reader");
        reader.start();

        CommitChecker checker = new CommitChecker(group);
        Member a = new Member("a", topic, group, assignor, consumed);
        Member b = new Member("b", topic, group, assignor, consumed);
        try {
            waitUntil("three members splitting all " + PARTITIONS + " partitions (a, b, killed-to-be)", 60,
                    () -> partitionsSplit(List.of(a.owned.get(), b.owned.get(), childOwned.get())));
            ConsumerGroupDescription desc = admin.describeConsumerGroups(List.of(group)).all()
                    .get(20, TimeUnit.SECONDS).get(group);
            assertEquals(3, desc.members().size(), "members described: " + desc);
            assertEquals(GroupState.STABLE, desc.groupState(), "group state: " + desc);
            Set<Integer> described = new HashSet<>();
            desc.members().forEach(m -> m.assignment().topicPartitions().forEach(tp -> described.add(tp.partition())));
            assertEquals(PARTITIONS, described.size(), "partitions in the described assignment: " + desc);

            Set<Integer> victim = childOwned.get();
            child.destroyForcibly(); // SIGKILL: no LeaveGroup, no last commit
            assertTrue(child.waitFor(10, TimeUnit.SECONDS), "child JVM survived SIGKILL");
            long killedAt = System.nanoTime();
            produce(topic, 1);
            // The session must expire and a rebalance complete; allow the session timeout plus
            // one rebalance (heartbeat interval, JoinGroup, SyncGroup) and some slack.
            waitUntil("the two survivors owning all partitions (killed member had " + victim + ")",
                    SESSION_MS / 1000 + 14, () -> partitionsSplit(List.of(a.owned.get(), b.owned.get())));
            long takeoverMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt);
            System.out.printf("%s: survivors own all partitions %d ms after the kill (session timeout %d ms)%n",
                    strategy, takeoverMs, SESSION_MS);

            // Every record of both rounds, including those of the killed member's partitions
            // produced after its death, is consumed at least once.
            Set<String> expected = new HashSet<>();
            for (int part = 0; part < PARTITIONS; part++) {
                for (int off = 0; off < 2 * PER_PARTITION; off++) {
                    expected.add(part + ":" + off);
                }
            }
            waitUntil("every produced record consumed", 30, () -> consumed.containsAll(expected));
            waitUntil("committed offsets at the log end of every partition", 30, () -> {
                for (int part = 0; part < PARTITIONS; part++) {
                    if (checker.highest.getOrDefault(part, -1L) != 2 * PER_PARTITION) {
                        return false;
                    }
                }
                return true;
            });
            assertTrue(a.failure.get() == null && b.failure.get() == null,
                    "member failures: " + a.failure.get() + " / " + b.failure.get());
        } finally {
            child.destroyForcibly();
            a.stopAndJoin();
            b.stopAndJoin();
            checker.stopAndJoin();
        }
        assertTrue(checker.samples > 5, "committed offsets sampled " + checker.samples + " times");
        assertEquals(List.of(), checker.backwards, "committed offsets that moved backwards");

        // Once both survivors have left, the group is empty and keeps its offsets.
        waitUntil("group empty after the survivors left", 20, () -> {
            try {
                return admin.describeConsumerGroups(List.of(group)).all().get(10, TimeUnit.SECONDS)
                        .get(group).groupState() == GroupState.EMPTY;
            } catch (Exception e) {
                return false;
            }
        });
        Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(20, TimeUnit.SECONDS);
        Map<Integer, Long> byPartition = new HashMap<>();
        committed.forEach((tp, om) -> byPartition.put(tp.partition(), om.offset()));
        Map<Integer, Long> want = new HashMap<>();
        for (int part = 0; part < PARTITIONS; part++) {
            want.put(part, (long) (2 * PER_PARTITION));
        }
        assertEquals(want, byPartition, "committed offsets of the empty group");
    }
}
