package dlqctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/dlq"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

const number = "+15550000001"

type fixture struct {
	t      *testing.T
	store  *streams.Store
	env    map[string]string
	parked []string // ids, oldest first
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newFixture makes a deployment of 4 shards (recorded in meta, as the
// processes do) with n parked entries: conversation u:c<i%3>, reasons
// cycling handler_error, timeout, panic, parked 1 ms apart.
func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
	keys, _ := streams.NewKeys(prefix, number)
	st := streams.NewStore(c, keys, 4)
	if err := st.InitMeta(context.Background(), "01"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: st, env: map[string]string{"REDIS_URL": srv.URL(), "SIGNAL_PHONE_NUMBER": number, "REDIS_KEY_PREFIX": prefix, "LOG_FORMAT": "json"}}
	for i := 0; i < n; i++ {
		f.park(fmt.Sprintf("u:c%d", i%3), []string{"handler_error", "timeout", "panic"}[i%3], int64(i))
	}
	return f
}

func (f *fixture) park(conv, reason string, ms int64) string {
	shard := streams.ShardOf(conv, 4)
	id := strconv.FormatInt(base.UnixMilli()+ms, 10) + "-0"
	e := streams.Entry{Kind: "message", Conversation: conv, Timestamp: base.UnixMilli(), ReceivedAt: base.UnixMilli(), Ingester: "i", Epoch: 1,
		Payload: []byte(`{"envelope":{"dataMessage":{"message":"private words"}}}`), OriginalID: "7-" + strconv.FormatInt(ms, 10)}
	fields := append(e.Fields(), streams.DLQFieldSource, "7-"+strconv.FormatInt(ms, 10), streams.DLQFieldShard, strconv.Itoa(shard),
		streams.DLQFieldAttempts, "6", streams.DLQFieldError, "handler: no such command", streams.DLQFieldReason, reason,
		streams.DLQFieldFirst, strconv.FormatInt(base.UnixMilli()-1000, 10), streams.DLQFieldLast, strconv.FormatInt(base.UnixMilli()+ms, 10),
		streams.DLQFieldWorker, "w1")
	if err := f.store.Client().XAdd(context.Background(), &redis.XAddArgs{Stream: f.store.Keys().DLQ(shard), ID: id, Values: fields}).Err(); err != nil {
		f.t.Fatal(err)
	}
	full := strconv.Itoa(shard) + ":" + id
	f.parked = append(f.parked, full)
	return full
}

type result struct {
	code           int
	stdout, stderr string
}

func (f *fixture) run(args ...string) result {
	f.t.Helper()
	return f.runCtx(context.Background(), "", args...)
}

func (f *fixture) runCtx(ctx context.Context, stdin string, args ...string) result {
	f.t.Helper()
	var out, errb bytes.Buffer
	code := Run(ctx, args, IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Env: config.EnvMap(f.env)})
	return result{code, out.String(), errb.String()}
}

func (f *fixture) depth() (dlqN, streamN int64) {
	ctx := context.Background()
	for n := 0; n < 4; n++ {
		dlqN += f.store.Client().XLen(ctx, f.store.Keys().DLQ(n)).Val()
		streamN += f.store.Client().XLen(ctx, f.store.Keys().Stream(n)).Val()
	}
	return
}

func decodeList(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("json %q: %v", s, err)
	}
	return out
}

