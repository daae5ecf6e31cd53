package sender

import (
	"context"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/streams"
)

// The pipelined scripts must be internal/streams' own, byte for byte: a copy
// that drifted would change the admission or the records behind the
// streams package's back (and streams.LoadScripts would not load it).
func TestScriptsMatchStreams(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t, 5*time.Second)
	if err := streams.LoadScripts(ctx, f.client); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.ScriptExists(ctx, admitScript.Hash(), recordScript.Hash()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !got[0] || !got[1] {
		t.Fatalf("script loaded by streams.LoadScripts: admit %v, recordSent %v; copy them again from internal/streams/sender.go", got[0], got[1])
	}
}

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
