// Package sender makes signal-client's outbound REST calls safe for Signal,
// for signal-cli-rest-api and for retried messages (ARCHITECTURE §1 item 6,
// §7.3, §8). It wraps the one-attempt client of internal/signal/rest with:
//
//   - a cluster-wide GCRA rate limit (RATE_LIMIT per RATE_LIMIT_PERIOD, burst
//     RATE_LIMIT_BURST), held in Redis like go-redis/redis_rate, so N workers
//     share one budget. Calls that make signal-cli deliver something to Signal
//     count: sends (also edits), reactions, receipts, typing indicators and
//     remote deletes. Group reads and attachment downloads do not. GCRA
//     admits at most RATE_LIMIT_BURST calls at once and then one every
//     RATE_LIMIT_PERIOD / RATE_LIMIT, so any window of length W holds at most
//     BURST + W × RATE_LIMIT / RATE_LIMIT_PERIOD calls;
//   - a cluster-wide cap on calls in flight (API_MAX_CONCURRENCY), a Redis
//     semaphore whose slots are short leases (3 s) refreshed while the call
//     runs, so a crashed worker's slots come back by themselves within the
//     lease. Every call but attachment
//     downloads and deletes (served from disk, not by signal-cli) takes one;
//     calls over the cap in one process wait in line there rather than poll;
//   - a circuit breaker per endpoint template and process
//     (CIRCUIT_BREAKER_*); 4xx answers say the server is up and never trip
//     it; while open, calls fail at once with ErrBreakerOpen;
//   - retries with jittered exponential backoff for transport errors,
//     timeouts and 5xx on idempotent calls only (rest.IsIdempotent);
//   - a 429 pauses the whole account for RATE_LIMIT_429_PAUSE (a Redis key
//     every worker checks) and surfaces as a *rest.RateLimitError with its
//     challenge tokens;
//   - effectively-once records (ARCHITECTURE §8): a call made with a Key
//     (the entry's original id and the call's sequence number within the
//     handling) is looked up first and skipped when it was confirmed before,
//     returning the recorded server timestamp; a call whose outcome is
//     unknown (timed out after the request went out) is recorded as such and
//     by default (UNKNOWN_OUTCOME_POLICY=skip) not made again.
//
// Errors that are not the message's fault answer true to PauseFor, which says
// how long the conversation should wait; the bot runtime turns them into
// worker infrastructure errors so the attempt is refunded.
package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/streams"
)

// REST is the part of *rest.Client the sender wraps.
type REST interface {
	Send(ctx context.Context, req rest.SendRequest) (rest.SendResult, error)
	React(ctx context.Context, r rest.Reaction) error
	RemoveReaction(ctx context.Context, r rest.Reaction) error
	SendReceipt(ctx context.Context, r rest.Receipt) error
	TypingStart(ctx context.Context, recipient string) error
	TypingStop(ctx context.Context, recipient string) error
	RemoteDelete(ctx context.Context, recipient string, timestamp int64) (int64, error)
	GetAttachment(ctx context.Context, id string, maxBytes int64) (rest.Attachment, error)
	DeleteAttachment(ctx context.Context, id string) error
	GetGroup(ctx context.Context, restID string) (rest.Group, error)
	ListGroups(ctx context.Context, expand bool) ([]rest.Group, error)
}

// Policy is UNKNOWN_OUTCOME_POLICY.
type Policy string

// Unknown-outcome policies.
const (
	// Skip: a retried handling does not repeat a call whose outcome is
	// unknown (at most once for that call).
	Skip Policy = "skip"
	// Resend: it repeats it (at least once).
	Resend Policy = "resend"
)

