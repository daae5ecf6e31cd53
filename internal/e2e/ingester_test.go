package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/signal"
	"github.com/signal-client/signal-client/internal/streams"
)

// streamEntry is one appended frame, as read back from Redis.
type streamEntry struct {
	id    string
	conv  string
	ident string // sender/device/timestamp/kind
	ts    int64
}

func (e *Env) readStreams(shards int) []streamEntry {
	keys, _ := streams.NewKeys("sc", Account)
	c := e.Redis.Client()
	defer c.Close()
	var out []streamEntry
	for n := 0; n < shards; n++ {
		msgs, err := c.XRange(context.Background(), keys.Stream(n), "-", "+").Result()
		if err != nil {
			e.T.Fatal(err)
		}
		for _, m := range msgs {
			en, err := streams.ParseEntry(m)
			if err != nil {
				e.T.Fatal(err)
			}
			if en.Kind == streams.KindHeartbeat {
				continue
			}
			f, err := signal.Decode(en.Payload)
			if err != nil {
				e.T.Fatalf("entry %s does not decode: %v", m.ID, err)
			}
			id, _ := f.Identity()
			out = append(out, streamEntry{id: m.ID, conv: en.Conversation, ident: identOf(id.Sender, id.Device, id.Timestamp, string(id.Kind)), ts: id.Timestamp})
		}
	}
	return out
}

func identOf(sender string, device int64, ts int64, kind string) string {
	return fmt.Sprintf("%s/%d/%d/%s", sender, device, ts, kind)
}

// convKey maps the emulator's conversation to ours ("g:"/"u:" prefixes).
func convKey(em emulator.Emitted) string {
	if em.ConversationType == "group" {
		return "g:" + em.Conversation
	}
	return "u:" + em.Conversation
}

// checkExactlyOnceInOrder compares what the emulator delivered with what the
// streams hold: every delivered event once, each conversation in emit order.
func checkExactlyOnceInOrder(t *testing.T, emitted []emulator.Emitted, got []streamEntry) {
	t.Helper()
	if n, late := checkExactlyOnce(t, emitted, got); n > 0 {
		t.Fatalf("%d entries landed after newer ones of their conversation (up to %v late)", n, late)
	}
}

// checkExactlyOnce asserts every delivered event is in the streams exactly
// once and returns how many entries landed after a newer entry of the same
// conversation, and by how much at most (stream id time difference).
func checkExactlyOnce(t *testing.T, emitted []emulator.Emitted, got []streamEntry) (outOfOrder int, maxLate time.Duration) {
	t.Helper()
	count := map[string]int{}
	byTS := map[string]streamEntry{}
	for _, g := range got {
		k := fmt.Sprintf("%s/%d", g.ident[:strings.IndexByte(g.ident, '/')], g.ts)
		count[g.ident]++
		byTS[k] = g
	}
	dups := 0
	for id, n := range count {
		if n > 1 {
			dups += n - 1
			t.Errorf("duplicate in streams: %s ×%d", id, n)
		}
	}
	lost := 0
	perConv := map[string][]streamEntry{}
	delivered := 0
	for _, em := range emitted {
		if em.Sockets == 0 {
			continue // nobody connected: upstream itself loses it
		}
		delivered++
		k := fmt.Sprintf("%s/%d", em.Sender, em.Timestamp)
		g, ok := byTS[k]
		if !ok {
			lost++
			continue
		}
		perConv[g.conv] = append(perConv[g.conv], g)
	}
	if lost > 0 || dups > 0 {
		t.Fatalf("%d of %d delivered events lost, %d duplicated", lost, delivered, dups)
	}
	for _, list := range perConv {
		maxSeen := ""
		for _, g := range list {
			if maxSeen != "" && streamIDLess(g.id, maxSeen) {
				outOfOrder++
				if d := time.Duration(idMillis(maxSeen)-idMillis(g.id)) * time.Millisecond; d > maxLate {
					maxLate = d
				}
				continue
			}
			maxSeen = g.id
		}
	}
	t.Logf("%d delivered events, all appended exactly once; %d landed after newer ones (max %v)", delivered, outOfOrder, maxLate)
	return outOfOrder, maxLate
}

func idMillis(id string) int64 {
	var ms int64
	fmt.Sscanf(id, "%d-", &ms)
	return ms
}

