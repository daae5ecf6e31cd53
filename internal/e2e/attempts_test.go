package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

// A reply upstream always refuses (4xx) makes the built-in !echo fail every
// attempt. The worker is kill -9'ed in the middle of its retries and another
// takes the shard: the attempt count lives in Redis, so the entry is parked
// after exactly 1 + DLQ_MAX_RETRIES attempts in all, counted at the emulator
// (ARCHITECTURE §7.1), while another conversation flows.
func TestPoisonCountSurvivesKill9DuringRetries(t *testing.T) {
	const retries = 3
	e := newEnv(t, redistest.Options{})
	ing := e.start("ingester", "ing", nil)
	ing.WaitReady(t, 20*time.Second)
	env := map[string]string{"DLQ_MAX_RETRIES": fmt.Sprint(retries), "RETRY_BACKOFF_BASE": "400ms", "RETRY_BACKOFF_MAX": "400ms",
		"SHARD_LEASE_TTL": "1500ms"}
	w0 := e.start("worker", "w0", env)
	w0.WaitReady(t, 20*time.Second)
	e.waitSockets(1)
	Eventually(t, 10*time.Second, func() bool { return ownedTotal([]*Proc{w0}) == 16 }, "w0 owns every shard")

	const bad, good = 11, 12
	badNumber := fmt.Sprintf("+1555%07d", bad)
	e.Emu.Faults().AddREST(emulator.RESTFault{Route: "/v2/send", Recipient: badNumber, Error: "Failed to send message: untrusted identity"})
	attempts := func() int {
		n := 0
		for _, c := range e.Emu.Calls(emulator.CallFilter{Route: "/v2/send", Status: 400}) {
			if b, ok := c.Body.(map[string]any); ok && fmt.Sprint(b["recipients"]) == "["+badNumber+"]" {
				n++
			}
		}
		return n
	}
	ts := time.Now().UnixMilli()
	e.Emu.Inject(Account, echoFrame(bad, 0, ts))
	Eventually(t, 10*time.Second, func() bool { return attempts() >= 2 }, "two failed attempts")
	w0.Kill9()
	if n := attempts(); n != 2 {
		t.Fatalf("%d attempts when w0 was killed, want 2 (backoff 400 ms)", n)
	}
	w1 := e.start("worker", "w1", env)
	w1.WaitReady(t, 20*time.Second)
	for i := 0; i < 5; i++ {
		e.Emu.Inject(Account, echoFrame(good, i, ts+int64(i)+1))
	}
	st := e.store(16)
	shard := streams.ShardOf(fmt.Sprintf("u:3f1c7a52-8e0b-4d1e-9a52-%012d", bad), 16)
	Eventually(t, 20*time.Second, func() bool {
		return st.Client().XLen(context.Background(), st.Keys().DLQ(shard)).Val() == 1
	}, "the poison entry parked")
	Eventually(t, 10*time.Second, func() bool { return len(e.replies()[good]) == 5 }, "the other conversation answered")
	time.Sleep(1500 * time.Millisecond) // a miscounted worker would try again in this time
	if n := attempts(); n != 1+retries {
		t.Fatalf("%d attempts at the emulator in all, want exactly 1 + DLQ_MAX_RETRIES = %d", n, 1+retries)
	}
	d := st.Client().XRange(context.Background(), st.Keys().DLQ(shard), "-", "+").Val()
	if d[0].Values[streams.DLQFieldAttempts] != fmt.Sprint(1+retries) {
		t.Fatalf("dlq attempts %v, want %d", d[0].Values[streams.DLQFieldAttempts], 1+retries)
	}
}
