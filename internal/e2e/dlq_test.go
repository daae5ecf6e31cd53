package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/dlq"
	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

// ctlResult is one finished dlqctl run.
type ctlResult struct {
	code           int
	stdout, stderr string
	peakRSSKiB     int64 // VmHWM of the process, sampled while it ran
}

// dlqctl runs bin/dlqctl with the environment's settings plus extra.
func (e *Env) dlqctl(extra map[string]string, args ...string) ctlResult {
	e.T.Helper()
	bin, err := Binaries()
	if err != nil {
		e.T.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "dlqctl"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "USER=e2e-operator"}
	for k, v := range e.env(extra) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		e.T.Fatalf("dlqctl %v: %v", args, err)
	}
	// The peak RSS from /proc while it runs: rusage's maxrss of a child
	// also counts the parent's pages it shared before exec.
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if kb := vmHWM(cmd.Process.Pid); kb > peak.Load() {
				peak.Store(kb)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	err = cmd.Wait()
	close(stop)
	<-sampled
	r := ctlResult{stdout: out.String(), stderr: errb.String(), peakRSSKiB: peak.Load()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		e.T.Fatalf("dlqctl %v: %v", args, err)
	}
	return r
}

// vmHWM reads a process's peak resident set (KiB); 0 once it is gone.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func (e *Env) store(shards int) *streams.Store {
	c := e.Redis.Client()
	e.T.Cleanup(func() { c.Close() })
	keys, _ := streams.NewKeys("sc", Account)
	return streams.NewStore(c, keys, shards)
}

func sumLen(t *testing.T, s *streams.Store, key func(int) string) int64 {
	var n int64
	pipe := s.Client().Pipeline()
	cmds := make([]*redis.IntCmd, s.Shards())
	for i := range cmds {
		cmds[i] = pipe.XLen(context.Background(), key(i))
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		n += c.Val()
	}
	return n
}

func listJSON(t *testing.T, r ctlResult) []map[string]any {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("dlqctl list: exit %d: %s", r.code, r.stderr)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("dlqctl list --json: %q: %v", r.stdout, err)
	}
	return out
}

