package dev.chronik.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Tiered storage (KIP-405) through the Java client: a topic with remote.storage.enable=true,
 * 64 KiB segments and local.retention.bytes=1 keeps only its active segment on local disk, so
 * nearly every record is read back from the remote tier. Skipped with TARGET=kafka: the
 * reference Kafka runs without a remote storage manager.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class TieredStorageCompatTest {
    private static final String RUN = Long.toString(System.currentTimeMillis(), 36)
            + Integer.toString(new Random().nextInt(1 << 20), 36);
    private static final int SEC = 20;
    private static final int N = 3000;
    private static final long TS_STEP = 10;
    /** How long earliest-local and latest-tiered must stay put: several remote log manager passes. */
    private static final long STABLE_NANOS = TimeUnit.MILLISECONDS.toNanos(2500);
    private static final String[] CODECS = {"none", "zstd", "lz4", "gzip", "snappy"};
    private static String bootstrap;
    private static Admin admin;

    private static final String SKIP_REASON = "TARGET=kafka: the reference Apache Kafka runs without a remote "
            + "storage manager (remote.log.storage.system.enable=false), so it has no tiered topics";

    @BeforeAll
    static void connect() {
        bootstrap = BrokerConnection.bootstrap();
        admin = BrokerConnection.admin(bootstrap);
    }

    @AfterAll
    static void close() {
        BrokerConnection.close(admin);
    }

    private static <T> T get(Future<T> future) throws Exception {
        return future.get(SEC, TimeUnit.SECONDS);
    }

    private static long offset(TopicPartition tp, OffsetSpec spec) throws Exception {
        return get(admin.listOffsets(Map.of(tp, spec)).partitionResult(tp)).offset();
    }

    private static KafkaConsumer<byte[], byte[]> consumer(int partitionFetchBytes) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 200);
        p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, partitionFetchBytes);
        p.put(ConsumerConfig.CHECK_CRCS_CONFIG, true);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    /** Reads `count` records from `tp` starting at `from`, bounded in time. */
    private static List<ConsumerRecord<byte[], byte[]>> read(KafkaConsumer<byte[], byte[]> c, TopicPartition tp,
            long from, int count, int seconds) {
        c.assign(List.of(tp));
        c.seek(tp, from);
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (got.size() < count && System.nanoTime() < deadline) {
            c.poll(Duration.ofMillis(500)).forEach(got::add);
        }
        assertTrue(got.size() >= count, "consumed " + got.size() + " of " + count + " records from " + from);
        return got.subList(0, count);
    }

    /** Values of every shape: all byte values, empty, null, random, compressible text. */
    private static byte[] value(int i, Random rng) {
        switch (i % 6) {
            case 0: {
                byte[] b = new byte[256];
                for (int j = 0; j < 256; j++) {
                    b[j] = (byte) j;
                }
                return b;
            }
            case 1:
                return new byte[0];
            case 2:
                return null;
            case 3: {
                byte[] b = new byte[1500];
                rng.nextBytes(b);
                return b;
            }
            case 4: {
                byte[] b = new byte[1 + rng.nextInt(300)];
                rng.nextBytes(b);
                return b;
            }
            default:
                return ("tiered ✓ " + i + " ").repeat(15).getBytes(StandardCharsets.UTF_8);
        }
    }

    @Test
    void tieredTopicReadsBackFromTheRemoteTier() throws Exception {
        if ("kafka".equals(System.getenv("TARGET"))) {
            System.out.println("TieredStorageCompatTest skipped: " + SKIP_REASON);
        }
        assumeFalse("kafka".equals(System.getenv("TARGET")), SKIP_REASON);
        String name = "compat-java-tiered-" + RUN;
        get(admin.createTopics(List.of(new NewTopic(name, 1, (short) 1).configs(Map.of(
                "remote.storage.enable", "true",
                "segment.bytes", "65536",
                "local.retention.bytes", "1")))).all());
        TopicPartition tp = new TopicPartition(name, 0);
        long base = System.currentTimeMillis() - 3_600_000L;
        Random rng = new Random(405);

        // The default producer (idempotent, acks=all), one per codec, one after the other.
        List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
        List<RecordMetadata> meta = new ArrayList<>();
        int chunk = N / CODECS.length;
        for (int c = 0; c < CODECS.length; c++) {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, CODECS[c]);
            p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
            p.put(ProducerConfig.BATCH_SIZE_CONFIG, 16384);
            p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
            p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p, new ByteArraySerializer(),
                    new ByteArraySerializer())) {
                int hi = c == CODECS.length - 1 ? N : (c + 1) * chunk;
                for (int i = c * chunk; i < hi; i++) {
                    List<Header> headers = new ArrayList<>();
                    headers.add(new RecordHeader("idx", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
                    headers.add(new RecordHeader("bin", new byte[] {0, (byte) 255, (byte) i}));
                    if (i % 4 == 0) {
                        headers.add(new RecordHeader("dup", "a".getBytes(StandardCharsets.UTF_8)));
                        headers.add(new RecordHeader("dup", "b".getBytes(StandardCharsets.UTF_8)));
                    }
                    byte[] key = ("tk-" + i + "-" + rng.nextInt()).getBytes(StandardCharsets.UTF_8);
                    ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(name, 0, base + i * TS_STEP, key,
                            value(i, rng), headers);
                    sent.add(rec);
                    acks.add(producer.send(rec));
                }
                producer.flush();
            }
            for (Future<RecordMetadata> f : acks) {
                meta.add(get(f));
            }
        }
        for (int i = 0; i < N; i++) {
            assertEquals(i, meta.get(i).offset(), "offsets are dense and in produce order");
        }

        // Wait until every sealed segment is remote and its local copy deleted: the local log then
        // starts right after the last tiered offset and stays there (the two are also adjacent
        // while the remote log manager is still working through sealed segments).
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
        long localStart = -1;
        long lastTiered = -1;
        long stableSince = System.nanoTime();
        while (true) {
            long ls = offset(tp, OffsetSpec.earliestLocal());
            long lt = offset(tp, OffsetSpec.latestTiered());
            long now = System.nanoTime();
            if (ls != localStart || lt != lastTiered) {
                localStart = ls;
                lastTiered = lt;
                stableSince = now;
            }
            if (ls > 0 && ls == lt + 1 && now - stableSince >= STABLE_NANOS) {
                break;
            }
            assertTrue(now < deadline, "after 45 s the local log starts at " + localStart
                    + " and the latest tiered offset is " + lastTiered);
            Thread.sleep(300);
        }
        assertTrue(lastTiered >= N / 2, "only offsets up to " + lastTiered + " of " + N + " are tiered");
        assertTrue(localStart < N, "the active segment stays local");
        assertEquals(0, offset(tp, OffsetSpec.earliest()), "earliest is the start of the whole log");
        assertEquals(N, offset(tp, OffsetSpec.latest()));

        // Everything from offset 0, byte-identical and in order.
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(1 << 20)) {
            assertEquals(Map.of(tp, 0L), consumer.beginningOffsets(List.of(tp)));
            assertEquals(Map.of(tp, (long) N), consumer.endOffsets(List.of(tp)));
            List<ConsumerRecord<byte[], byte[]>> got = read(consumer, tp, 0, N, 40);
            for (int i = 0; i < N; i++) {
                ProducerRecord<byte[], byte[]> s = sent.get(i);
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                assertEquals(i, r.offset());
                assertArrayEquals(s.key(), r.key(), "key of offset " + i);
                assertArrayEquals(s.value(), r.value(), "value of offset " + i);
                Header[] want = s.headers().toArray();
                Header[] have = r.headers().toArray();
                assertEquals(want.length, have.length, "header count of offset " + i);
                for (int h = 0; h < want.length; h++) {
                    assertEquals(want[h].key(), have[h].key());
                    assertArrayEquals(want[h].value(), have[h].value());
                }
                assertEquals(TimestampType.CREATE_TIME, r.timestampType());
                assertEquals(base + i * TS_STEP, r.timestamp(), "timestamp of offset " + i);
            }
            assertTrue(consumer.poll(Duration.ofSeconds(1)).isEmpty(), "records beyond the log end");
        }

        // Timestamps in the remote range resolve to exact offsets (and across the tier boundary).
        long k = lastTiered / 3 + 1;
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(2048)) {
            Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(Map.of(tp, base + k * TS_STEP));
            assertEquals(k, found.get(tp).offset());
            assertEquals(base + k * TS_STEP, found.get(tp).timestamp());
            assertEquals(k + 1, consumer.offsetsForTimes(Map.of(tp, base + k * TS_STEP + 1)).get(tp).offset());
            assertEquals(0, consumer.offsetsForTimes(Map.of(tp, base - 60_000)).get(tp).offset());
            assertEquals(lastTiered, consumer.offsetsForTimes(Map.of(tp, base + lastTiered * TS_STEP)).get(tp).offset());
            assertEquals(lastTiered + 1,
                    consumer.offsetsForTimes(Map.of(tp, base + lastTiered * TS_STEP + 1)).get(tp).offset());
            assertNull(consumer.offsetsForTimes(Map.of(tp, base + N * TS_STEP)).get(tp), "after every record");

            // Seek to the found offset, in the middle of a remote batch; with 2 KiB fetches every
            // response is one whole batch, larger than the limit (KIP-74).
            List<ConsumerRecord<byte[], byte[]>> got = read(consumer, tp, found.get(tp).offset(), 200, 30);
            for (int j = 0; j < 200; j++) {
                assertEquals(k + j, got.get(j).offset());
                assertArrayEquals(sent.get((int) (k + j)).key(), got.get(j).key());
                assertArrayEquals(sent.get((int) (k + j)).value(), got.get(j).value());
            }
        }
        ListOffsetsResultInfo byTime = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + k * TS_STEP - 3)))
                .partitionResult(tp));
        assertEquals(k, byTime.offset());
        assertEquals(base + k * TS_STEP, byTime.timestamp());
    }
}
