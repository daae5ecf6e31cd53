package streams

import (
	"context"
	"fmt"
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
		{name: "a copy inside the run aborts", reqs: []Append{req("a", 1), req("a", 1)},
			want: []want{{false, true}, {true, true}}, streamLen: 1},
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
				if !c.SIsMember(ctx, bucket, DedupDigest(r.Identity)).Val() {
					t.Errorf("identity %q has no marker", r.Identity)
				}
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
// ACL user that may not run scripts) the entries are still appended, each
// reported Unchecked, and the store then takes the script path.
func TestAppendTransactionUncheckedPauses(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	if err := c.Do(ctx, "ACL", "SETUSER", "noscript", "on", "nopass", "~*", "+@all", "-eval", "-evalsha").Err(); err != nil {
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