// The whole repair path with the real processes: a reply that upstream
// refuses (4xx) makes the built-in !echo handler fail; with DLQ_MAX_RETRIES=0
// the entry is parked at once. dlqctl shows it, the fault goes away, dlqctl
// replays it, and the running worker answers it.
func TestDLQParkInspectReplayAnswered(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	w := e.start("worker", "w0", map[string]string{"DLQ_MAX_RETRIES": "0"})
	w.WaitReady(t, 20*time.Second)
	e.waitSockets(1)

	const bad, good = 7, 8
	badNumber := fmt.Sprintf("+1555%07d", bad)
	badConv := fmt.Sprintf("u:3f1c7a52-8e0b-4d1e-9a52-%012d", bad)
	fault := e.Emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Recipient: badNumber, Error: "Failed to send message: untrusted identity"})
	ts := time.Now().UnixMilli()
	e.Emu.Inject(Account, echoFrame(bad, 0, ts))
	e.Emu.Inject(Account, echoFrame(good, 0, ts+1))
	e.Emu.InjectError("upstream went sideways") // quarantined by the ingester

	Eventually(t, 15*time.Second, func() bool {
		r := e.dlqctl(nil, "stats", "--json")
		var st map[string]any
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st["depth"] == 1.0
	}, "the failing reply parked")
	Eventually(t, 10*time.Second, func() bool { return len(e.replies()[good]) == 1 }, "the healthy conversation answered")

	items := listJSON(t, e.dlqctl(nil, "list", "--json"))
	if len(items) != 1 {
		t.Fatalf("%d items", len(items))
	}
	it := items[0]
	shard := streams.ShardOf(badConv, 16)
	if it["shard"] != float64(shard) || it["reason"] != "handler_error" || it["attempts"] != 1.0 || it["conversation"] != dlq.Pseudonym(badConv) ||
		!strings.Contains(it["error"].(string), "signal-cli-rest-api returned 400: Failed to send message: untrusted identity") ||
		it["id"] != fmt.Sprintf("%d:%s", shard, it["stream_id"]) || it["first_failed_at"] == "" || it["last_failed_at"] == "" || it["replay_count"] != 0.0 {
		t.Fatalf("listed %v", it)
	}
	id := it["id"].(string)
	// Filters: by the bare uuid, by reason, by shard, by time.
	for _, args := range [][]string{
		{"--conversation", strings.TrimPrefix(badConv, "u:")},
		{"--reason", "handler_error"},
		{"--shard", strconv.Itoa(shard)},
		{"--since", "1m"},
	} {
		if got := listJSON(t, e.dlqctl(nil, append([]string{"list", "--json"}, args...)...)); len(got) != 1 || got[0]["id"] != id {
			t.Fatalf("filter %v: %v", args, got)
		}
	}
	r := e.dlqctl(nil, "list", "--reason", "timeout")
	if r.code != 0 || r.stderr != "dlqctl: no entries match\n" {
		t.Fatalf("nothing matched: %+v", r)
	}
	r = e.dlqctl(nil, "list")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[1], id+" ") ||
		!strings.Contains(lines[1], "handler_error") || strings.Contains(r.stdout, badNumber) {
		t.Fatalf("table: %+v", r)
	}
	r = e.dlqctl(nil, "show", id)
	if r.code != 0 || strings.Contains(r.stdout, "!echo") || !strings.Contains(r.stdout, "<redacted: ") {
		t.Fatalf("show: %+v", r)
	}
	r = e.dlqctl(nil, "show", "--reveal", id)
	if r.code != 0 || !strings.Contains(r.stdout, "!echo c7 m0") || !strings.Contains(r.stdout, badConv) {
		t.Fatalf("show --reveal: %+v", r)
	}
	if r := e.dlqctl(nil, "show", fmt.Sprintf("%d:1-1", shard)); r.code != 4 {
		t.Fatalf("unknown id: %+v", r)
	}

	// The quarantine: shown, not replayable, purged.
	q := listJSON(t, e.dlqctl(nil, "list", "--quarantine", "--json"))
	if len(q) != 1 || q[0]["reason"] != "upstream_error" || q[0]["shard"] != nil {
		t.Fatalf("quarantine %v", q)
	}
	if r := e.dlqctl(nil, "replay", "--quarantine", "--all"); r.code != 2 || !strings.Contains(r.stderr, "not replayable as they are") {
		t.Fatalf("quarantine replay: %+v", r)
	}
	if r := e.dlqctl(nil, "purge", "--quarantine", "--all", "--yes"); r.code != 0 || r.stdout != "purged 1 entry (upstream_error 1)\n" {
		t.Fatalf("quarantine purge: %+v", r)
	}

	// Replay while the fault is still there: parked again, original id kept.
	s := e.store(16)
	src := s.Client().XRange(Ctx(t), s.Keys().DLQ(shard), "-", "+").Val()[0].Values[streams.DLQFieldSource]
	if r := e.dlqctl(nil, "replay", id); r.code != 0 || r.stdout != "replayed 1 entry (handler_error 1)\n" {
		t.Fatalf("replay: %+v", r)
	}
	var again map[string]any
	Eventually(t, 10*time.Second, func() bool {
		items := listJSON(t, e.dlqctl(nil, "list", "--json"))
		if len(items) == 1 {
			again = items[0]
		}
		return len(items) == 1
	}, "parked again while upstream still refuses")
	if again["original_id"] != src || again["replay_count"] != 1.0 || again["id"] == id {
		t.Fatalf("re-parked %v (original %v)", again, src)
	}

	// The fault goes away; the replay is answered by the running worker.
	e.Emu.Faults().RemoveREST(fault)
	r = e.dlqctl(nil, "replay", "--all", "--actor", "oncall")
	if r.code != 0 || r.stdout != "replayed 1 entry (handler_error 1)\n" {
		t.Fatalf("replay: %+v", r)
	}
	Eventually(t, 10*time.Second, func() bool { return len(e.replies()[bad]) == 1 }, "the replayed message answered")
	if r := e.dlqctl(nil, "stats", "--json"); !strings.Contains(r.stdout, `"depth":0`) {
		t.Fatalf("after replay: %+v", r)
	}
	// The audit trail: three runs (purge, replay, replay), a start and an end each.
	r = e.dlqctl(nil, "audit", "--json")
	var audit []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &audit); err != nil || len(audit) != 6 {
		t.Fatalf("audit %q %v", r.stdout, err)
	}
	if a := audit[0]; a["who"] != "oncall" || a["command"] != "replay" || a["phase"] != "end" || a["done"] != 1.0 || a["selection"] != "all" || a["outcome"] != "ok" {
		t.Fatalf("newest audit record %v", a)
	}
	if a := audit[5]; a["command"] != "purge" || a["source"] != "quarantine" || a["who"] != operator() {
		t.Fatalf("oldest audit record %v", a)
	}
}