// Config holds the sender settings.
type Config struct {
	// Instance names this process in semaphore holder ids.
	Instance string
	// RateLimit calls per RatePeriod across the cluster; 0 turns it off.
	RateLimit  int
	RatePeriod time.Duration
	// RateBurst calls may go at once (default RateLimit).
	RateBurst int
	// MaxConcurrency is API_MAX_CONCURRENCY; 0 turns the semaphore off.
	MaxConcurrency int
	// SlotLease is how long a semaphore slot lives without a refresh; a call
	// refreshes its slot every SlotLease/3 while it runs, so a crashed
	// worker's slots come back within SlotLease (default 3s).
	SlotLease time.Duration
	Breaker   BreakerConfig
	// Retries is how many times an idempotent call is repeated after a
	// transport error, timeout or 5xx (default 2; negative = none).
	Retries   int
	RetryBase time.Duration // default 100ms
	RetryMax  time.Duration // default 2s
	// Pause429 is RATE_LIMIT_429_PAUSE (default 60s).
	Pause429 time.Duration
	// SentTTL is SENT_RECORD_TTL (default 7 days).
	SentTTL time.Duration
	// Unknown is UNKNOWN_OUTCOME_POLICY (default Skip).
	Unknown Policy
	// MinCallTime: a call is not started with less than this left before the
	// caller's deadline; it returns ErrDeadline instead, so a send is not cut
	// off mid-flight into an unknown outcome (default 250ms).
	MinCallTime time.Duration
	// SlotPoll is the longest sleep between tries for a semaphore slot
	// (default 20ms; the actual sleep is jittered).
	SlotPoll time.Duration
}

func (c *Config) defaults() {
	if c.RatePeriod <= 0 {
		c.RatePeriod = time.Minute
	}
	if c.RateBurst <= 0 {
		c.RateBurst = max(c.RateLimit, 1)
	}
	if c.SlotLease <= 0 {
		c.SlotLease = 3 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 2 * time.Second
	}
	if c.Pause429 <= 0 {
		c.Pause429 = 60 * time.Second
	}
	if c.SentTTL <= 0 {
		c.SentTTL = 7 * 24 * time.Hour
	}
	if c.Unknown == "" {
		c.Unknown = Skip
	}
	if c.MinCallTime <= 0 {
		c.MinCallTime = 250 * time.Millisecond
	}
	if c.SlotPoll <= 0 {
		c.SlotPoll = 20 * time.Millisecond
	}
	if c.Instance == "" {
		c.Instance = "sender"
	}
}

// The sender's own errors. Each is wrapped in an *Error carrying the
// endpoint and the wait; test with errors.Is.
var (
	// ErrBreakerOpen: the endpoint's circuit breaker is open.
	ErrBreakerOpen = errors.New("circuit breaker open: signal-cli-rest-api has been failing; calls resume after CIRCUIT_BREAKER_RESET_TIMEOUT")
	// ErrPaused: the account is paused after Signal rate-limited it (429).
	ErrPaused = errors.New("account paused after a 429 from Signal (RATE_LIMIT_429_PAUSE); solve the challenge or wait")
	// ErrRateWait: the rate limit needs a wait longer than the caller's deadline allows.
	ErrRateWait = errors.New("rate limit (RATE_LIMIT per RATE_LIMIT_PERIOD) needs a longer wait than the deadline allows")
	// ErrNoSlot: no REST slot came free before the caller's deadline.
	ErrNoSlot = errors.New("all API_MAX_CONCURRENCY REST slots stayed busy until the deadline")
	// ErrDeadline: too little time was left to start the call.
	ErrDeadline = errors.New("too little time left before the deadline to start the call; it was not made")
	// ErrRedis: the rate limit, semaphore or sent records could not be reached.
	ErrRedis = errors.New("redis unreachable for the rate limit, semaphore or sent records; the call was not made")
)

// Error is a sender refusal: Kind is one of the Err* values above.
type Error struct {
	Kind     error
	Endpoint string
	// Wait is how long until the cause should clear (0 = unknown).
	Wait  time.Duration
	Cause error
}

