package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

// echoFrame is a 1:1 "!echo" command from sender conv (shape of reference §3.8 (a)).
func echoFrame(conv, seq int, ts int64) []byte {
	num := fmt.Sprintf("+1555%07d", conv)
	uuid := fmt.Sprintf("3f1c7a52-8e0b-4d1e-9a52-%012d", conv)
	return []byte(fmt.Sprintf(`{"envelope":{"source":"%s","sourceNumber":"%s","sourceUuid":"%s","sourceName":"U","sourceDevice":1,"timestamp":%d,"serverReceivedTimestamp":%d,"serverDeliveredTimestamp":%d,"dataMessage":{"timestamp":%d,"message":"!echo c%d m%d","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"%s"}`,
		num, num, uuid, ts, ts, ts, ts, conv, seq, Account))
}

// traffic injects convs×per echo commands at about rate per second, in
// per-conversation order; it stops early when stop closes.
type traffic struct {
	e          *Env
	convs, per int
	rate       int
	sent       int
	mu         sync.Mutex
	done       chan struct{}
}

func (e *Env) sendEchoes(convs, per, rate int) *traffic {
	tr := &traffic{e: e, convs: convs, per: per, rate: rate, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		base := time.Now().UnixMilli() * 10
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for s := 0; s < per; s++ {
			for c := 0; c < convs; c++ {
				<-tick.C
				if n := e.Emu.Inject(Account, echoFrame(c, s, base+int64(s*convs+c))); n == 0 {
					e.T.Errorf("event c%d m%d reached no socket", c, s)
				}
				tr.mu.Lock()
				tr.sent++
				tr.mu.Unlock()
			}
		}
	}()
	return tr
}

func (tr *traffic) wait() { <-tr.done }

// replies returns, per conversation, the echoed sequence numbers in the order
// the emulator received the sends.
func (e *Env) replies() map[int][]int {
	out := map[int][]int{}
	for _, c := range e.Emu.Calls(emulator.CallFilter{Route: "/v2/send", Status: 201}) {
		body, _ := c.Body.(map[string]any)
		msg, _ := body["message"].(string)
		var conv, seq int
		if _, err := fmt.Sscanf(msg, "c%d m%d", &conv, &seq); err == nil {
			out[conv] = append(out[conv], seq)
		}
	}
	return out
}

// checkReplies asserts every message answered at least once, each
// conversation in order (a crash may repeat a run it already answered), and
// returns the number of duplicates.
func checkReplies(t *testing.T, got map[int][]int, convs, per int) (dups int) {
	t.Helper()
	for c := 0; c < convs; c++ {
		next := 0
		for _, s := range got[c] {
			switch {
			case s == next:
				next++
			case s < next:
				dups++
			default:
				t.Fatalf("conversation %d: reply m%d before m%d (order broken): %v", c, s, next, got[c])
			}
		}
		if next != per {
			t.Fatalf("conversation %d: replies up to m%d of %d: %v", c, next, per, got[c])
		}
	}
	return dups
}

func countReplies(got map[int][]int) int {
	n := 0
	for _, v := range got {
		n += len(v)
	}
	return n
}

var workerEnv = map[string]string{"WORKER_POOL_SIZE": "8", "RETRY_BACKOFF_BASE": "50ms", "RETRY_BACKOFF_MAX": "200ms", "DLQ_MAX_RETRIES": "2"}

func TestThreeWorkersEachMessageOnceInOrder(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	var ws []*Proc
	for i := 0; i < 3; i++ {
		w := e.start("worker", fmt.Sprintf("w%d", i), workerEnv)
		w.WaitReady(t, 20*time.Second)
		ws = append(ws, w)
	}
	e.waitSockets(1)
	Eventually(t, 10*time.Second, func() bool { return ownedTotal(ws) == 16 }, "16 shards owned across 3 workers")
	tr := e.sendEchoes(100, 20, 1000)
	tr.wait()
	Eventually(t, 60*time.Second, func() bool { return countReplies(e.replies()) >= 2000 }, "2000 replies")
	time.Sleep(500 * time.Millisecond)
	got := e.replies()
	dups := checkReplies(t, got, 100, 20)
	// Without a lease loss nothing may be handled twice; a lease lost to a
	// starved process (a CI box under load) re-handles at most the bound.
	losses := 0.0
	for _, w := range ws {
		m, _ := w.Metrics()
		losses += m["signal_client_shard_lease_lost_total"]
	}
	if (losses == 0 && dups != 0) || dups > 8+64 {
		for _, w := range ws {
			t.Logf("%s:\n%s", w.Name, grepLog(w, `"level":"warn"`, `"level":"error"`))
		}
		t.Fatalf("%d replies with %d duplicates after %v lease losses", countReplies(got), dups, losses)
	}
	for _, w := range ws {
		_, body := w.Ready()
		t.Logf("%s owned %v", w.Name, body["shards_owned"])
	}
}

