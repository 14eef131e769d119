// End-to-end latency at a fixed rate (benchmark scenario W3).
//
// One JVM runs a producer thread that sends records at a fixed rate (acks=all, client defaults
// otherwise) and a consumer thread that has the partition assigned (no consumer group) and reads
// from the end of the log. Every record carries the wall-clock time of its send() call in
// microseconds in its first 8 bytes; the consumer records now - that time when the record comes
// back. Producer and consumer share one clock, so the deltas need no clock synchronisation.
//
//   java -cp <kafka-clients classpath> E2eLatency BOOTSTRAP TOPIC RATE SECONDS RECORD_SIZE WARMUP_SECONDS
//
// Prints one JSON line: {"sent":..,"received":..,"measured":..,"rate":..,"p50_ms":..,...}.
// The topic must exist (the benchmark creates it with one partition); only partition 0 is used.

import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class E2eLatency {
    static long nowMicros() {
        Instant t = Instant.now();
        return t.getEpochSecond() * 1_000_000L + t.getNano() / 1_000;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: E2eLatency BOOTSTRAP TOPIC RATE SECONDS RECORD_SIZE WARMUP_SECONDS");
            System.exit(2);
        }
        String bootstrap = args[0], topic = args[1];
        double rate = Double.parseDouble(args[2]);
        double seconds = Double.parseDouble(args[3]);
        int size = Integer.parseInt(args[4]);
        double warmup = Double.parseDouble(args[5]);
        long total = (long) Math.ceil(rate * seconds);
        long warmupRecords = (long) Math.ceil(rate * warmup);

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp);
        TopicPartition tp = new TopicPartition(topic, 0);
        consumer.assign(List.of(tp));
        consumer.seekToEnd(List.of(tp));
        long startOffset = consumer.position(tp); // forces the lookup before producing starts

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp);

        byte[] filler = new byte[size];
        ThreadLocalRandom.current().nextBytes(filler);
        AtomicLong sendErrors = new AtomicLong();
        AtomicLong sent = new AtomicLong();
        long[] lat = new long[(int) Math.max(0, total - warmupRecords) + 16];
        long deadlineNanos = System.nanoTime() + (long) ((seconds + 30) * 1e9);

        Thread prod = new Thread(() -> {
            long start = System.nanoTime();
            double intervalNanos = 1e9 / rate;
            for (long i = 0; i < total; i++) {
                long due = start + (long) (i * intervalNanos);
                long wait;
                while ((wait = due - System.nanoTime()) > 0) {
                    LockSupport.parkNanos(wait);
                }
                byte[] v = filler.clone();
                long ts = nowMicros();
                for (int b = 0; b < 8 && b < v.length; b++) {
                    v[b] = (byte) (ts >>> (56 - 8 * b));
                }
                producer.send(new ProducerRecord<>(topic, 0, null, v), (md, e) -> {
                    if (e != null) sendErrors.incrementAndGet();
                });
                sent.incrementAndGet();
            }
            producer.flush();
        }, "producer");
        prod.start();

        long received = 0, measured = 0;
        while (received < total && System.nanoTime() < deadlineNanos) {
            ConsumerRecords<byte[], byte[]> recs = consumer.poll(java.time.Duration.ofMillis(100));
            long now = nowMicros();
            for (ConsumerRecord<byte[], byte[]> r : recs) {
                byte[] v = r.value();
                long ts = 0;
                for (int b = 0; b < 8; b++) ts = (ts << 8) | (v[b] & 0xff);
                if (r.offset() - startOffset >= warmupRecords && measured < lat.length) {
                    lat[(int) measured++] = now - ts;
                }
                received++;
            }
        }
        prod.join(30_000);
        producer.close(java.time.Duration.ofSeconds(10));
        consumer.close();

        long[] s = Arrays.copyOf(lat, (int) measured);
        Arrays.sort(s);
        System.out.printf(java.util.Locale.ROOT,
                "{\"sent\":%d,\"received\":%d,\"measured\":%d,\"send_errors\":%d,\"rate\":%.1f,"
                        + "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}%n",
                sent.get(), received, measured, sendErrors.get(), rate,
                pct(s, 0.50), pct(s, 0.99), pct(s, 0.999), s.length == 0 ? -1.0 : s[s.length - 1] / 1000.0);
        System.exit(received == total && sendErrors.get() == 0 ? 0 : 1);
    }

    static double pct(long[] sorted, double q) {
        if (sorted.length == 0) return -1;
        int i = (int) Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
        return sorted[Math.max(0, i)] / 1000.0;
    }
}