func (e *Error) Error() string {
	s := "sender: " + e.Endpoint + ": " + e.Kind.Error()
	if e.Wait > 0 {
		s += " (clears in about " + e.Wait.Round(time.Millisecond).String() + ")"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap exposes the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// PauseFor says whether err is an infrastructure failure (not the message's
// fault, ARCHITECTURE §7.3) and how long the conversation should wait (0 =
// the worker's own backoff): the sender's refusals, a 429 (RATE_LIMIT_429_PAUSE),
// 5xx and transport failures, timeouts and unknown outcomes. 4xx answers and
// every other error are the handler's.
func (s *Sender) PauseFor(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	var h *hinted
	if errors.As(err, &h) {
		if _, infra := s.PauseFor(h.error); infra {
			return h.wait, true
		}
	}
	var se *Error
	if errors.As(err, &se) {
		// Running out of time before a call is the handler's own doing
		// (waits for the rate or a slot report ErrRateWait / ErrNoSlot).
		return se.Wait, !errors.Is(se.Kind, ErrDeadline)
	}
	var rl *rest.RateLimitError
	if errors.As(err, &rl) {
		return s.cfg.Pause429, true
	}
	if errors.Is(err, rest.ErrUnknownOutcome) {
		return 0, true
	}
	var api *rest.APIError
	if errors.As(err, &api) {
		return 0, api.Status >= 500 || api.NoRoute
	}
	return 0, isTransport(err)
}

// isTransport reports a failure to reach signal-cli-rest-api or to get its
// answer in time (as opposed to an answer, a refusal, or a bad argument).
func isTransport(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// Key makes a call effectively once: Original is the entry's original id
// (kept through DLQ replays), Seq the call's 1-based position among the
// handling's keyed calls, Shard the entry's shard (the record lives there).
// The zero Key records nothing.
type Key struct {
	Shard    int
	Original string
	Seq      int
}

func (k Key) valid() bool { return k.Original != "" && k.Seq > 0 }

// Result is a keyed call's outcome.
type Result struct {
	// Timestamp is the server timestamp of a send or remote delete (the new
	// message's id), 0 for other calls.
	Timestamp int64
	// Replayed is true when the call was not made because an earlier
	// handling of the same entry made it (Timestamp is the recorded one).
	Replayed bool
	// Unknown is true when it was skipped because an earlier handling's
	// outcome is unknown (policy skip); Timestamp is 0 then.
	Unknown bool
}

// Observer receives measurements (internal/metrics plugs in). Every func is
// optional, must be fast and must not call back into the sender.
type Observer struct {
	// Call reports each REST attempt: endpoint template and outcome
	// ("ok", "client_error", "server_error", "rate_limited", "unknown",
	// "transport", "canceled").
	Call func(endpoint, outcome string, d time.Duration)
	// Refused reports a call the sender refused ("breaker_open", "paused",
	// "rate_wait", "no_slot", "deadline", "redis").
	Refused func(endpoint, reason string)
	// Replayed reports a keyed call skipped thanks to its record
	// ("confirmed" or "unknown").
	Replayed func(endpoint, what string)
	// Waited reports time spent waiting for the rate limit or a slot.
	Waited func(reason string, d time.Duration)
	// Breaker reports state changes.
	Breaker func(endpoint string, from, to State)
}

// Stats are the sender's counters.
type Stats struct {
	Calls, Retries, Replayed, UnknownRecorded atomic.Uint64
	RateWaits, SlotWaits, Paused429           atomic.Uint64
	BreakerOpens, Refused                     atomic.Uint64
}

// Sender is safe for concurrent use and owns no goroutines.
type Sender struct {
	cfg   Config
	rest  REST
	store *streams.Store
	log   *zap.Logger
	obs   Observer
	stats Stats
	now   func() time.Time

	mu       sync.Mutex
	breakers map[string]*breaker
	holderN  atomic.Uint64
	// nonce keeps holder ids unique even if two processes share an
	// INSTANCE_ID (a shared id would let them share slots).
	nonce string
	// pausedUntil caches the account pause (unix ns) so a paused process
	// does not ask Redis on every call.
	pausedUntil atomic.Int64
	// gate holds one token per semaphore slot this process holds (nil when
	// the semaphore is off). A process never holds more than
	// API_MAX_CONCURRENCY slots, so a call that finds the gate full would be
	// refused by Redis anyway: it waits here, in line, instead of polling
	// the semaphore. Redis still decides; the gate only saves the polls.
	gate chan struct{}
}

// New builds a sender. store may be nil: then the rate limit, the
// semaphore, the cluster-wide pause and the sent records are off (tests and
// single-process use without Redis).
func New(cfg Config, r REST, store *streams.Store, obs Observer, log *zap.Logger) *Sender {
	cfg.defaults()
	if log == nil {
		log = zap.NewNop()
	}
	s := &Sender{cfg: cfg, rest: r, store: store, log: log, obs: obs, now: time.Now, breakers: map[string]*breaker{},
		nonce: strconv.FormatUint(rand.Uint64()>>16, 36)}
	if store != nil && cfg.MaxConcurrency > 0 {
		s.gate = make(chan struct{}, cfg.MaxConcurrency)
	}
	return s
}

// Stats returns the live counters.
func (s *Sender) Stats() *Stats { return &s.stats }

// Config returns the effective settings.
func (s *Sender) Config() Config { return s.cfg }

// BreakerStates returns every endpoint's breaker state.
func (s *Sender) BreakerStates() map[string]State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]State, len(s.breakers))
	for ep, b := range s.breakers {
		out[ep] = b.current()
	}
	return out
}

