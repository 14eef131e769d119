// Command remote_warm is the client side of tests/bench/remote_warm.sh: it creates topics,
// produces fixed-size records and times a franz-go consumer over an offset range of one
// partition. Bench-only; it talks to one broker on loopback.
//
//	remote_warm create  -brokers B -topic T [-config k=v,...]
//	remote_warm produce -brokers B -topic T -mb N -size S
//	remote_warm consume -brokers B -topic T -from F -to E
//
// consume prints one JSON line: records, payload bytes, seconds (from the first record to the
// last), MB/s (10^6 bytes of record values per second).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "remote_warm: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		die("usage: remote_warm create|produce|consume [flags]")
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:39092", "bootstrap broker")
	topic := fs.String("topic", "", "topic")
	configs := fs.String("config", "", "topic configs, k=v,k=v (create)")
	mb := fs.Int("mb", 1000, "MB (10^6 bytes) of record values to produce")
	size := fs.Int("size", 1024, "record value size in bytes")
	from := fs.Int64("from", 0, "first offset to consume")
	to := fs.Int64("to", 0, "consume until this offset (exclusive)")
	timeout := fs.Duration("timeout", 300*time.Second, "give up after this long")
	_ = fs.Parse(os.Args[2:])
	if *topic == "" {
		die("-topic is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	switch cmd {
	case "create":
		create(ctx, *brokers, *topic, *configs)
	case "produce":
		produce(ctx, *brokers, *topic, *mb, *size)
	case "consume":
		consume(ctx, *brokers, *topic, *from, *to)
	default:
		die("unknown command %q", cmd)
	}
}

func create(ctx context.Context, brokers, topic, configs string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		die("client: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cfg := map[string]*string{}
	for _, kv := range strings.Split(configs, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			die("bad config %q", kv)
		}
		cfg[k] = kadm.StringPtr(v)
	}
	resp, err := adm.CreateTopic(ctx, 1, 1, cfg, topic)
	if err != nil || resp.Err != nil {
		die("create %s: %v %v", topic, err, resp.Err)
	}
}

func produce(ctx context.Context, brokers, topic string, mb, size int) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(64<<10),
	)
	if err != nil {
		die("client: %v", err)
	}
	defer cl.Close()
	n := mb * 1_000_000 / size
	value := make([]byte, size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Partition: 0, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.Do(func() { fmt.Fprintf(os.Stderr, "produce: %v\n", err) })
			}
			wg.Done()
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if failed.Load() > 0 {
		die("%d of %d records failed", failed.Load(), n)
	}
	fmt.Printf("{\"records\":%d,\"seconds\":%.3f,\"mb_s\":%.1f}\n", n, secs, float64(n*size)/1e6/secs)
}

func consume(ctx context.Context, brokers, topic string, from, to int64) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			topic: {0: kgo.NewOffset().At(from)},
		}),
	)
	if err != nil {
		die("client: %v", err)
	}
	defer cl.Close()
	var records, bytes, skipRecords, skipBytes int64
	var first time.Time
	next := from
	for next < to {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			die("timed out at offset %d of [%d, %d)", next, from, to)
		}
		fetches.EachError(func(t string, p int32, err error) {
			die("fetch %s/%d: %v", t, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset != next {
				die("offset %d where %d was expected", r.Offset, next)
			}
			next++
			if r.Offset < to {
				records++
				bytes += int64(len(r.Value))
			}
		})
		if first.IsZero() && records > 0 {
			// The clock starts when the first records are in, so connecting, metadata and the
			// first fetch are not timed, nor counted.
			first = time.Now()
			skipRecords, skipBytes = records, bytes
		}
	}
	secs := time.Since(first).Seconds()
	records -= skipRecords
	bytes -= skipBytes
	out, _ := json.Marshal(map[string]any{
		"records": records,
		"bytes":   bytes,
		"seconds": secs,
		"mb_s":    float64(bytes) / 1e6 / secs,
	})
	fmt.Println(string(out))
}