func TestListJSONAndFilters(t *testing.T) {
	f := newFixture(t, 9)
	r := f.run("list", "--json")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	items := decodeList(t, r.stdout)
	if len(items) != 9 {
		t.Fatalf("%d items", len(items))
	}
	first := items[0]
	shard := float64(streams.ShardOf("u:c0", 4))
	want := map[string]any{"id": f.parked[0], "shard": shard, "stream_id": strings.SplitN(f.parked[0], ":", 2)[1], "parked_at": "2026-03-01T12:00:00Z",
		"conversation": dlq.Pseudonym("u:c0"), "kind": "message", "reason": "handler_error", "error": "handler: no such command", "attempts": 6.0,
		"first_failed_at": "2026-03-01T11:59:59Z", "last_failed_at": "2026-03-01T12:00:00Z", "source_id": "7-0", "original_id": "7-0",
		"replay_count": 0.0, "process": "w1", "payload_bytes": 56.0, "replayable": true}
	if d := cmp.Diff(want, first); d != "" {
		t.Fatalf("first item (-want +got):\n%s", d)
	}
	if strings.Contains(r.stdout, "private words") || strings.Contains(r.stdout, "u:c0") {
		t.Fatal("list revealed a payload or a conversation key without --reveal")
	}
	idsOf := func(r result) []string {
		var out []string
		for _, it := range decodeList(t, r.stdout) {
			out = append(out, it["id"].(string))
		}
		return out
	}
	pick := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, f.parked[i])
		}
		return out
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--reason", "timeout"}, pick(1, 4, 7)},
		{[]string{"--reason", "timeout,panic", "--limit", "3"}, pick(1, 2, 4)},
		{[]string{"--conversation", "u:c2"}, pick(2, 5, 8)},
		{[]string{"--conversation", "c2"}, pick(2, 5, 8)},
		{[]string{"--conversation", dlq.Pseudonym("u:c1")}, pick(1, 4, 7)},
		{[]string{"--shard", strconv.Itoa(streams.ShardOf("u:c1", 4))}, nil}, // filled below
		{[]string{"--since", "2026-03-01T12:00:00.004Z", "--until", "2026-03-01T12:00:00.006Z"}, pick(4, 5, 6)},
	}
	for i := range f.parked {
		if strings.HasPrefix(f.parked[i], strconv.Itoa(streams.ShardOf("u:c1", 4))+":") {
			tests[5].want = append(tests[5].want, f.parked[i])
		}
	}
	for _, tt := range tests {
		r := f.run(append([]string{"list", "--json"}, tt.args...)...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", tt.args, r)
		}
		if d := cmp.Diff(tt.want, idsOf(r)); d != "" {
			t.Errorf("%v (-want +got):\n%s", tt.args, d)
		}
	}
	r = f.run("list", "--json", "--reason", "format")
	if r.code != 0 || r.stdout != "[]\n" || r.stderr != "dlqctl: no entries match\n" {
		t.Fatalf("nothing matched: %+v", r)
	}
	r = f.run("list", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[1], f.parked[0]) ||
		!strings.Contains(lines[1], "handler_error") || !strings.Contains(lines[1], dlq.Pseudonym("u:c0")) {
		t.Fatalf("table: %+v", r)
	}
	if r.stderr != "dlqctl: showing the oldest 2 matching entries; --limit 0 lists all of them\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = f.run("list", "--json", "--reveal", "--limit", "1")
	if it := decodeList(t, r.stdout)[0]; it["conversation"] != "u:c0" || it["payload"] != `{"envelope":{"dataMessage":{"message":"private words"}}}` {
		t.Fatalf("--reveal %v", it)
	}
}

func TestShowAndStats(t *testing.T) {
	f := newFixture(t, 4)
	r := f.run("show", f.parked[1])
	if r.code != 0 || !strings.Contains(r.stdout, "reason:           timeout") ||
		!strings.Contains(r.stdout, "payload:          <redacted: 56 bytes; --reveal shows it>") || strings.Contains(r.stdout, "private") {
		t.Fatalf("%+v", r)
	}
	r = f.run("show", "--reveal", strings.SplitN(f.parked[1], ":", 2)[1]) // a bare stream id works too
	if r.code != 0 || !strings.Contains(r.stdout, "private words") || !strings.Contains(r.stdout, "conversation:     u:c1") {
		t.Fatalf("%+v", r)
	}
	r = f.run("show", "0:1-1")
	if r.code != ExitUnknownID || r.stderr != "dlqctl: dlq: no entry with id 0:1-1 (list the current ids with `dlqctl list`); nothing was changed\n" {
		t.Fatalf("%+v", r)
	}
	r = f.run("show", "banana")
	if r.code != ExitUsage {
		t.Fatalf("%+v", r)
	}
	r = f.run("stats", "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	if st["depth"] != 4.0 || st["shards"] != 4.0 || cmp.Diff(map[string]any{"handler_error": 2.0, "timeout": 1.0, "panic": 1.0}, st["by_reason"]) != "" {
		t.Fatalf("stats %v", st)
	}
	if o := st["oldest"].(map[string]any); o["id"] != f.parked[0] {
		t.Fatalf("oldest %v", o)
	}
	r = f.run("stats")
	want := "dlq depth: 4\noldest: " + f.parked[0] + ", parked 2026-03-01 12:00:00Z ("
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "\nREASON         ENTRIES\nhandler_error  2\npanic          1\ntimeout        1\n") ||
		!strings.Contains(r.stdout, "\nSHARD  ENTRIES\n") {
		t.Fatalf("%q", r.stdout)
	}
}

