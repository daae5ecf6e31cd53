package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type env struct {
	t     *testing.T
	keys  streams.Keys
	store *streams.Store
	c     *redis.Client
}

func newEnv(t *testing.T, shards int) *env {
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	k, err := streams.NewKeys(fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano()), "+15550000001")
	if err != nil {
		t.Fatal(err)
	}
	st := streams.NewStore(c, k, shards)
	if err := st.EnsureGroups(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, keys: k, store: st, c: c}
}

// payload is a minimal valid frame (the handler gets it decoded).
func payload(conv string, seq int) []byte {
	return []byte(fmt.Sprintf(`{"envelope":{"sourceUuid":"%s","sourceDevice":1,"timestamp":%d,"dataMessage":{"timestamp":%d,"message":"msg %d"}},"account":"+15550000001"}`, conv, 1767225600000+seq, 1767225600000+seq, seq))
}

func (e *env) append(conv string, seq int) {
	shard := streams.ShardOf(conv, e.store.Shards())
	_, err := e.store.AppendBatch(context.Background(), []streams.Append{{Shard: shard, Identity: fmt.Sprintf("%s/%d", conv, seq),
		Entry: streams.Entry{Kind: "message", Conversation: conv, Timestamp: time.Now().UnixMilli(), Payload: payload(conv, seq)}}}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
}

type runningWorker struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan struct{}
}

func (e *env) start(id string, h Handler, tweak func(*Config)) *runningWorker {
	cfg := Config{ID: id, PoolSize: 8, QueueSize: 200, LeaseTTL: 600 * time.Millisecond, HandlerTimeout: time.Second,
		MaxRetries: 2, BackoffBase: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond, ShutdownTimeout: 2 * time.Second,
		InfraPause: 10 * time.Millisecond, InfraPauseMax: 50 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	c := srv.Client()
	e.t.Cleanup(func() { c.Close() })
	w, err := New(cfg, streams.NewStore(c, e.keys, e.store.Shards()), c, h, Observer{}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningWorker{w: w, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = w.Run(ctx) }()
	e.t.Cleanup(r.stop)
	return r
}

func (r *runningWorker) stop() { r.cancel(); <-r.done }

// recorder checks the properties the worker promises: each conversation's
// entries one at a time in order, no shard handled by two workers at once.
type recorder struct {
	mu       sync.Mutex
	seen     map[string][]int // conversation → seq handled, in handling order
	active   map[string]bool  // conversation running now
	shardBy  map[int]string   // shard → worker handling it now
	count    map[int]int      // shard → handlers running now
	problems []string
	calls    atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{seen: map[string][]int{}, active: map[string]bool{}, shardBy: map[int]string{}, count: map[int]int{}}
}

func (r *recorder) handler(worker string, fail func(m *Message) error) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) error {
		r.calls.Add(1)
		conv := m.Entry.Conversation
		r.mu.Lock()
		if r.active[conv] {
			r.problems = append(r.problems, "conversation "+conv+" handled concurrently")
		}
		if w, ok := r.shardBy[m.Shard]; ok && w != worker && r.count[m.Shard] > 0 {
			r.problems = append(r.problems, fmt.Sprintf("shard %d handled by %s and %s at once", m.Shard, w, worker))
		}
		r.active[conv] = true
		r.shardBy[m.Shard] = worker
		r.count[m.Shard]++
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
		var err error
		if fail != nil {
			err = fail(m)
		}
		r.mu.Lock()
		r.active[conv] = false
		r.count[m.Shard]--
		if err == nil {
			var seq int
			f, _ := m.Decode()
			fmt.Sscanf(f.Text(), "msg %d", &seq)
			r.seen[conv] = append(r.seen[conv], seq)
		}
		r.mu.Unlock()
		return err
	})
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.seen {
		n += len(v)
	}
	return n
}

// check returns duplicates and asserts order (allowing re-handling of a
// suffix already seen, which is what a crash or a lease move produces).
func (r *recorder) check(t *testing.T, convs, per int) (dups int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
	for c := 0; c < convs; c++ {
		key := fmt.Sprintf("conv-%d", c)
		got := r.seen[key]
		next := 0
		for _, s := range got {
			switch {
			case s == next:
				next++
			case s < next:
				dups++
			default:
				t.Fatalf("%s: got msg %d before msg %d (order broken): %v", key, s, next, got)
			}
		}
		if next != per {
			t.Fatalf("%s: handled up to %d of %d", key, next, per)
		}
	}
	return dups
}

