package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func newStore(t *testing.T, shards int) *streams.Store {
	t.Helper()
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	return storeOn(t, c, shards)
}

func storeOn(t *testing.T, c redis.UniversalClient, shards int) *streams.Store {
	t.Helper()
	prefix := fmt.Sprintf("%s-%d", strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()), time.Now().UnixNano())
	k, err := streams.NewKeys(prefix, "+15550000001")
	if err != nil {
		t.Fatal(err)
	}
	return streams.NewStore(c, k, shards)
}

// base is a fixed parking time for entries added with explicit ids.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// addParked writes a DLQ entry with the fields the worker's Park writes, at
// an explicit id (parking time base+ms) so tests control the order.
func addParked(t *testing.T, s *streams.Store, shard int, ms int64, conv, reason string) Item {
	t.Helper()
	id := strconv.FormatInt(base.UnixMilli()+ms, 10) + "-0"
	e := streams.Entry{Kind: "message", Conversation: conv, Timestamp: 1000 + ms, ReceivedAt: 1000 + ms, Ingester: "ing", Epoch: 1,
		Payload: []byte(`{"envelope":{"dataMessage":{"message":"secret text ` + strconv.FormatInt(ms, 10) + `"}}}`), OriginalID: "1-" + strconv.FormatInt(ms, 10)}
	fields := append(e.Fields(), streams.DLQFieldSource, "1-"+strconv.FormatInt(ms, 10), streams.DLQFieldShard, strconv.Itoa(shard),
		streams.DLQFieldAttempts, "3", streams.DLQFieldError, "handler said no", streams.DLQFieldReason, reason,
		streams.DLQFieldFirst, "100", streams.DLQFieldLast, "200", streams.DLQFieldWorker, "w1")
	if err := s.Client().XAdd(context.Background(), &redis.XAddArgs{Stream: s.Keys().DLQ(shard), ID: id, Values: fields}).Err(); err != nil {
		t.Fatal(err)
	}
	return Item{Source: DeadLetters, Shard: shard, StreamID: id}
}

func ids(items []Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID())
	}
	return out
}