func TestReplayPurgeAndAudit(t *testing.T) {
	f := newFixture(t, 12)
	r := f.run("replay")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "say which entries to replay") {
		t.Fatalf("%+v", r)
	}
	r = f.run("replay", "--quarantine", "--all")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "not replayable as they are") {
		t.Fatalf("%+v", r)
	}
	r = f.run("replay", "--dry-run", "--reason", "timeout")
	if r.code != 0 || r.stdout != "would replay 4 entries (timeout 4)\n" {
		t.Fatalf("%+v", r)
	}
	if d, s := f.depth(); d != 12 || s != 0 {
		t.Fatalf("dry run changed: %d %d", d, s)
	}
	r = f.run("replay", "--reason", "timeout", "--actor", "alice")
	if r.code != 0 || r.stdout != "replayed 4 entries (timeout 4)\n" {
		t.Fatalf("%+v", r)
	}
	if d, s := f.depth(); d != 8 || s != 4 {
		t.Fatalf("after replay: %d %d", d, s)
	}
	// The audit line is in the log (stderr), the record in Redis.
	if !strings.Contains(r.stderr, `"msg":"dlqctl audit"`) || !strings.Contains(r.stderr, `"who":"alice"`) || !strings.Contains(r.stderr, `"phase":"end"`) {
		t.Fatalf("audit log line missing: %s", r.stderr)
	}
	recs, _ := dlq.ReadAudit(context.Background(), f.store, 10)
	if len(recs) != 2 || recs[0].Phase != "end" || recs[0].Done != 4 || recs[0].Who != "alice" || recs[0].Selection != "reason=timeout" ||
		recs[1].Phase != "start" || recs[0].Run != recs[1].Run || recs[0].Outcome != "ok" {
		t.Fatalf("audit %+v", recs)
	}
	r = f.run("replay", f.parked[0], "1:1-1")
	if r.code != ExitUnknownID {
		t.Fatalf("%+v", r)
	}
	if d, _ := f.depth(); d != 8 {
		t.Fatal("a replay with an unknown id changed something")
	}

	// Purge: refused without --yes, saying what it would do; --dry-run changes nothing.
	r = f.run("purge", "--reason", "panic")
	if r.code != ExitUsage || r.stderr != "dlqctl: purge would delete 4 entries for good (panic 4): add --yes to delete them, or export them first (dlqctl export); nothing was changed\n" {
		t.Fatalf("%+v", r)
	}
	r = f.run("purge", "--all", "--dry-run")
	if r.code != 0 || r.stdout != "would purge 8 entries (handler_error 4, panic 4)\n" {
		t.Fatalf("%+v", r)
	}
	if d, _ := f.depth(); d != 8 {
		t.Fatal("purge without --yes changed something")
	}
	r = f.run("purge", "--reason", "panic", "--yes", "--json")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	var res dlq.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Done != 4 || res.Matched != 4 {
		t.Fatalf("%q %v", r.stdout, err)
	}
	r = f.run("purge", "--reason", "panic", "--yes")
	if r.code != 0 || r.stdout != "" || !strings.HasSuffix(r.stderr, "dlqctl: nothing matched; nothing to purge\n") {
		t.Fatalf("%+v", r)
	}
	r = f.run("audit", "--json")
	var audit []map[string]any
	// replay, purge and the purge that found nothing: a start and an end each.
	if err := json.Unmarshal([]byte(r.stdout), &audit); err != nil || len(audit) != 6 || audit[0]["command"] != "purge" || audit[0]["matched"] != 0.0 ||
		audit[2]["done"] != 4.0 {
		t.Fatalf("%q %v", r.stdout, err)
	}
}

func TestExportImportFile(t *testing.T) {
	f := newFixture(t, 6)
	path := filepath.Join(t.TempDir(), "dlq.jsonl")
	r := f.run("export", "-o", path)
	if r.code != 0 || r.stdout != "exported 6 entries (handler_error 2, panic 2, timeout 2)\n" {
		t.Fatalf("%+v", r)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file %v %v", fi, err)
	}
	if r := f.run("export", "-o", path); r.code != ExitUsage {
		t.Fatalf("overwrite: %+v", r)
	}
	before := f.run("list", "--json", "--reveal").stdout
	if r := f.run("purge", "--all", "--yes"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	r = f.run("import", path)
	if r.code != 0 || r.stdout != "imported 6 entries (handler_error 2, panic 2, timeout 2)\n" {
		t.Fatalf("%+v", r)
	}
	r = f.run("import", path)
	if r.code != 0 || r.stdout != "imported 0 entries; 6 already imported or still present (skipped)\n" {
		t.Fatalf("%+v", r)
	}
	after := f.run("list", "--json", "--reveal").stdout
	strip := func(s string) []map[string]any {
		items := decodeList(t, s)
		for _, it := range items {
			delete(it, "id")
			delete(it, "stream_id")
			delete(it, "parked_at")
		}
		// Imported entries are parked anew, so compare in original-id order.
		sort.Slice(items, func(i, j int) bool { return items[i]["original_id"].(string) < items[j]["original_id"].(string) })
		return items
	}
	if d := cmp.Diff(strip(before), strip(after)); d != "" {
		t.Fatalf("round trip (-before +after):\n%s", d)
	}
	// Through stdin, and ids with export.
	var buf bytes.Buffer
	ids := decodeList(t, after)
	r = f.run("export", ids[0]["id"].(string))
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("%+v", r)
	}
	buf.WriteString(r.stdout)
	f2 := newFixture(t, 0)
	r = f2.runCtx(context.Background(), buf.String(), "import")
	if r.code != 0 || r.stdout != "imported 1 entry (handler_error 1)\n" {
		t.Fatalf("%+v", r)
	}
}

