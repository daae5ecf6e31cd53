package bot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/sender"
	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/streams"
	"github.com/signal-client/signal-client/internal/worker"
)

// Deps are what a Runtime is built from; internal/app (and bot/run) make
// them from the configuration.
type Deps struct {
	Config *config.Config
	// REST is the signal-cli-rest-api client (*rest.Client).
	REST sender.REST
	// Store is the deployment's Redis store (rate limit, semaphore, sent
	// records, locks, state).
	Store *streams.Store
	Log   *zap.Logger
	// Observer receives the sender's measurements (optional).
	Observer sender.Observer
	// TypingInterval, MaxDownload: see Update (0 = defaults).
	TypingInterval time.Duration
	MaxDownload    int64
}

// Runtime runs a Router inside a worker: it is the worker.Handler, and it
// turns failures that are not the message's fault (open breaker, 429, rate
// or slot waits beyond the deadline, Redis trouble, a lock held elsewhere)
// into worker infrastructure errors, so they pause the conversation without
// spending its attempts.
type Runtime struct {
	router *Router
	snd    *sender.Sender
	be     *runtimeBackend
	client *Client
	self   Self
	log    *zap.Logger
	lock   time.Duration
	typing time.Duration
	maxDL  int64
}

var _ worker.Handler = (*Runtime)(nil)

// NewRuntime builds the runtime of r. It refuses a router with
// registration errors (Router.Err).
func NewRuntime(r *Router, d Deps) (*Runtime, error) {
	if err := r.Err(); err != nil {
		return nil, err
	}
	if d.Config == nil || d.REST == nil || d.Store == nil {
		return nil, errors.New("bot: runtime needs the configuration, the REST client and the Redis store")
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	cfg := d.Config
	snd := sender.New(sender.Config{
		Instance:       cfg.InstanceID,
		RateLimit:      cfg.RateLimit,
		RatePeriod:     cfg.RateLimitPeriod,
		RateBurst:      cfg.RateLimitBurst,
		MaxConcurrency: cfg.Signal.MaxConcurrency,
		Breaker: sender.BreakerConfig{
			FailureThreshold: cfg.CircuitBreaker.FailureThreshold,
			ResetTimeout:     cfg.CircuitBreaker.ResetTimeout,
			FailureRate:      cfg.CircuitBreaker.FailureRateThreshold,
			MinRequests:      cfg.CircuitBreaker.MinRequestsForRateCalc,
		},
		Pause429: cfg.RateLimit429Pause,
		SentTTL:  cfg.SentRecordTTL,
		Unknown:  sender.Policy(cfg.UnknownOutcomePolicy),
	}, d.REST, d.Store, d.Observer, d.Log.Named("sender"))
	be := &runtimeBackend{snd: snd, locks: redislock.New(d.Store.Client()), keys: d.Store.Keys()}
	self := r.self
	if self.Number == "" {
		self.Number = cfg.Signal.PhoneNumber
	}
	return &Runtime{
		router: r, snd: snd, be: be, client: NewClient(be, d.Store.Shards()), self: self, log: d.Log,
		lock: cfg.LockTTL, typing: d.TypingInterval, maxDL: d.MaxDownload,
	}, nil
}

// Sender is the runtime's sender (for its Stats and breaker states).
func (rt *Runtime) Sender() *sender.Sender { return rt.snd }

// Client is the proactive sender.
func (rt *Runtime) Client() *Client { return rt.client }

// Handle implements worker.Handler.
func (rt *Runtime) Handle(ctx context.Context, m *worker.Message) error {
	f, err := m.Decode()
	if err != nil {
		return worker.Unreadable(fmt.Errorf("bot: decode message: %w", err))
	}
	st := &messageState{m: m}
	u := Update{
		Raw: m.Entry.Payload, Frame: f, ID: m.Entry.ID, OriginalID: m.OriginalID(), Shard: m.Shard,
		Attempt: int(m.Attempt), Conversation: m.Entry.Conversation, Self: rt.self, Backend: rt.be, State: st,
		Client: rt.client, Log: rt.log, TypingInterval: rt.typing, LockTTL: rt.lock, MaxDownload: rt.maxDL,
	}
	return rt.classify(rt.router.Dispatch(ctx, u))
}

// classify marks failures that are not the message's fault.
func (rt *Runtime) classify(err error) error {
	if err == nil || errors.Is(err, ErrPass) {
		return nil
	}
	var infra worker.InfrastructureError
	if errors.As(err, &infra) {
		return err
	}
	if d, ok := rt.snd.PauseFor(err); ok {
		return worker.Infrastructure(err, d)
	}
	if errors.Is(err, ErrLockNotObtained) || errors.Is(err, ErrLockLost) {
		return worker.Infrastructure(err, 0)
	}
	return err
}

// RunStartHooks starts the router's OnStart functions, each in its own
// goroutine, and returns a func that waits for them (they should return when
// ctx ends).
func (rt *Runtime) RunStartHooks(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, f := range rt.router.onStart {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, rt.client); err != nil && ctx.Err() == nil {
				rt.log.Error("start hook failed", zap.Error(err))
			}
		}()
	}
	return wg.Wait
}

// messageState is the worker message's state hash for the Context. The
// mutex lets a handler's goroutines share the Context.
type messageState struct {
	mu  sync.Mutex
	m   *worker.Message
	key string // computed on first use (a SHA-256 most messages never need)
}