func (s *Sender) breaker(endpoint string) *breaker {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.breakers[endpoint]
	if b == nil {
		b = newBreaker(s.cfg.Breaker, s.now, func(from, to State) {
			if to == Open {
				s.stats.BreakerOpens.Add(1)
			}
			s.log.Warn("circuit breaker changed state", zap.String("endpoint", endpoint), zap.String("from", string(from)), zap.String("to", string(to)))
			if s.obs.Breaker != nil {
				s.obs.Breaker(endpoint, from, to)
			}
		})
		s.breakers[endpoint] = b
	}
	return b
}

// op describes one logical call.
type op struct {
	endpoint string
	key      Key
	counts   bool // counts toward the rate limit
	slot     bool // takes a semaphore slot
	do       func(ctx context.Context) (int64, error)
}

// Send posts a message (/v2/send); edits are sends with EditTimestamp.
func (s *Sender) Send(ctx context.Context, key Key, req rest.SendRequest) (Result, error) {
	return s.run(ctx, op{endpoint: rest.EndpointSend, key: key, counts: true, slot: true, do: func(ctx context.Context) (int64, error) {
		r, err := s.rest.Send(ctx, req)
		return r.Timestamp, err
	}})
}

// React adds a reaction.
func (s *Sender) React(ctx context.Context, key Key, r rest.Reaction) (Result, error) {
	return s.run(ctx, op{endpoint: rest.EndpointReactions, key: key, counts: true, slot: true, do: func(ctx context.Context) (int64, error) {
		return 0, s.rest.React(ctx, r)
	}})
}

// RemoveReaction removes a reaction.
func (s *Sender) RemoveReaction(ctx context.Context, key Key, r rest.Reaction) (Result, error) {
	return s.run(ctx, op{endpoint: rest.EndpointReactions, key: key, counts: true, slot: true, do: func(ctx context.Context) (int64, error) {
		return 0, s.rest.RemoveReaction(ctx, r)
	}})
}

// Receipt sends a read or viewed receipt.
func (s *Sender) Receipt(ctx context.Context, key Key, r rest.Receipt) (Result, error) {
	return s.run(ctx, op{endpoint: rest.EndpointReceipts, key: key, counts: true, slot: true, do: func(ctx context.Context) (int64, error) {
		return 0, s.rest.SendReceipt(ctx, r)
	}})
}

// RemoteDelete deletes one of the bot's messages for everyone.
func (s *Sender) RemoteDelete(ctx context.Context, key Key, recipient string, timestamp int64) (Result, error) {
	return s.run(ctx, op{endpoint: rest.EndpointRemoteDelete, key: key, counts: true, slot: true, do: func(ctx context.Context) (int64, error) {
		return s.rest.RemoteDelete(ctx, recipient, timestamp)
	}})
}

