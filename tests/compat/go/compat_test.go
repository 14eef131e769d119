package compat

// franz-go (kgo + kadm) against the broker at $BOOTSTRAP. Consumers use ConsumePartitions with
// exact offsets; no consumer group is joined in this file (groups_test.go has the group tests).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	runID   = fmt.Sprintf("%d-%d", time.Now().Unix(), rand.Intn(1<<20))
	counter atomic.Int64
)

func bootstrap(t *testing.T) string {
	t.Helper()
	b := os.Getenv("BOOTSTRAP")
	if b == "" {
		t.Fatal("set BOOTSTRAP=host:port of the broker under test")
	}
	return b
}

func topicName(label string) string {
	return fmt.Sprintf("compat-go-%s-%s-%d", label, runID, counter.Add(1))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(bootstrap(t)), kgo.RequestTimeoutOverhead(10 * time.Second)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t *testing.T) *kadm.Client {
	return kadm.NewClient(newClient(t))
}

func strp(s string) *string { return &s }

func createTopic(t *testing.T, adm *kadm.Client, label string, partitions int32, configs map[string]*string) string {
	t.Helper()
	name := topicName(label)
	resp, err := adm.CreateTopics(ctx(t), partitions, 1, configs, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if r := resp[name]; r.Err != nil {
		t.Fatalf("create %s: %v (%s)", name, r.Err, r.ErrMessage)
	}
	waitFor(t, "metadata of "+name, func() bool {
		md, err := adm.Metadata(ctx(t), name)
		return err == nil && md.Topics[name].Err == nil && len(md.Topics[name].Partitions) == int(partitions)
	})
	return name
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func configOf(t *testing.T, adm *kadm.Client, topic, key string) kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx(t), topic)
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs of %s: %v / %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("config %s not described for %s", key, topic)
	return kadm.Config{}
}

// consumeExact reads exactly n records starting at the given offsets of topic.
func consumeExact(t *testing.T, topic string, start map[int32]int64, n int) []*kgo.Record {
	t.Helper()
	offsets := map[int32]kgo.Offset{}
	for p, o := range start {
		offsets[p] = kgo.NewOffset().At(o)
	}
	cl := newClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond))
	var got []*kgo.Record
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		pc, cancel := context.WithTimeout(context.Background(), time.Second)
		fetches := cl.PollFetches(pc)
		cancel()
		fetches.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", tp, p, err)
			}
		})
		got = append(got, fetches.Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d of %d records", len(got), n)
	}
	pc, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if extra := cl.PollFetches(pc).Records(); len(extra) > 0 {
		t.Fatalf("%d records beyond the expected end (first offset %d)", len(extra), extra[0].Offset)
	}
	return got
}

func TestAdminTopicsAndConfigs(t *testing.T) {
	adm := newAdmin(t)
	name := createTopic(t, adm, "admin", 2, map[string]*string{"retention.ms": strp("3600000"), "max.message.bytes": strp("400000")})

	md, err := adm.Metadata(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) < 1 || md.Controller < 0 {
		t.Fatalf("metadata brokers %v controller %d", md.Brokers, md.Controller)
	}
	td := md.Topics[name]
	if td.ID == (kadm.TopicID{}) {
		t.Errorf("topic %s has no topic id", name)
	}
	for _, p := range td.Partitions {
		if p.Leader < 0 || len(p.ISR) != 1 || p.ISR[0] != p.Leader {
			t.Errorf("partition %d: leader %d isr %v", p.Partition, p.Leader, p.ISR)
		}
	}

	c := configOf(t, adm, name, "retention.ms")
	if c.Value == nil || *c.Value != "3600000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms = %v source %v", c.Value, c.Source)
	}

	resp, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("7200000")},
		{Op: kadm.DeleteConfig, Name: "max.message.bytes"},
	}, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp {
		if r.Err != nil {
			t.Fatalf("alter %s: %v", r.Name, r.Err)
		}
	}
	waitFor(t, "altered retention.ms", func() bool { return *configOf(t, adm, name, "retention.ms").Value == "7200000" })
	if c := configOf(t, adm, name, "max.message.bytes"); c.Source == kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("max.message.bytes still a topic override: %v", *c.Value)
	}

	resp, err = adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("soon")}}, name)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resp[0].Err, kerr.InvalidConfig) {
		t.Fatalf("bad retention.ms: got %v, want INVALID_CONFIG", resp[0].Err)
	}

	cp, err := adm.CreatePartitions(ctx(t), 2, name)
	if err != nil || cp[name].Err != nil {
		t.Fatalf("create partitions: %v / %v", err, cp[name].Err)
	}
	waitFor(t, "4 partitions", func() bool {
		md, err := adm.Metadata(ctx(t), name)
		return err == nil && len(md.Topics[name].Partitions) == 4
	})

	dt, err := adm.DeleteTopics(ctx(t), name)
	if err != nil || dt[name].Err != nil {
		t.Fatalf("delete: %v / %v", err, dt[name].Err)
	}
	waitFor(t, "topic deleted", func() bool {
		md, err := adm.Metadata(ctx(t))
		_, present := md.Topics[name]
		return err == nil && !present
	})
}

