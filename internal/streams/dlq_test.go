package streams

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// parkOne parks e in its shard's DLQ through the worker's own script.
func parkOne(t *testing.T, s *Store, shard int, e Entry, reason string) string {
	t.Helper()
	ctx := context.Background()
	l, err := s.AcquireLease(ctx, shard, "w-test", time.Minute)
	if err != nil && !errors.Is(err, ErrLeaseHeld) {
		t.Fatal(err)
	}
	if err != nil {
		v := s.Client().Get(ctx, s.Keys().Lease(shard)).Val()
		l = Lease{Shard: shard, Token: v}
	}
	if e.ID == "" {
		id, err := s.Client().XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().Stream(shard), Values: e.Fields()}).Result()
		if err != nil {
			t.Fatal(err)
		}
		e.ID = id
	}
	now := time.Now()
	id, _, err := s.Park(ctx, l, Parked{Entry: e, Attempts: Attempts{Count: 1, First: now, Last: now}, Reason: reason, Error: "boom", Worker: "w-test"}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func fieldsOf(t *testing.T, c *redis.Client, key, id string) map[string]any {
	t.Helper()
	msgs, err := c.XRange(context.Background(), key, id, id).Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("entry %s of %s: %v %v", id, key, msgs, err)
	}
	return msgs[0].Values
}

