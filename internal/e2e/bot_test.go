package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

// End-to-end tests of the bot API's runtime (internal/handlers on the bot
// package, the sender) with worker processes: the cluster-wide rate limit
// and concurrency cap measured at the emulator, !count exact across crashes
// and scaling, no repeated reply after a crash between send and ack, and the
// circuit breaker against emulator faults.

// botEnv are the worker settings of these tests; each test adds its own.
func botEnv(extra map[string]string) map[string]string {
	m := map[string]string{"WORKER_POOL_SIZE": "8", "RETRY_BACKOFF_BASE": "50ms", "RETRY_BACKOFF_MAX": "200ms", "DLQ_MAX_RETRIES": "2",
		"RATE_LIMIT": "0", "API_MAX_CONCURRENCY": "8", "API_TIMEOUT": "5s", "CIRCUIT_BREAKER_RESET_TIMEOUT": "1s"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// botFrame is a 1:1 message with text from sender conv.
func botFrame(conv int, ts int64, text string) []byte {
	num := fmt.Sprintf("+1556%07d", conv)
	uuid := fmt.Sprintf("5b0c7a52-8e0b-4d1e-9a52-%012d", conv)
	return []byte(fmt.Sprintf(`{"envelope":{"source":"%s","sourceNumber":"%s","sourceUuid":"%s","sourceName":"U","sourceDevice":1,"timestamp":%d,"serverReceivedTimestamp":%d,"serverDeliveredTimestamp":%d,"dataMessage":{"timestamp":%d,"message":%q,"expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"%s"}`,
		num, num, uuid, ts, ts, ts, ts, text, Account))
}

func botConvKey(conv int) string { return fmt.Sprintf("u:5b0c7a52-8e0b-4d1e-9a52-%012d", conv) }

func (e *Env) botInject(conv int, ts int64, text string) {
	if n := e.Emu.Inject(Account, botFrame(conv, ts, text)); n == 0 {
		e.T.Errorf("message to conversation %d reached no socket", conv)
	}
}

func (e *Env) botSends() []emulator.Call {
	return e.Emu.Calls(emulator.CallFilter{Route: "/v2/send", Status: 201})
}

func (e *Env) botWorkers(n int, env map[string]string) []*Proc {
	var ws []*Proc
	for i := 0; i < n; i++ {
		w := e.start("worker", fmt.Sprintf("w%d", i), env)
		w.WaitReady(e.T, 20*time.Second)
		ws = append(ws, w)
	}
	Eventually(e.T, 10*time.Second, func() bool {
		for _, w := range ws {
			_, body := w.Ready()
			if s, _ := body["shards_owned"].([]any); len(s) == 0 {
				return false
			}
		}
		return ownedTotal(ws) == 16
	}, "16 shards shared by %d workers", n)
	return ws
}

func TestBotRateLimitAcrossTwoWorkers(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	// 10 calls per 2s (one every 200ms) with a burst of 3, shared by both workers.
	e.botWorkers(2, botEnv(map[string]string{"RATE_LIMIT": "10", "RATE_LIMIT_PERIOD": "2s", "RATE_LIMIT_BURST": "3"}))
	e.waitSockets(1)
	base := time.Now().UnixMilli()
	const n = 36
	for i := 0; i < n; i++ {
		e.botInject(i%18, base+int64(i), fmt.Sprintf("!echo r%d", i))
	}
	Eventually(t, 25*time.Second, func() bool { return len(e.botSends()) >= n }, "%d replies", n)
	sends := e.botSends()
	if len(sends) != n {
		t.Fatalf("%d replies, want %d", len(sends), n)
	}
	worst := emulator.MaxInWindow(sends, 2*time.Second)
	half := emulator.MaxInWindow(sends, time.Second)
	span := sends[len(sends)-1].Time.Sub(sends[0].Time)
	t.Logf("RATE_LIMIT=10/2s burst 3 across 2 workers: most sends in any 2s window %d (bound 13), in any 1s window %d (bound 8); %d sends took %v",
		worst, half, n, span.Round(time.Millisecond))
	if worst > 10+3 || half > 5+3 {
		t.Fatalf("rate exceeded: %d in 2s, %d in 1s", worst, half)
	}
	// GCRA spaces calls 200ms apart after the burst: 33 × 200ms.
	if span < 33*200*time.Millisecond*9/10 {
		t.Fatalf("%d sends in %v: faster than the limit", n, span)
	}
}

func TestBotConcurrencyCapAcrossTwoWorkers(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	e.botWorkers(2, botEnv(map[string]string{"API_MAX_CONCURRENCY": "2"}))
	e.waitSockets(1)
	e.Emu.Faults().SetLatency("/v2/send", 150*time.Millisecond)
	base := time.Now().UnixMilli()
	const n = 30
	for i := 0; i < n; i++ {
		e.botInject(i, base+int64(i), fmt.Sprintf("!echo c%d", i))
	}
	Eventually(t, 25*time.Second, func() bool { return len(e.botSends()) >= n }, "%d replies", n)
	got := emulator.MaxInFlight(e.botSends())
	t.Logf("API_MAX_CONCURRENCY=2 across 2 workers with 8 handlers each and 150ms sends: at most %d sends in flight at the emulator", got)
	if got != 2 {
		t.Fatalf("%d sends in flight at once, want exactly 2 (the cap, reached)", got)
	}
}

func TestBotCountExactAcrossKillsAndScaling(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	env := botEnv(map[string]string{"API_MAX_CONCURRENCY": "16"})
	w0 := e.start("worker", "w0", env)
	w0.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	const convs, per = 10, 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		base := time.Now().UnixMilli() * 10
		tick := time.NewTicker(5 * time.Millisecond) // 200 messages/s
		defer tick.Stop()
		for s := 0; s < per; s++ {
			for c := 0; c < convs; c++ {
				<-tick.C
				e.botInject(c, base+int64(s*convs+c), "!count")
			}
		}
	}()
	time.Sleep(700 * time.Millisecond)
	w1 := e.start("worker", "w1", env)
	w2 := e.start("worker", "w2", env)
	Eventually(t, 10*time.Second, func() bool {
		return ownedTotal([]*Proc{w1}) > 0 && ownedTotal([]*Proc{w2}) > 0
	}, "1 → 3 workers")
	w1.Kill9()
	time.Sleep(500 * time.Millisecond)
	if err := w2.Term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{w0}) == 16 }, "back to 1 worker")
	w0.Kill9()
	w3 := e.start("worker", "w3", env)
	<-done
	keys, _ := streams.NewKeys("sc", Account)
	rc := e.Redis.Client()
	defer rc.Close()
	count := func(c int) int {
		k := keys.State(streams.ShardOf(botConvKey(c), 16), botConvKey(c))
		v, _ := rc.HGet(Ctx(t), k, "count").Result()
		_, js, _ := strings.Cut(v, "|")
		n, _ := strconv.Atoi(js)
		return n
	}
	Eventually(t, 30*time.Second, func() bool {
		for c := 0; c < convs; c++ {
			if count(c) < per {
				return false
			}
		}
		return true
	}, "every conversation counted to %d (w3 log:\n%s)", per, w3.Tail(20))
	time.Sleep(300 * time.Millisecond)
	// Replies: every number 1..100 answered in each conversation, none above.
	replies := map[string]map[int]int{}
	for _, call := range e.botSends() {
		body, _ := call.Body.(map[string]any)
		rs, _ := body["recipients"].([]any)
		msg, _ := body["message"].(string)
		n, err := strconv.Atoi(msg)
		if err != nil || len(rs) != 1 {
			continue
		}
		to, _ := rs[0].(string)
		if replies[to] == nil {
			replies[to] = map[int]int{}
		}
		replies[to][n]++
	}
	dups := 0
	for c := 0; c < convs; c++ {
		if got := count(c); got != per {
			t.Fatalf("conversation %d counted %d, want exactly %d", c, got, per)
		}
		r := replies[fmt.Sprintf("+1556%07d", c)]
		for i := 1; i <= per; i++ {
			if r[i] == 0 {
				t.Fatalf("conversation %d: no reply %d", c, i)
			}
			dups += r[i] - 1
		}
		if len(r) != per {
			t.Fatalf("conversation %d: replies %v beyond 1..%d", c, r, per)
		}
	}
	t.Logf("!count × %d across 1 → 3 → 1 workers, one kill -9 of an extra worker and one of the last worker: every count exact (state committed with the ack); %d replies sent twice (sends in flight at a kill: upstream had them, the sent record was not written yet)", convs*per, dups)
	// Only sends in flight at a kill can repeat: at most WORKER_POOL_SIZE per kill.
	if dups > 2*8 {
		t.Fatalf("%d repeated replies exceed 2 kills × WORKER_POOL_SIZE 8", dups)
	}
}

