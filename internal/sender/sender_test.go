package sender

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/streams"
)

const account = emulator.DefaultAccount

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

// fixture is an emulator plus a private key prefix on the package Redis.
type fixture struct {
	emu    *emulator.Emulator
	store  *streams.Store
	client *redis.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	emu := emulator.New(emulator.Config{})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	prefix := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()) + fmt.Sprint(time.Now().UnixNano())
	keys, err := streams.NewKeys(prefix, account)
	if err != nil {
		t.Fatal(err)
	}
	store := streams.NewStore(c, keys, 4)
	if err := streams.LoadScripts(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return &fixture{emu: emu, store: store, client: c}
}

// sender builds a sender ("a process") with its own REST client.
func (f *fixture) sender(t *testing.T, cfg Config, timeout time.Duration) *Sender {
	t.Helper()
	rc, err := rest.New(rest.Options{BaseURL: f.emu.URL(), Number: account, Timeout: timeout, MaxInFlight: 64})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Instance == "" {
		cfg.Instance = t.Name()
	}
	return New(cfg, rc, f.store, Observer{}, nil)
}

func (f *fixture) sends() []emulator.Call {
	return f.emu.Calls(emulator.CallFilter{Route: rest.EndpointSend})
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func msg(text string) rest.SendRequest {
	return rest.SendRequest{Recipients: []string{"+15550000002"}, Message: text}
}

func TestKeyedSendIsSkippedWhenRecorded(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, Config{}, 5*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	key := Key{Shard: 2, Original: "1700000000000-0", Seq: 1}
	r1, err := s.Send(ctx, key, msg("hello"))
	if err != nil || r1.Replayed || r1.Timestamp == 0 {
		t.Fatalf("first send: %+v %v", r1, err)
	}
	// A retried handling makes the same call again.
	r2, err := s.Send(ctx, key, msg("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Replayed || r2.Timestamp != r1.Timestamp {
		t.Fatalf("repeat: %+v, want replayed with timestamp %d", r2, r1.Timestamp)
	}
	// The next call of the same handling is a different call.
	r3, err := s.Send(ctx, Key{Shard: 2, Original: key.Original, Seq: 2}, msg("second"))
	if err != nil || r3.Replayed {
		t.Fatalf("seq 2: %+v %v", r3, err)
	}
	if n := len(f.sends()); n != 2 {
		t.Fatalf("emulator saw %d sends, want 2", n)
	}
	if got := s.Stats().Replayed.Load(); got != 1 {
		t.Fatalf("replayed counter %d", got)
	}
	// Unkeyed calls are never skipped.
	for i := 0; i < 2; i++ {
		if _, err := s.Send(ctx, Key{}, msg("unkeyed")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.sends()); n != 4 {
		t.Fatalf("emulator saw %d sends, want 4", n)
	}
}

func TestUnknownOutcomePolicy(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		resend bool
	}{{Skip, false}, {Resend, true}} {
		t.Run(string(tc.policy), func(t *testing.T) {
			f := newFixture(t)
			s := f.sender(t, Config{Unknown: tc.policy}, 300*time.Millisecond)
			ctx := ctxFor(t, 10*time.Second)
			hang := f.emu.Faults().HangSends(1)
			defer f.emu.Faults().RemoveREST(hang)
			key := Key{Shard: 0, Original: "5-0", Seq: 1}
			_, err := s.Send(ctx, key, msg("maybe"))
			if !errors.Is(err, rest.ErrUnknownOutcome) {
				t.Fatalf("hung send: %v, want ErrUnknownOutcome", err)
			}
			if _, infra := s.PauseFor(err); !infra {
				t.Fatal("an unknown outcome must not count against the message")
			}
			if v, ok, _ := f.store.SentRecord(ctx, 0, "5-0", 1); !ok || v != "u" {
				t.Fatalf("record %q %v, want u", v, ok)
			}
			r, err := s.Send(ctx, key, msg("maybe"))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(f.sends()); (got == 2) != tc.resend {
				t.Fatalf("policy %s: emulator saw %d sends", tc.policy, got)
			}
			if tc.resend && (r.Replayed || r.Timestamp == 0) {
				t.Fatalf("resend result %+v", r)
			}
			if !tc.resend && (!r.Unknown || !r.Replayed || r.Timestamp != 0) {
				t.Fatalf("skip result %+v", r)
			}
		})
	}
}

func TestBreakerOpensHalfOpensCloses(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, Config{Breaker: BreakerConfig{FailureThreshold: 3, ResetTimeout: 300 * time.Millisecond, FailureRate: 2, MinRequests: 100}}, 2*time.Second)
	var changes []string
	var mu sync.Mutex
	s.obs.Breaker = func(ep string, from, to State) {
		mu.Lock()
		changes = append(changes, fmt.Sprintf("%s:%s>%s", ep, from, to))
		mu.Unlock()
	}
	ctx := ctxFor(t, 20*time.Second)
	react := func() error {
		_, err := s.React(ctx, Key{}, rest.Reaction{Recipient: "+15550000002", Reaction: "👍", TargetAuthor: "+15550000002", Timestamp: 1})
		return err
	}
	calls := func() int { return len(f.emu.Calls(emulator.CallFilter{Route: rest.EndpointReactions})) }
	// 4xx answers never trip it.
	bad := f.emu.Faults().AddREST(emulator.RESTFault{Route: rest.EndpointReactions, Error: "Failed to send message"})
	for i := 0; i < 5; i++ {
		var api *rest.APIError
		if err := react(); !errors.As(err, &api) || api.Status != 400 {
			t.Fatalf("400 expected, got %v", err)
		}
	}
	f.emu.Faults().RemoveREST(bad)
	if st := s.BreakerStates()[rest.EndpointReactions]; st != Closed {
		t.Fatalf("after 5 × 400: %s", st)
	}
	down := f.emu.Faults().FailNext(rest.EndpointReactions, 503, 0)
	for i := 0; i < 3; i++ {
		err := react()
		var api *rest.APIError
		if !errors.As(err, &api) || api.Status != 503 {
			t.Fatalf("503 not reported: %v", err)
		}
		// The failure that opens the breaker says to wait for the next trial.
		wait, infra := s.PauseFor(err)
		if !infra || (i < 2 && wait != 0) || (i == 2 && (wait <= 0 || wait > 300*time.Millisecond)) {
			t.Fatalf("failure %d: PauseFor = %v %v", i+1, wait, infra)
		}
	}
	if calls() != 8 {
		t.Fatalf("%d calls reached the emulator, want 8", calls())
	}
	err := react()
	if !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("4th failure-time call: %v, want ErrBreakerOpen", err)
	}
	if wait, infra := s.PauseFor(err); !infra || wait <= 0 || wait > 300*time.Millisecond {
		t.Fatalf("PauseFor(open) = %v %v", wait, infra)
	}
	if calls() != 8 {
		t.Fatal("an open breaker let a call through")
	}
	time.Sleep(320 * time.Millisecond)
	// Half-open: one trial; it fails → open again.
	if err := react(); err == nil || errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("trial: %v", err)
	}
	if calls() != 9 || s.BreakerStates()[rest.EndpointReactions] != Open {
		t.Fatalf("failed trial: %d calls, state %s", calls(), s.BreakerStates()[rest.EndpointReactions])
	}
	f.emu.Faults().RemoveREST(down)
	time.Sleep(320 * time.Millisecond)
	// One trial at a time: hold the trial with latency and race a second call.
	slow := f.emu.Faults().SetLatency(rest.EndpointReactions, 200*time.Millisecond)
	var trialErr error
	done := make(chan struct{})
	go func() { trialErr = react(); close(done) }()
	time.Sleep(50 * time.Millisecond)
	if err := react(); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("second call during the trial: %v, want ErrBreakerOpen", err)
	}
	<-done
	f.emu.Faults().RemoveREST(slow)
	if trialErr != nil {
		t.Fatal(trialErr)
	}
	if st := s.BreakerStates()[rest.EndpointReactions]; st != Closed {
		t.Fatalf("after a good trial: %s", st)
	}
	if err := react(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	ep := rest.EndpointReactions
	want := []string{ep + ":closed>open", ep + ":open>half_open", ep + ":half_open>open", ep + ":open>half_open", ep + ":half_open>closed"}
	if strings.Join(changes, " ") != strings.Join(want, " ") {
		t.Fatalf("transitions %v, want %v", changes, want)
	}
}

