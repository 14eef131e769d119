package compat

// Consumer groups with franz-go: kgo.ConsumerGroup members (rebalances, commits, leaving) and the
// kadm group admin calls (DescribeGroups, ListGroups, Lag, CommitOffsets, FetchOffsets,
// DeleteOffsets, DeleteGroups).

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupMember polls in its own goroutine, commits what it consumed after every poll and keeps
// track of the partitions it owns.
type groupMember struct {
	cl     *kgo.Client
	mu     sync.Mutex
	owned  map[int32]bool
	seen   map[string]int // "partition:offset" -> times consumed
	stop   chan struct{}
	done   chan struct{}
	commit error
}

func startMember(t *testing.T, topic, group string, balancer kgo.GroupBalancer) *groupMember {
	t.Helper()
	m := &groupMember{owned: map[int32]bool{}, seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	m.cl = newClient(t,
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.Balancers(balancer),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[topic] {
				m.owned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(c context.Context, cl *kgo.Client, r map[string][]int32) {
			// Commit what was consumed before giving the partitions away.
			if err := cl.CommitUncommittedOffsets(c); err != nil {
				m.mu.Lock()
				m.commit = err
				m.mu.Unlock()
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.owned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range l[topic] {
				delete(m.owned, p)
			}
		}),
	)
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stop:
				return
			default:
			}
			pc, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			fetches := m.cl.PollFetches(pc)
			cancel()
			recs := fetches.Records()
			m.mu.Lock()
			for _, r := range recs {
				key := fmt.Sprintf("%d:%d", r.Partition, r.Offset)
				m.seen[key]++
			}
			m.mu.Unlock()
			if len(recs) > 0 {
				cc, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := m.cl.CommitUncommittedOffsets(cc)
				cancel()
				if err != nil && !errors.Is(err, kerr.RebalanceInProgress) && !errors.Is(err, kerr.IllegalGeneration) &&
					!errors.Is(err, kerr.UnknownMemberID) {
					m.mu.Lock()
					m.commit = err
					m.mu.Unlock()
				}
			}
		}
	}()
	return m
}

func (m *groupMember) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.owned {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// leave stops polling and closes the client, which leaves the group.
func (m *groupMember) leave() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	<-m.done
	m.cl.Close()
}

func waitForLong(t *testing.T, what string, seconds int, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %ds waiting for %s", seconds, what)
}