func TestAdminRejects(t *testing.T) {
	adm := newAdmin(t)
	name := topicName("validate")
	resp, err := adm.ValidateCreateTopics(ctx(t), 3, 1, nil, name)
	if err != nil || resp[name].Err != nil {
		t.Fatalf("validate-only create: %v / %v", err, resp[name].Err)
	}
	time.Sleep(time.Second)
	md, err := adm.Metadata(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.Topics[name]; ok {
		t.Fatalf("validate-only create made topic %s", name)
	}

	cases := []struct {
		topic   string
		configs map[string]*string
		want    error
	}{
		{"bad name!", nil, kerr.InvalidTopicException},
		{name, map[string]*string{"cleanup.policy": strp("nonsense")}, kerr.InvalidConfig},
		{name, map[string]*string{"no.such.config": strp("1")}, kerr.InvalidConfig},
	}
	for _, c := range cases {
		resp, err := adm.CreateTopics(ctx(t), 1, 1, c.configs, c.topic)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp[c.topic].Err; !errors.Is(got, c.want) {
			t.Errorf("create %q %v: got %v, want %v", c.topic, c.configs, got, c.want)
		}
	}

	existing := createTopic(t, adm, "exists", 1, nil)
	resp, err = adm.CreateTopics(ctx(t), 1, 1, nil, existing)
	if err != nil || !errors.Is(resp[existing].Err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate create: %v / %v", err, resp[existing].Err)
	}
}

func TestProduceConsumeCodecs(t *testing.T) {
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for _, codecName := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		codec := codecs[codecName]
		t.Run(codecName, func(t *testing.T) {
			adm := newAdmin(t)
			const partitions, n = 3, 150
			name := createTopic(t, adm, "rt-"+codecName, partitions, nil)
			rng := rand.New(rand.NewSource(int64(len(codecName))))
			records := make([]*kgo.Record, n)
			for i := range records {
				value := make([]byte, []int{0, 1, 64, 20000, 300}[i%5])
				rng.Read(value)
				headers := []kgo.RecordHeader{{Key: "idx", Value: []byte(fmt.Sprint(i))}, {Key: "bin", Value: []byte{0, 255, byte(i)}}}
				if i%3 == 0 {
					headers = append(headers, kgo.RecordHeader{Key: "dup", Value: []byte("1")}, kgo.RecordHeader{Key: "dup", Value: []byte("2")})
				}
				records[i] = &kgo.Record{Topic: name, Partition: int32(i % partitions), Key: []byte(fmt.Sprintf("key-%d", i)), Value: value, Headers: headers}
			}
			prod := newClient(t, kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(kgo.AllISRAcks()),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(20*time.Millisecond))
			if err := prod.ProduceSync(ctx(t), records...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			next := map[int32]int64{}
			for _, r := range records {
				if r.Offset != next[r.Partition] {
					t.Fatalf("partition %d: acked offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
				}
				next[r.Partition]++
			}

			got := consumeExact(t, name, map[int32]int64{0: 0, 1: 0, 2: 0}, n)
			byPart := map[int32][]*kgo.Record{}
			for _, r := range got {
				byPart[r.Partition] = append(byPart[r.Partition], r)
			}
			for i, want := range records {
				have := byPart[want.Partition][i/partitions]
				if have.Offset != want.Offset || !bytes.Equal(have.Key, want.Key) || !bytes.Equal(have.Value, want.Value) {
					t.Fatalf("record %d: got offset %d key %q (%d value bytes), want offset %d key %q (%d value bytes)",
						i, have.Offset, have.Key, len(have.Value), want.Offset, want.Key, len(want.Value))
				}
				if len(have.Headers) != len(want.Headers) {
					t.Fatalf("record %d: %d headers, want %d", i, len(have.Headers), len(want.Headers))
				}
				for h := range want.Headers {
					if have.Headers[h].Key != want.Headers[h].Key || !bytes.Equal(have.Headers[h].Value, want.Headers[h].Value) {
						t.Fatalf("record %d header %d differs", i, h)
					}
				}
				if !have.Timestamp.Equal(want.Timestamp) {
					t.Fatalf("record %d: timestamp %v, want %v", i, have.Timestamp, want.Timestamp)
				}
			}
		})
	}
}

func TestListOffsetsAndDeleteRecords(t *testing.T) {
	adm := newAdmin(t)
	name := createTopic(t, adm, "offsets", 1, nil)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var records []*kgo.Record
	for i := 0; i < 10; i++ {
		ts := base.Add(time.Duration(i) * time.Second)
		if i == 5 {
			ts = base.Add(100 * time.Second)
		}
		records = append(records, &kgo.Record{Topic: name, Value: []byte(fmt.Sprintf("v%d", i)), Timestamp: ts})
	}
	prod := newClient(t, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	if err := prod.ProduceSync(ctx(t), records...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	lookup := func(what string, lo kadm.ListedOffsets, err error) kadm.ListedOffset {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		o, ok := lo.Lookup(name, 0)
		if !ok || o.Err != nil {
			t.Fatalf("%s: %v %v", what, ok, o.Err)
		}
		return o
	}
	check := func(what string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", what, got, want)
		}
	}
	lo, err := adm.ListStartOffsets(ctx(t), name)
	check("start offset", lookup("start", lo, err).Offset, 0)
	lo, err = adm.ListEndOffsets(ctx(t), name)
	check("end offset", lookup("end", lo, err).Offset, 10)
	lo, err = adm.ListOffsetsAfterMilli(ctx(t), base.Add(3*time.Second).UnixMilli(), name)
	check("offset at base+3s", lookup("after milli", lo, err).Offset, 3)
	lo, err = adm.ListOffsetsAfterMilli(ctx(t), base.Add(3*time.Second+time.Millisecond).UnixMilli(), name)
	check("offset after base+3s", lookup("after milli", lo, err).Offset, 4)
	lo, err = adm.ListMaxTimestampOffsets(ctx(t), name)
	m := lookup("max timestamp", lo, err)
	check("max timestamp offset", m.Offset, 5)
	check("max timestamp", m.Timestamp, base.Add(100*time.Second).UnixMilli())

	var del kadm.Offsets
	del.AddOffset(name, 0, 6, -1)
	dr, err := adm.DeleteRecords(ctx(t), del)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := dr.Lookup(name, 0)
	if r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete records: low watermark %d err %v", r.LowWatermark, r.Err)
	}
	lo, err = adm.ListStartOffsets(ctx(t), name)
	check("start offset after delete", lookup("start", lo, err).Offset, 6)

	got := consumeExact(t, name, map[int32]int64{0: 6}, 4)
	for i, rec := range got {
		if rec.Offset != int64(6+i) || string(rec.Value) != fmt.Sprintf("v%d", 6+i) {
			t.Fatalf("record %d: offset %d value %q", i, rec.Offset, rec.Value)
		}
	}
}