// Typing starts or stops the typing indicator. It is idempotent, so it is
// never keyed.
func (s *Sender) Typing(ctx context.Context, recipient string, start bool) error {
	_, err := s.run(ctx, op{endpoint: rest.EndpointTyping, counts: true, slot: true, do: func(ctx context.Context) (int64, error) {
		if start {
			return 0, s.rest.TypingStart(ctx, recipient)
		}
		return 0, s.rest.TypingStop(ctx, recipient)
	}})
	return err
}

// GetAttachment downloads an attachment (no slot: served from disk).
func (s *Sender) GetAttachment(ctx context.Context, id string, maxBytes int64) (rest.Attachment, error) {
	var att rest.Attachment
	_, err := s.run(ctx, op{endpoint: rest.EndpointAttachment, do: func(ctx context.Context) (int64, error) {
		var err error
		att, err = s.rest.GetAttachment(ctx, id, maxBytes)
		return 0, err
	}})
	return att, err
}

// DeleteAttachment deletes a downloaded attachment; a 404 (already gone) is
// success.
func (s *Sender) DeleteAttachment(ctx context.Context, id string) error {
	_, err := s.run(ctx, op{endpoint: rest.EndpointAttachment, do: func(ctx context.Context) (int64, error) {
		err := s.rest.DeleteAttachment(ctx, id)
		if rest.IsNotFound(err) {
			return 0, nil
		}
		return 0, err
	}})
	return err
}

// GetGroup reads one group.
func (s *Sender) GetGroup(ctx context.Context, restID string) (rest.Group, error) {
	var g rest.Group
	_, err := s.run(ctx, op{endpoint: rest.EndpointGroup, slot: true, do: func(ctx context.Context) (int64, error) {
		var err error
		g, err = s.rest.GetGroup(ctx, restID)
		return 0, err
	}})
	return g, err
}

// ListGroups lists the account's groups.
func (s *Sender) ListGroups(ctx context.Context, expand bool) ([]rest.Group, error) {
	var gs []rest.Group
	_, err := s.run(ctx, op{endpoint: rest.EndpointGroups, slot: true, do: func(ctx context.Context) (int64, error) {
		var err error
		gs, err = s.rest.ListGroups(ctx, expand)
		return 0, err
	}})
	return gs, err
}

// Record values in P:{A.sN}:sent:<o>.
const (
	recordConfirmed = "t:" // + server timestamp (0 when the call has none)
	recordUnknown   = "u"
)

func (s *Sender) refuse(endpoint string, kind error, reason string, wait time.Duration, cause error) error {
	s.stats.Refused.Add(1)
	if s.obs.Refused != nil {
		s.obs.Refused(endpoint, reason)
	}
	return &Error{Kind: kind, Endpoint: endpoint, Wait: wait, Cause: cause}
}

// run is the whole policy for one logical call.
func (s *Sender) run(ctx context.Context, o op) (Result, error) {
	keyed := o.key.valid() && s.store != nil
	br := s.breaker(o.endpoint)
	ok, trial, wait := br.allow()
	if !ok {
		// A call made before is answered from its record even while the
		// breaker is open.
		if keyed {
			if r, err := s.lookup(ctx, o); err != nil || r != nil {
				return deref(r), err
			}
		}
		return Result{}, s.refuse(o.endpoint, ErrBreakerOpen, "breaker_open", wait, nil)
	}
	reported := false
	report := func(v verdict) {
		if !reported {
			reported = true
			br.done(trial, v)
		}
	}
	defer report(neutral) // refusals and replays before the call say nothing about the server

	idempotent := rest.IsIdempotent(o.endpoint)
	for attempt := 0; ; attempt++ {
		// The record is looked up once, before the first admission (and in
		// the same round trip as it).
		holder, rep, err := s.admit(ctx, o, keyed && attempt == 0)
		if err != nil || rep != nil {
			return deref(rep), err
		}
		start := s.now()
		stopKeeping := s.keepSlot(holder)
		ts, callErr := o.do(ctx)
		stopKeeping()
		rec := ""
		if keyed {
			if callErr == nil {
				rec = recordConfirmed + strconv.FormatInt(ts, 10)
			} else if errors.Is(callErr, rest.ErrUnknownOutcome) {
				s.stats.UnknownRecorded.Add(1)
				rec = recordUnknown
			}
		}
		// The slot goes back and the record is written in one round trip.
		s.settle(ctx, o, holder, rec)
		outcome, v := classify(callErr)
		s.stats.Calls.Add(1)
		if s.obs.Call != nil {
			s.obs.Call(o.endpoint, outcome, s.now().Sub(start))
		}
		if callErr == nil {
			report(success)
			return Result{Timestamp: ts}, nil
		}
		var rl *rest.RateLimitError
		if errors.As(callErr, &rl) {
			report(success) // the server answered; the account, not the server, is the problem
			s.pause429(ctx)
			return Result{}, callErr
		}
		fail := func() (Result, error) {
			report(v)
			return Result{}, hint(br, callErr)
		}
		if errors.Is(callErr, rest.ErrUnknownOutcome) {
			return fail()
		}
		if v != failure || !idempotent || attempt >= s.cfg.Retries || ctx.Err() != nil {
			return fail()
		}
		d := s.backoff(attempt)
		if dl, ok := ctx.Deadline(); ok && s.now().Add(d+s.cfg.MinCallTime).After(dl) {
			return fail()
		}
		s.stats.Retries.Add(1)
		if err := sleep(ctx, d); err != nil {
			return fail()
		}
	}
}

