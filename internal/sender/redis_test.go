package sender

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/signal/rest"
)

// After Redis forgot its scripts the pipelined calls load them and go on,
// and a keyed call is still made once.
func TestPipelinedCallsSurviveScriptFlush(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, Config{MaxConcurrency: 2}, 5*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	key := Key{Shard: 1, Original: "1700000000001-0", Seq: 1}
	if err := f.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r1, err := s.Send(ctx, key, msg("hello"))
	if err != nil || r1.Replayed {
		t.Fatalf("first send: %+v %v", r1, err)
	}
	if err := f.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r2, err := s.Send(ctx, key, msg("hello"))
	if err != nil || !r2.Replayed || r2.Timestamp != r1.Timestamp {
		t.Fatalf("repeat: %+v %v, want replayed with timestamp %d", r2, err, r1.Timestamp)
	}
	if n := len(f.sends()); n != 1 {
		t.Fatalf("emulator saw %d sends, want 1", n)
	}
	if n, err := f.store.SlotsInUse(ctx); err != nil || n != 0 {
		t.Fatalf("slots in use after the calls: %d %v", n, err)
	}
}

// A replay takes no slot for long (it is admitted with the lookup and gives
// the slot back), and is answered from its record while the breaker is open.
func TestReplaysHoldNoSlotAndPassAnOpenBreaker(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, Config{MaxConcurrency: 1, Breaker: BreakerConfig{FailureThreshold: 1, ResetTimeout: time.Hour}}, 5*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	key := Key{Shard: 3, Original: "1700000000002-0", Seq: 1}
	r1, err := s.Send(ctx, key, msg("hello"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		r, err := s.Send(ctx, key, msg("hello"))
		if err != nil || !r.Replayed || r.Timestamp != r1.Timestamp {
			t.Fatalf("replay %d: %+v %v", i, r, err)
		}
		if n, err := f.store.SlotsInUse(ctx); err != nil || n != 0 {
			t.Fatalf("slots in use after replay %d: %d %v", i, n, err)
		}
	}
	// Open the breaker.
	s.breaker(rest.EndpointSend).done(false, failure)
	if st := s.BreakerStates()[rest.EndpointSend]; st != Open {
		t.Fatalf("breaker %s, want open", st)
	}
	r, err := s.Send(ctx, key, msg("hello"))
	if err != nil || !r.Replayed {
		t.Fatalf("replay with the breaker open: %+v %v", r, err)
	}
	if _, err := s.Send(context.Background(), Key{Shard: 3, Original: key.Original, Seq: 2}, msg("new")); err == nil {
		t.Fatal("a new call went through an open breaker")
	}
	if n := len(f.sends()); n != 1 {
		t.Fatalf("emulator saw %d sends, want 1", n)
	}
}

// Calls beyond API_MAX_CONCURRENCY wait in line in the process; one whose
// deadline comes first is refused with ErrNoSlot (a replay is answered from
// its record instead), and every gate token comes back.
func TestGateQueuesCallsAndRefusesAtTheDeadline(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, Config{MaxConcurrency: 1, MinCallTime: 50 * time.Millisecond}, 5*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	key := Key{Shard: 0, Original: "1700000000003-0", Seq: 1}
	r1, err := s.Send(ctx, key, msg("recorded"))
	if err != nil {
		t.Fatal(err)
	}
	slow := f.emu.Faults().AddREST(emulator.RESTFault{Route: rest.EndpointSend, Latency: 700 * time.Millisecond, Count: 1})
	defer f.emu.Faults().RemoveREST(slow)
	done := make(chan error, 1)
	go func() { _, err := s.Send(ctx, Key{}, msg("slow")); done <- err }()
	if _, err := f.emu.WaitCalls(ctx, 2, emulator.CallFilter{Route: rest.EndpointSend}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.Send(short, Key{}, msg("queued")); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("queued call past its deadline: %v, want ErrNoSlot", err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if r, err := s.Send(short2, key, msg("recorded")); err != nil || !r.Replayed || r.Timestamp != r1.Timestamp {
		t.Fatalf("queued replay: %+v %v", r, err)
	}
	// A queued call gets the slot when the slow one ends.
	if _, err := s.Send(ctx, Key{}, msg("after")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(s.gate); n != 0 {
		t.Fatalf("%d gate tokens still held", n)
	}
	if got := emulator.MaxInFlight(f.sends()); got != 1 {
		t.Fatalf("%d calls overlapped with API_MAX_CONCURRENCY=1", got)
	}
}
