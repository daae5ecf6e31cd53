package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/signal/receive"
	"github.com/signal-client/signal-client/internal/streams"
)

const account = "+15550000001"

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

type fakeRole struct{ leader atomic.Bool }

func (r *fakeRole) IsLeader() bool { return r.leader.Load() }
func (r *fakeRole) Epoch() int64 {
	if r.leader.Load() {
		return 42
	}
	return 0
}

// frame builds a 1:1 text frame in the exact shape of reference §3.8 (a).
func frame(sender int, ts int64, text string) []byte {
	uuid := fmt.Sprintf("3f1c7a52-8e0b-4d1e-9a52-%012d", sender)
	num := fmt.Sprintf("+1555%07d", sender)
	return []byte(fmt.Sprintf(`{"envelope":{"source":"%s","sourceNumber":"%s","sourceUuid":"%s","sourceName":"U","sourceDevice":1,"timestamp":%d,"serverReceivedTimestamp":%d,"serverDeliveredTimestamp":%d,"dataMessage":{"timestamp":%d,"message":%q,"expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"%s"}`,
		num, num, uuid, ts, ts+1, ts+2, ts, text, account))
}

type harness struct {
	t      *testing.T
	store  *streams.Store
	client *redis.Client
}

func newHarness(t *testing.T, s *redistest.Server, shards int) *harness {
	c := s.Client()
	t.Cleanup(func() { c.Close() })
	k, _ := streams.NewKeys(fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano()), account)
	return &harness{t: t, store: streams.NewStore(c, k, shards), client: c}
}

func (h *harness) cfg(instance string) Config {
	return Config{Number: account, Instance: instance, DedupWindow: time.Hour, RepairDelay: 50 * time.Millisecond,
		QueueSize: 1000, MaxFrameBytes: 64 << 10, RetryInterval: 20 * time.Millisecond}
}

type running struct {
	in     *Ingester
	frames chan receive.Frame
	cancel context.CancelFunc
	done   chan error
}

func (h *harness) start(cfg Config, role Role, sp Spool) *running {
	return h.startWithSpool(cfg, role, sp, 10000)
}

// startWith runs an ingester reading a hand-off channel of the given capacity.
func (h *harness) startWith(cfg Config, role Role, handoff int) *running {
	return h.startWithSpool(cfg, role, nil, handoff)
}

func (h *harness) startWithSpool(cfg Config, role Role, sp Spool, handoff int) *running {
	r := &running{in: New(cfg, h.store, role, sp, nil), frames: make(chan receive.Frame, handoff), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- r.in.Run(ctx, r.frames, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 5*time.Second)
		})
	}()
	h.t.Cleanup(func() { r.stop() })
	return r
}

func (r *running) send(raw []byte) { r.frames <- receive.Frame{Data: raw, ReceivedAt: time.Now()} }

func (r *running) stop() error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.cancel = nil
	return <-r.done
}

// entries returns every appended payload's text per conversation, in stream order.
func (h *harness) texts() map[string][]string {
	out := map[string][]string{}
	for n := 0; n < h.store.Shards(); n++ {
		for _, m := range h.client.XRange(context.Background(), h.store.Keys().Stream(n), "-", "+").Val() {
			e, err := streams.ParseEntry(m)
			if err != nil {
				h.t.Fatal(err)
			}
			if e.Kind == streams.KindHeartbeat {
				continue
			}
			p := string(e.Payload)
			i := strings.Index(p, `"message":"`)
			j := strings.Index(p[i+11:], `"`)
			out[e.Conversation] = append(out[e.Conversation], p[i+11:i+11+j])
		}
	}
	return out
}