func (e *env) pending() int64 {
	var n int64
	for s := 0; s < e.store.Shards(); s++ {
		st, _ := e.store.Stats(context.Background(), s)
		n += st.Pending + st.Lag
	}
	return n
}

func TestTwoWorkersHandleEachEntryOnceInOrder(t *testing.T) {
	e := newEnv(t, 8)
	rec := newRecorder()
	e.start("w1", rec.handler("w1", nil), nil)
	e.start("w2", rec.handler("w2", nil), nil)
	const convs, per = 40, 25
	for i := 0; i < per; i++ {
		for c := 0; c < convs; c++ {
			e.append(fmt.Sprintf("conv-%d", c), i)
		}
	}
	eventually(t, 20*time.Second, func() bool { return rec.total() >= convs*per }, "all entries handled")
	eventually(t, 5*time.Second, func() bool { return e.pending() == 0 }, "all entries acknowledged")
	if dups := rec.check(t, convs, per); dups != 0 {
		t.Fatalf("%d duplicates without any crash", dups)
	}
	// Nothing failed, so nothing was recorded: first attempts need no
	// attempt record, and their started markers go once they are acked.
	for s := 0; s < 8; s++ {
		if n := e.c.HLen(context.Background(), e.keys.Attempts(s)).Val(); n != 0 {
			t.Fatalf("shard %d: %d attempt fields left", s, n)
		}
		eventually(t, 2*time.Second, func() bool { return e.c.Exists(context.Background(), e.keys.Started(s)).Val() == 0 },
			fmt.Sprintf("shard %d: started marker cleared", s))
	}
}

func TestPoisonEntryParkedAfterExactAttemptsWhileOthersFlow(t *testing.T) {
	e := newEnv(t, 2)
	rec := newRecorder()
	var poisonCalls atomic.Int64
	e.start("w1", rec.handler("w1", func(m *Message) error {
		if m.Entry.Conversation == "conv-poison" {
			poisonCalls.Add(1)
			return errors.New("always fails")
		}
		return nil
	}), nil)
	e.append("conv-poison", 0)
	for i := 0; i < 20; i++ {
		e.append("conv-0", i)
	}
	eventually(t, 10*time.Second, func() bool { return rec.total() == 20 }, "other conversation flows")
	eventually(t, 10*time.Second, func() bool {
		return e.c.XLen(context.Background(), e.keys.DLQ(streams.ShardOf("conv-poison", 2))).Val() == 1
	}, "poison parked")
	if n := poisonCalls.Load(); n != 3 {
		t.Fatalf("poison handled %d times, want 1 + DLQ_MAX_RETRIES = 3", n)
	}
	d := e.c.XRange(context.Background(), e.keys.DLQ(streams.ShardOf("conv-poison", 2)), "-", "+").Val()[0]
	if d.Values["attempts"] != "3" || d.Values["reason"] != "handler_error" || d.Values["err"] != "always fails" {
		t.Fatalf("dlq entry %v", d.Values)
	}
	eventually(t, 5*time.Second, func() bool { return e.pending() == 0 }, "poison acknowledged with the park")
}

func TestZeroRetriesParksOnFirstFailure(t *testing.T) {
	e := newEnv(t, 1)
	var calls atomic.Int64
	e.start("w1", HandlerFunc(func(ctx context.Context, m *Message) error { calls.Add(1); panic("boom") }), func(c *Config) { c.MaxRetries = 0 })
	e.append("conv-x", 0)
	eventually(t, 5*time.Second, func() bool { return e.c.XLen(context.Background(), e.keys.DLQ(0)).Val() == 1 }, "parked")
	if calls.Load() != 1 {
		t.Fatalf("calls %d", calls.Load())
	}
	d := e.c.XRange(context.Background(), e.keys.DLQ(0), "-", "+").Val()[0]
	if d.Values["reason"] != "panic" {
		t.Fatalf("reason %v", d.Values["reason"])
	}
}

func TestInfrastructureErrorsNeverPark(t *testing.T) {
	e := newEnv(t, 1)
	var calls atomic.Int64
	e.start("w1", HandlerFunc(func(ctx context.Context, m *Message) error {
		if calls.Add(1) <= 12 {
			return Infrastructure(errors.New("rest api 503"), 5*time.Millisecond)
		}
		return nil
	}), nil)
	e.append("conv-x", 0)
	eventually(t, 10*time.Second, func() bool { return e.pending() == 0 }, "handled after the outage")
	if n := e.c.XLen(context.Background(), e.keys.DLQ(0)).Val(); n != 0 {
		t.Fatalf("%d entries parked for an infrastructure outage", n)
	}
	if calls.Load() != 13 {
		t.Fatalf("calls %d", calls.Load())
	}
}