func TestRedisUnreachableAndUsage(t *testing.T) {
	f := newFixture(t, 0)
	f.env["REDIS_URL"] = "redis://127.0.0.1:1/0"
	r := f.run("stats")
	if r.code != ExitNoRedis || !strings.HasPrefix(r.stderr, "dlqctl: redis unreachable: ") || !strings.Contains(r.stderr, "(check REDIS_URL") {
		t.Fatalf("%+v", r)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"list", "--since", "yesterday"}, `dlqctl: --since "yesterday": expected a time such as 2026-03-01T12:00:00Z or 2026-03-01 (UTC), or how long ago such as 90m, 6h or 2d` + "\n"},
		{[]string{"list", "--frobnicate"}, "dlqctl: unknown flag: --frobnicate\n"},
		{[]string{"replay", "--all", "--rate", "fast"}, `dlqctl: --rate "fast": expected entries per second such as 100 or 100/s (or 6000/m)` + "\n"},
		{[]string{"replay", "1:1-0", "--all"}, "dlqctl: give either ids or --all/filters to replay, not both\n"},
		{[]string{"list", "extra"}, "dlqctl: list takes no arguments (got [\"extra\"]); use the flags to filter\n"},
		{[]string{"frob"}, "dlqctl: unknown command \"frob\" for \"dlqctl\"\n"},
	}
	for _, tt := range tests {
		r := f.run(tt.args...)
		if r.code != ExitUsage || r.stderr != tt.want {
			t.Errorf("%v: code %d stderr %q", tt.args, r.code, r.stderr)
		}
	}
	delete(f.env, "SIGNAL_PHONE_NUMBER")
	if r := f.run("stats"); r.code != ExitUsage || !strings.Contains(r.stderr, "SIGNAL_PHONE_NUMBER") {
		t.Fatalf("%+v", r)
	}
}

func TestInterruptedReplayFinishesItsBatch(t *testing.T) {
	f := newFixture(t, 60)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	r := f.runCtx(ctx, "", "replay", "--all", "--rate", "50")
	if r.code != ExitInterrupted || !strings.Contains(r.stderr, "run the same command again to continue") {
		t.Fatalf("%+v", r)
	}
	d, s := f.depth()
	if d+s != 60 || s == 0 || s == 60 {
		t.Fatalf("dlq %d + stream %d after an interrupted replay", d, s)
	}
	recs, _ := dlq.ReadAudit(context.Background(), f.store, 1)
	if len(recs) != 1 || recs[0].Outcome != "interrupted" || recs[0].Done != int(s) {
		t.Fatalf("audit %+v (stream %d)", recs, s)
	}
	r = f.run("replay", "--all")
	if r.code != 0 || !strings.HasPrefix(r.stdout, fmt.Sprintf("replayed %d entries (", d)) {
		t.Fatalf("%+v", r)
	}
	if d, s := f.depth(); d != 0 || s != 60 {
		t.Fatalf("after the second run: dlq %d stream %d", d, s)
	}
}

func TestProgressOnATerminal(t *testing.T) {
	f := newFixture(t, 30)
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"replay", "--all", "--rate", "40"}, IO{Stdout: &out, Stderr: &errb, Env: config.EnvMap(f.env), Terminal: true})
	if code != 0 || out.String() != "replayed 30 entries (handler_error 10, panic 10, timeout 10)\n" {
		t.Fatalf("%d %q %q", code, out.String(), errb.String())
	}
	if n := strings.Count(errb.String(), "\r\033[Kreplay: "); n < 2 || !strings.Contains(errb.String(), "done of ") {
		t.Fatalf("%d progress lines in %q", n, errb.String())
	}
	// Not a terminal: no progress line.
	f2 := newFixture(t, 30)
	if r := f2.run("replay", "--all", "--rate", "40"); strings.Contains(r.stderr, "\r") {
		t.Fatalf("progress without a terminal: %q", r.stderr)
	}
}
