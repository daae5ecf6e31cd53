package streams

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestAppendTransaction covers the optimistic path against the script path:
// what each request ends as, whether the transaction committed it
// (Fallback false) or the script decided it, and the stream and markers
// left behind.
func TestAppendTransaction(t *testing.T) {
	const ts = 1767225600000
	entry := func(i int) Entry {
		return Entry{Kind: "message", Conversation: "u:a", Timestamp: ts + int64(i), ReceivedAt: 2, Ingester: "i1", Epoch: 7, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	req := func(id string, i int) Append { return Append{Shard: 2, Identity: id, Entry: entry(i)} }
	type want struct{ dup, fallback bool }
	cases := []struct {
		name       string
		scriptOnly bool
		before     []Append // appended first
		reqs       []Append
		want       []want
		streamLen  int64
	}{
		{name: "fresh run commits", reqs: []Append{req("a", 1), req("b", 2)},
			want: []want{{false, false}, {false, false}}, streamLen: 2},
		{name: "a copy of an appended entry aborts and the script decides",
			before: []Append{req("a", 1)}, reqs: []Append{req("b", 2), req("a", 1), req("c", 3)},
			want: []want{{false, true}, {true, true}, {false, true}}, streamLen: 3},
		{name: "a copy inside the run goes to the script", reqs: []Append{req("a", 1), req("a", 1)},
			want: []want{{false, false}, {true, false}}, streamLen: 1},
		{name: "a copy in a second bucket aborts", before: []Append{req("z", 70000)}, reqs: []Append{req("b", 2), req("z", 70000)},
			want: []want{{false, true}, {true, true}}, streamLen: 2},
		{name: "repair offers go to the script", before: []Append{req("a", 1)},
			reqs: []Append{{Shard: 2, Identity: "a", Entry: entry(1), Repair: true}},
			want: []want{{true, false}}, streamLen: 1},
		{name: "script only", scriptOnly: true, before: []Append{req("a", 1)}, reqs: []Append{req("a", 1), req("b", 2)},
			want: []want{{true, false}, {false, false}}, streamLen: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, c := newStore(t, 4)
			s.scriptOnly = tc.scriptOnly
			if len(tc.before) > 0 {
				if _, err := s.AppendBatch(ctx, tc.before, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.AppendBatch(ctx, tc.reqs, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				r := res[i]
				if r.Err != nil || r.Duplicate != w.dup || r.Fallback != w.fallback || r.Unchecked || (r.ID == "") != w.dup {
					t.Errorf("request %d: %+v, want duplicate=%v fallback=%v", i, r, w.dup, w.fallback)
				}
			}
			if n := c.XLen(ctx, s.Keys().Stream(2)).Val(); n != tc.streamLen {
				t.Errorf("stream length %d, want %d", n, tc.streamLen)
			}
			// Every offered identity is marked, with the dedup TTL.
			bucket := s.Keys().DedupBucket(2, ts/DedupBucketWidth.Milliseconds())
			for _, r := range append(tc.before, tc.reqs...) {
				b := s.Keys().DedupBucket(2, r.Entry.Timestamp/DedupBucketWidth.Milliseconds())
				if !c.SIsMember(ctx, b, DedupDigest(r.Identity)).Val() {
					t.Errorf("identity %q has no marker", r.Identity)
				}
			}
			// The check leaves nothing behind: no intersection, no scratch set.
			if n := c.Exists(ctx, s.Keys().DedupWatch(2), s.Keys().DedupScratch(2, s.token)).Val(); n != 0 {
				t.Errorf("%d of the check's keys left behind", n)
			}
			if ttl := c.PTTL(ctx, bucket).Val(); ttl < 59*time.Minute || ttl > time.Hour {
				t.Errorf("bucket TTL %v, want about 1h", ttl)
			}
			// A later copy of anything offered is a duplicate, whichever path.
			again, err := s.AppendBatch(ctx, tc.reqs[:1], time.Hour)
			if err != nil || !again[0].Duplicate {
				t.Errorf("copy offered again: %+v %v", again, err)
			}
		})
	}
}

// TestAppendTransactionRaisesNeverLowersTTL: as the script, the transaction
// raises a bucket's TTL to the dedup window and never lowers it.
func TestAppendTransactionRaisesNeverLowersTTL(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	e := Entry{Kind: "message", Conversation: "u:a", Timestamp: 1767225600000, Payload: []byte(`{}`)}
	if _, err := s.AppendBatch(ctx, []Append{{Shard: 0, Identity: "a", Entry: e}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	res, err := s.AppendBatch(ctx, []Append{{Shard: 0, Identity: "b", Entry: e}}, time.Minute)
	if err != nil || res[0].Fallback || res[0].Duplicate {
		t.Fatalf("second append: %+v %v", res, err)
	}
	bucket := s.Keys().DedupBucket(0, e.Timestamp/DedupBucketWidth.Milliseconds())
	if ttl := c.PTTL(ctx, bucket).Val(); ttl < 59*time.Minute {
		t.Fatalf("TTL lowered to %v by a shorter window", ttl)
	}
}

// TestAppendTransactionUncheckedPauses: when the check cannot run (here an
// ACL user that may not intersect sets, nor run scripts) the entries are
// still appended, each reported Unchecked, and the store then takes the
// script path.
func TestAppendTransactionUncheckedPauses(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	if err := c.Do(ctx, "ACL", "SETUSER", "noscript", "on", "nopass", "~*", "+@all", "-sinterstore", "-eval", "-evalsha").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Do(context.Background(), "ACL", "DELUSER", "noscript") })
	limited := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "noscript", Password: "x", Protocol: 2})
	defer limited.Close()
	ls := NewStore(limited, s.Keys(), 4)
	e := Entry{Kind: "message", Conversation: "u:a", Timestamp: 1767225600000, Payload: []byte(`{}`)}
	res, err := ls.AppendBatch(ctx, []Append{{Shard: 1, Identity: "a", Entry: e}}, time.Hour)
	if err != nil || res[0].Err != nil || !res[0].Unchecked || res[0].ID == "" {
		t.Fatalf("unchecked append: %+v %v", res, err)
	}
	if ls.txAllowed() {
		t.Fatal("the transaction is still used after an unchecked commit")
	}
	// The script path now refuses loudly instead of appending unchecked.
	res, err = ls.AppendBatch(ctx, []Append{{Shard: 1, Identity: "b", Entry: e}}, time.Hour)
	if err == nil && res[0].Err == nil {
		t.Fatalf("script path under a no-script ACL appended: %+v", res)
	}
}

// commandNames records the names of the commands of every pipeline.
type commandNames struct {
	mu    sync.Mutex
	names map[string]int
}

func (h *commandNames) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *commandNames) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *commandNames) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		for _, c := range cmds {
			h.names[strings.ToUpper(c.Name())]++
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// A prepared batch is sent once, and planned again when the transaction was
// paused between its planning and its sending: it must not commit through a
// path the store has turned off.
func TestAppendPrepared(t *testing.T) {
	reqs := func(from int) []Append {
		var out []Append
		for i := from; i < from+300; i++ { // above laneMinEntries: two lanes
			out = append(out, Append{Shard: i % 4, Identity: fmt.Sprint("id", i),
				Entry: Entry{Kind: "message", Conversation: fmt.Sprint("u:", i%4), Timestamp: 1767225600000 + int64(i), Payload: []byte(fmt.Sprint(i))}})
		}
		return out
	}
	cases := []struct {
		name      string
		pause     bool // pause the transaction after planning
		wantMulti bool
	}{
		{name: "sent as planned", wantMulti: true},
		{name: "paused after planning so the script appends", pause: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, c := newStore(t, 4)
			if err := LoadScripts(ctx, c); err != nil {
				t.Fatal(err)
			}
			hook := &commandNames{names: map[string]int{}}
			c.AddHook(hook)
			p := s.PrepareAppend(ctx, reqs(0), time.Hour)
			if p.Len() != 300 {
				t.Fatalf("Len = %d, want 300", p.Len())
			}
			if tc.pause {
				s.pauseTx()
			}
			res, err := s.AppendPrepared(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil || r.Duplicate || r.ID == "" || r.Unchecked || r.Fallback {
					t.Fatalf("result %d = %+v, want appended", i, r)
				}
			}
			if got := hook.names["MULTI"] > 0; got != tc.wantMulti {
				t.Errorf("MULTI sent = %v, want %v (commands %v)", got, tc.wantMulti, hook.names)
			}
			var n int64
			for sh := 0; sh < 4; sh++ {
				n += c.XLen(ctx, s.Keys().Stream(sh)).Val()
			}
			if n != 300 {
				t.Errorf("streams hold %d entries, want 300", n)
			}
			if _, err := s.AppendPrepared(ctx, p); err == nil {
				t.Error("a prepared batch sent twice: no error")
			}
			// The same requests again are duplicates, whatever path decides.
			again, err := s.AppendBatch(ctx, reqs(0), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range again {
				if !r.Duplicate {
					t.Fatalf("repeated request %d = %+v, want a duplicate", i, r)
				}
			}
		})
	}
}

// A watch key a crash left behind (a copy found, the process gone before
// its DEL) costs one discarded transaction: the script then appends, and
// the key is gone.
func TestAppendTransactionStaleWatchKey(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	c.SAdd(ctx, s.Keys().DedupWatch(1), "stale")
	e := Entry{Kind: "message", Conversation: "u:a", Timestamp: 1767225600000, Payload: []byte(`{}`)}
	res, err := s.AppendBatch(ctx, []Append{{Shard: 1, Identity: "a", Entry: e}}, time.Hour)
	if err != nil || res[0].Err != nil || res[0].Duplicate || !res[0].Fallback || res[0].ID == "" {
		t.Fatalf("append with a stale watch key: %+v %v, want appended by the script", res, err)
	}
	if c.Exists(ctx, s.Keys().DedupWatch(1)).Val() != 0 {
		t.Error("the stale watch key is still there")
	}
	e.Timestamp++
	res, err = s.AppendBatch(ctx, []Append{{Shard: 1, Identity: "b", Entry: e}}, time.Hour)
	if err != nil || res[0].Fallback || res[0].Duplicate {
		t.Fatalf("next append: %+v %v, want committed by the transaction", res, err)
	}
}