func TestRebalanceAndHandoverOnStop(t *testing.T) {
	e := newEnv(t, 6)
	rec := newRecorder()
	a := e.start("wa", rec.handler("wa", nil), nil)
	eventually(t, 5*time.Second, func() bool { return len(a.w.OwnedShards()) == 6 }, "one worker owns all shards")
	b := e.start("wb", rec.handler("wb", nil), nil)
	eventually(t, 5*time.Second, func() bool { return len(a.w.OwnedShards()) == 3 && len(b.w.OwnedShards()) == 3 }, "fair share 3/3")
	for i := 0; i < 10; i++ {
		for c := 0; c < 12; c++ {
			e.append(fmt.Sprintf("conv-%d", c), i)
		}
	}
	eventually(t, 10*time.Second, func() bool { return rec.total() >= 120 }, "handled")
	a.stop()
	eventually(t, 5*time.Second, func() bool { return len(b.w.OwnedShards()) == 6 }, "survivor takes every shard")
	for i := 10; i < 20; i++ {
		for c := 0; c < 12; c++ {
			e.append(fmt.Sprintf("conv-%d", c), i)
		}
	}
	eventually(t, 10*time.Second, func() bool { return rec.total() >= 240 }, "handled after handover")
	rec.check(t, 12, 20)
}

func TestStaleWorkerCannotCommit(t *testing.T) {
	e := newEnv(t, 1)
	rec := newRecorder()
	block := make(chan struct{})
	var once sync.Once
	a := e.start("wa", HandlerFunc(func(ctx context.Context, m *Message) error {
		once.Do(func() {
			// Steal the lease while the handler runs (as after a partition).
			e.c.Del(context.Background(), e.keys.Lease(0))
			e.c.Set(context.Background(), e.keys.Lease(0), "thief|999", time.Hour)
			close(block)
		})
		return nil
	}), func(c *Config) { c.LeaseTTL = 3 * time.Second })
	eventually(t, 5*time.Second, func() bool { return len(a.w.OwnedShards()) == 1 }, "owns the shard")
	e.append("conv-0", 0)
	<-block
	eventually(t, 5*time.Second, func() bool { return a.w.Stats().StaleCommits.Load() >= 1 }, "stale commit counted")
	eventually(t, 5*time.Second, func() bool { return len(a.w.OwnedShards()) == 0 }, "shard dropped")
	p, _ := e.c.XPending(context.Background(), e.keys.Stream(0), streams.GroupName).Result()
	if p.Count != 1 {
		t.Fatalf("pending %d: the stale ack must not land", p.Count)
	}
	_ = rec
}

func TestReaderRecoversFromKilledConnectionWithoutDuplicates(t *testing.T) {
	e := newEnv(t, 2)
	rec := newRecorder()
	w := e.start("w1", rec.handler("w1", nil), nil)
	eventually(t, 5*time.Second, func() bool { return len(w.w.OwnedShards()) == 2 }, "owns both shards")
	for i := 0; i < 10; i++ {
		e.append("conv-0", i)
	}
	eventually(t, 5*time.Second, func() bool { return rec.total() == 10 }, "first entries handled")
	// Kill every client connection, the blocked reader's included (as a
	// network blip or a Redis restart would).
	if err := e.c.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 20; i++ {
		e.append("conv-0", i)
	}
	eventually(t, 10*time.Second, func() bool { return rec.total() >= 20 }, "entries after the blip handled")
	time.Sleep(200 * time.Millisecond)
	if dups := rec.check(t, 1, 20); dups != 0 {
		t.Fatalf("%d duplicates after a killed connection", dups)
	}
}