func TestBreakerFailureRate(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBreaker(BreakerConfig{FailureThreshold: 100, ResetTimeout: time.Second, FailureRate: 0.75, MinRequests: 4}, func() time.Time { return now }, nil)
	// The window holds the last 4 counted verdicts (neutral ones are not counted).
	for i, v := range []verdict{failure, success, failure, neutral, success, failure} {
		b.done(false, v)
		if b.current() != Closed {
			t.Fatalf("opened after verdict %d", i)
		}
	}
	// The ring is f s f s (2 of 4 failed); one more failure replaces an s: 3 of 4.
	b.done(false, failure)
	if b.current() != Open {
		t.Fatalf("3 of the last 4 failed: state %s", b.current())
	}
	if ok, _, wait := b.allow(); ok || wait != time.Second {
		t.Fatalf("open allow: %v %v", ok, wait)
	}
	now = now.Add(time.Second)
	ok, trial, _ := b.allow()
	if !ok || !trial {
		t.Fatal("no trial after the reset timeout")
	}
	b.done(true, neutral) // a trial that said nothing lets the next caller try
	if ok, trial, _ := b.allow(); !ok || !trial {
		t.Fatal("no new trial after a neutral one")
	}
	b.done(true, success)
	if b.current() != Closed {
		t.Fatal("not closed after a good trial")
	}
	// Counters were reset: three failures in a row at the old ratio would not reopen with 4 needed.
	b.done(false, failure)
	if b.current() != Closed {
		t.Fatal("old failures were kept across the reset")
	}
}

