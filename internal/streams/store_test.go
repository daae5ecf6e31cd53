package streams

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

// newStore gives each test its own key prefix on the shared package server.
func newStore(t *testing.T, shards int) (*Store, *redis.Client) {
	t.Helper()
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	prefix := fmt.Sprintf("%s-%d", strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()), time.Now().UnixNano())
	k, err := NewKeys(prefix, "+15550000001")
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(c, k, shards), c
}

func TestAppendBatchDeduplicates(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	e := Entry{Kind: "message", Conversation: "u:a", Timestamp: 1, ReceivedAt: 2, Ingester: "i1", Epoch: 7, Payload: []byte(`{"x":1}`)}
	reqs := []Append{
		{Shard: 1, Identity: "id-1", Entry: e},
		{Shard: 1, Identity: "id-2", Entry: e},
		{Shard: 1, Identity: "id-1", Entry: e}, // duplicate inside the same batch
	}
	res, err := s.AppendBatch(ctx, reqs, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate {
		t.Fatalf("duplicate flags = %v %v %v, want false false true", res[0].Duplicate, res[1].Duplicate, res[2].Duplicate)
	}
	if res[0].ID == "" || res[2].ID != "" {
		t.Errorf("ids %q / %q: an append reports its id, a duplicate none", res[0].ID, res[2].ID)
	}
	// A second replica offering the same frame later is also a duplicate.
	res2, err := s.AppendBatch(ctx, reqs[:1], time.Minute)
	if err != nil || !res2[0].Duplicate {
		t.Fatalf("second offer: %+v %v", res2, err)
	}
	if n := c.XLen(ctx, s.Keys().Stream(1)).Val(); n != 2 {
		t.Fatalf("stream length %d, want 2", n)
	}
	msgs := c.XRange(ctx, s.Keys().Stream(1), "-", "+").Val()
	got, err := ParseEntry(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	e.ID = msgs[0].ID
	if got.Kind != e.Kind || got.Conversation != e.Conversation || got.Epoch != 7 || string(got.Payload) != string(e.Payload) || got.ID != e.ID {
		t.Errorf("round trip: got %+v want %+v", got, e)
	}
	bucket := s.Keys().DedupBucket(1, 0) // timestamp 1 ms is in bucket 0
	ttl := c.PTTL(ctx, bucket).Val()
	if ttl <= 0 || ttl > time.Minute {
		t.Errorf("dedup bucket TTL %v, want (0, 1m]", ttl)
	}
	if got := c.SMembers(ctx, bucket).Val(); len(got) != 2 || !c.SIsMember(ctx, bucket, DedupDigest("id-1")).Val() {
		t.Errorf("dedup bucket %q holds %d markers %q, want 2 including id-1", bucket, len(got), got)
	}
}

// Markers live in the bucket of the entry's own timestamp; entries without a
// timestamp get a string marker; a bucket's TTL is raised, never lowered;
// replays (other field set) mixed into a batch are deduplicated against the
// same markers; every key is in the shard's slot.
func TestAppendBatchBucketsAndStringMarkers(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 2)
	k := s.Keys()
	const t0 = 1767225600000 // a bucket boundary
	msg := func(ts int64) Entry {
		return Entry{Kind: "message", Conversation: "u:a", Timestamp: ts, Ingester: "i", Payload: []byte("x")}
	}
	replay := msg(t0 + 5)
	replay.OriginalID, replay.ReplayCount = "1-1", 1
	reqs := []Append{
		{Shard: 0, Identity: "a", Entry: msg(t0 - 1)}, // previous bucket
		{Shard: 0, Identity: "b", Entry: msg(t0)},
		{Shard: 0, Identity: "z", Entry: msg(0)}, // no timestamp: string marker
		{Shard: 0, Identity: "r", Entry: replay},
		{Shard: 0, Identity: "b", Entry: msg(t0)}, // copy in the same batch, after a replay run
		{Shard: 0, Identity: "z", Entry: msg(0)},  // copy of the timestamp-less entry
		{Shard: 1, Identity: "a", Entry: msg(t0 - 1)},
	}
	res, err := s.AppendBatch(ctx, reqs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{false, false, false, false, true, true, false}
	for i, r := range res {
		if r.Err != nil || r.Duplicate != want[i] {
			t.Fatalf("result %d = %+v, want duplicate=%v", i, r, want[i])
		}
	}
	b0, b1 := k.DedupBucket(0, t0/60000-1), k.DedupBucket(0, t0/60000)
	if c.SCard(ctx, b0).Val() != 1 || c.SCard(ctx, b1).Val() != 2 {
		t.Errorf("bucket sizes %d, %d; want 1, 2", c.SCard(ctx, b0).Val(), c.SCard(ctx, b1).Val())
	}
	if c.Exists(ctx, k.Dedup(0, "z")).Val() != 1 {
		t.Error("no string marker for the timestamp-less entry")
	}
	if got := c.XLen(ctx, k.Stream(0)).Val(); got != 4 {
		t.Errorf("shard 0 has %d entries, want 4", got)
	}
	msgs := c.XRange(ctx, k.Stream(0), "-", "+").Val()
	if e, err := ParseEntry(msgs[3]); err != nil || e.OriginalID != "1-1" || e.ReplayCount != 1 {
		t.Errorf("replayed entry read back as %+v, %v", e, err)
	}
	// Every copy offered again (another replica) is a duplicate.
	res, err = s.AppendBatch(ctx, reqs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Duplicate {
			t.Errorf("second offer %d appended", i)
		}
	}
	// A shorter window elsewhere never shortens a bucket's life.
	if _, err := s.AppendBatch(ctx, []Append{{Shard: 0, Identity: "c", Entry: msg(t0)}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, b1).Val(); ttl <= 59*time.Minute {
		t.Errorf("bucket TTL lowered to %v", ttl)
	}
	for _, key := range []string{b0, b1, k.Dedup(0, "z"), k.Stream(0)} {
		if !strings.Contains(key, k.ShardTag(0)) {
			t.Errorf("key %q is not in shard 0's slot", key)
		}
	}
}

func TestAppendBatchReloadsScriptsAfterFlush(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := s.AppendBatch(ctx, []Append{{Shard: 0, Identity: "x", Entry: Entry{Kind: "message"}}}, time.Minute)
	if err != nil || res[0].Err != nil || res[0].Duplicate {
		t.Fatalf("append after SCRIPT FLUSH: %+v %v", res, err)
	}
}

func TestAppendBatchRedisDown(t *testing.T) {
	k, _ := NewKeys("down", "+1")
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	s := NewStore(c, k, 1)
	_, err := s.AppendBatch(context.Background(), []Append{{Identity: "x", Entry: Entry{Kind: "message"}}}, time.Minute)
	if err == nil {
		t.Fatal("append to an unreachable Redis succeeded")
	}
}

func TestInitMetaRefusesMismatch(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 64)
	if err := s.InitMeta(ctx, "01"); err != nil {
		t.Fatal(err)
	}
	if err := s.InitMeta(ctx, "01"); err != nil {
		t.Fatalf("same count refused: %v", err)
	}
	other := NewStore(c, s.Keys(), 128)
	err := other.InitMeta(ctx, "01")
	if !errors.Is(err, ErrShardCountMismatch) {
		t.Fatalf("got %v, want ErrShardCountMismatch", err)
	}
	for _, want := range []string{"WORKER_SHARD_COUNT=128", "created with 64 shards", "dlqctl shards set 128 --yes", "WORKER_SHARD_COUNT=64"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestEnsureGroupsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 3)
	for i := 0; i < 2; i++ {
		if err := s.EnsureGroups(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 3; n++ {
		g := c.XInfoGroups(ctx, s.Keys().Stream(n)).Val()
		if len(g) != 1 || g[0].Name != GroupName {
			t.Errorf("shard %d groups %+v", n, g)
		}
	}
}

func TestNextEpochMonotonicAcrossLostIncrements(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	key := s.Keys().LeaseEpoch(0)
	e1, err := s.NextEpoch(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := s.NextEpoch(ctx, key)
	if e2 <= e1 {
		t.Fatalf("epochs not increasing: %d then %d", e1, e2)
	}
	// A failover that loses the epoch key entirely must not hand out an older epoch.
	time.Sleep(3 * time.Millisecond)
	c.Del(ctx, key)
	e3, _ := s.NextEpoch(ctx, key)
	if e3 <= e2 {
		t.Fatalf("epoch after losing the key %d <= %d", e3, e2)
	}
	// Stored epochs ahead of the clock keep increasing by one.
	c.Set(ctx, key, "4000000000000000", 0)
	e4, _ := s.NextEpoch(ctx, key)
	if e4 != 4000000000000001 {
		t.Fatalf("epoch %d, want stored+1", e4)
	}
}

func TestQuarantineDeduplicatesAndCaps(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	q := QuarantineEntry{Reason: "malformed", Detail: "not JSON", Payload: []byte("{oops"), Size: 5, Ingester: "i"}
	first, err := s.Quarantine(ctx, "d1", q, time.Minute, 1000)
	if err != nil || !first {
		t.Fatalf("first quarantine: %v %v", first, err)
	}
	again, err := s.Quarantine(ctx, "d1", q, time.Minute, 1000)
	if err != nil || again {
		t.Fatalf("duplicate quarantine appended: %v %v", again, err)
	}
	msgs := c.XRange(ctx, s.Keys().Quarantine(), "-", "+").Val()
	if len(msgs) != 1 || msgs[0].Values["reason"] != "malformed" || msgs[0].Values["p"] != "{oops" {
		t.Fatalf("quarantine stream %+v", msgs)
	}
}

func TestEntryMetaRoundTrip(t *testing.T) {
	e := Entry{ID: "1-1", Kind: "message", Conversation: "g:a|b/c=", Timestamp: 17, ReceivedAt: 18, Ingester: "host|1", Epoch: 19, Payload: []byte("{}")}
	vals := map[string]any{}
	f := e.Fields()
	for i := 0; i < len(f); i += 2 {
		switch v := f[i+1].(type) {
		case []byte:
			vals[f[i].(string)] = string(v)
		default:
			vals[f[i].(string)] = v
		}
	}
	got, err := ParseEntry(redis.XMessage{ID: "1-1", Values: vals})
	if err != nil {
		t.Fatal(err)
	}
	e.Ingester = "host_1"
	if got.Kind != e.Kind || got.Conversation != e.Conversation || got.Timestamp != 17 || got.ReceivedAt != 18 || got.Epoch != 19 || got.Ingester != e.Ingester || string(got.Payload) != "{}" {
		t.Fatalf("got %+v want %+v", got, e)
	}
	if ConversationOf(vals) != "g:a|b/c=" {
		t.Fatalf("conversation %q", ConversationOf(vals))
	}
	if _, err := ParseEntry(redis.XMessage{ID: "2-0", Values: map[string]any{"m": "9|x"}}); !errors.Is(err, ErrFormat) {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestAppendMetaIsMeta(t *testing.T) {
	for _, e := range []Entry{{}, {Kind: "message", Timestamp: 1767225600000, ReceivedAt: -3, Epoch: 1 << 62, Ingester: "a|b||c", Conversation: "g:x|y"}} {
		if got := string(appendMeta([]byte("pre"), &e)); got != "pre"+e.Meta() {
			t.Errorf("appendMeta = %q, want %q", got, "pre"+e.Meta())
		}
	}
}

// TestDedupMarkerMemory measures the memory of dedup markers (the figure in
// ARCHITECTURE §3): DEDUP_MEMORY=1 go test -run TestDedupMarkerMemory -v ./internal/streams/
func TestDedupMarkerMemory(t *testing.T) {
	if os.Getenv("DEDUP_MEMORY") == "" {
		t.Skip("a measurement; set DEDUP_MEMORY=1 to run it")
	}
	ctx := context.Background()
	usedMemory := func(c *redis.Client) int64 {
		for _, l := range strings.Split(c.Info(ctx, "memory").Val(), "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	for _, rate := range []int{20, 100, 1000} { // messages per second over 16 shards
		s, c := newStore(t, 16)
		c.FlushAll(ctx)
		before := usedMemory(c)
		const n = 100000
		t0 := int64(1767225600000)
		for i := 0; i < n; i += 1000 {
			reqs := make([]Append, 0, 1000)
			for j := i; j < i+1000; j++ {
				ts := t0 + int64(j)*1000/int64(rate)
				id := fmt.Sprintf("+15550000001:3f1c7a52-8e0b-4d1e-9a52-%012d:1:%d:message", j%200, ts)
				reqs = append(reqs, Append{Shard: j % 16, Identity: id, Entry: Entry{Kind: "message", Timestamp: ts, Payload: []byte("x")}})
			}
			if _, err := s.AppendBatch(ctx, reqs, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		for sh := 0; sh < 16; sh++ {
			c.Del(ctx, s.Keys().Stream(sh))
		}
		after := usedMemory(c)
		t.Logf("%d msgs/s: %d bucket keys; used_memory %d -> %d B: %.1f B per marker",
			rate, len(c.Keys(ctx, "*:ddb:*").Val()), before, after, float64(after-before)/n)
	}
}

// More distinct buckets than one call can name split the shard's run into
// several calls, in order; copies across the split are still caught.
func TestAppendBatchManyBuckets(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	var reqs []Append
	for i := 0; i < 600; i++ {
		ts := int64(1767225600000 + (i%300)*60000) // 300 buckets, each offered twice
		reqs = append(reqs, Append{Shard: 0, Identity: fmt.Sprint(i % 300), Entry: Entry{Kind: "message", Timestamp: ts, Payload: []byte("x")}})
	}
	res, err := s.AppendBatch(ctx, reqs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Duplicate != (i >= 300) {
			t.Fatalf("result %d = %+v, want duplicate=%v", i, r, i >= 300)
		}
	}
	if n := c.XLen(ctx, s.Keys().Stream(0)).Val(); n != 300 {
		t.Fatalf("stream length %d, want 300", n)
	}
	if got := len(s.planAppends(reqs, []int{0}, map[int][]int{0: seq(600)}, "1", true)); got < 3 {
		t.Fatalf("%d calls for 600 entries over 300 buckets, want at least 3", got)
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// refuseFirstCall makes the first pipeline it sees run without its first
// command, which fails with NOSCRIPT: as when another lane's script reload
// lands in the middle of this lane's pipeline, after the cache was emptied.
type refuseFirstCall struct{ done bool }

func (h *refuseFirstCall) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *refuseFirstCall) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *refuseFirstCall) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.done || len(cmds) < 2 {
			return next(ctx, cmds)
		}
		h.done = true
		cmds[0].SetErr(errors.New("NOSCRIPT No matching script. Please use EVAL."))
		err := next(ctx, cmds[1:])
		if err == nil {
			err = cmds[0].Err()
		}
		return err
	}
}

// After NOSCRIPT only the refused calls run again: the others' entries are
// appended once and reported as appended, not as duplicates of themselves.
func TestAppendBatchNoScriptRerunsOnlyRefusedCalls(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 2)
	if err := LoadScripts(ctx, c); err != nil {
		t.Fatal(err)
	}
	hook := &refuseFirstCall{}
	c.AddHook(hook)
	var reqs []Append
	for i := 0; i < 4; i++ {
		reqs = append(reqs, Append{Shard: i % 2, Identity: fmt.Sprint(i), Entry: Entry{Kind: "message", Timestamp: int64(1767225600000 + i), Payload: []byte("x")}})
	}
	res, err := s.AppendBatch(ctx, reqs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !hook.done {
		t.Fatal("the hook did not refuse a call")
	}
	for i, r := range res {
		if r.Err != nil || r.Duplicate || r.ID == "" {
			t.Errorf("result %d = %+v, want appended", i, r)
		}
	}
	for n := 0; n < 2; n++ {
		if l := c.XLen(ctx, s.Keys().Stream(n)).Val(); l != 2 {
			t.Errorf("shard %d holds %d entries, want 2", n, l)
		}
	}
}

// After the second run, err is the first failed call's error, as pipe.Exec
// reports it: a call that failed otherwise in the first run still counts.
func TestEvalPipelinedErrAfterRerun(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	if err := LoadScripts(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.AddHook(&refuseFirstCall{})
	cmds, err := s.evalPipelined(ctx, 2, func(pipe redis.Pipeliner, i int) *redis.Cmd {
		if i == 0 {
			return nextEpoch.EvalSha(ctx, pipe, []string{s.Keys().LeaseEpoch(0)})
		}
		return nextEpoch.EvalSha(ctx, pipe, nil) // no key: Redis refuses the call
	})
	if cmds == nil || cmds[0].Err() != nil || cmds[1].Err() == nil {
		t.Fatalf("cmds %v: want the first to succeed on its second run and the second to fail", cmds)
	}
	if err == nil || err != cmds[1].Err() {
		t.Fatalf("err = %v, want the second call's error %v", err, cmds[1].Err())
	}
}