// operator is who dlqctl records when no --actor is given: the login name
// of the user running it, at the host.
func operator() string {
	u, _ := user.Current()
	h, _ := os.Hostname()
	return u.Username + "@" + h
}

// fillDLQ parks n entries spread over the shards, as the worker's Park
// writes them, with payloads of size bytes; it returns their original ids.
func fillDLQ(t *testing.T, s *streams.Store, n, size int) {
	t.Helper()
	ctx := context.Background()
	pad := strings.Repeat("x", max(0, size-80))
	now := time.Now().UnixMilli()
	pipe := s.Client().Pipeline()
	for i := 0; i < n; i++ {
		conv := fmt.Sprintf("u:conv-%d", i%500)
		shard := streams.ShardOf(conv, s.Shards())
		orig := fmt.Sprintf("%d-%d", now-100000, i)
		e := streams.Entry{Kind: "message", Conversation: conv, Timestamp: now, ReceivedAt: now, Ingester: "ing", Epoch: 1,
			Payload: []byte(`{"envelope":{"dataMessage":{"message":"!echo ` + strconv.Itoa(i) + `","pad":"` + pad + `"}}}`), OriginalID: orig}
		fields := append(e.Fields(), streams.DLQFieldSource, orig, streams.DLQFieldShard, strconv.Itoa(shard), streams.DLQFieldAttempts, "6",
			streams.DLQFieldError, "boom", streams.DLQFieldReason, "handler_error", streams.DLQFieldFirst, strconv.FormatInt(now, 10),
			streams.DLQFieldLast, strconv.FormatInt(now, 10), streams.DLQFieldWorker, "w0")
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().DLQ(shard), Values: fields})
		if i%2000 == 1999 || i == n-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// originals returns every original id in the DLQs and in the shard streams.
func originals(t *testing.T, s *streams.Store) (inDLQ, inStream map[string]int) {
	t.Helper()
	inDLQ, inStream = map[string]int{}, map[string]int{}
	for n := 0; n < s.Shards(); n++ {
		for _, m := range s.Client().XRange(Ctx(t), s.Keys().DLQ(n), "-", "+").Val() {
			inDLQ[m.Values[streams.FieldOriginalID].(string)]++
		}
		for _, m := range s.Client().XRange(Ctx(t), s.Keys().Stream(n), "-", "+").Val() {
			if m.Values[streams.FieldReplayCount] != "1" {
				t.Fatalf("replayed entry %s has rc=%v", m.ID, m.Values[streams.FieldReplayCount])
			}
			inStream[m.Values[streams.FieldOriginalID].(string)]++
		}
	}
	return
}