func TestBotNoRepeatAfterKillBeforeAck(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	env := botEnv(map[string]string{"SIGNAL_CLIENT_TEST_COMMANDS": "1"})
	w0 := e.start("worker", "w0", env)
	w0.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	base := time.Now().UnixMilli()
	// Three conversations send, then sleep 2.5s before their acknowledgement.
	for c := 0; c < 3; c++ {
		e.botInject(c, base+int64(c), fmt.Sprintf("!sendsleep 2500 once-%d", c))
	}
	ctx := Ctx(t)
	if _, err := e.Emu.WaitCalls(ctx, 3, emulator.CallFilter{Route: "/v2/send", Status: 201}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the sent records are written right after the answers
	w0.Kill9()
	w1 := e.start("worker", "w1", env)
	w1.WaitReady(t, 20*time.Second)
	keys, _ := streams.NewKeys("sc", Account)
	rc := e.Redis.Client()
	defer rc.Close()
	state := func(c int) string {
		k := keys.State(streams.ShardOf(botConvKey(c), 16), botConvKey(c))
		v, _ := rc.HGet(ctx, k, "sendsleep").Result()
		return v
	}
	pending := func() int64 {
		var n int64
		for s := 0; s < 16; s++ {
			p, _ := rc.XPending(ctx, keys.Stream(s), streams.GroupName).Result()
			if p != nil {
				n += p.Count
			}
		}
		return n
	}
	Eventually(t, 20*time.Second, func() bool {
		return state(0) != "" && state(1) != "" && state(2) != "" && pending() == 0
	}, "the retried messages handled and acknowledged (w1 log:\n%s)", w1.Tail(20))
	sends := e.botSends()
	if len(sends) != 3 {
		t.Fatalf("%d sends at the emulator, want 3: a reply confirmed before the crash was sent again", len(sends))
	}
	for c := 0; c < 3; c++ {
		if v := state(c); v != "0|1" {
			t.Fatalf("conversation %d: sendsleep state %q, want one increment", c, v)
		}
	}
	m, _ := w1.Metrics()
	t.Logf("kill -9 after 3 confirmed sends, before their ack: the next worker re-ran the handlers, skipped the 3 sends (records), applied each state write once; emulator saw %d sends; worker handled %v", len(sends), m["signal_client_messages_handled_total"])
}

func TestBotBreakerOpensHalfOpensCloses(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	w := e.start("worker", "w0", botEnv(map[string]string{"CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3", "CIRCUIT_BREAKER_RESET_TIMEOUT": "1s",
		"CIRCUIT_BREAKER_MIN_REQUESTS_FOR_RATE_CALC": "1000"}))
	w.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	outage := e.Emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Status: 503})
	start := time.Now()
	base := start.UnixMilli()
	for c := 0; c < 6; c++ {
		e.botInject(c, base+int64(c), fmt.Sprintf("!echo b%d", c))
	}
	time.Sleep(3500 * time.Millisecond)
	during := e.Emu.Calls(emulator.CallFilter{Route: "/v2/send"})
	e.Emu.Faults().RemoveREST(outage)
	healed := time.Now()
	Eventually(t, 20*time.Second, func() bool { return len(e.botSends()) >= 6 }, "every message answered after the outage")
	recovered := time.Since(healed)
	// Closed: the third failure opens it (calls admitted before that, up to
	// one per conversation, may still arrive). Open: nothing for 1s.
	// Half-open: one trial per reset timeout, each failing and reopening.
	if len(during) < 4 {
		t.Fatalf("only %d sends reached the emulator during the outage", len(during))
	}
	for i, c := range during {
		if c.Status != 503 {
			t.Fatalf("call %d answered %d during the outage", i, c.Status)
		}
	}
	tripped := during[2].Time.Add(during[2].Duration)
	var trials []emulator.Call
	early := 0
	for _, c := range during {
		if c.Time.Before(tripped.Add(100 * time.Millisecond)) {
			early++
		} else {
			trials = append(trials, c)
		}
	}
	if early > 6 {
		t.Fatalf("%d calls right after the breaker opened; at most the 6 conversations' in-flight calls may arrive", early)
	}
	prev := tripped
	for i, c := range trials {
		if gap := c.Time.Sub(prev); gap < 900*time.Millisecond {
			t.Fatalf("trial %d came %v after the previous failure: the open breaker let a call through (or admitted two trials)", i, gap)
		}
		prev = c.Time.Add(c.Duration)
	}
	if len(trials) == 0 || len(trials) > 4 {
		t.Fatalf("%d half-open trials in a 3.5s outage with a 1s reset timeout", len(trials))
	}
	keys, _ := streams.NewKeys("sc", Account)
	rc := e.Redis.Client()
	defer rc.Close()
	for s := 0; s < 16; s++ {
		if l := rc.XLen(Ctx(t), keys.DLQ(s)).Val(); l != 0 {
			t.Fatalf("shard %d parked %d entries during the outage", s, l)
		}
	}
	t.Logf("breaker threshold 3, reset 1s: in a 3.5s outage %d sends reached the emulator before it opened, then %d half-open trials ≥ 1s apart; all 6 messages answered %v after the outage ended; nothing parked",
		early, len(trials), recovered.Round(10*time.Millisecond))
	if recovered > 5*time.Second {
		t.Fatalf("recovery took %v after the outage; the breaker should close at the next trial (1s)", recovered)
	}
}