func TestStateReadYourWritesAcrossBatchedCommits(t *testing.T) {
	e := newEnv(t, 4)
	var mu sync.Mutex
	var seen []int
	e.start("w1", HandlerFunc(func(ctx context.Context, m *Message) error {
		key := m.Keys().State(m.Shard, m.Entry.Conversation)
		v, _, err := m.ReadState(ctx, key, "count")
		if err != nil {
			return err
		}
		var n int
		fmt.Sscan(v, &n)
		mu.Lock()
		seen = append(seen, n)
		mu.Unlock()
		m.AddStateOp(streams.StateOp{Key: key, Op: "set", Field: "count", Value: fmt.Sprint(n + 1)})
		return nil
	}), nil)
	for i := 0; i < 300; i++ {
		e.append("conv-counter", i)
	}
	eventually(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 300 }, "all handled")
	eventually(t, 5*time.Second, func() bool { return e.pending() == 0 }, "all committed")
	mu.Lock()
	defer mu.Unlock()
	for i, n := range seen {
		if n != i {
			t.Fatalf("message %d saw count %d: a write was not visible to the next message", i, n)
		}
	}
	shard := streams.ShardOf("conv-counter", 4)
	if v := e.c.HGet(context.Background(), e.keys.State(shard, "conv-counter"), "count").Val(); v != "300" {
		t.Fatalf("stored count %q, want 300", v)
	}
}

func TestUnreadableEntryParkedWithItsPayload(t *testing.T) {
	e := newEnv(t, 1)
	var calls atomic.Int64
	e.start("w1", HandlerFunc(func(context.Context, *Message) error { calls.Add(1); return nil }), nil)
	e.c.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.Stream(0), Values: []any{"m", "9|from-the-future", "p", "raw-bytes"}})
	eventually(t, 5*time.Second, func() bool { return e.c.XLen(context.Background(), e.keys.DLQ(0)).Val() == 1 }, "parked")
	d := e.c.XRange(context.Background(), e.keys.DLQ(0), "-", "+").Val()[0]
	if d.Values["reason"] != "format" || d.Values["p"] != "raw-bytes" {
		t.Fatalf("parked %v", d.Values)
	}
	if calls.Load() != 0 {
		t.Fatal("handler called for an unreadable entry")
	}
	eventually(t, 5*time.Second, func() bool { return e.pending() == 0 }, "acknowledged with the park")
}

// A first attempt runs on the fast path (no attempt record before it), but
// the started marker makes a crash count it; the entries read ahead behind it
// are not charged (ARCHITECTURE §7.1). The crash is a lease lost while the
// handler runs: nothing of the first worker is committed after that.
func TestCrashedFirstAttemptCountsReadAheadDoesNot(t *testing.T) {
	for _, tc := range []struct {
		retries     int
		wantAttempt int64 // of the crashed entry at its next owner; 0: parked without running
	}{{retries: 2, wantAttempt: 2}, {retries: 0, wantAttempt: 0}} {
		t.Run(fmt.Sprintf("retries%d", tc.retries), func(t *testing.T) {
			e := newEnv(t, 1)
			started := make(chan string, 10)
			a := e.start("wa", HandlerFunc(func(ctx context.Context, m *Message) error {
				started <- m.Entry.ID
				<-ctx.Done() // "crashes" in the handler: never returns before the shard is lost
				return ctx.Err()
			}), func(c *Config) { c.MaxRetries = tc.retries; c.LeaseTTL = 600 * time.Millisecond })
			eventually(t, 5*time.Second, func() bool { return len(a.w.OwnedShards()) == 1 }, "wa owns the shard")
			e.append("conv-p", 0)
			e.append("conv-p", 1) // read ahead behind the crashing one, never started
			id := <-started
			eventually(t, 5*time.Second, func() bool {
				return e.c.Get(context.Background(), e.keys.Started(0)).Val() == id
			}, "the started marker lists the running first attempt")
			if n := e.c.HLen(context.Background(), e.keys.Attempts(0)).Val(); n != 0 {
				t.Fatalf("%d attempt fields before any failure: the fast path must not write records", n)
			}
			// The lease passes away as after a crash: wa fences itself.
			e.c.Set(context.Background(), e.keys.Lease(0), "thief|1", time.Hour)
			eventually(t, 5*time.Second, func() bool { return len(a.w.OwnedShards()) == 0 }, "wa dropped the shard")
			a.stop()
			e.c.Del(context.Background(), e.keys.Lease(0))

			var mu sync.Mutex
			got := map[string]int64{}
			b := e.start("wb", HandlerFunc(func(ctx context.Context, m *Message) error {
				mu.Lock()
				got[m.Entry.ID] = m.Attempt
				mu.Unlock()
				return nil
			}), func(c *Config) { c.MaxRetries = tc.retries })
			eventually(t, 5*time.Second, func() bool { return e.pending() == 0 }, "wb handled or parked both")
			_ = b
			mu.Lock()
			defer mu.Unlock()
			if tc.wantAttempt == 0 {
				if _, ran := got[id]; ran {
					t.Fatalf("the crashed entry ran again with its budget spent (attempt %d)", got[id])
				}
				d := e.c.XRange(context.Background(), e.keys.DLQ(0), "-", "+").Val()
				if len(d) != 1 || d[0].Values["attempts"] != "1" {
					t.Fatalf("dlq %v, want the crashed entry with attempts 1", d)
				}
			} else if got[id] != tc.wantAttempt {
				t.Fatalf("crashed entry ran as attempt %d at its next owner, want %d", got[id], tc.wantAttempt)
			}
			for other, att := range got {
				if other != id && att != 1 {
					t.Fatalf("read-ahead entry %s ran as attempt %d: it never started before, want 1", other, att)
				}
			}
			if len(got) != 2 && !(tc.wantAttempt == 0 && len(got) == 1) {
				t.Fatalf("handled %v", got)
			}
			if n := e.c.Exists(context.Background(), e.keys.Started(0)).Val(); n != 0 {
				t.Fatalf("started marker left after everything was acknowledged")
			}
		})
	}
}