// A replay killed with SIGKILL halfway: every entry is either still parked
// or back in its stream, exactly once; running the replay again finishes
// the job. --rate holds while it runs.
func TestDLQReplayKilledHalfwayNeitherLosesNorDuplicates(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	s := e.store(16)
	const n, rate = 20000, 5000
	fillDLQ(t, s, n, 200)
	if got := sumLen(t, s, s.Keys().DLQ); got != n {
		t.Fatalf("filled %d", got)
	}
	ctl := StartProc(t, e.Dir, "dlqctl", "replay", e.env(nil), "replay", "--all", "--rate", strconv.Itoa(rate))
	started := time.Now()
	var atKill int64
	Eventually(t, 15*time.Second, func() bool {
		atKill = sumLen(t, s, s.Keys().Stream)
		return atKill >= n/4 || ctl.Exited()
	}, "replay progressing")
	ctl.Kill9()
	elapsed := time.Since(started)
	if ctl.exit == nil || !strings.Contains(ctl.exit.Error(), "killed") {
		t.Fatalf("dlqctl ended on its own before the kill (%v): %s", ctl.exit, ctl.Tail(20))
	}
	inDLQ, inStream := originals(t, s)
	t.Logf("killed after %v: %d replayed, %d still parked", elapsed.Round(time.Millisecond), len(inStream), len(inDLQ))
	if len(inStream) == 0 || len(inDLQ) == 0 {
		t.Fatalf("the kill did not land halfway: %d replayed, %d parked", len(inStream), len(inDLQ))
	}
	if len(inDLQ)+len(inStream) != n {
		t.Fatalf("%d parked + %d replayed = %d distinct entries, want %d (lost some)", len(inDLQ), len(inStream), len(inDLQ)+len(inStream), n)
	}
	for o, c := range inStream {
		if c != 1 || inDLQ[o] != 0 {
			t.Fatalf("entry %s: %d times in the stream, %d in the DLQ", o, c, inDLQ[o])
		}
	}
	for o, c := range inDLQ {
		if c != 1 {
			t.Fatalf("entry %s parked %d times", o, c)
		}
	}
	// --rate: batches of a tenth of a second's worth start no faster than the rate.
	if max := int64(float64(rate)*elapsed.Seconds()) + rate/10; int64(len(inStream)) > max {
		t.Fatalf("%d replayed within %v at --rate %d (at most %d)", len(inStream), elapsed, rate, max)
	}
	// The killed run left a start record and no end; a second run finishes.
	recs, _ := dlq.ReadAudit(Ctx(t), s, 5)
	if len(recs) != 1 || recs[0].Phase != "start" {
		t.Fatalf("audit after the kill: %+v", recs)
	}
	r := e.dlqctl(nil, "replay", "--all")
	if r.code != 0 || r.stdout != fmt.Sprintf("replayed %d entries (handler_error %d)\n", len(inDLQ), len(inDLQ)) {
		t.Fatalf("second run: %+v", r)
	}
	inDLQ, inStream = originals(t, s)
	if len(inDLQ) != 0 || len(inStream) != n || sumLen(t, s, s.Keys().Stream) != n {
		t.Fatalf("after the second run: %d parked, %d distinct replayed, %d stream entries", len(inDLQ), len(inStream), sumLen(t, s, s.Keys().Stream))
	}
}

// Replaying 100 000 entries (about 100 MB of payload) runs in a small,
// fixed amount of memory: dlqctl pages through the streams.
func TestDLQReplay100kInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills Redis with 100 000 entries")
	}
	e := newEnv(t, redistest.Options{})
	s := e.store(16)
	const n = 100000
	fillDLQ(t, s, n, 1000)
	r := e.dlqctl(nil, "replay", "--all")
	if r.code != 0 || r.stdout != "replayed 100000 entries (handler_error 100000)\n" {
		t.Fatalf("%+v", r)
	}
	if got := sumLen(t, s, s.Keys().Stream); got != n {
		t.Fatalf("%d in the streams", got)
	}
	t.Logf("replay of %d entries of ~1 KB: dlqctl peak RSS %d MiB", n, r.peakRSSKiB/1024)
	if r.peakRSSKiB == 0 || r.peakRSSKiB > 48*1024 {
		t.Fatalf("dlqctl peak RSS %d MiB for %d entries (~%d MiB of payload): memory is not bounded", r.peakRSSKiB/1024, n, n/1024)
	}
}