func deref(r *Result) Result {
	if r == nil {
		return Result{}
	}
	return *r
}

// lookup reads a keyed call's record on its own: non-nil when the call must
// not be made.
func (s *Sender) lookup(ctx context.Context, o op) (*Result, error) {
	rec, ok, err := s.store.SentRecord(ctx, o.key.Shard, o.key.Original, o.key.Seq)
	if err != nil {
		return nil, s.refuse(o.endpoint, ErrRedis, "redis", 0, err)
	}
	if !ok {
		return nil, nil
	}
	return s.replay(o, rec), nil
}

// replay turns a found record into the result of a call that is not made
// again: confirmed, or unknown under UNKNOWN_OUTCOME_POLICY=skip. nil means
// the call is made (an unknown outcome under resend).
func (s *Sender) replay(o op, rec string) *Result {
	if ts, confirmed := strings.CutPrefix(rec, recordConfirmed); confirmed {
		n, _ := strconv.ParseInt(ts, 10, 64)
		s.replayed(o.endpoint, "confirmed")
		return &Result{Timestamp: n, Replayed: true}
	}
	if rec == recordUnknown && s.cfg.Unknown == Skip {
		s.replayed(o.endpoint, "unknown")
		return &Result{Replayed: true, Unknown: true}
	}
	return nil
}

// hinted carries how long to wait after a failed call that opened (or
// re-opened) its endpoint's breaker: until the next trial, not the worker's
// growing backoff.
type hinted struct {
	error
	wait time.Duration
}

func (h *hinted) Unwrap() error { return h.error }

func hint(br *breaker, err error) error {
	if w := br.openFor(); w > 0 {
		return &hinted{error: err, wait: w}
	}
	return err
}

func (s *Sender) replayed(endpoint, what string) {
	s.stats.Replayed.Add(1)
	if s.obs.Replayed != nil {
		s.obs.Replayed(endpoint, what)
	}
}

// classify maps a call's error to an outcome label and a breaker verdict.
func classify(err error) (string, verdict) {
	if err == nil {
		return "ok", success
	}
	var rl *rest.RateLimitError
	if errors.As(err, &rl) {
		return "rate_limited", success
	}
	if errors.Is(err, rest.ErrUnknownOutcome) {
		return "unknown", failure
	}
	var api *rest.APIError
	if errors.As(err, &api) {
		if api.Status >= 500 {
			return "server_error", failure
		}
		if api.NoRoute && api.Status == http.StatusNotFound {
			return "client_error", failure // a wrong BaseURL is an outage for every call
		}
		return "client_error", success
	}
	if errors.Is(err, context.Canceled) {
		return "canceled", neutral
	}
	if isTransport(err) {
		return "transport", failure
	}
	return "client_error", neutral // refused before any request (bad argument)
}