func total(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLeaderAndStandbyAppendEachFrameOnceInOrder(t *testing.T) {
	h := newHarness(t, srv, 8)
	lead, stand := &fakeRole{}, &fakeRole{}
	lead.leader.Store(true)
	// A repair delay well above the leader's append latency under -race: a
	// standby that appends first is a repair, which this test must not see.
	cfg := h.cfg("b")
	cfg.RepairDelay = time.Second
	a := h.start(h.cfg("a"), lead, nil)
	b := h.start(cfg, stand, nil)
	const convs, per = 20, 15
	ts := int64(1767225600000)
	for i := 0; i < per; i++ {
		for c := 0; c < convs; c++ {
			ts++
			raw := frame(c, ts, fmt.Sprintf("msg %d", i))
			a.send(raw)
			b.send(raw)
		}
	}
	eventually(t, 5*time.Second, func() bool {
		return b.in.Stats().Deduplicated.Load()+b.in.Stats().Repaired.Load() == convs*per
	}, "standby checked every frame")
	got := h.texts()
	if total(got) != convs*per || len(got) != convs {
		t.Fatalf("appended %d entries in %d conversations, want %d in %d", total(got), len(got), convs*per, convs)
	}
	for conv, texts := range got {
		for i, txt := range texts {
			if txt != fmt.Sprintf("msg %d", i) {
				t.Fatalf("conversation %s out of order at %d: %v", conv, i, texts)
			}
		}
	}
	if r := b.in.Stats().Repaired.Load(); r != 0 {
		t.Errorf("standby repaired %d frames the leader had appended", r)
	}
	if d := a.in.Stats().Deduplicated.Load(); d != 0 {
		t.Errorf("leader saw %d duplicates", d)
	}
}

func TestStandbyRepairsWhatTheLeaderMissed(t *testing.T) {
	h := newHarness(t, srv, 4)
	lead, stand := &fakeRole{}, &fakeRole{}
	lead.leader.Store(true)
	a := h.start(h.cfg("a"), lead, nil)
	b := h.start(h.cfg("b"), stand, nil)
	missed := map[int]bool{3: true, 7: true, 8: true}
	for i := 0; i < 10; i++ {
		raw := frame(1, int64(1767225600000+i), fmt.Sprintf("msg %d", i))
		if !missed[i] {
			a.send(raw)
		}
		b.send(raw)
	}
	eventually(t, 5*time.Second, func() bool { return total(h.texts()) == 10 }, "all 10 frames in the stream")
	if r := b.in.Stats().Repaired.Load(); r != 3 {
		t.Fatalf("repaired %d, want 3", r)
	}
	time.Sleep(100 * time.Millisecond)
	if n := total(h.texts()); n != 10 {
		t.Fatalf("%d entries, want exactly 10", n)
	}
}

func TestBadInputQuarantinedAndGoodFramesFlow(t *testing.T) {
	h := newHarness(t, srv, 2)
	role := &fakeRole{}
	role.leader.Store(true)
	cfg := h.cfg("a")
	cfg.MaxFrameBytes = 2048
	a := h.start(cfg, role, nil)
	bad := map[string][]byte{
		"malformed":      []byte(`{"envelope":`),
		"oversize":       []byte(`{"envelope":{"x":"` + strings.Repeat("y", 5000) + `"}}`),
		"upstream_error": []byte(`{"error":"daemon exploded"}`),
		"exception":      []byte(`{"account":"+15550000001","exception":{"message":"Untrusted identity key!","type":"UntrustedIdentityException"},"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":1767225610000,"serverReceivedTimestamp":1767225610010,"serverDeliveredTimestamp":1767225610020}}`),
		"unknown":        []byte(`{"something":"else"}`),
	}
	i := 0
	for _, raw := range bad {
		a.send(raw)
		a.send(frame(1, int64(1767225600000+i), fmt.Sprintf("msg %d", i)))
		i++
	}
	eventually(t, 5*time.Second, func() bool { return total(h.texts()) == len(bad) }, "good frames appended")
	eventually(t, 5*time.Second, func() bool { return a.in.Stats().Quarantined.Load() == uint64(len(bad)) }, "bad frames quarantined")
	byReason := ByReason(&a.in.Stats().QuarantinedByReason)
	for reason := range bad {
		if byReason[reason] != 1 {
			t.Errorf("quarantined by reason %v, want 1 for %s", byReason, reason)
		}
	}
	q := h.client.XRange(context.Background(), h.store.Keys().Quarantine(), "-", "+").Val()
	if len(q) != len(bad) {
		t.Fatalf("quarantine stream has %d entries, want %d", len(q), len(bad))
	}
	for _, m := range q {
		if m.Values["reason"] == "oversize" && len(m.Values["p"].(string)) != 4096 {
			t.Errorf("oversize entry keeps %d bytes, want the first 4096", len(m.Values["p"].(string)))
		}
	}
}

// memSpool is an in-memory Spool for pipeline tests (internal/spool has its own crash tests).
type memSpool struct {
	mu   sync.Mutex
	recs [][]byte
}

func (s *memSpool) Append(rec []byte) error {
	s.mu.Lock()
	s.recs = append(s.recs, append([]byte(nil), rec...))
	s.mu.Unlock()
	return nil
}
func (s *memSpool) Flush() error { return nil }
func (s *memSpool) Depth() int64 { s.mu.Lock(); defer s.mu.Unlock(); return int64(len(s.recs)) }
func (s *memSpool) ReplayBatch(ctx context.Context, max int, fn func([][]byte) error) (int, error) {
	s.mu.Lock()
	n := len(s.recs)
	if n > max {
		n = max
	}
	batch := append([][]byte(nil), s.recs[:n]...)
	s.mu.Unlock()
	if n == 0 {
		return 0, nil
	}
	if err := fn(batch); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.recs = s.recs[n:]
	s.mu.Unlock()
	return n, nil
}

func TestRedisOutageSpoolKeepsEverythingInOrder(t *testing.T) {
	rs := redistest.MustStart(t, redistest.Options{AOF: true})
	h := newHarness(t, rs, 4)
	role := &fakeRole{}
	role.leader.Store(true)
	sp := &memSpool{}
	cfg := h.cfg("a")
	cfg.QueueSize = 5
	a := h.start(cfg, role, sp)
	ts := int64(1767225600000)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			ts++
			a.send(frame(i%3, ts, fmt.Sprintf("msg %d", i)))
		}
	}
	send(0, 10)
	eventually(t, 5*time.Second, func() bool { return total(h.texts()) == 10 }, "first frames appended")
	rs.Kill()
	send(10, 60)
	eventually(t, 5*time.Second, func() bool { return a.in.Stats().Spooled.Load() > 0 }, "frames spooled during the outage")
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	send(60, 70)
	eventually(t, 10*time.Second, func() bool { return total(h.texts()) == 70 }, "all 70 frames appended after the outage")
	if d := a.in.Stats().Dropped.Load(); d != 0 {
		t.Fatalf("dropped %d with the spool on", d)
	}
	// Order per sender conversation: msg numbers strictly increasing.
	for conv, texts := range h.texts() {
		last := -1
		for _, txt := range texts {
			var n int
			fmt.Sscanf(txt, "msg %d", &n)
			if n <= last {
				t.Fatalf("conversation %s out of order: %v", conv, texts)
			}
			last = n
		}
	}
}