func (s *messageState) keyLocked() string {
	if s.key == "" {
		s.key = s.m.Keys().State(s.m.Shard, s.m.Entry.Conversation)
	}
	return s.key
}

func (s *messageState) Read(ctx context.Context, field string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.ReadState(ctx, s.keyLocked(), field)
}

func (s *messageState) Write(op StateOp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.AddStateOp(streams.StateOp{Key: s.keyLocked(), Op: op.Op, Field: op.Field, Value: op.Value, TTL: op.TTL})
}

// runtimeBackend is Backend over the sender and Redis.
type runtimeBackend struct {
	snd   *sender.Sender
	locks *redislock.Client
	keys  streams.Keys
}

func senderKey(k CallKey) sender.Key {
	if k.IsZero() {
		return sender.Key{}
	}
	return sender.Key{Shard: k.Shard, Original: k.Original, Seq: k.Seq}
}

func sent(r sender.Result) Sent {
	return Sent{Timestamp: r.Timestamp, Replayed: r.Replayed, Unknown: r.Unknown}
}

// sendRequest converts an outgoing message to the /v2/send body.
func sendRequest(m Outgoing) rest.SendRequest {
	req := rest.SendRequest{Recipients: []string{m.To}, Message: m.Text, TextMode: rest.TextModeNormal,
		EditTimestamp: m.EditOf, ViewOnce: m.ViewOnce, Sticker: m.Sticker}
	if m.Styled {
		req.TextMode = rest.TextModeStyled
	}
	for _, a := range m.Attachments {
		req.Base64Attachments = append(req.Base64Attachments, rest.AttachmentData(a.ContentType, a.Filename, a.Data))
	}
	for _, x := range m.Mentions {
		req.Mentions = append(req.Mentions, rest.Mention{Start: int64(x.Start), Length: int64(x.Length), Author: x.Author})
	}
	if q := m.Quote; q != nil {
		req.QuoteTimestamp, req.QuoteAuthor, req.QuoteMessage = q.Timestamp, q.Author, q.Text
		for _, x := range q.Mentions {
			req.QuoteMentions = append(req.QuoteMentions, rest.Mention{Start: int64(x.Start), Length: int64(x.Length), Author: x.Author})
		}
	}
	if p := m.LinkPreview; p != nil {
		req.LinkPreview = &rest.LinkPreview{URL: p.URL, Title: p.Title, Description: p.Description}
	}
	return req
}

func (b *runtimeBackend) Send(ctx context.Context, key CallKey, m Outgoing) (Sent, error) {
	r, err := b.snd.Send(ctx, senderKey(key), sendRequest(m))
	return sent(r), err
}

func (b *runtimeBackend) React(ctx context.Context, key CallKey, r ReactionRequest) (Sent, error) {
	body := rest.Reaction{Recipient: r.To, Reaction: r.Emoji, TargetAuthor: r.TargetAuthor, Timestamp: r.TargetTimestamp}
	var res sender.Result
	var err error
	if r.Remove {
		res, err = b.snd.RemoveReaction(ctx, senderKey(key), body)
	} else {
		res, err = b.snd.React(ctx, senderKey(key), body)
	}
	return sent(res), err
}

func (b *runtimeBackend) Receipt(ctx context.Context, key CallKey, r ReceiptRequest) (Sent, error) {
	res, err := b.snd.Receipt(ctx, senderKey(key), rest.Receipt{Recipient: r.To, ReceiptType: r.Type, Timestamp: r.Timestamp})
	return sent(res), err
}

func (b *runtimeBackend) RemoteDelete(ctx context.Context, key CallKey, to string, ts int64) (Sent, error) {
	res, err := b.snd.RemoteDelete(ctx, senderKey(key), to, ts)
	return sent(res), err
}

func (b *runtimeBackend) Typing(ctx context.Context, to string, start bool) error {
	return b.snd.Typing(ctx, to, start)
}

func (b *runtimeBackend) Download(ctx context.Context, id string, maxBytes int64) (Download, error) {
	a, err := b.snd.GetAttachment(ctx, id, maxBytes)
	if err != nil {
		return Download{}, err
	}
	return Download{Data: a.Data, ContentType: a.ContentType}, nil
}

func (b *runtimeBackend) DeleteAttachment(ctx context.Context, id string) error {
	return b.snd.DeleteAttachment(ctx, id)
}

func (b *runtimeBackend) Lock(ctx context.Context, key string, ttl time.Duration) (HeldLock, error) {
	// Stop waiting a little before the handler's deadline so the caller can
	// tell "held elsewhere" from "handler timed out".
	octx := ctx
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Second, time.Until(dl)/10)
		var cancel context.CancelFunc
		octx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	l, err := b.locks.Obtain(octx, b.keys.UserLock(key), ttl, &redislock.Options{RetryStrategy: redislock.ExponentialBackoff(16*time.Millisecond, 256*time.Millisecond)})
	switch {
	case err == nil:
		return runtimeLock{l}, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, redislock.ErrNotObtained) || errors.Is(err, context.DeadlineExceeded):
		return nil, ErrLockNotObtained
	default:
		return nil, worker.Infrastructure(fmt.Errorf("bot: lock: redis: %w", err), 0)
	}
}

type runtimeLock struct{ l *redislock.Lock }

func (l runtimeLock) Refresh(ctx context.Context, ttl time.Duration) error {
	err := l.l.Refresh(ctx, ttl, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		return fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return err
}

func (l runtimeLock) Release(ctx context.Context) error { return l.l.Release(ctx) }
