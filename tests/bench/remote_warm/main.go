// Command remote_warm is the client side of tests/bench/remote_warm.sh: it creates topics,
// produces fixed-size records and times a franz-go consumer over an offset range of one
// partition. Bench-only; it talks to one broker on loopback.
//
//	remote_warm create  -brokers B -topic T [-config k=v,...]
//	remote_warm produce -brokers B -topic T -mb N -size S
//	remote_warm consume -brokers B -topic T -from F -to E [-passes N]
//	remote_warm fetch   -brokers B -topic T -from F -to E
//
// consume prints one JSON line: records, payload bytes, seconds (from the first record to the
// last, summed over the passes), MB/s (10^6 bytes of record values per second). fetch prints
// the broker's side alone: plain Fetch requests one after the other, their count, MB/s of
// record batches and latency percentiles.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "remote_warm: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		die("usage: remote_warm create|produce|consume|fetch [flags]")
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
	passes := fs.Int("passes", 1, "consume: read [from, to) this many times, a new client each time")
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
		var records, bytes int64
		var secs float64
		for i := 0; i < *passes; i++ {
			r, b, s := consume(ctx, *brokers, *topic, *from, *to)
			records, bytes, secs = records+r, bytes+b, secs+s
		}
		out, _ := json.Marshal(map[string]any{
			"records": records,
			"bytes":   bytes,
			"seconds": secs,
			"mb_s":    float64(bytes) / 1e6 / secs,
		})
		fmt.Println(string(out))
	case "fetch":
		fetchLatency(ctx, *brokers, *topic, *from, *to)
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

// consume reads [from, to) of partition 0 once and returns the records and value bytes read,
// and the seconds from the first fetched records to the last (connecting, metadata and the first
// fetch are not timed, nor counted).
func consume(ctx context.Context, brokers, topic string, from, to int64) (int64, int64, float64) {
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
	return records - skipRecords, bytes - skipBytes, time.Since(first).Seconds()
}

// fetchLatency reads [from, to) of partition 0 with plain Fetch requests, one at a time, each
// asking for 1 MiB of the partition (the consumer's default), and prints the time each took
// from request to decoded response: the broker's side of a read, without a consumer's work.
func fetchLatency(ctx context.Context, brokers, topic string, from, to int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		die("client: %v", err)
	}
	defer cl.Close()
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = &topic
	md.Topics = append(md.Topics, mt)
	mr, err := md.RequestWith(ctx, cl)
	if err != nil || len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != 0 {
		die("metadata of %s: %v", topic, err)
	}
	id := mr.Topics[0].TopicID
	var lats []time.Duration
	var total int64
	start := time.Now()
	for off := from; off < to; {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 13
		req.MaxWaitMillis = 500
		req.MinBytes = 1
		req.MaxBytes = 50 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.TopicID = id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset = off
		rp.PartitionMaxBytes = 1 << 20
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		t0 := time.Now()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			die("fetch at %d: %v", off, err)
		}
		lats = append(lats, time.Since(t0))
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			die("fetch at %d: error code %d", off, p.ErrorCode)
		}
		total += int64(len(p.RecordBatches))
		// The next offset: one past the last batch's last offset.
		next := off
		for b := p.RecordBatches; len(b) >= 61; {
			n := 12 + int(int32(binary.BigEndian.Uint32(b[8:12])))
			if n > len(b) {
				break
			}
			next = int64(binary.BigEndian.Uint64(b[0:8])) + int64(int32(binary.BigEndian.Uint32(b[23:27]))) + 1
			b = b[n:]
		}
		if next == off {
			die("fetch at %d returned no whole batch", off)
		}
		off = next
	}
	secs := time.Since(start).Seconds()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(q float64) float64 { return float64(lats[int(q*float64(len(lats)-1))].Microseconds()) / 1000 }
	out, _ := json.Marshal(map[string]any{
		"fetches": len(lats),
		"bytes":   total,
		"mb_s":    float64(total) / 1e6 / secs,
		"p50_ms":  pct(0.5),
		"p90_ms":  pct(0.9),
		"p99_ms":  pct(0.99),
	})
	fmt.Println(string(out))
}