func TestReplayDLQMovesOneEntryAtomically(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	e := Entry{Kind: "message", Conversation: "u:a", Timestamp: 5, ReceivedAt: 6, Ingester: "i", Epoch: 1, Payload: []byte(`{"x":1}`)}
	first := parkOne(t, s, 2, e, "handler_error")
	srcID := fieldsOf(t, c, s.Keys().DLQ(2), first)[DLQFieldSource].(string)

	res, err := s.ReplayDLQ(ctx, []ReplayReq{{Shard: 2, ID: first}, {Shard: 2, ID: first}, {Shard: 2, ID: "1-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != ReplayDone || res[1].Status != ReplayGone || res[2].Status != ReplayGone {
		t.Fatalf("statuses %+v", res)
	}
	if n := c.XLen(ctx, s.Keys().DLQ(2)).Val(); n != 0 {
		t.Fatalf("dlq still holds %d entries", n)
	}
	got := fieldsOf(t, c, s.Keys().Stream(2), res[0].NewID)
	want := map[string]any{FieldMeta: e.Meta(), FieldPayload: `{"x":1}`, FieldOriginalID: srcID, FieldReplayCount: "1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("replayed entry (-want +got):\n%s", d)
	}
	parsed, err := ParseEntry(redis.XMessage{ID: res[0].NewID, Values: got})
	if err != nil || parsed.OriginalID != srcID || parsed.ReplayCount != 1 || parsed.Conversation != "u:a" {
		t.Fatalf("parsed %+v %v", parsed, err)
	}

	// Parked again and replayed again: the original id stays, the count grows.
	parsed.ID = res[0].NewID
	second := parkOne(t, s, 2, parsed, "timeout")
	if o := fieldsOf(t, c, s.Keys().DLQ(2), second)[FieldOriginalID]; o != srcID {
		t.Fatalf("parked replay has o=%v, want %s", o, srcID)
	}
	res, err = s.ReplayDLQ(ctx, []ReplayReq{{Shard: 2, ID: second}})
	if err != nil || res[0].Status != ReplayDone {
		t.Fatalf("%+v %v", res, err)
	}
	got = fieldsOf(t, c, s.Keys().Stream(2), res[0].NewID)
	if got[FieldOriginalID] != srcID || got[FieldReplayCount] != "2" {
		t.Fatalf("second replay %v", got)
	}
}

func TestReplayDLQRefusesEntriesWithoutPayload(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	// What the worker parks for an entry whose metadata it cannot read.
	id := parkOne(t, s, 0, Entry{ID: "5-0"}, "format")
	res, err := s.ReplayDLQ(ctx, []ReplayReq{{Shard: 0, ID: id}})
	if err != nil || res[0].Status != ReplayNotReplayable {
		t.Fatalf("%+v %v", res, err)
	}
	if n := c.XLen(ctx, s.Keys().DLQ(0)).Val(); n != 1 {
		t.Fatalf("an unreplayable entry left the DLQ (%d left)", n)
	}
	if n := c.XLen(ctx, s.Keys().Stream(0)).Val(); n != 0 {
		t.Fatalf("stream got %d entries", n)
	}
}

func TestReplayDLQReloadsScriptsAfterFlush(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	id := parkOne(t, s, 0, Entry{Kind: "message", Conversation: "u:b", Payload: []byte("{}")}, "panic")
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := s.ReplayDLQ(ctx, []ReplayReq{{Shard: 0, ID: id}})
	if err != nil || res[0].Status != ReplayDone {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestImportEntries(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 2)
	fields := []any{"m", "1|message|1|1|1|i|u:a", "p", "{}", "o", "9-0", "reason", "handler_error"}
	req := ImportReq{Shard: 1, Digest: "rec-1", Fields: fields}
	tests := []struct {
		name string
		req  ImportReq
		want ImportStatus
	}{
		{"first import appends", req, ImportAdded},
		{"same record again is a no-op", req, ImportDuplicate},
		{"another record appends", ImportReq{Shard: 1, Digest: "rec-2", Fields: fields}, ImportAdded},
		{"quarantine", ImportReq{Shard: -1, Digest: "q-1", Fields: []any{"reason", "malformed", "p", "x"}}, ImportAdded},
	}
	for _, tt := range tests {
		res, err := s.ImportEntries(ctx, []ImportReq{tt.req}, time.Minute)
		if err != nil || res[0].Err != nil || res[0].Status != tt.want {
			t.Fatalf("%s: %+v %v", tt.name, res, err)
		}
	}
	if n := c.XLen(ctx, s.Keys().DLQ(1)).Val(); n != 2 {
		t.Fatalf("dlq holds %d, want 2", n)
	}
	if n := c.XLen(ctx, s.Keys().Quarantine()).Val(); n != 1 {
		t.Fatalf("quarantine holds %d, want 1", n)
	}
	// An export re-imported into the cluster it came from while the entry is
	// still parked: found by its id and original id, not added.
	existing := c.XRange(ctx, s.Keys().DLQ(1), "-", "+").Val()[0]
	probe := ImportReq{Shard: 1, Digest: "rec-3", ProbeID: existing.ID, ProbeField: "o", ProbeValue: "9-0", Fields: fields}
	res, err := s.ImportEntries(ctx, []ImportReq{probe}, time.Minute)
	if err != nil || res[0].Status != ImportPresent || res[0].ID != existing.ID {
		t.Fatalf("probe: %+v %v", res, err)
	}
	probe.ProbeValue = "other"
	res, _ = s.ImportEntries(ctx, []ImportReq{probe}, time.Minute)
	if res[0].Status != ImportAdded {
		t.Fatalf("probe with another original id: %+v", res)
	}
	if got := fieldsOf(t, c, s.Keys().DLQ(1), res[0].ID); got["o"] != "9-0" || got["reason"] != "handler_error" {
		t.Fatalf("imported fields %v", got)
	}
}

func TestSummarizeStreams(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 3)
	var first string
	for i := 0; i < 1203; i++ { // more than two of the script's pages
		reason := []string{"handler_error", "panic", "timeout"}[i%3]
		id := parkOne(t, s, 1, Entry{Kind: "message", Conversation: fmt.Sprintf("u:%d", i), Payload: []byte("{}")}, reason)
		if i == 0 {
			first = id
		}
	}
	sums, err := s.SummarizeStreams(ctx, []string{s.Keys().DLQ(0), s.Keys().DLQ(1)})
	if err != nil {
		t.Fatal(err)
	}
	want := []StreamSummary{
		{Length: 0, FirstID: "", ByReason: map[string]int64{}},
		{Length: 1203, FirstID: first, ByReason: map[string]int64{"handler_error": 401, "panic": 401, "timeout": 401}},
	}
	if d := cmp.Diff(want, sums); d != "" {
		t.Fatalf("summaries (-want +got):\n%s", d)
	}
}

func TestAppendAuditCapsTheStream(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	pipe := c.Pipeline()
	for i := 0; i < AuditMaxLen+500; i++ {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().Audit(), Values: []any{"n", i}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := s.AppendAudit(ctx, []any{"cmd", "purge", "done", 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := fieldsOf(t, c, s.Keys().Audit(), id); got["cmd"] != "purge" || got["done"] != "3" {
		t.Fatalf("audit record %v", got)
	}
	if n := c.XLen(ctx, s.Keys().Audit()).Val(); n > AuditMaxLen+200 || n < AuditMaxLen {
		t.Fatalf("audit stream holds %d entries, want about %d", n, AuditMaxLen)
	}
}

func TestDLQKeysShareTheShardSlot(t *testing.T) {
	k, _ := NewKeys("sc", "+15550000001")
	for _, pair := range [][2]string{
		{k.DLQ(7), k.DLQImportMark(7, "x")},
		{k.DLQ(7), k.Stream(7)},
		{k.Quarantine(), k.QuarantineImportMark("x")},
	} {
		if tagOf(pair[0]) != tagOf(pair[1]) {
			t.Fatalf("%s and %s are in different slots", pair[0], pair[1])
		}
	}
}

func tagOf(key string) string {
	i := 0
	for i < len(key) && key[i] != '{' {
		i++
	}
	j := i
	for j < len(key) && key[j] != '}' {
		j++
	}
	return key[i:j]
}
