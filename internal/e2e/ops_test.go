package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

// get fetches a health endpoint: status and JSON body.
func get(t *testing.T, p *Proc, path string) (int, map[string]any) {
	t.Helper()
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(p.HealthPort) + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// failing returns the /ready body's failing checks.
func failing(body map[string]any) []string {
	var out []string
	for _, f := range asSlice(body["failing"]) {
		out = append(out, fmt.Sprint(f))
	}
	sort.Strings(out)
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func checkNames(body map[string]any) []string {
	var out []string
	for _, c := range asSlice(body["checks"]) {
		m, _ := c.(map[string]any)
		out = append(out, fmt.Sprint(m["name"]))
	}
	return out
}

// waitReadyState waits until /ready answers code with exactly the failing
// checks want (none for 200), and returns the body.
func waitReadyState(t *testing.T, p *Proc, code int, want ...string) map[string]any {
	t.Helper()
	sort.Strings(want)
	var last map[string]any
	var lastCode int
	Eventually(t, 15*time.Second, func() bool {
		lastCode, last = get(t, p, "/ready")
		return lastCode == code && strings.Join(failing(last), ",") == strings.Join(want, ",")
	}, "%s /ready %d failing %v (last: %d %v)", p.Name, code, want, lastCode, last)
	if code != 200 {
		if e := fmt.Sprint(last["error"]); e != "not ready: "+strings.Join(want, ", ") {
			t.Fatalf("%s /ready error %q", p.Name, e)
		}
	}
	if c, _ := get(t, p, "/live"); c != 200 {
		t.Fatalf("%s /live answered %d while /ready was %d", p.Name, c, code)
	}
	return last
}

// The ingester's probes in each state: ready; websocket down (upstream
// crashed); Redis down; and back.
func TestHealthIngesterStates(t *testing.T) {
	e := newEnv(t, redistest.Options{AOF: true})
	ing := e.start("ingester", "ing", nil)
	body := waitReadyState(t, ing, 200)
	if got := strings.Join(checkNames(body), ","); got != "preflight,redis,websocket" {
		t.Fatalf("checks %s", got)
	}
	if body["websocket_connected"] != true {
		t.Fatalf("/ready body %v", body)
	}
	// A standby is ready too; this one becomes the leader within a lock try.
	Eventually(t, 5*time.Second, func() bool { _, b := get(t, ing, "/ready"); return b["role"] == "leader" }, "role leader in /ready")
	code, dlqBody := get(t, ing, "/dlq")
	if code != 200 || dlqBody["enabled"] != true || dlqBody["depth"] != 0.0 || dlqBody["oldest"] != nil {
		t.Fatalf("/dlq %d %v", code, dlqBody)
	}

	if err := e.Emu.Faults().Crash(emulator.CrashOptions{Down: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	body = waitReadyState(t, ing, 503, "websocket")
	t.Logf("websocket down: %v", body["checks"])
	waitReadyState(t, ing, 200)

	e.Redis.Kill()
	body = waitReadyState(t, ing, 503, "redis")
	if code, b := get(t, ing, "/dlq"); code != 503 || b["enabled"] != true || !strings.HasPrefix(fmt.Sprint(b["error"]), "redis unreachable") {
		t.Fatalf("/dlq with Redis down: %d %v", code, b)
	}
	t.Logf("redis down: %v", body["checks"])
	if err := e.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReadyState(t, ing, 200)
}

// The worker's probes: no leases (every shard held by a dead worker whose
// leases have not expired yet), then owning shards; Redis down; and back.
func TestHealthWorkerStates(t *testing.T) {
	e := newEnv(t, redistest.Options{AOF: true})
	s := e.store(16)
	for n := 0; n < 16; n++ {
		if err := s.Client().Set(Ctx(t), s.Keys().Lease(n), "ghost|1", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	w := e.start("worker", "w0", nil)
	// Waiting for leases others hold is ready (ARCHITECTURE §12): the body
	// says so and lists no shard.
	body := waitReadyState(t, w, 200)
	if got := strings.Join(checkNames(body), ","); got != "preflight,redis,membership,leases" {
		t.Fatalf("checks %s", got)
	}
	if len(asSlice(body["shards_owned"])) != 0 {
		t.Fatalf("owned %v", body["shards_owned"])
	}
	if !strings.Contains(fmt.Sprint(body["checks"]), "waiting for shard leases") {
		t.Fatalf("the leases check does not say it waits: %v", body["checks"])
	}
	for n := 0; n < 16; n++ {
		s.Client().Del(Ctx(t), s.Keys().Lease(n))
	}
	waitReadyState(t, w, 200)
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{w}) == 16 }, "every shard taken once the ghost's leases are gone")

	e.Redis.Kill()
	// Redis is named at once; the membership and the leases follow as they lapse.
	Eventually(t, 15*time.Second, func() bool {
		code, b := get(t, w, "/ready")
		return code == 503 && strings.Contains(strings.Join(failing(b), ","), "redis")
	}, "worker /ready names redis")
	if c, _ := get(t, w, "/live"); c != 200 {
		t.Fatalf("/live %d with Redis down", c)
	}
	if err := e.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReadyState(t, w, 200)
}

func scrape(t *testing.T, p *Proc) string {
	t.Helper()
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(p.MetricsPort) + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", p.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// series sums the samples of name whose labels contain every given
// `k="v"` pair, and counts them.
func series(m map[string]float64, name string, labels ...string) (sum float64, n int) {
	for k, v := range m {
		base, ls, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(ls, l)
		}
		if ok {
			sum += v
			n++
		}
	}
	return
}

var (
	labelRE   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	phoneLike = regexp.MustCompile(`\+?[0-9]{7,}`)
	uuidLike  = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-`)
	groupLike = regexp.MustCompile(`^[A-Za-z0-9+/]{20,}={0,2}$`)
)

// personLikeLabels returns label values that look like a phone number, a
// uuid or a group id.
func personLikeLabels(body string) []string {
	var bad []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, m := range labelRE.FindAllStringSubmatch(line, -1) {
			v := m[2]
			if m[1] == "version" || m[1] == "goversion" {
				continue // build metadata
			}
			if phoneLike.MatchString(v) || uuidLike.MatchString(v) || groupLike.MatchString(v) {
				bad = append(bad, m[1]+"="+v)
			}
		}
	}
	return bad
}

// Both binaries under traffic (answered, retried and parked messages, a
// quarantined frame): the series exist and move, the names pass promlint,
// no label value looks like a person's identifier.
func TestMetricsOfBothBinariesUnderTraffic(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	fast := map[string]string{"HEARTBEAT_INTERVAL": "200ms", "DLQ_MAX_RETRIES": "1", "RETRY_BACKOFF_BASE": "50ms", "RETRY_BACKOFF_MAX": "100ms"}
	ing := e.start("ingester", "ing", fast)
	ing.WaitReady(t, 20*time.Second)
	w := e.start("worker", "w0", fast)
	w.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{w}) == 16 }, "16 shards owned")
	Eventually(t, 10*time.Second, func() bool {
		m, _ := w.Metrics()
		_, n := series(m, "signal_client_shard_heartbeat_timestamp_seconds")
		return n == 16
	}, "a heartbeat through every shard")
	ing0, _ := ing.Metrics()
	w0, _ := w.Metrics()

	// Traffic: conversation 40 fails once (retried), 41 always (parked).
	e.Emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Recipient: "+15550000040", Error: "temporary refusal", Count: 1})
	e.Emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Recipient: "+15550000041", Error: "Failed to send message: unregistered user"})
	ts := time.Now().UnixMilli()
	e.Emu.Inject(Account, echoFrame(40, 0, ts))
	e.Emu.Inject(Account, echoFrame(41, 0, ts+1))
	e.Emu.InjectError("bad frame")
	e.sendEchoes(10, 5, 500).wait()
	Eventually(t, 20*time.Second, func() bool { return countReplies(e.replies()) >= 51 }, "replies")
	Eventually(t, 10*time.Second, func() bool {
		m, _ := w.Metrics()
		v, _ := series(m, "signal_client_dlq_moves_total", `reason="handler_error"`)
		return v == 1
	}, "one entry parked")
	time.Sleep(500 * time.Millisecond) // heartbeats and the DLQ depth settle
	ing1, _ := ing.Metrics()
	w1, _ := w.Metrics()

	type check struct {
		p      string
		name   string
		labels []string
		moves  bool    // grows between the scrapes
		min    float64 // at least this after traffic
		n      int     // at least this many series
	}
	checks := []check{
		{"ing", "signal_client_websocket_connected", nil, false, 1, 1},
		{"ing", "signal_client_ingester_leader", nil, false, 1, 1},
		{"ing", "signal_client_frames_received_total", nil, true, 52, 1},
		{"ing", "signal_client_frames_appended_total", nil, true, 52, 1},
		{"ing", "signal_client_frames_deduplicated_total", nil, false, 0, 1},
		{"ing", "signal_client_frames_quarantined_total", []string{`reason="upstream_error"`}, true, 1, 1},
		{"ing", "signal_client_frames_dropped_total", nil, false, 0, 1},
		{"ing", "signal_client_ingest_append_duration_seconds_count", nil, true, 1, 1},
		{"ing", "signal_client_quarantine_depth", nil, true, 1, 1},
		{"ing", "signal_client_trimmed_entries_total", nil, false, 0, 5},
		{"ing", "signal_client_build_info", []string{`component="ingester"`}, false, 1, 1},
		{"ing", "go_goroutines", nil, false, 1, 1},
		{"ing", "process_cpu_seconds_total", nil, false, 0, 1},
		{"w", "signal_client_messages_handled_total", nil, true, 51, 1},
		{"w", "signal_client_handler_duration_seconds_count", []string{`outcome="ok"`}, true, 51, 1},
		{"w", "signal_client_handler_duration_seconds_count", []string{`outcome="error"`}, true, 3, 1},
		{"w", "signal_client_e2e_latency_seconds_count", nil, true, 52, 1},
		{"w", "signal_client_heartbeat_latency_seconds_count", nil, true, 16, 16},
		{"w", "signal_client_heartbeats_processed_total", nil, true, 16, 1},
		{"w", "signal_client_shard_heartbeat_timestamp_seconds", nil, true, 0, 16},
		{"w", "signal_client_handler_retries_total", nil, true, 2, 1},
		{"w", "signal_client_dlq_moves_total", []string{`reason="handler_error"`}, true, 1, 1},
		{"w", "signal_client_dlq_depth", nil, true, 1, 16},
		{"w", "signal_client_dlq_oldest_entry_timestamp_seconds", nil, false, 1, 1},
		{"w", "signal_client_shards_owned", nil, false, 16, 1},
		{"w", "signal_client_shard_rebalances_total", nil, false, 16, 1},
		{"w", "signal_client_shard_lease_lost_total", nil, false, 0, 1},
		{"w", "signal_client_shard_lag", nil, false, 0, 16},
		{"w", "signal_client_shard_pending", nil, false, 0, 16},
		{"w", "signal_client_shard_stream_length", nil, true, 52, 16},
		{"w", "signal_client_send_requests_total", []string{`endpoint="/v2/send"`, `outcome="ok"`}, true, 51, 1},
		{"w", "signal_client_send_requests_total", []string{`endpoint="/v2/send"`, `outcome="client_error"`}, true, 3, 1},
		{"w", "signal_client_send_duration_seconds_count", []string{`endpoint="/v2/send"`}, true, 54, 1},
		{"w", "signal_client_build_info", []string{`component="worker"`}, false, 1, 1},
		{"w", "process_resident_memory_bytes", nil, false, 1, 1},
	}
	for _, c := range checks {
		before, after := ing0, ing1
		if c.p == "w" {
			before, after = w0, w1
		}
		a, n := series(after, c.name, c.labels...)
		b, _ := series(before, c.name, c.labels...)
		switch {
		case n < c.n:
			t.Errorf("%s: %s%v: %d series, want at least %d", c.p, c.name, c.labels, n, c.n)
		case a < c.min:
			t.Errorf("%s: %s%v = %v, want at least %v", c.p, c.name, c.labels, a, c.min)
		case c.moves && a <= b:
			t.Errorf("%s: %s%v did not move under traffic (%v → %v)", c.p, c.name, c.labels, b, a)
		}
	}
	for _, p := range []*Proc{ing, w} {
		body := scrape(t, p)
		problems, err := promlint.New(strings.NewReader(body)).Lint()
		if err != nil {
			t.Fatalf("%s: promlint: %v", p.Name, err)
		}
		for _, pr := range problems {
			t.Errorf("%s: promlint: %s: %s", p.Name, pr.Metric, pr.Text)
		}
		if bad := personLikeLabels(body); len(bad) > 0 {
			t.Errorf("%s: label values that look like a phone number, uuid or group id: %v", p.Name, bad)
		}
		var samplesOnly []string
		for _, l := range strings.Split(body, "\n") {
			if !strings.HasPrefix(l, "#") {
				samplesOnly = append(samplesOnly, l)
			}
		}
		for _, id := range []string{"+15550000040", "5550000041", "3f1c7a52", "u:", "n:+"} {
			if strings.Contains(strings.Join(samplesOnly, "\n"), id) {
				t.Errorf("%s: /metrics contains %q", p.Name, id)
			}
		}
	}
}

// A stalled shard shows through its heartbeat. Each worker runs one handler
// at a time (WORKER_POOL_SIZE=1); a message whose reply upstream holds for
// 4 s keeps that slot busy, so the heartbeats of every shard of that worker
// wait behind it: exactly what a hung handler pool looks like. While it
// lasts, the stalled worker's signal_client_shard_heartbeat_timestamp_seconds
// stop advancing (time() minus them grows past the heartbeat interval) while
// the other worker's stay fresh; afterwards the late heartbeats land in the
// high buckets of signal_client_heartbeat_latency_seconds for those shards.
// Without traffic on the other shards, only the heartbeat shows the stall.
func TestStalledShardVisibleThroughHeartbeat(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	extra := map[string]string{"HEARTBEAT_INTERVAL": "200ms", "WORKER_POOL_SIZE": "1"}
	ing := e.start("ingester", "ing", extra)
	ing.WaitReady(t, 20*time.Second)
	a := e.start("worker", "wa", extra)
	a.WaitReady(t, 20*time.Second)
	b := e.start("worker", "wb", extra)
	b.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	Eventually(t, 15*time.Second, func() bool { return ownedTotal([]*Proc{a}) == 8 && ownedTotal([]*Proc{b}) == 8 }, "8/8")

	// A conversation in one of a's shards.
	owned := func(p *Proc) map[int]bool {
		_, body := p.Ready()
		out := map[int]bool{}
		for _, s := range asSlice(body["shards_owned"]) {
			out[int(s.(float64))] = true
		}
		return out
	}
	aShards := owned(a)
	conv := -1
	for c := 100; c < 1000 && conv < 0; c++ {
		if aShards[streams.ShardOf(fmt.Sprintf("u:3f1c7a52-8e0b-4d1e-9a52-%012d", c), 16)] {
			conv = c
		}
	}
	stuck := streams.ShardOf(fmt.Sprintf("u:3f1c7a52-8e0b-4d1e-9a52-%012d", conv), 16)

	ages := func(p *Proc) map[string]float64 {
		m, err := p.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		now := float64(time.Now().UnixMilli()) / 1000
		out := map[string]float64{}
		for k, v := range m {
			if strings.HasPrefix(k, "signal_client_shard_heartbeat_timestamp_seconds{") {
				out[k[len("signal_client_shard_heartbeat_timestamp_seconds"):]] = now - v
			}
		}
		return out
	}
	fresh := func(p *Proc, limit float64) bool {
		as := ages(p)
		if len(as) != 8 {
			return false
		}
		for _, v := range as {
			if v > limit {
				return false
			}
		}
		return true
	}
	Eventually(t, 10*time.Second, func() bool { return fresh(a, 1) && fresh(b, 1) }, "fresh heartbeats everywhere")

	e.Emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Recipient: fmt.Sprintf("+1555%07d", conv), Latency: 4 * time.Second})
	sent := time.Now()
	e.Emu.Inject(Account, echoFrame(conv, 0, sent.UnixMilli()))
	time.Sleep(2500 * time.Millisecond)
	stalled, other := ages(a), ages(b)
	t.Logf("2.5 s into the stall, heartbeat age per shard: stalled worker %v; other worker %v", stalled, other)
	if len(stalled) != 8 {
		t.Fatalf("stalled worker exports %d heartbeat series", len(stalled))
	}
	for k, v := range stalled {
		if v < 2 {
			t.Errorf("stalled worker, shard %s: heartbeat only %.2fs old", k, v)
		}
	}
	for k, v := range other {
		if v > 1.5 {
			t.Errorf("healthy worker, shard %s: heartbeat %.2fs old", k, v)
		}
	}
	Eventually(t, 10*time.Second, func() bool { return countReplies(e.replies()) == 1 }, "the slow reply")
	Eventually(t, 5*time.Second, func() bool { return fresh(a, 1) }, "heartbeats resume")
	m, _ := a.Metrics()
	sh := fmt.Sprintf(`shard="%d"`, stuck)
	count, _ := series(m, "signal_client_heartbeat_latency_seconds_count", sh)
	under1s, _ := series(m, "signal_client_heartbeat_latency_seconds_bucket", sh, `le="1"`)
	t.Logf("shard %d: %v heartbeats, %v of them under 1 s", stuck, count, under1s)
	if count-under1s < 1 {
		t.Fatalf("shard %d: no heartbeat latency above 1 s recorded after a 4 s stall", stuck)
	}
	if time.Since(sent) > 15*time.Second {
		t.Fatalf("took %v", time.Since(sent))
	}
}