func ownedTotal(ws []*Proc) int {
	n := 0
	for _, w := range ws {
		if w.Exited() {
			continue
		}
		if _, body := w.Ready(); body != nil {
			if s, ok := body["shards_owned"].([]any); ok {
				n += len(s)
			}
		}
	}
	return n
}

func TestWorkerKill9ResumesElsewhere(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	var ws []*Proc
	for i := 0; i < 3; i++ {
		w := e.start("worker", fmt.Sprintf("w%d", i), workerEnv)
		w.WaitReady(t, 20*time.Second)
		ws = append(ws, w)
	}
	e.waitSockets(1)
	Eventually(t, 10*time.Second, func() bool { return ownedTotal(ws) == 16 }, "16 shards owned")
	tr := e.sendEchoes(50, 30, 300)
	time.Sleep(2 * time.Second)
	ws[0].Kill9()
	killed := time.Now()
	Eventually(t, 10*time.Second, func() bool { return ownedTotal(ws[1:]) == 16 }, "the survivors own all 16 shards")
	resumed := time.Since(killed)
	tr.wait()
	Eventually(t, 60*time.Second, func() bool { return countReplies(e.replies()) >= 1500 }, "every message answered")
	time.Sleep(500 * time.Millisecond)
	dups := checkReplies(t, e.replies(), 50, 30)
	t.Logf("kill -9 of one of 3 workers: shards resumed elsewhere after %v (SHARD_LEASE_TTL=1.5s); %d duplicate replies (bound: in-flight + open ack batch = WORKER_POOL_SIZE 8 + ACK_BATCH_MAX 64)", resumed.Round(10*time.Millisecond), dups)
	if dups > 8+64 {
		t.Fatalf("%d duplicates exceed the bound", dups)
	}
	if resumed > 1500*time.Millisecond+3*time.Second {
		t.Fatalf("shards resumed after %v", resumed)
	}
}

func TestScaleOneThreeOneWhileTrafficFlows(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	w0 := e.start("worker", "w0", workerEnv)
	w0.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	tr := e.sendEchoes(40, 40, 400)
	time.Sleep(time.Second)
	w1 := e.start("worker", "w1", workerEnv)
	w2 := e.start("worker", "w2", workerEnv)
	all := []*Proc{w0, w1, w2}
	Eventually(t, 10*time.Second, func() bool {
		for _, w := range all {
			_, body := w.Ready()
			if s, _ := body["shards_owned"].([]any); len(s) < 4 {
				return false
			}
		}
		return ownedTotal(all) == 16
	}, "shards rebalanced over 3 workers")
	time.Sleep(500 * time.Millisecond)
	if err := w1.Term(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if err := w2.Term(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{w0}) == 16 }, "back to one worker owning all")
	tr.wait()
	Eventually(t, 60*time.Second, func() bool { return countReplies(e.replies()) >= 1600 }, "every message answered")
	time.Sleep(500 * time.Millisecond)
	dups := checkReplies(t, e.replies(), 40, 40)
	t.Logf("1 → 3 → 1 workers under traffic: nothing lost, order kept, %d duplicates (graceful moves commit before release)", dups)
	if dups != 0 {
		t.Fatalf("%d duplicates with graceful scaling only", dups)
	}
}

func TestRESTOutageParksNothing(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	w := e.start("worker", "w0", workerEnv)
	w.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	id := e.Emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Status: 503})
	tr := e.sendEchoes(5, 4, 100)
	tr.wait()
	// The whole backoff (50ms, 100ms, 200ms with 2 retries) is far shorter than the outage.
	time.Sleep(3 * time.Second)
	e.Emu.Faults().RemoveREST(id)
	Eventually(t, 30*time.Second, func() bool { return countReplies(e.replies()) >= 20 }, "answers after the outage")
	checkReplies(t, e.replies(), 5, 4)
	keys, _ := streams.NewKeys("sc", Account)
	c := e.Redis.Client()
	defer c.Close()
	for n := 0; n < 16; n++ {
		if l := c.XLen(Ctx(t), keys.DLQ(n)).Val(); l != 0 {
			t.Fatalf("shard %d parked %d entries during a REST outage", n, l)
		}
	}
	m, _ := w.Metrics()
	t.Logf("REST outage of 3s: 0 parked; pauses without attempts: %v", m[`signal_client_pauses_total{cause="handler_infrastructure"}`])
}