func produceToPartitions(t *testing.T, topic string, partitions, perPartition int, tag string) {
	t.Helper()
	cl := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(topic))
	var rs []*kgo.Record
	for p := 0; p < partitions; p++ {
		for i := 0; i < perPartition; i++ {
			rs = append(rs, &kgo.Record{Partition: int32(p), Value: []byte(fmt.Sprintf("%s-%d-%d", tag, p, i))})
		}
	}
	if err := cl.ProduceSync(ctx(t), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func committed(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resp, err := adm.FetchOffsets(ctx(t), group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

func TestGroupMembersRebalanceCommitAndLeave(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
		{"range", kgo.RangeBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const parts, per = 4, 20
			adm := newAdmin(t)
			topic := createTopic(t, adm, "group", parts, nil)
			group := topicName("group")
			produceToPartitions(t, topic, parts, per, "a")

			a := startMember(t, topic, group, tc.balancer)
			b := startMember(t, topic, group, tc.balancer)
			defer a.leave()
			defer b.leave()
			waitForLong(t, "both members sharing the 4 partitions", 40, func() bool {
				pa, pb := a.partitions(), b.partitions()
				return len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == parts
			})
			waitForLong(t, "committed offsets at the log end", 30, func() bool {
				c := committed(t, adm, group, topic)
				for p := int32(0); p < parts; p++ {
					if c[p] != per {
						return false
					}
				}
				return true
			})

			groups, err := adm.DescribeGroups(ctx(t), group)
			if err != nil || groups[group].Err != nil {
				t.Fatalf("describe %s: %v / %v", group, err, groups[group].Err)
			}
			g := groups[group]
			var assigned []int32
			for _, mem := range g.Members {
				if ca, ok := mem.Assigned.AsConsumer(); ok {
					for _, at := range ca.Topics {
						assigned = append(assigned, at.Partitions...)
					}
				}
			}
			sort.Slice(assigned, func(i, j int) bool { return assigned[i] < assigned[j] })
			if g.State != "Stable" || g.ProtocolType != "consumer" || g.Protocol != tc.name || len(g.Members) != 2 ||
				fmt.Sprint(assigned) != "[0 1 2 3]" {
				t.Fatalf("described: state %q protocol %q/%q, %d members, assigned %v", g.State, g.ProtocolType, g.Protocol,
					len(g.Members), assigned)
			}
			listed, err := adm.ListGroups(ctx(t))
			if err != nil || listed[group].Group != group || listed[group].ProtocolType != "consumer" {
				t.Fatalf("list groups: %v, %v", err, listed[group])
			}
			lags, err := adm.Lag(ctx(t), group)
			if err != nil || lags.Error() != nil {
				t.Fatalf("lag: %v / %v", err, lags.Error())
			}
			if tot := lags[group].Lag.Total(); tot != 0 {
				t.Fatalf("lag after consuming everything: %d", tot)
			}

			// One member leaves (LeaveGroup on Close); the other takes over all partitions.
			b.leave()
			waitForLong(t, "the remaining member owning all partitions", 20, func() bool { return len(a.partitions()) == parts })
			produceToPartitions(t, topic, parts, 5, "b")
			waitForLong(t, "the 20 new records consumed and committed", 30, func() bool {
				c := committed(t, adm, group, topic)
				for p := int32(0); p < parts; p++ {
					if c[p] != per+5 {
						return false
					}
				}
				return true
			})
			a.leave()

			for _, m := range []*groupMember{a, b} {
				m.mu.Lock()
				if m.commit != nil {
					t.Errorf("member: commit error %v", m.commit)
				}
				m.mu.Unlock()
			}
			// Every record was consumed; after the first assignment, each exactly once (the
			// members commit before giving partitions away).
			for p := 0; p < parts; p++ {
				for o := 0; o < per+5; o++ {
					key := fmt.Sprintf("%d:%d", p, o)
					if a.seen[key]+b.seen[key] == 0 {
						t.Fatalf("record %s never consumed", key)
					}
				}
			}
			for p := 0; p < parts; p++ {
				for o := per; o < per+5; o++ {
					if key := fmt.Sprintf("%d:%d", p, o); a.seen[key]+b.seen[key] != 1 {
						t.Fatalf("record %s consumed %d times", key, a.seen[key]+b.seen[key])
					}
				}
			}

			waitForLong(t, "the group to be empty", 20, func() bool {
				gs, err := adm.DescribeGroups(ctx(t), group)
				return err == nil && gs[group].State == "Empty" && len(gs[group].Members) == 0
			})
			del, err := adm.DeleteGroups(ctx(t), group)
			if err != nil || del[group].Err != nil {
				t.Fatalf("delete group: %v / %v", err, del[group].Err)
			}
			del, err = adm.DeleteGroups(ctx(t), group)
			if err != nil || !errors.Is(del[group].Err, kerr.GroupIDNotFound) {
				t.Fatalf("second delete: %v / %v, want GROUP_ID_NOT_FOUND", err, del[group].Err)
			}
		})
	}
}

func TestGroupAdminOffsets(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, "group-admin", 3, nil)
	group := topicName("group-admin")
	produceToPartitions(t, topic, 3, 10, "x")

	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4, LeaderEpoch: -1, Metadata: "four"})
	os.AddOffset(topic, 1, 10, -1)
	os.AddOffset(topic, 2, 0, -1)
	resp, err := adm.CommitOffsets(ctx(t), group, os)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit offsets: %v / %v", err, resp.Error())
	}
	fetched, err := adm.FetchOffsets(ctx(t), group)
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch offsets: %v / %v", err, fetched.Error())
	}
	if o, _ := fetched.Lookup(topic, 0); o.At != 4 || o.Metadata != "four" {
		t.Fatalf("partition 0: committed %d %q, want 4 \"four\"", o.At, o.Metadata)
	}
	if got := committed(t, adm, group, topic); fmt.Sprint(got) != "map[0:4 1:10 2:0]" {
		t.Fatalf("committed %v", got)
	}
	lags, err := adm.Lag(ctx(t), group)
	if err != nil || lags.Error() != nil {
		t.Fatalf("lag: %v / %v", err, lags.Error())
	}
	if l := lags[group]; l.State != "Empty" || l.Lag.Total() != 6+0+10 {
		t.Fatalf("lag of the empty group: state %q total %d, want Empty 16", l.State, l.Lag.Total())
	}

	var ts kadm.TopicsSet
	ts.Add(topic, 0)
	dels, err := adm.DeleteOffsets(ctx(t), group, ts)
	if err != nil || dels.Error() != nil {
		t.Fatalf("delete offsets: %v / %v", err, dels.Error())
	}
	if got := committed(t, adm, group, topic); fmt.Sprint(got) != "map[1:10 2:0]" {
		t.Fatalf("committed after deleting partition 0: %v", got)
	}

	// A member joining the group starts at the committed offsets (partition 0: the reset policy).
	var got []*kgo.Record
	cl := newClient(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(6*time.Second), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 20 && time.Now().Before(deadline) {
		pc, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		got = append(got, cl.PollFetches(pc).Records()...)
		cancel()
	}
	firsts := map[int32]int64{}
	for _, r := range got {
		if _, ok := firsts[r.Partition]; !ok {
			firsts[r.Partition] = r.Offset
		}
	}
	pc, cancel := context.WithTimeout(context.Background(), time.Second)
	extra := cl.PollFetches(pc).Records()
	cancel()
	if len(got) != 20 || len(extra) != 0 || fmt.Sprint(firsts) != "map[0:0 2:0]" {
		t.Fatalf("a new member read %d+%d records, first offsets %v; want 20, partitions 0 and 2 from 0", len(got), len(extra), firsts)
	}
	cl.Close()

	del, err := adm.DeleteGroups(ctx(t), group)
	if err != nil || del[group].Err != nil {
		t.Fatalf("delete group: %v / %v", err, del[group].Err)
	}
	listed, err := adm.ListGroups(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed[group]; ok {
		t.Fatalf("deleted group %s still listed", group)
	}
}
