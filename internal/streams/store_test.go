package streams

import (
	"context"
	"errors"
	"fmt"
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
	ttl := c.PTTL(ctx, s.Keys().Dedup(1, "id-1")).Val()
	if ttl <= 0 || ttl > time.Minute {
		t.Errorf("dedup marker TTL %v, want (0, 1m]", ttl)
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
