// The Java producer of the replication fault checker (tests/compat/python/
// test_replication_faults_java.py), compiled by that test with javac against Apache Kafka's Java
// client (the classpath of tests/compat/kafka-tools-classpath.sh).
//
// An idempotent acks=all producer (retries and delivery.timeout.ms left at their defaults) that
// writes the unique values j0, j1, ... without pausing for faults, value j<i> to partition
// i % partitions, with at most <max in flight> values sent and not yet answered and at most
// <rate> values a second (0: no bound). It stops sending at the first of: <max values> sent,
// <max seconds> elapsed, or its stdin closed (or a line "stop" on it); then it waits until every
// value is answered (bounded by delivery.timeout.ms) and exits 0.
//
// The history, on stdout, one line per event, flushed within 20 ms:
//   ack <value> <partition> <offset>          the value was acknowledged at that offset
//   err <value> <partition> <error> <message> the value failed (its delivery callback's error, or
//                                             "send:<error>" when send() itself threw)
//   producer <n>                              a new producer replaced one in a fatal error state
//   stopped <values sent>                     sending stopped: j0 .. j<values sent - 1> were sent
//   end <values sent> <producers>             every value answered; the last line
// Usage: ReplicationFaultsProducer <bootstrap> <topic> <partitions> <max values> <max seconds>
//        <max in flight> <rate> [producer property=value ...]
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.ApiException;
import org.apache.kafka.common.serialization.StringSerializer;

public final class ReplicationFaultsProducer {
    private static final BufferedWriter OUT =
            new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);

    private static void out(String line) {
        synchronized (OUT) {
            try {
                OUT.write(line);
                OUT.write('\n');
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }
    }

    private static void flush() {
        synchronized (OUT) {
            try {
                OUT.flush();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }
    }

    private static String oneLine(Throwable e) {
        String m = String.valueOf(e.getMessage());
        return m.replace('\n', ' ').replace('\r', ' ');
    }

    private static KafkaProducer<String, String> make(Properties props) {
        return new KafkaProducer<>(props, new StringSerializer(), new StringSerializer());
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 7) {
            System.err.println("usage: ReplicationFaultsProducer <bootstrap> <topic> <partitions> "
                    + "<max values> <max seconds> <max in flight> <rate> [property=value ...]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        long maxValues = Long.parseLong(args[3]);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[4]));
        Semaphore slots = new Semaphore(Integer.parseInt(args[5]));
        long rate = Long.parseLong(args[6]);

        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        for (int i = 7; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            props.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        // What the checker is about: not overridable.
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.ACKS_CONFIG, "all");

        AtomicBoolean stop = new AtomicBoolean();
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(
                    new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
                    // nothing else is understood
                }
            } catch (IOException e) {
                // stdin gone: stop as well
            }
            stop.set(true);
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();
        Thread flusher = new Thread(() -> {
            while (true) {
                flush();
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "flusher");
        flusher.setDaemon(true);
        flusher.start();

        KafkaProducer<String, String> producer = make(props);
        int producers = 1;
        long seq = 0;
        long start = System.nanoTime();
        while (!stop.get() && seq < maxValues && System.nanoTime() < deadline) {
            if (rate > 0) {
                long due = start + seq * 1_000_000_000L / rate;
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(Math.min(50, wait / 1_000_000),
                            (int) Math.min(999_999, wait % 1_000_000));
                    continue;
                }
            }
            if (!slots.tryAcquire(50, TimeUnit.MILLISECONDS)) {
                continue;
            }
            String value = "j" + seq;
            int partition = (int) (seq % partitions);
            seq++;
            AtomicBoolean answered = new AtomicBoolean();
            try {
                producer.send(new ProducerRecord<>(topic, partition, null, value), (md, e) -> {
                    if (answered.getAndSet(true)) {
                        return;
                    }
                    slots.release();
                    if (e == null) {
                        out("ack " + value + " " + md.partition() + " " + md.offset());
                    } else {
                        out("err " + value + " " + partition + " " + e.getClass().getSimpleName()
                                + " " + oneLine(e));
                    }
                });
            } catch (Exception e) {
                // send() threw instead of failing the record through its callback: the record was
                // not queued. Anything but an ApiException means the producer is in a fatal error
                // state (every later send would throw too): a new producer goes on.
                if (!answered.getAndSet(true)) {
                    slots.release();
                    out("err " + value + " " + partition + " send:" + e.getClass().getSimpleName()
                            + " " + oneLine(e));
                }
                if (!(e instanceof ApiException)) {
                    producer.close(Duration.ofSeconds(30));
                    producer = make(props);
                    producers++;
                    out("producer " + producers);
                }
            }
        }
        out("stopped " + seq);
        flush();
        // Every value answered (bounded by delivery.timeout.ms), then the last line.
        producer.flush();
        producer.close(Duration.ofSeconds(30));
        out("end " + seq + " " + producers);
        flush();
        System.exit(0);
    }
}