// admit waits for the account pause, a semaphore slot and the rate limit,
// within the caller's deadline. It returns the holder to release ("" when no
// slot was taken). With lookup (the first admission of a keyed call) it
// also reads the call's sent record, in the same round trip as the first
// admission; rep is then non-nil when the call must not be made, and nothing
// is held. A replayed call that the admission let through gives its slot
// back at once but has used one rate-limit token (replays are rare: retries
// of a handling that made calls).
func (s *Sender) admit(ctx context.Context, o op, lookup bool) (holder string, rep *Result, err error) {
	if lookup && (s.pausedLocally() || s.timeShort(ctx) || (!o.counts && !o.slot)) {
		// This call is refused (or needs no admission) without asking Redis:
		// look the record up on its own first, as a replay is answered anyway.
		if r, err := s.lookup(ctx, o); err != nil || r != nil {
			return "", r, err
		}
		lookup = false
	}
	if until := s.pausedUntil.Load(); until > 0 {
		if left := time.Duration(until - s.now().UnixNano()); left > 0 {
			return "", nil, s.refuse(o.endpoint, ErrPaused, "paused", left, nil)
		}
	}
	if s.store == nil || (!o.counts && !o.slot) {
		return "", nil, s.checkTime(ctx, o.endpoint)
	}
	req := streams.AdmitReq{Lease: s.cfg.SlotLease}
	if o.slot && s.cfg.MaxConcurrency > 0 {
		req.Holder = s.cfg.Instance + ":" + s.nonce + ":" + strconv.FormatUint(s.holderN.Add(1), 10)
		req.Slots = s.cfg.MaxConcurrency
	}
	if o.counts && s.cfg.RateLimit > 0 {
		req.Interval = s.cfg.RatePeriod / time.Duration(s.cfg.RateLimit)
		req.Burst = s.cfg.RateBurst
	}
	// With neither a slot nor a rate to take, the script still checks the
	// account pause, so a 429 seen by another worker stops this one too.
	var waitedRate, waitedSlot time.Duration
	slotWaited := false
	defer func() {
		if s.obs.Waited != nil {
			if waitedRate > 0 {
				s.obs.Waited("rate", waitedRate)
			}
			if waitedSlot > 0 {
				s.obs.Waited("slot", waitedSlot)
			}
		}
	}()
	for first := true; ; first = false {
		if err := s.checkTime(ctx, o.endpoint); err != nil {
			return "", nil, err
		}
		gated := false
		if req.Holder != "" && s.gate != nil {
			d, err := s.enterGate(ctx)
			waitedSlot += d
			if d > 0 && !slotWaited {
				slotWaited = true
				s.stats.SlotWaits.Add(1)
			}
			if err != nil {
				if lookup {
					if r, lerr := s.lookup(ctx, o); lerr != nil || r != nil {
						return "", r, lerr
					}
				}
				if ctx.Err() != nil {
					return "", nil, ctx.Err()
				}
				return "", nil, s.refuse(o.endpoint, ErrNoSlot, "no_slot", 0, nil)
			}
			gated = true
		}
		var res streams.AdmitRes
		var err error
		if lookup {
			lookup = false
			var rec string
			var found bool
			res, rec, found, err = s.admitLookup(ctx, o, req)
			if found {
				// A replay is answered whatever the admission said.
				if r := s.replay(o, rec); r != nil {
					if err == nil && res.Code == streams.Admitted && req.Holder != "" {
						s.settle(ctx, o, req.Holder, "") // gives the gate token back too
					} else if gated {
						s.leaveGate()
					}
					return "", r, nil
				}
			}
		} else {
			res, err = s.store.Admit(ctx, req)
		}
		if gated && (err != nil || res.Code != streams.Admitted) {
			s.leaveGate()
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", nil, ctx.Err()
			}
			return "", nil, s.refuse(o.endpoint, ErrRedis, "redis", 0, err)
		}
		switch res.Code {
		case streams.Admitted:
			return req.Holder, nil, nil
		case streams.AdmitPaused:
			s.pausedUntil.Store(s.now().Add(res.Wait).UnixNano())
			return "", nil, s.refuse(o.endpoint, ErrPaused, "paused", res.Wait, nil)
		case streams.AdmitRate:
			if first {
				s.stats.RateWaits.Add(1)
			}
			if dl, ok := ctx.Deadline(); ok && s.now().Add(res.Wait+s.cfg.MinCallTime).After(dl) {
				return "", nil, s.refuse(o.endpoint, ErrRateWait, "rate_wait", res.Wait, nil)
			}
			waitedRate += res.Wait
			if err := sleep(ctx, res.Wait); err != nil {
				return "", nil, err
			}
		case streams.AdmitBusy:
			if !slotWaited {
				slotWaited = true
				s.stats.SlotWaits.Add(1)
			}
			d := min(res.Wait, s.cfg.SlotPoll)
			d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
			if dl, ok := ctx.Deadline(); ok && s.now().Add(d+s.cfg.MinCallTime).After(dl) {
				return "", nil, s.refuse(o.endpoint, ErrNoSlot, "no_slot", 0, nil)
			}
			waitedSlot += d
			if err := sleep(ctx, d); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, s.refuse(o.endpoint, ErrRedis, "redis", 0, fmt.Errorf("unexpected admission code %d", res.Code))
		}
	}
}