func scanAll(t *testing.T, q *Queue, f Filter) []Item {
	t.Helper()
	var out []Item
	if err := q.Scan(context.Background(), f, func(it Item) error { out = append(out, it); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScanMergesShardsOldestFirstAndFilters(t *testing.T) {
	s := newStore(t, 4)
	conv := func(i int) string { return fmt.Sprintf("u:3f1c7a52-8e0b-4d1e-9a52-%012d", i) }
	var all []Item
	for i := 0; i < 60; i++ {
		c := conv(i % 5)
		reason := []string{"handler_error", "timeout", "panic"}[i%3]
		all = append(all, addParked(t, s, streams.ShardOf(c, 4), int64(i), c, reason))
	}
	q := New(s, DeadLetters)
	q.PageBudget = 8 // several refills per shard
	sel := func(pred func(i int) bool) []string {
		var out []string
		for i, it := range all {
			if pred(i) {
				out = append(out, it.ID())
			}
		}
		return out
	}
	bare := strings.TrimPrefix(conv(2), "u:")
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"everything, oldest first", Filter{}, sel(func(int) bool { return true })},
		{"one shard", Filter{Shards: []int{streams.ShardOf(conv(1), 4)}}, sel(func(i int) bool { return streams.ShardOf(conv(i%5), 4) == streams.ShardOf(conv(1), 4) })},
		{"reason", Filter{Reasons: []string{"timeout"}}, sel(func(i int) bool { return i%3 == 1 })},
		{"two reasons", Filter{Reasons: []string{"timeout", "panic"}}, sel(func(i int) bool { return i%3 != 0 })},
		{"conversation key", Filter{Conversation: conv(2)}, sel(func(i int) bool { return i%5 == 2 })},
		{"bare uuid", Filter{Conversation: bare}, sel(func(i int) bool { return i%5 == 2 })},
		{"pseudonym", Filter{Conversation: Pseudonym(conv(2))}, sel(func(i int) bool { return i%5 == 2 })},
		{"since and until inclusive", Filter{Since: base.Add(10 * time.Millisecond), Until: base.Add(19 * time.Millisecond)}, sel(func(i int) bool { return i >= 10 && i <= 19 })},
		{"limit after filtering", Filter{Reasons: []string{"panic"}, Limit: 4}, sel(func(i int) bool { return i%3 == 2 && i < 12 })},
		{"nothing", Filter{Reasons: []string{"format"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(scanAll(t, q, tt.f))
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
	it := scanAll(t, q, Filter{Limit: 1})[0]
	want := Item{Source: DeadLetters, Shard: all[0].Shard, StreamID: all[0].StreamID, SourceID: "1-0", OriginalID: "1-0", Kind: "message",
		Conversation: conv(0), Timestamp: 1000, Reason: "handler_error", Error: "handler said no", Attempts: 3,
		FirstFailed: time.UnixMilli(100), LastFailed: time.UnixMilli(200), Process: "w1"}
	it.Payload, it.Fields, it.Size = nil, nil, 0
	if d := cmp.Diff(want, it); d != "" {
		t.Fatalf("parsed item (-want +got):\n%s", d)
	}
	if !all[0].ParkedAt().Equal(base) {
		t.Fatalf("parked at %v", all[0].ParkedAt())
	}
}

func TestScanIgnoresEntriesParkedDuringTheWalk(t *testing.T) {
	s := newStore(t, 2)
	for i := 0; i < 10; i++ {
		addParked(t, s, i%2, int64(i), "u:a", "handler_error")
	}
	q := New(s, DeadLetters)
	q.PageBudget = 2
	n := 0
	err := q.Scan(context.Background(), Filter{}, func(it Item) error {
		n++
		addParked(t, s, it.Shard, int64(1000+n), "u:a", "handler_error") // parked again meanwhile
		return nil
	})
	if err != nil || n != 10 {
		t.Fatalf("visited %d entries (err %v), want the 10 present at the start", n, err)
	}
}

func TestScanRefusesBadFilters(t *testing.T) {
	s := newStore(t, 2)
	err := New(s, DeadLetters).Scan(context.Background(), Filter{Shards: []int{2}}, func(Item) error { return nil })
	if err == nil || err.Error() != "dlq: shard 2 does not exist: this deployment has shards 0 to 1" {
		t.Fatalf("%v", err)
	}
	err = New(s, Quarantine).Scan(context.Background(), Filter{Conversation: "u:a"}, func(Item) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "the quarantine has no shards or conversations") {
		t.Fatalf("%v", err)
	}
}

func TestGet(t *testing.T) {
	s := newStore(t, 3)
	a := addParked(t, s, 0, 1, "u:a", "handler_error")
	b := addParked(t, s, 1, 2, "u:b", "panic")
	c := addParked(t, s, 2, 2, "u:c", "panic") // same stream id as b, other shard
	q := New(s, DeadLetters)
	ctx := context.Background()
	got, err := q.Get(ctx, []string{b.ID(), a.StreamID, a.ID()})
	if err != nil || cmp.Diff([]string{a.ID(), b.ID()}, ids(got)) != "" {
		t.Fatalf("got %v %v", ids(got), err)
	}
	_, err = q.Get(ctx, []string{"0:9-9", b.StreamID})
	var ie *IDError
	if !errors.As(err, &ie) || cmp.Diff([]string{"0:9-9"}, ie.Unknown) != "" || cmp.Diff(map[string][]string{b.StreamID: {b.ID(), c.ID()}}, ie.Ambiguous) != "" {
		t.Fatalf("%v", err)
	}
	want := "dlq: no entry with id 0:9-9 (list the current ids with `dlqctl list`); id " + b.StreamID + " is in several shards (" + b.ID() + ", " + c.ID() + "): give it as <shard>:<id>; nothing was changed"
	if err.Error() != want {
		t.Fatalf("error text:\n%s\nwant:\n%s", err, want)
	}
	for _, bad := range []string{"7:1-0", "x", "1:abc"} {
		var inv *InvalidIDError
		if _, err := q.Get(ctx, []string{bad}); !errors.As(err, &inv) || inv.ID != bad {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func depth(t *testing.T, s *streams.Store) (dlq, stream int64) {
	t.Helper()
	ctx := context.Background()
	for n := 0; n < s.Shards(); n++ {
		dlq += s.Client().XLen(ctx, s.Keys().DLQ(n)).Val()
		stream += s.Client().XLen(ctx, s.Keys().Stream(n)).Val()
	}
	return
}

func TestReplaySelectionAndDryRun(t *testing.T) {
	s := newStore(t, 4)
	for i := 0; i < 30; i++ {
		addParked(t, s, i%4, int64(i), fmt.Sprintf("u:%d", i), []string{"handler_error", "timeout"}[i%2])
	}
	q := New(s, DeadLetters)
	ctx := context.Background()
	res, err := q.Replay(ctx, Selection{Filter: Filter{Reasons: []string{"timeout"}}}, Options{DryRun: true})
	if err != nil || res.Matched != 15 || res.Done != 15 || !res.DryRun {
		t.Fatalf("dry run %+v %v", res, err)
	}
	if d, st := depth(t, s); d != 30 || st != 0 {
		t.Fatalf("dry run changed something: dlq %d stream %d", d, st)
	}
	var progress []int
	res, err = q.Replay(ctx, Selection{Filter: Filter{Reasons: []string{"timeout"}}}, Options{Batch: 4, Progress: func(r Result) { progress = append(progress, r.Done) }})
	if err != nil || res.Done != 15 || res.ByReason["timeout"] != 15 || res.ByShard[1]+res.ByShard[3] != 15 {
		t.Fatalf("replay %+v %v", res, err)
	}
	if d := cmp.Diff([]int{4, 8, 12, 15}, progress); d != "" {
		t.Fatalf("progress (-want +got): %s", d)
	}
	if d, st := depth(t, s); d != 15 || st != 15 {
		t.Fatalf("after replay: dlq %d stream %d", d, st)
	}
	// Every replayed entry keeps its original id and counts the replay.
	for n := 0; n < 4; n++ {
		for _, m := range s.Client().XRange(ctx, s.Keys().Stream(n), "-", "+").Val() {
			e, err := streams.ParseEntry(m)
			if err != nil || !strings.HasPrefix(e.OriginalID, "1-") || e.ReplayCount != 1 {
				t.Fatalf("replayed entry %+v %v", e, err)
			}
		}
	}
	if _, err := New(s, Quarantine).Replay(ctx, Selection{All: true}, Options{}); !errors.Is(err, ErrNotReplayable) {
		t.Fatalf("quarantine replay: %v", err)
	}
}

func TestReplayHonoursRate(t *testing.T) {
	s := newStore(t, 2)
	for i := 0; i < 40; i++ {
		addParked(t, s, i%2, int64(i), "u:x", "handler_error")
	}
	start := time.Now()
	var maxBatch int
	last := 0
	res, err := New(s, DeadLetters).Replay(context.Background(), Selection{All: true}, Options{Rate: 100, Progress: func(r Result) {
		maxBatch = max(maxBatch, r.Done-last)
		last = r.Done
	}})
	if err != nil || res.Done != 40 {
		t.Fatalf("%+v %v", res, err)
	}
	// 100/s in batches of a tenth of a second: the 40th entry starts no
	// earlier than 0.3 s after the first.
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("40 entries at --rate 100 took %v", el)
	}
	if maxBatch != 10 {
		t.Fatalf("largest batch %d, want 10 (a tenth of a second at 100/s)", maxBatch)
	}
}

func TestReplayInterruptedFinishesTheBatchInFlight(t *testing.T) {
	s := newStore(t, 3)
	for i := 0; i < 50; i++ {
		addParked(t, s, i%3, int64(i), fmt.Sprintf("u:%d", i), "handler_error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	res, err := New(s, DeadLetters).Replay(ctx, Selection{All: true}, Options{Batch: 7, Progress: func(r Result) {
		if r.Done >= 14 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || res.Done != 14 {
		t.Fatalf("%+v %v", res, err)
	}
	if d, st := depth(t, s); d != 36 || st != 14 {
		t.Fatalf("dlq %d + stream %d after an interrupted replay of 14", d, st)
	}
}

func TestReplayCountsEntriesGoneMeanwhile(t *testing.T) {
	s := newStore(t, 1)
	a := addParked(t, s, 0, 1, "u:a", "handler_error")
	b := addParked(t, s, 0, 2, "u:b", "handler_error")
	q := New(s, DeadLetters)
	res, err := q.Replay(context.Background(), Selection{All: true}, Options{Batch: 10, Progress: nil})
	if err != nil || res.Done != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	// Replaying ids that are gone now is an unknown-id error, nothing changed.
	_, err = q.Replay(context.Background(), Selection{IDs: []string{a.ID(), b.ID()}}, Options{})
	var ie *IDError
	if !errors.As(err, &ie) || len(ie.Unknown) != 2 {
		t.Fatalf("%v", err)
	}
}

func TestPurge(t *testing.T) {
	s := newStore(t, 2)
	var items []Item
	for i := 0; i < 10; i++ {
		items = append(items, addParked(t, s, i%2, int64(i), "u:a", []string{"handler_error", "panic"}[i%2]))
	}
	q := New(s, DeadLetters)
	ctx := context.Background()
	res, err := q.Purge(ctx, Selection{Filter: Filter{Reasons: []string{"panic"}}}, Options{DryRun: true})
	if err != nil || res.Done != 5 {
		t.Fatalf("%+v %v", res, err)
	}
	if d, _ := depth(t, s); d != 10 {
		t.Fatalf("dry-run purge left %d", d)
	}
	res, err = q.Purge(ctx, Selection{IDs: []string{items[0].ID(), items[3].ID()}}, Options{})
	if err != nil || res.Done != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	res, err = q.Purge(ctx, Selection{Filter: Filter{Reasons: []string{"panic"}}}, Options{})
	if err != nil || res.Done != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	left := ids(scanAll(t, q, Filter{}))
	want := []string{items[2].ID(), items[4].ID(), items[6].ID(), items[8].ID()}
	if d := cmp.Diff(want, left); d != "" {
		t.Fatalf("left (-want +got): %s", d)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	for i := 0; i < 25; i++ {
		addParked(t, s, streams.ShardOf(fmt.Sprintf("u:%d", i), 4), int64(i), fmt.Sprintf("u:%d", i), "handler_error")
	}
	// A quarantined frame that is not valid UTF-8.
	bin := string([]byte{0xff, 0xfe, '{', 0x00})
	if err := s.Client().XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().Quarantine(), Values: []any{"reason", "malformed", "detail", "bad json", "p", bin, "size", 4, "ra", 5, "ing", "i1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	q := New(s, DeadLetters)
	before := scanAll(t, q, Filter{})
	var buf bytes.Buffer
	res, err := q.Export(ctx, Selection{All: true}, &buf)
	if err != nil || res.Done != 25 || strings.Count(buf.String(), "\n") != 25 {
		t.Fatalf("export %+v %v", res, err)
	}
	exported := buf.String()
	// Importing into the cluster it came from while the entries are still
	// parked adds nothing.
	res, err = q.Import(ctx, strings.NewReader(exported), Options{})
	if err != nil || res.Done != 0 || res.Duplicates != 25 {
		t.Fatalf("import over itself %+v %v", res, err)
	}
	if _, err := q.Purge(ctx, Selection{All: true}, Options{}); err != nil {
		t.Fatal(err)
	}
	res, err = q.Import(ctx, strings.NewReader(exported), Options{Batch: 7})
	if err != nil || res.Done != 25 || res.Matched != 25 {
		t.Fatalf("import %+v %v", res, err)
	}
	res, err = q.Import(ctx, strings.NewReader(exported), Options{})
	if err != nil || res.Done != 0 || res.Duplicates != 25 {
		t.Fatalf("import twice %+v %v", res, err)
	}
	after := scanAll(t, q, Filter{})
	norm := func(items []Item) []map[string]string {
		var out []map[string]string
		for _, it := range items {
			out = append(out, it.Fields)
		}
		sort.Slice(out, func(i, j int) bool { return out[i][streams.FieldOriginalID] < out[j][streams.FieldOriginalID] })
		return out
	}
	if d := cmp.Diff(norm(before), norm(after)); d != "" {
		t.Fatalf("fields after the round trip (-before +after):\n%s", d)
	}
	// Into a deployment with another shard count: entries follow their conversation.
	s8 := newStore(t, 8)
	res, err = New(s8, DeadLetters).Import(ctx, strings.NewReader(exported), Options{})
	if err != nil || res.Done != 25 {
		t.Fatalf("import into 8 shards %+v %v", res, err)
	}
	for _, it := range scanAll(t, New(s8, DeadLetters), Filter{}) {
		if want := streams.ShardOf(it.Conversation, 8); it.Shard != want || it.Fields[streams.DLQFieldShard] != strconv.Itoa(want) {
			t.Fatalf("%s imported into shard %d (field %s), want %d", it.Conversation, it.Shard, it.Fields[streams.DLQFieldShard], want)
		}
	}
	// The quarantine, bytes intact.
	qq := New(s, Quarantine)
	buf.Reset()
	if _, err := qq.Export(ctx, Selection{All: true}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"fields_base64":{"p":"//57AA=="}`) {
		t.Fatalf("quarantine export %s", buf.String())
	}
	if _, err := New(s, DeadLetters).Import(ctx, bytes.NewReader(buf.Bytes()), Options{}); err == nil ||
		err.Error() != "dlq: import: record 1: a quarantine record cannot go into the dlq: import it with --quarantine (the records before it were imported; fix the file and run the import again: records already imported are skipped)" {
		t.Fatalf("quarantine record into the dlq: %v", err)
	}
	sq := newStore(t, 1)
	if res, err := New(sq, Quarantine).Import(ctx, bytes.NewReader(buf.Bytes()), Options{}); err != nil || res.Done != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	got := scanAll(t, New(sq, Quarantine), Filter{})
	if len(got) != 1 || string(got[0].Payload) != bin || got[0].Reason != "malformed" || got[0].Error != "bad json" || got[0].Size != 4 {
		t.Fatalf("imported quarantine %+v", got)
	}
}

func TestImportStopsAtABadLine(t *testing.T) {
	s := newStore(t, 2)
	addParked(t, s, 0, 1, "u:a", "handler_error")
	q := New(s, DeadLetters)
	var buf bytes.Buffer
	if _, err := q.Export(context.Background(), Selection{All: true}, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Purge(context.Background(), Selection{All: true}, Options{}); err != nil {
		t.Fatal(err)
	}
	in := buf.String() + `{"format":"other"}` + "\n"
	res, err := q.Import(context.Background(), strings.NewReader(in), Options{})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || res.Done != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.Contains(err.Error(), `record 2: format "other": expected "signal-client-dlq/1"`) {
		t.Fatalf("%v", err)
	}
}

func TestStatsAndDepths(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	q := New(s, DeadLetters)
	st, err := q.Stats(ctx)
	if err != nil || st.Depth != 0 || st.Oldest != nil {
		t.Fatalf("%+v %v", st, err)
	}
	addParked(t, s, 2, 5, "u:a", "panic")
	oldest := addParked(t, s, 3, 1, "u:b", "handler_error")
	addParked(t, s, 3, 9, "u:b", "handler_error")
	st, err = q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Source: DeadLetters, Depth: 3, ByReason: map[string]int64{"panic": 1, "handler_error": 2}, ByShard: map[int]int64{2: 1, 3: 2},
		Oldest: &Oldest{ID: oldest.ID(), Shard: 3, StreamID: oldest.StreamID, ParkedAt: base.Add(time.Millisecond)}}
	if d := cmp.Diff(want, st); d != "" {
		t.Fatalf("stats (-want +got):\n%s", d)
	}
	ds, err := q.Depths(ctx, []int{0, 3})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]ShardDepth{{Shard: 0}, {Shard: 3, Depth: 2, Oldest: base.Add(time.Millisecond)}}, ds); d != "" {
		t.Fatalf("depths (-want +got):\n%s", d)
	}
	j, _ := json.Marshal(StatsJSON(st, base.Add(time.Minute)))
	wantJSON := `{"by_reason":{"handler_error":2,"panic":1},"by_shard":{"2":1,"3":2},"depth":3,"oldest":{"age_seconds":59.999,"id":"` + oldest.ID() +
		`","parked_at":"2026-03-01T12:00:00.001Z","shard":3,"stream_id":"` + oldest.StreamID + `"}}`
	if string(j) != wantJSON {
		t.Fatalf("json\n%s\nwant\n%s", j, wantJSON)
	}
}

func TestHandler(t *testing.T) {
	get := func(h http.Handler) (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/dlq", nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
		return rec.Code, body
	}
	code, body := get(Handler(nil))
	if code != 200 || cmp.Diff(map[string]any{"enabled": false, "depth": 0.0}, body) != "" {
		t.Fatalf("%d %v", code, body)
	}
	s := newStore(t, 2)
	addParked(t, s, 1, 1, "u:a", "timeout")
	s.Client().XAdd(context.Background(), &redis.XAddArgs{Stream: s.Keys().Quarantine(), Values: []any{"reason", "oversize", "p", "x"}})
	code, body = get(Handler(s))
	if code != 200 || body["enabled"] != true || body["depth"] != 1.0 || cmp.Diff(map[string]any{"timeout": 1.0}, body["by_reason"]) != "" ||
		cmp.Diff(map[string]any{"1": 1.0}, body["by_shard"]) != "" {
		t.Fatalf("%d %v", code, body)
	}
	if o, _ := body["oldest"].(map[string]any); o["id"] != "1:"+strconv.FormatInt(base.UnixMilli()+1, 10)+"-0" {
		t.Fatalf("oldest %v", body["oldest"])
	}
	if qd, _ := body["quarantine"].(map[string]any); qd["depth"] != 1.0 || cmp.Diff(map[string]any{"oversize": 1.0}, qd["by_reason"]) != "" {
		t.Fatalf("quarantine %v", body["quarantine"])
	}
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer dead.Close()
	code, body = get(Handler(storeOn(t, dead, 2)))
	if code != 503 || body["enabled"] != true || !strings.HasPrefix(body["error"].(string), "redis unreachable or too slow: ") {
		t.Fatalf("%d %v", code, body)
	}
}

func TestTrimmer(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 2)
	now := base.Add(time.Hour)
	for i := 0; i < 10; i++ {
		addParked(t, s, 0, int64(i), "u:a", "handler_error") // parked an hour ago
	}
	for i := 0; i < 3; i++ {
		addParked(t, s, 1, int64(50*time.Minute/time.Millisecond)+int64(i), "u:b", "handler_error") // 10 minutes ago
	}
	qid := strconv.FormatInt(base.UnixMilli(), 10)
	for i := 0; i < 4; i++ {
		s.Client().XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().Quarantine(), ID: qid + "-" + strconv.Itoa(i), Values: []any{"reason", "malformed"}})
	}
	tr := &Trimmer{Store: s, DLQMaxLen: 4, DLQRetention: 30 * time.Minute, QuarantineMaxLen: 3}
	if err := tr.TrimOnce(ctx, now); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	got := []uint64{st.DLQAge.Load(), st.DLQMaxLen.Load(), st.QuarantineAge.Load(), st.QuarantineMaxLen.Load()}
	if d := cmp.Diff([]uint64{10, 1, 0, 1}, got); d != "" {
		t.Fatalf("trimmed (age, max len, q age, q max len) (-want +got): %s", d)
	}
	if d, _ := depth(t, s); d != 2 {
		t.Fatalf("dlq depth %d, want 2 (ceil(4/2) per shard)", d)
	}
	if n := s.Client().XLen(ctx, s.Keys().Quarantine()).Val(); n != 3 {
		t.Fatalf("quarantine %d", n)
	}
	// Not the leader: nothing happens.
	tr2 := &Trimmer{Store: s, DLQMaxLen: 1, IsLeader: func() bool { return false }, Interval: 5 * time.Millisecond}
	rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	tr2.Run(rctx)
	cancel()
	if tr2.Stats().DLQMaxLen.Load() != 0 {
		t.Fatal("a standby trimmed")
	}
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 1)
	for _, phase := range []string{"start", "end"} {
		rec := AuditRecord{Run: "r1", Phase: phase, At: base, Who: "ops@host", Command: "purge", Source: "dlq", Selection: "reason=panic", Matched: 3, Done: 2, Skipped: 1, Outcome: "ok"}
		if err := WriteAudit(ctx, s, nil, rec); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := ReadAudit(ctx, s, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("%v %v", recs, err)
	}
	recs[0].StreamID = ""
	want := AuditRecord{Run: "r1", Phase: "end", At: base, Who: "ops@host", Command: "purge", Source: "dlq", Selection: "reason=panic", Matched: 3, Done: 2, Skipped: 1, Outcome: "ok"}
	if d := cmp.Diff(want, recs[0]); d != "" {
		t.Fatalf("(-want +got): %s", d)
	}
	if !strings.Contains(Actor(), "@") {
		t.Fatalf("actor %q", Actor())
	}
}

func TestSelectionDescriptionsHoldNoIdentifiers(t *testing.T) {
	tests := []struct {
		sel  Selection
		want string
	}{
		{Selection{All: true}, "all"},
		{Selection{IDs: []string{"1:1-0", "2:3-0"}}, "ids(2)"},
		{Selection{Filter: Filter{Shards: []int{1, 2}, Reasons: []string{"panic"}, Conversation: "n:+15551234567", Limit: 5}},
			"shard=1,2 reason=panic conversation=" + Pseudonym("n:+15551234567") + " limit=5"},
		{Selection{Filter: Filter{Conversation: "+15551234567", Since: base}}, "conversation=<given> since=2026-03-01T12:00:00Z"},
	}
	for _, tt := range tests {
		if got := tt.sel.String(); got != tt.want {
			t.Errorf("got %q want %q", got, tt.want)
		}
	}
	if p := Pseudonym("g:abc="); !strings.HasPrefix(p, "g#") || len(p) != 18 {
		t.Fatalf("pseudonym %q", p)
	}
}

// The embedded store (STORAGE_TYPE=memory) is miniredis: the same
// operations must work there, since dlqctl can be pointed at it.
func TestOnTheEmbeddedStore(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	ctx := context.Background()
	s := storeOn(t, c, 3)
	for i := 0; i < 12; i++ {
		conv := fmt.Sprintf("u:%d", i)
		addParked(t, s, streams.ShardOf(conv, 3), int64(i), conv, []string{"handler_error", "panic"}[i%2])
	}
	q := New(s, DeadLetters)
	q.PageBudget = 3
	if got := scanAll(t, q, Filter{Reasons: []string{"panic"}}); len(got) != 6 || got[0].StreamID >= got[5].StreamID {
		t.Fatalf("scan %v", ids(got))
	}
	st, err := q.Stats(ctx)
	if err != nil || st.Depth != 12 || st.ByReason["panic"] != 6 {
		t.Fatalf("stats %+v %v", st, err)
	}
	var buf bytes.Buffer
	if _, err := q.Export(ctx, Selection{All: true}, &buf); err != nil {
		t.Fatal(err)
	}
	res, err := q.Replay(ctx, Selection{Filter: Filter{Reasons: []string{"panic"}}}, Options{Batch: 4})
	if err != nil || res.Done != 6 {
		t.Fatalf("replay %+v %v", res, err)
	}
	res, err = q.Import(ctx, &buf, Options{})
	if err != nil || res.Done != 6 || res.Duplicates != 6 {
		t.Fatalf("import %+v %v", res, err)
	}
	tr := &Trimmer{Store: s, DLQMaxLen: 3, DLQRetention: time.Hour, QuarantineMaxLen: 5, QuarantineRetention: time.Hour}
	if err := tr.TrimOnce(ctx, base.Add(30*time.Minute)); err != nil || tr.Stats().DLQMaxLen.Load() != 12-3 || tr.Stats().DLQAge.Load() != 0 {
		t.Fatalf("trim %v %d", err, tr.Stats().DLQMaxLen.Load())
	}
	if err := tr.TrimOnce(ctx, time.Now().Add(48*time.Hour)); err != nil || tr.Stats().DLQAge.Load() != 3 {
		t.Fatalf("trim by age %v %d", err, tr.Stats().DLQAge.Load())
	}
}