// Purge needs --yes, --dry-run changes nothing; export → purge → import
// restores every entry; importing twice adds nothing; exit codes.
func TestDLQPurgeSafetyAndExportImportRoundTrip(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	s := e.store(16)
	fillDLQ(t, s, 40, 300)
	before := listJSON(t, e.dlqctl(nil, "list", "--json", "--reveal", "--limit", "0"))
	if len(before) != 40 {
		t.Fatalf("%d listed", len(before))
	}
	r := e.dlqctl(nil, "purge", "--all")
	if r.code != 2 || r.stderr != "dlqctl: purge would delete 40 entries for good (handler_error 40): add --yes to delete them, or export them first (dlqctl export); nothing was changed\n" {
		t.Fatalf("purge without --yes: %+v", r)
	}
	r = e.dlqctl(nil, "purge", "--all", "--dry-run")
	if r.code != 0 || r.stdout != "would purge 40 entries (handler_error 40)\n" {
		t.Fatalf("dry run: %+v", r)
	}
	if got := sumLen(t, s, s.Keys().DLQ); got != 40 {
		t.Fatalf("purge without --yes or with --dry-run changed the DLQ: %d left", got)
	}
	if r := e.dlqctl(nil, "purge"); r.code != 2 || !strings.Contains(r.stderr, "say which entries to purge") {
		t.Fatalf("purge of nothing named: %+v", r)
	}
	file := filepath.Join(e.Dir, "dlq.jsonl")
	if r := e.dlqctl(nil, "export", "-o", file); r.code != 0 || r.stdout != "exported 40 entries (handler_error 40)\n" {
		t.Fatalf("export: %+v", r)
	}
	if r := e.dlqctl(nil, "purge", "--all", "--yes"); r.code != 0 || r.stdout != "purged 40 entries (handler_error 40)\n" {
		t.Fatalf("purge: %+v", r)
	}
	if got := sumLen(t, s, s.Keys().DLQ); got != 0 {
		t.Fatalf("%d left after purge", got)
	}
	if r := e.dlqctl(nil, "import", file); r.code != 0 || r.stdout != "imported 40 entries (handler_error 40)\n" {
		t.Fatalf("import: %+v", r)
	}
	if r := e.dlqctl(nil, "import", file); r.code != 0 || r.stdout != "imported 0 entries; 40 already imported or still present (skipped)\n" {
		t.Fatalf("import again: %+v", r)
	}
	after := listJSON(t, e.dlqctl(nil, "list", "--json", "--reveal", "--limit", "0"))
	norm := func(items []map[string]any) []map[string]any {
		for _, it := range items {
			delete(it, "id")
			delete(it, "stream_id")
			delete(it, "parked_at")
		}
		sort.Slice(items, func(i, j int) bool { return items[i]["original_id"].(string) < items[j]["original_id"].(string) })
		return items
	}
	b1, _ := json.Marshal(norm(before))
	b2, _ := json.Marshal(norm(after))
	if !bytes.Equal(b1, b2) {
		t.Fatalf("round trip changed entries:\nbefore %s\nafter  %s", b1, b2)
	}
	// Into another deployment with another shard count (a second Redis).
	other := redistest.MustStart(t, redistest.Options{})
	r = e.dlqctl(map[string]string{"REDIS_URL": other.URL(), "WORKER_SHARD_COUNT": "4"}, "import", file)
	if r.code != 0 || r.stdout != "imported 40 entries (handler_error 40)\n" {
		t.Fatalf("import elsewhere: %+v", r)
	}
	moved := listJSON(t, e.dlqctl(map[string]string{"REDIS_URL": other.URL(), "WORKER_SHARD_COUNT": "4"}, "list", "--json", "--reveal", "--limit", "0"))
	for _, it := range moved {
		if it["shard"] != float64(streams.ShardOf(it["conversation"].(string), 4)) {
			t.Fatalf("imported into shard %v: %v", it["shard"], it)
		}
	}
	// Exit codes.
	if r := e.dlqctl(map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, "stats"); r.code != 3 ||
		!strings.HasPrefix(r.stderr, "dlqctl: redis unreachable: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("redis unreachable: %+v", r)
	}
	if r := e.dlqctl(nil, "replay", "3:1-0"); r.code != 4 || !strings.Contains(r.stderr, "no entry with id 3:1-0") {
		t.Fatalf("unknown id: %+v", r)
	}
	if r := e.dlqctl(nil, "replay", "--reason", "panic"); r.code != 0 || r.stdout != "" || !strings.HasSuffix(r.stderr, "dlqctl: nothing matched; nothing to replay\n") {
		t.Fatalf("nothing matched: %+v", r)
	}
}