func TestRedisOutageWithoutSpoolCountsLossExactly(t *testing.T) {
	rs := redistest.MustStart(t, redistest.Options{})
	h := newHarness(t, rs, 2)
	role := &fakeRole{}
	role.leader.Store(true)
	cfg := h.cfg("a")
	cfg.QueueSize = 5
	a := h.start(cfg, role, nil)
	rs.Kill()
	for i := 0; i < 12; i++ {
		a.send(frame(1, int64(1767225600000+i), fmt.Sprintf("msg %d", i)))
	}
	eventually(t, 5*time.Second, func() bool { return a.in.Stats().Received.Load() == 12 }, "frames received")
	if d := a.in.Stats().Dropped.Load(); d != 7 {
		t.Fatalf("dropped %d, want exactly 7 (12 received, queue of 5)", d)
	}
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return total(h.texts()) == 5 }, "the 5 queued frames appended after the outage")
	if got := ByReason(&a.in.Stats().DroppedByReason)["queue_full"]; got != 7 {
		t.Fatalf("dropped by reason %v", ByReason(&a.in.Stats().DroppedByReason))
	}
}

// A burst faster than one round trip can take, into the default QUEUE_SIZE,
// while Redis is healthy: nothing is dropped. The batch in flight holds queue
// slots, so a full queue is normal for a moment under a burst; the ingester
// then waits for the appender instead of dropping. The paced cases hand
// frames over as the receiver does: without blocking, into a channel of
// QUEUE_SIZE, counting what does not fit, so they show the wait costs no drop
// there either. (Before the wait: 3368 of 5000 unpaced frames dropped.)
func TestBurstWhileRedisHealthyDropsNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rate    int // frames per second; 0 = unpaced, blocking hand-off
		standby bool
	}{{"paced 20k per s", 20000, false}, {"paced 20k per s into a lone standby", 20000, true}, {"unpaced", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, srv, 16)
			role := &fakeRole{}
			role.leader.Store(!tc.standby)
			cfg := h.cfg("a")
			cfg.QueueSize = 1000 // the default
			handoff := 10000
			if tc.rate > 0 {
				handoff = cfg.QueueSize // as wired by internal/app
			}
			a := h.startWith(cfg, role, handoff)
			const n = 5000
			var handoffDropped int
			rate := tc.rate
			if raceEnabled {
				rate /= 4 // the race detector's ingester is that much slower
			}
			start := time.Now()
			for i := 0; i < n; i++ {
				f := receive.Frame{Data: frame(i%200, int64(1767225600000+i), fmt.Sprintf("burst %d", i)), ReceivedAt: time.Now()}
				if tc.rate == 0 {
					a.frames <- f
					continue
				}
				select {
				case a.frames <- f:
				default:
					handoffDropped++
				}
				if i%100 == 99 {
					if d := time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))); d > 0 {
						time.Sleep(d)
					}
				}
			}
			eventually(t, 30*time.Second, func() bool {
				st := a.in.Stats()
				return st.Appended.Load()+st.Dropped.Load()+uint64(handoffDropped) == n
			}, "every frame appended or dropped")
			if d := a.in.Stats().Dropped.Load(); d != 0 || handoffDropped != 0 {
				t.Fatalf("%d of %d frames dropped by the ingester (%v), %d at the hand-off, although Redis was healthy",
					d, n, ByReason(&a.in.Stats().DroppedByReason), handoffDropped)
			}
			if got := total(h.texts()); got != n {
				t.Fatalf("%d entries, want %d", got, n)
			}
		})
	}
}