// A handler that cannot decode the payload returns Unreadable: retrying
// cannot help, so the entry is parked at once with reason "format".
func TestUnreadablePayloadParkedAtOnce(t *testing.T) {
	e := newEnv(t, 1)
	var calls atomic.Int64
	e.start("w1", HandlerFunc(func(ctx context.Context, m *Message) error {
		calls.Add(1)
		return Unreadable(errors.New("bot: decode message: unexpected end of JSON input"))
	}), nil) // DLQ_MAX_RETRIES 2: an ordinary error would run three times
	e.append("conv-x", 0)
	eventually(t, 5*time.Second, func() bool { return e.c.XLen(context.Background(), e.keys.DLQ(0)).Val() == 1 }, "parked")
	eventually(t, 5*time.Second, func() bool { return e.pending() == 0 }, "acknowledged with the park")
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	d := e.c.XRange(context.Background(), e.keys.DLQ(0), "-", "+").Val()[0]
	if d.Values["reason"] != "format" || !strings.Contains(fmt.Sprint(d.Values["err"]), "decode message") {
		t.Fatalf("dlq entry %v", d.Values)
	}
}

// An entry delivered to the shard's consumer while nobody handles it (a
// read that raced with a hand-over) is found by the scan of idle pending
// entries and handled, once.
func TestStrandedPendingEntryIsRequeued(t *testing.T) {
	e := newEnv(t, 1)
	var mu sync.Mutex
	got := map[string]int{}
	w := e.start("w1", HandlerFunc(func(ctx context.Context, m *Message) error {
		mu.Lock()
		got[m.Entry.ID]++
		mu.Unlock()
		return nil
	}), func(c *Config) { c.ClaimMinIdle = 300 * time.Millisecond })
	eventually(t, 5*time.Second, func() bool { return len(w.w.OwnedShards()) == 1 }, "owns the shard")
	time.Sleep(100 * time.Millisecond) // its history is read; it blocks on ">"
	// Append and deliver in one transaction: the worker's blocked read is
	// served only after it, and finds nothing new.
	ent := streams.Entry{Kind: "message", Conversation: "conv-s", Timestamp: time.Now().UnixMilli(), Payload: payload("conv-s", 0)}
	var id string
	_, err := e.c.TxPipelined(context.Background(), func(p redis.Pipeliner) error {
		p.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.Stream(0), Values: ent.Fields()})
		p.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: streams.GroupName, Consumer: streams.OwnerConsumer,
			Streams: []string{e.keys.Stream(0), ">"}, Count: 1, Block: -1})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := e.c.XPending(context.Background(), e.keys.Stream(0), streams.GroupName).Result()
	if p.Count != 1 {
		t.Fatalf("pending %d, want the stranded entry", p.Count)
	}
	id = p.Lower
	eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return got[id] == 1 }, "the stranded entry handled")
	eventually(t, 5*time.Second, func() bool { return e.pending() == 0 }, "and acknowledged")
	time.Sleep(700 * time.Millisecond) // two more scans
	mu.Lock()
	defer mu.Unlock()
	if got[id] != 1 || len(got) != 1 {
		t.Fatalf("handled %v, want the stranded entry exactly once", got)
	}
}