func streamIDLess(a, b string) bool {
	var am, as, bm, bs uint64
	fmt.Sscanf(a, "%d-%d", &am, &as)
	fmt.Sscanf(b, "%d-%d", &bm, &bs)
	return am < bm || (am == bm && as < bs)
}

func leaderOf(procs ...*Proc) *Proc {
	for _, p := range procs {
		if ok, body := p.Ready(); ok && body["role"] == "leader" {
			return p
		}
	}
	return nil
}

// genConfig: 100 events/s over 50 conversations, only chat-ish kinds so every
// event has an identity and a conversation.
func genConfig(count int) emulator.GeneratorConfig {
	return emulator.GeneratorConfig{Direct: 20, Hidden: 15, Groups: 15, Rate: 100, Burst: 5, Count: count, Seed: 7,
		Weights: map[emulator.EventKind]int{"text": 6, "command": 2, "reaction": 1, "edit": 1}}
}

func TestIngesterFailoverLosesNothing(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	a := e.start("ingester", "ing-a", nil)
	a.WaitReady(t, 20*time.Second)
	b := e.start("ingester", "ing-b", nil)
	b.WaitReady(t, 20*time.Second)
	e.waitSockets(2)
	lead := leaderOf(a, b)
	if lead == nil {
		t.Fatal("no leader")
	}
	standby := a
	if lead == a {
		standby = b
	}
	gen, err := e.Emu.StartGenerator(genConfig(600))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	killed := time.Now()
	lead.Kill9()
	Eventually(t, 4*time.Second, func() bool { ok, body := standby.Ready(); return ok && body["role"] == "leader" }, "standby leads after the leader's kill -9")
	took := time.Since(killed)
	if err := gen.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // last repairs
	checkExactlyOnceInOrder(t, gen.Emitted(), e.readStreams(16))
	t.Logf("standby led %v after the kill (LOCK_TTL_SECONDS=2)", took.Round(10*time.Millisecond))
	if took > 2*time.Second+500*time.Millisecond {
		t.Fatalf("takeover took %v, more than LOCK_TTL_SECONDS", took)
	}
}

func TestBusyDropOnLeaderRepairedByStandby(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	a := e.start("ingester", "ing-a", nil)
	a.WaitReady(t, 20*time.Second)
	b := e.start("ingester", "ing-b", nil)
	b.WaitReady(t, 20*time.Second)
	e.waitSockets(2)
	lead := leaderOf(a, b)
	standby := a
	if lead == a {
		standby = b
	}
	e.Emu.Faults().AddSocket(emulator.SocketFault{SocketSelector: emulator.SocketSelector{ClientID: lead.Name}, DropEvery: 7})
	gen, err := e.Emu.StartGenerator(genConfig(300))
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	got := e.readStreams(16)
	count := map[string]int{}
	for _, g := range got {
		count[g.ident]++
	}
	delivered := 0
	for _, em := range gen.Emitted() {
		if em.Sockets > 0 {
			delivered++
		}
	}
	if len(got) != delivered || len(count) != delivered {
		t.Fatalf("streams hold %d entries (%d distinct) for %d delivered events", len(got), len(count), delivered)
	}
	m, err := standby.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if rep := m["signal_client_frames_repaired_total"]; rep < float64(300/7-2) {
		t.Fatalf("standby repaired %v frames, want about %d (every 7th dropped on the leader)", rep, 300/7)
	}
	t.Logf("leader dropped every 7th frame; standby repaired %v within REPAIR_DELAY", m["signal_client_frames_repaired_total"])
}