func TestIdleWorkerWith256Shards(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	extra := map[string]string{"WORKER_SHARD_COUNT": "256"}
	ing := e.start("ingester", "ing", extra)
	ing.WaitReady(t, 20*time.Second)
	w := e.start("worker", "w0", extra)
	w.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	Eventually(t, 20*time.Second, func() bool { return ownedTotal([]*Proc{w}) == 256 }, "one worker owns 256 shards")
	time.Sleep(time.Second)
	before := cpuSeconds(t, w)
	time.Sleep(5 * time.Second)
	idle := (cpuSeconds(t, w) - before) / 5
	start := time.Now()
	e.Emu.Inject(Account, echoFrame(1, 0, time.Now().UnixMilli()))
	Eventually(t, 10*time.Second, func() bool { return countReplies(e.replies()) == 1 }, "reply")
	pickup := time.Since(start)
	t.Logf("256 shards, idle: %.2f%% of one core; one message answered %v after injection", idle*100, pickup.Round(time.Millisecond))
	if idle > 0.05 {
		t.Fatalf("idle worker uses %.1f%% CPU; want ≈ 0 (no polling)", idle*100)
	}
}

// cpuSeconds reads utime+stime of the process from /proc.
func cpuSeconds(t *testing.T, p *Proc) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st float64
	fmt.Sscanf(fields[11], "%g", &ut)
	fmt.Sscanf(fields[12], "%g", &st)
	return (ut + st) / 100 // USER_HZ
}

// logEvents returns (time, shard) of log lines with msg.
func logEvents(t *testing.T, p *Proc, msg string) map[int]time.Time {
	f, err := os.Open(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			TS    string  `json:"ts"`
			Msg   string  `json:"msg"`
			Shard float64 `json:"shard"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != msg {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, l.TS)
		if err != nil {
			t.Fatalf("log ts %q: %v", l.TS, err)
		}
		out[int(l.Shard)] = ts
	}
	return out
}

func TestPartitionedWorkerFencesItself(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	proxy := startProxy(t, e.Redis.Addr)
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	a := e.start("worker", "wa", map[string]string{"REDIS_URL": "redis://" + proxy.Addr() + "/0"})
	a.WaitReady(t, 20*time.Second)
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{a}) == 16 }, "a owns every shard")
	b := e.start("worker", "wb", nil)
	b.WaitReady(t, 20*time.Second)
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{a}) == 8 && ownedTotal([]*Proc{b}) == 8 }, "8/8")
	e.waitSockets(1)
	tr := e.sendEchoes(20, 30, 300)
	time.Sleep(700 * time.Millisecond)
	proxy.Cut()
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{b}) == 16 }, "b takes over every shard")
	tr.wait()
	Eventually(t, 60*time.Second, func() bool { return countReplies(e.replies()) >= 600 }, "every message answered")
	checkReplies(t, e.replies(), 20, 30)
	lost := logEvents(t, a, "shard lease lost; stopped handling it")
	acquired := logEvents(t, b, "shard acquired")
	moved := 0
	for shard, stop := range lost {
		start, ok := acquired[shard]
		if !ok {
			continue
		}
		moved++
		if !stop.Before(start) {
			t.Logf("a log:\n%s\nb log:\n%s", a.Tail(60), b.Tail(60))
			t.Fatalf("shard %d: a stopped at %v, b started at %v: both handled it at once", shard, stop, start)
		}
	}
	if moved < 8 {
		t.Fatalf("only %d shards moved from the partitioned worker (log lines: lost %d, acquired %d)", moved, len(lost), len(acquired))
	}
	t.Logf("partition: a fenced %d shards before b acquired them", moved)
}

// grepLog returns the log lines of p containing any of subs.
func grepLog(p *Proc, subs ...string) string {
	b, _ := os.ReadFile(p.LogPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
