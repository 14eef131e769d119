package dev.chronik.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Apache Kafka Java client against the broker at $BOOTSTRAP. Consumers never join a group:
 * no group.id, manual assign + seek, no commits. Producers keep the client defaults
 * (enable.idempotence=true, acks=all) apart from the compression codec.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class JavaClientCompatTest {
    private static final String RUN = Long.toString(System.currentTimeMillis(), 36)
            + Integer.toString(new Random().nextInt(1 << 20), 36);
    private static final int SEC = 20;
    private static String bootstrap;
    private static Admin admin;
    private static int topicCounter;

    @BeforeAll
    static void connect() {
        bootstrap = BrokerConnection.bootstrap();
        admin = BrokerConnection.admin(bootstrap);
    }

    @AfterAll
    static void close() {
        BrokerConnection.close(admin);
    }

    // --- helpers ------------------------------------------------------------------------------

    private static synchronized String topic(String label) {
        return "compat-java-" + label + "-" + RUN + "-" + (topicCounter++);
    }

    private static <T> T get(Future<T> future) throws Exception {
        return future.get(SEC, TimeUnit.SECONDS);
    }

    private static Throwable cause(Future<?> future) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> future.get(SEC, TimeUnit.SECONDS));
        return e.getCause();
    }

    private static void waitUntil(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(SEC);
        while (System.nanoTime() < deadline) {
            if (condition.getAsBoolean()) {
                return;
            }
            Thread.sleep(200);
        }
        throw new AssertionError("timed out waiting for " + what);
    }

    private static String createTopic(String label, int partitions, Map<String, String> configs) throws Exception {
        String name = topic(label);
        get(admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs))).all());
        waitUntil("metadata of " + name, () -> {
            try {
                return get(admin.describeTopics(List.of(name)).allTopicNames()).get(name).partitions().size() == partitions;
            } catch (Exception e) {
                return false;
            }
        });
        return name;
    }

    private static Config topicConfig(String name) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, name);
        return get(admin.describeConfigs(List.of(res)).all()).get(res);
    }

    private static KafkaProducer<byte[], byte[]> producer(String codec) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 20);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
        return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    }

    private static KafkaConsumer<byte[], byte[]> consumer() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 200);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    private static List<ConsumerRecord<byte[], byte[]>> readExactly(KafkaConsumer<byte[], byte[]> c, int count) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(SEC);
        while (got.size() < count && System.nanoTime() < deadline) {
            c.poll(Duration.ofMillis(500)).forEach(got::add);
        }
        assertEquals(count, got.size(), "records consumed");
        assertTrue(c.poll(Duration.ofSeconds(1)).isEmpty(), "records beyond the expected end");
        return got;
    }

    /** Deterministic binary payloads: all byte values, empty, random, large, text. */
    private static byte[] value(int i, Random rng) {
        switch (i % 5) {
            case 0: {
                byte[] b = new byte[256];
                for (int j = 0; j < 256; j++) {
                    b[j] = (byte) j;
                }
                return b;
            }
            case 1:
                return new byte[0];
            case 2: {
                byte[] b = new byte[1 + rng.nextInt(100)];
                rng.nextBytes(b);
                return b;
            }
            case 3: {
                byte[] b = new byte[30000];
                rng.nextBytes(b);
                return b;
            }
            default:
                return ("text ✓ " + i).getBytes(StandardCharsets.UTF_8);
        }
    }

    // --- admin ---------------------------------------------------------------------------------

    @Test
    void createTopicWithConfigsDescribeAndAlter() throws Exception {
        String name = createTopic("cfg", 3, Map.of("retention.ms", "3600000", "cleanup.policy", "delete",
                "max.message.bytes", "500000"));
        TopicDescription desc = get(admin.describeTopics(List.of(name)).allTopicNames()).get(name);
        assertEquals(3, desc.partitions().size());
        assertNotNull(desc.topicId());
        desc.partitions().forEach(p -> {
            assertNotNull(p.leader());
            assertEquals(List.of(p.leader()), p.isr());
        });

        Config cfg = topicConfig(name);
        assertEquals("3600000", cfg.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source());
        assertEquals("500000", cfg.get("max.message.bytes").value());
        assertNotNull(cfg.get("segment.bytes"), "defaults are described too");

        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, name);
        get(admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", null), AlterConfigOp.OpType.DELETE),
                new AlterConfigOp(new ConfigEntry("segment.ms", "86400000"), AlterConfigOp.OpType.SET)))).all());
        waitUntil("altered config", () -> {
            try {
                return "7200000".equals(topicConfig(name).get("retention.ms").value());
            } catch (Exception e) {
                return false;
            }
        });
        cfg = topicConfig(name);
        assertEquals("86400000", cfg.get("segment.ms").value());
        assertFalse(cfg.get("max.message.bytes").source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG);

        Throwable bad = cause(admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all());
        assertInstanceOf(InvalidConfigurationException.class, bad);
        assertEquals("7200000", topicConfig(name).get("retention.ms").value());
    }

    @Test
    void validateOnlyAndRejectedCreates() throws Exception {
        String name = topic("validate");
        get(admin.createTopics(List.of(new NewTopic(name, 2, (short) 1)), new CreateTopicsOptions().validateOnly(true)).all());
        Thread.sleep(1000);
        assertFalse(get(admin.listTopics().names()).contains(name), "validateOnly must not create");

        assertInstanceOf(InvalidTopicException.class,
                cause(admin.createTopics(List.of(new NewTopic("bad name!", 1, (short) 1))).all()));
        assertInstanceOf(InvalidConfigurationException.class, cause(admin.createTopics(List.of(
                new NewTopic(name, 1, (short) 1).configs(Map.of("cleanup.policy", "nonsense")))).all()));
        assertInstanceOf(InvalidConfigurationException.class, cause(admin.createTopics(List.of(
                new NewTopic(name, 1, (short) 1).configs(Map.of("no.such.config", "1")))).all()));
        assertFalse(get(admin.listTopics().names()).contains(name));

        String existing = createTopic("exists", 1, Map.of());
        assertInstanceOf(TopicExistsException.class,
                cause(admin.createTopics(List.of(new NewTopic(existing, 1, (short) 1))).all()));
    }

    @Test
    void createPartitionsAndDeleteTopic() throws Exception {
        String name = createTopic("parts", 1, Map.of());
        get(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(4))).all());
        waitUntil("4 partitions", () -> {
            try {
                return get(admin.describeTopics(List.of(name)).allTopicNames()).get(name).partitions().size() == 4;
            } catch (Exception e) {
                return false;
            }
        });
        assertInstanceOf(InvalidPartitionsException.class,
                cause(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(2))).all()));

        get(admin.deleteTopics(List.of(name)).all());
        waitUntil("topic deleted", () -> {
            try {
                return !get(admin.listTopics().names()).contains(name);
            } catch (Exception e) {
                return false;
            }
        });
        assertInstanceOf(UnknownTopicOrPartitionException.class, cause(admin.deleteTopics(List.of(name)).all()));
    }

    @Test
    void describeCluster() throws Exception {
        DescribeClusterResult cluster = admin.describeCluster();
        Collection<Node> nodes = get(cluster.nodes());
        assertFalse(nodes.isEmpty());
        assertNotNull(get(cluster.clusterId()));
        Node controller = get(cluster.controller());
        assertNotNull(controller);
        assertTrue(nodes.stream().allMatch(n -> n.port() > 0 && !n.host().isEmpty()));
    }

    // --- produce / consume ---------------------------------------------------------------------

    @ParameterizedTest(name = "compression.type={0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void produceConsumeRoundTrip(String codec) throws Exception {
        int partitions = 3;
        int n = 150;
        String name = createTopic("rt-" + codec, partitions, Map.of());
        Random rng = new Random(codec.hashCode());
        List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = producer(codec)) {
            for (int i = 0; i < n; i++) {
                List<Header> headers = new ArrayList<>();
                headers.add(new RecordHeader("idx", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
                headers.add(new RecordHeader("bin", new byte[] {0, (byte) 255, (byte) i}));
                if (i % 4 == 0) {
                    headers.add(new RecordHeader("dup", "a".getBytes(StandardCharsets.UTF_8)));
                    headers.add(new RecordHeader("dup", "b".getBytes(StandardCharsets.UTF_8)));
                }
                byte[] key = ("key-" + i).getBytes(StandardCharsets.UTF_8);
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(name, i % partitions, null, key, value(i, rng), headers);
                sent.add(rec);
                acks.add(producer.send(rec));
            }
            producer.flush();
        }
        Map<Integer, List<Long>> offsetsByPartition = new HashMap<>();
        List<RecordMetadata> meta = new ArrayList<>();
        for (Future<RecordMetadata> f : acks) {
            RecordMetadata m = get(f);
            meta.add(m);
            offsetsByPartition.computeIfAbsent(m.partition(), k -> new ArrayList<>()).add(m.offset());
        }
        offsetsByPartition.forEach((p, offs) -> {
            for (int i = 0; i < offs.size(); i++) {
                assertEquals(i, offs.get(i), "offsets of partition " + p + " are dense and in order");
            }
        });

        List<ConsumerRecord<byte[], byte[]>> got;
        try (KafkaConsumer<byte[], byte[]> consumer = consumer()) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(name, p));
            }
            consumer.assign(tps);
            tps.forEach(tp -> consumer.seek(tp, 0));
            got = readExactly(consumer, n);
        }
        Map<Integer, List<ConsumerRecord<byte[], byte[]>>> byPartition = new HashMap<>();
        got.forEach(r -> byPartition.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r));
        for (int i = 0; i < n; i++) {
            ProducerRecord<byte[], byte[]> s = sent.get(i);
            ConsumerRecord<byte[], byte[]> r = byPartition.get(s.partition()).get(i / partitions);
            assertEquals(meta.get(i).offset(), r.offset());
            assertArrayEquals(s.key(), r.key(), "key of record " + i);
            assertArrayEquals(s.value(), r.value(), "value of record " + i);
            Header[] want = s.headers().toArray();
            Header[] have = r.headers().toArray();
            assertEquals(want.length, have.length, "header count of record " + i);
            for (int h = 0; h < want.length; h++) {
                assertEquals(want[h].key(), have[h].key());
                assertArrayEquals(want[h].value(), have[h].value());
            }
            assertEquals(TimestampType.CREATE_TIME, r.timestampType());
            assertEquals(meta.get(i).timestamp(), r.timestamp());
        }
    }

    @Test
    void nullKeyAndTombstone() throws Exception {
        String name = createTopic("null", 1, Map.of());
        try (KafkaProducer<byte[], byte[]> producer = producer("none")) {
            get(producer.send(new ProducerRecord<>(name, 0, "k".getBytes(StandardCharsets.UTF_8), null)));
            get(producer.send(new ProducerRecord<>(name, 0, null, "v".getBytes(StandardCharsets.UTF_8))));
        }
        try (KafkaConsumer<byte[], byte[]> consumer = consumer()) {
            TopicPartition tp = new TopicPartition(name, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = readExactly(consumer, 2);
            assertArrayEquals("k".getBytes(StandardCharsets.UTF_8), got.get(0).key());
            assertNull(got.get(0).value());
            assertNull(got.get(1).key());
            assertArrayEquals("v".getBytes(StandardCharsets.UTF_8), got.get(1).value());
        }
    }

    @Test
    void listOffsetsAndOffsetsForTimes() throws Exception {
        String name = createTopic("times", 1, Map.of());
        TopicPartition tp = new TopicPartition(name, 0);
        long base = System.currentTimeMillis() - 3_600_000L;
        try (KafkaProducer<byte[], byte[]> producer = producer("lz4")) {
            for (int i = 0; i < 10; i++) {
                long ts = i == 6 ? base + 100_000 : base + i * 1000L;
                producer.send(new ProducerRecord<>(name, 0, ts, null, ("t" + i).getBytes(StandardCharsets.UTF_8)));
            }
            producer.flush();
        }
        assertEquals(0, listOffset(tp, OffsetSpec.earliest()).offset());
        assertEquals(10, listOffset(tp, OffsetSpec.latest()).offset());
        ListOffsetsResultInfo max = listOffset(tp, OffsetSpec.maxTimestamp());
        assertEquals(6, max.offset());
        assertEquals(base + 100_000, max.timestamp());
        assertEquals(3, listOffset(tp, OffsetSpec.forTimestamp(base + 3000)).offset());
        assertEquals(4, listOffset(tp, OffsetSpec.forTimestamp(base + 3001)).offset());
        assertEquals(-1, listOffset(tp, OffsetSpec.forTimestamp(base + 500_000)).offset());

        try (KafkaConsumer<byte[], byte[]> consumer = consumer()) {
            Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(Map.of(tp, base + 2500));
            assertEquals(3, found.get(tp).offset());
            assertEquals(base + 3000, found.get(tp).timestamp());
            assertNull(consumer.offsetsForTimes(Map.of(tp, base + 500_000)).get(tp));
            assertEquals(Map.of(tp, 0L), consumer.beginningOffsets(List.of(tp)));
            assertEquals(Map.of(tp, 10L), consumer.endOffsets(List.of(tp)));

            consumer.assign(List.of(tp));
            consumer.seek(tp, found.get(tp).offset());
            List<ConsumerRecord<byte[], byte[]>> got = readExactly(consumer, 7);
            assertEquals(3, got.get(0).offset());
            assertEquals("t3", new String(got.get(0).value(), StandardCharsets.UTF_8));
        }
    }

    private static ListOffsetsResultInfo listOffset(TopicPartition tp, OffsetSpec spec) throws Exception {
        return get(admin.listOffsets(Map.of(tp, spec)).partitionResult(tp));
    }

    @Test
    void deleteRecords() throws Exception {
        String name = createTopic("delrec", 1, Map.of());
        TopicPartition tp = new TopicPartition(name, 0);
        try (KafkaProducer<byte[], byte[]> producer = producer("zstd")) {
            for (int i = 0; i < 20; i++) {
                producer.send(new ProducerRecord<>(name, 0, null, ("d" + i).getBytes(StandardCharsets.UTF_8)));
            }
            producer.flush();
        }
        long low = get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(12))).lowWatermarks().get(tp)).lowWatermark();
        assertEquals(12, low);
        assertEquals(12, listOffset(tp, OffsetSpec.earliest()).offset());
        assertInstanceOf(OffsetOutOfRangeException.class,
                cause(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(99))).lowWatermarks().get(tp)));
        try (KafkaConsumer<byte[], byte[]> consumer = consumer()) {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = readExactly(consumer, 8);
            assertEquals(12, got.get(0).offset());
            assertEquals("d12", new String(got.get(0).value(), StandardCharsets.UTF_8));
        }
    }

    @Test
    void metadataListsTopics() throws Exception {
        String a = createTopic("list-a", 1, Map.of());
        String b = createTopic("list-b", 2, Map.of());
        Set<String> names = get(admin.listTopics().names());
        assertTrue(names.containsAll(List.of(a, b)), "listTopics contains the new topics");
        try (KafkaConsumer<byte[], byte[]> consumer = consumer()) {
            assertEquals(2, consumer.partitionsFor(b).size());
        }
    }
}