func TestRedisOutageWithSpoolAndIngesterCrash(t *testing.T) {
	e := newEnv(t, redistest.Options{AOF: true})
	spoolA, spoolB := t.TempDir(), t.TempDir()
	extraA := map[string]string{"DURABLE_QUEUE_ENABLED": "true", "SPOOL_DIR": spoolA, "QUEUE_SIZE": "50"}
	extraB := map[string]string{"DURABLE_QUEUE_ENABLED": "true", "SPOOL_DIR": spoolB, "QUEUE_SIZE": "50"}
	a := e.start("ingester", "ing-a", extraA)
	a.WaitReady(t, 20*time.Second)
	b := e.start("ingester", "ing-b", extraB)
	b.WaitReady(t, 20*time.Second)
	e.waitSockets(2)
	gen, err := e.Emu.StartGenerator(genConfig(500))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	e.Redis.Kill()
	time.Sleep(1500 * time.Millisecond)
	// An ingester crashes during the outage and comes back with its spool.
	a.Kill9()
	a2 := e.start("ingester", "ing-a2", extraA)
	time.Sleep(500 * time.Millisecond)
	if err := e.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := gen.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	a2.WaitReady(t, 20*time.Second)
	time.Sleep(2 * time.Second)
	// Frames only the crashed replica's peer saw are repairs here: they may
	// land after newer ones, by at most the other replica's replay
	// (ARCHITECTURE §5.4, §5.6).
	n, late := checkExactlyOnce(t, deliveredToAny(gen.Emitted()), e.readStreams(16))
	if late > 5*time.Second {
		t.Fatalf("%d entries out of order by up to %v", n, late)
	}
	_ = b
}

// deliveredToAny keeps the events at least one socket received.
func deliveredToAny(em []emulator.Emitted) []emulator.Emitted {
	var out []emulator.Emitted
	for _, x := range em {
		if x.Sockets > 0 {
			out = append(out, x)
		}
	}
	return out
}

func TestRedisOutageWithoutSpoolCountsLoss(t *testing.T) {
	e := newEnv(t, redistest.Options{AOF: true})
	a := e.start("ingester", "ing-a", map[string]string{"QUEUE_SIZE": "40"})
	a.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	e.Redis.Kill()
	gen, err := e.Emu.StartGenerator(genConfig(200))
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The generator is done; the ingester may still be taking the last frames.
	var dropped float64
	Eventually(t, 5*time.Second, func() bool {
		m, err := a.Metrics()
		if err != nil {
			return false
		}
		dropped = m[`signal_client_frames_dropped_total{reason="queue_full"}`]
		return m["signal_client_frames_received_total"] == 200
	}, "the ingester received every frame")
	if err := e.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	got := e.readStreams(16)
	if int(dropped) != 200-len(got) || len(got) > 40 {
		t.Fatalf("streams hold %d of 200, dropped counter %v: the loss must be counted exactly (queue of 40 kept)", len(got), dropped)
	}
	t.Logf("spool off: %d frames kept in memory and appended after the outage, %v dropped and counted", len(got), dropped)
}

func TestShardCountMismatchRefused(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	a := e.start("ingester", "ing-a", nil)
	a.WaitReady(t, 20*time.Second)
	b := e.start("ingester", "ing-b", map[string]string{"WORKER_SHARD_COUNT": "32"})
	Eventually(t, 20*time.Second, b.Exited, "a mismatched ingester exits")
	log := b.Tail(5)
	for _, want := range []string{"WORKER_SHARD_COUNT=32", "created with 16 shards", "dlqctl shards set 32 --yes"} {
		if !strings.Contains(log, want) {
			t.Fatalf("refusal lacks %q:\n%s", want, log)
		}
	}
}

func TestIngesterSIGTERMHandsOverAtOnce(t *testing.T) {
	e := newEnv(t, redistest.Options{})
	extra := map[string]string{"LOCK_TTL_SECONDS": "6"}
	a := e.start("ingester", "ing-a", extra)
	a.WaitReady(t, 20*time.Second)
	b := e.start("ingester", "ing-b", extra)
	b.WaitReady(t, 20*time.Second)
	e.waitSockets(2)
	lead := leaderOf(a, b)
	standby := a
	if lead == a {
		standby = b
	}
	gen, err := e.Emu.StartGenerator(genConfig(300))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	stopped := time.Now()
	if err := lead.Term(6 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v (want exit 0 within SHUTDOWN_TIMEOUT)", err)
	}
	exitTook := time.Since(stopped)
	Eventually(t, 5*time.Second, func() bool { ok, body := standby.Ready(); return ok && body["role"] == "leader" }, "standby leads")
	took := time.Since(stopped)
	if err := gen.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	checkExactlyOnceInOrder(t, gen.Emitted(), e.readStreams(16))
	t.Logf("SIGTERM: leader exited 0 after %v; standby led after %v (LOCK_TTL_SECONDS=6: the lock was released, not left to expire)", exitTook.Round(time.Millisecond), took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Fatalf("takeover after %v: the lock was not released on SIGTERM", took)
	}
}