func TestRetriesOnlyForIdempotentCalls(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, Config{Retries: 2, RetryBase: 10 * time.Millisecond}, 2*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	f.emu.Faults().FailNext(rest.EndpointTyping, 502, 2)
	if err := s.Typing(ctx, "+15550000002", true); err != nil {
		t.Fatalf("typing after 2 × 502: %v", err)
	}
	if n := len(f.emu.Calls(emulator.CallFilter{Route: rest.EndpointTyping})); n != 3 {
		t.Fatalf("typing reached the emulator %d times, want 3", n)
	}
	f.emu.Faults().FailNext(rest.EndpointSend, 502, 1)
	_, err := s.Send(ctx, Key{}, msg("x"))
	var api *rest.APIError
	if !errors.As(err, &api) || api.Status != 502 {
		t.Fatalf("send: %v", err)
	}
	if _, infra := s.PauseFor(err); !infra {
		t.Fatal("a 502 must be infrastructure")
	}
	if n := len(f.sends()); n != 1 {
		t.Fatalf("a failed send was retried: %d calls", n)
	}
}

func TestRateLimit429PausesEveryProcess(t *testing.T) {
	f := newFixture(t)
	a := f.sender(t, Config{Instance: "a", Pause429: 400 * time.Millisecond}, 2*time.Second)
	b := f.sender(t, Config{Instance: "b", Pause429: 400 * time.Millisecond}, 2*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	f.emu.Faults().RateLimitSend([]string{"tok-1"}, 1)
	_, err := a.Send(ctx, Key{}, msg("x"))
	var rl *rest.RateLimitError
	if !errors.As(err, &rl) || len(rl.ChallengeTokens) != 1 || rl.ChallengeTokens[0] != "tok-1" {
		t.Fatalf("429: %v", err)
	}
	if d, infra := a.PauseFor(err); !infra || d != 400*time.Millisecond {
		t.Fatalf("PauseFor(429) = %v %v", d, infra)
	}
	_, err = b.Send(ctx, Key{}, msg("y"))
	if !errors.Is(err, ErrPaused) {
		t.Fatalf("other process during the pause: %v", err)
	}
	if d, infra := b.PauseFor(err); !infra || d <= 0 || d > 400*time.Millisecond {
		t.Fatalf("PauseFor(paused) = %v %v", d, infra)
	}
	if n := len(f.sends()); n != 1 {
		t.Fatalf("%d sends reached the emulator during the pause", n)
	}
	time.Sleep(450 * time.Millisecond)
	if _, err := b.Send(ctx, Key{}, msg("z")); err != nil {
		t.Fatal(err)
	}
	if st := a.BreakerStates()[rest.EndpointSend]; st != Closed {
		t.Fatalf("a 429 moved the breaker to %s", st)
	}
}

func TestRateLimitSharedByTwoProcesses(t *testing.T) {
	f := newFixture(t)
	cfg := Config{RateLimit: 20, RatePeriod: time.Second, RateBurst: 3}
	ps := []*Sender{f.sender(t, cfg, 2*time.Second), f.sender(t, cfg, 2*time.Second)}
	ctx := ctxFor(t, 20*time.Second)
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range ps {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 4; i++ {
					if _, err := p.Send(ctx, Key{}, msg("r")); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	calls := f.sends()
	if len(calls) != 32 {
		t.Fatalf("%d sends", len(calls))
	}
	// 32 calls at 20/s with a burst of 3 take at least (32-3)/20 s.
	if el := time.Since(start); el < 1400*time.Millisecond {
		t.Fatalf("32 calls took %v: the two processes did not share the limit", el)
	}
	if got := emulator.MaxInWindow(calls, time.Second); got > 20+3 {
		t.Fatalf("%d calls in one RATE_LIMIT_PERIOD, limit 20 + burst 3", got)
	}
	if got := emulator.MaxInWindow(calls, 500*time.Millisecond); got > 10+3 {
		t.Fatalf("%d calls in half a period, limit 10 + burst 3", got)
	}
}

func TestConcurrencyCapSharedByTwoProcesses(t *testing.T) {
	f := newFixture(t)
	cfg := Config{MaxConcurrency: 2}
	ps := []*Sender{f.sender(t, cfg, 2*time.Second), f.sender(t, cfg, 2*time.Second)}
	f.emu.Faults().SetLatency(rest.EndpointSend, 60*time.Millisecond)
	ctx := ctxFor(t, 20*time.Second)
	var wg sync.WaitGroup
	for _, p := range ps {
		for g := 0; g < 5; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 3; i++ {
					if _, err := p.Send(ctx, Key{}, msg("c")); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	calls := f.sends()
	if len(calls) != 30 {
		t.Fatalf("%d sends", len(calls))
	}
	if got := emulator.MaxInFlight(calls); got != 2 {
		t.Fatalf("%d calls in flight at once at the emulator, want exactly API_MAX_CONCURRENCY=2", got)
	}
	if n, _ := f.store.SlotsInUse(ctx); n != 0 {
		t.Fatalf("%d slots still held", n)
	}
}

func TestSlotsOfLongCallsAreKeptAndCrashedOnesFree(t *testing.T) {
	f := newFixture(t)
	cfg := Config{MaxConcurrency: 1, SlotLease: 150 * time.Millisecond}
	a := f.sender(t, cfg, 2*time.Second)
	b := f.sender(t, cfg, 2*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	// A call lasting 4 leases keeps its slot: b waits for it.
	slow := f.emu.Faults().AddREST(emulator.RESTFault{Route: rest.EndpointSend, Latency: 600 * time.Millisecond, Count: 1})
	done := make(chan error, 1)
	go func() { _, err := a.Send(ctx, Key{}, msg("slow")); done <- err }()
	if _, err := f.emu.WaitCalls(ctx, 1, emulator.CallFilter{Route: rest.EndpointSend}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, Key{}, msg("after")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.emu.Faults().RemoveREST(slow)
	if got := emulator.MaxInFlight(f.sends()); got != 1 {
		t.Fatalf("%d calls overlapped with API_MAX_CONCURRENCY=1", got)
	}
	// A holder that crashed (never releases nor refreshes) frees its slot within the lease.
	if r, _ := f.store.Admit(ctx, streams.AdmitReq{Holder: "crashed", Slots: 1, Lease: cfg.SlotLease}); r.Code != streams.Admitted {
		t.Fatal("slot not free")
	}
	start := time.Now()
	if _, err := b.Send(ctx, Key{}, msg("later")); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("waited %v for a crashed holder's slot (lease 150ms)", waited)
	}
}

func TestWaitsBeyondTheDeadlineAreInfrastructure(t *testing.T) {
	f := newFixture(t)
	s := f.sender(t, Config{RateLimit: 1, RatePeriod: time.Hour, RateBurst: 1}, 2*time.Second)
	ctx := ctxFor(t, 10*time.Second)
	if _, err := s.Send(ctx, Key{}, msg("1")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := s.Send(short, Key{}, msg("2"))
	if !errors.Is(err, ErrRateWait) {
		t.Fatalf("%v, want ErrRateWait", err)
	}
	if d, infra := s.PauseFor(err); !infra || d < 59*time.Minute {
		t.Fatalf("PauseFor(rate wait) = %v %v", d, infra)
	}
	// Too little time left to start a call is the handler's own doing.
	tiny, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	err = s.Typing(tiny, "+15550000002", true)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("%v, want ErrDeadline", err)
	}
	if _, infra := s.PauseFor(err); infra {
		t.Fatal("ErrDeadline must count against the message")
	}
	if n := len(f.sends()); n != 1 {
		t.Fatalf("%d sends", n)
	}
}

func TestPauseForClassifiesErrors(t *testing.T) {
	s := New(Config{Pause429: time.Minute}, nil, nil, Observer{}, nil)
	for _, tc := range []struct {
		name  string
		err   error
		infra bool
		wait  time.Duration
	}{
		{"nil", nil, false, 0},
		{"400", &rest.APIError{Status: 400, Message: "bad"}, false, 0},
		{"404 resource", &rest.APIError{Status: 404, Message: "No group"}, false, 0},
		{"404 no route", &rest.APIError{Status: 404, NoRoute: true}, true, 0},
		{"503", fmt.Errorf("wrapped: %w", &rest.APIError{Status: 503}), true, 0},
		{"429", &rest.RateLimitError{Status: 429}, true, time.Minute},
		{"unknown", fmt.Errorf("rest: POST /v2/send: %w: x", rest.ErrUnknownOutcome), true, 0},
		{"timeout", fmt.Errorf("rest: GET /v1/about: %w", context.DeadlineExceeded), true, 0},
		{"canceled", context.Canceled, false, 0},
		{"argument", errors.New("rest: send: no recipients"), false, 0},
		{"breaker", &Error{Kind: ErrBreakerOpen, Wait: time.Second}, true, time.Second},
		{"handler", errors.New("boom"), false, 0},
	} {
		wait, infra := s.PauseFor(tc.err)
		if infra != tc.infra || wait != tc.wait {
			t.Errorf("%s: PauseFor = %v %v, want %v %v", tc.name, wait, infra, tc.wait, tc.infra)
		}
	}
}