// enterGate takes a gate token, waiting in line while the caller's deadline
// leaves MinCallTime for the call; it returns how long it waited.
func (s *Sender) enterGate(ctx context.Context) (time.Duration, error) {
	select {
	case s.gate <- struct{}{}:
		return 0, nil
	default:
	}
	start := s.now()
	var expired <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(dl.Sub(start) - s.cfg.MinCallTime)
		defer t.Stop()
		expired = t.C
	}
	select {
	case s.gate <- struct{}{}:
		return s.now().Sub(start), nil
	case <-expired:
		return s.now().Sub(start), ErrNoSlot
	case <-ctx.Done():
		return s.now().Sub(start), ctx.Err()
	}
}

func (s *Sender) leaveGate() { <-s.gate }

func (s *Sender) pausedLocally() bool {
	until := s.pausedUntil.Load()
	return until > 0 && until > s.now().UnixNano()
}

// timeShort: checkTime would refuse.
func (s *Sender) timeShort(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && dl.Sub(s.now()) < s.cfg.MinCallTime
}

func (s *Sender) checkTime(ctx context.Context, endpoint string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && dl.Sub(s.now()) < s.cfg.MinCallTime {
		return s.refuse(endpoint, ErrDeadline, "deadline", 0, nil)
	}
	return nil
}

// keepSlot refreshes holder's slot while a call runs; the returned func
// stops it (and waits for the refresher to end).
func (s *Sender) keepSlot(holder string) (stop func()) {
	if holder == "" {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(s.cfg.SlotLease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.SlotLease/3)
			held, err := s.store.RefreshSlot(ctx, holder, s.cfg.SlotLease)
			cancel()
			if err == nil && !held {
				s.log.Warn("a long REST call lost its API_MAX_CONCURRENCY slot (Redis was slow or unreachable); the cap may be exceeded briefly")
				return
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

func (s *Sender) pause429(ctx context.Context) {
	s.stats.Paused429.Add(1)
	s.pausedUntil.Store(s.now().Add(s.cfg.Pause429).UnixNano())
	s.log.Error("Signal rate-limited the account (429): pausing every worker's REST calls; solve the challenge (dlqctl or the rate-limit-challenge endpoint) or wait",
		zap.Duration("pause", s.cfg.Pause429))
	if s.store == nil {
		return
	}
	if _, err := s.store.PauseSends(context.WithoutCancel(ctx), s.cfg.Pause429); err != nil {
		s.log.Warn("could not share the 429 pause with the other workers", zap.Error(err))
	}
}

// backoff is RetryBase × 2^attempt capped at RetryMax, jittered in [d/2, d].
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.cfg.RetryBase
	for i := 0; i < attempt && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
