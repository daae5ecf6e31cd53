// Package worker consumes the shard streams (ARCHITECTURE §6, §7): it keeps
// the worker's membership, holds shard leases with fencing epochs, reads its
// shards with one blocking XREADGROUP, runs each conversation's entries one at
// a time in stream order (up to WORKER_POOL_SIZE conversations in parallel),
// retries failures with backoff, parks poison entries in the shard's DLQ and
// commits acknowledgements in fenced batches.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/lazyctx"
	"github.com/signal-client/signal-client/internal/signal"
	"github.com/signal-client/signal-client/internal/streams"
)

// Message is what a handler gets: one inbound entry. Its payload is decoded
// on first use (Decode): the worker itself never needs the frame, so a
// handler that routes on the entry's metadata does not pay for it.
type Message struct {
	Entry   streams.Entry
	Shard   int
	Attempt int64     // 1 for the first attempt
	Epoch   int64     // the lease epoch this attempt runs under
	Started time.Time // when this attempt started

	ops   []streams.StateOp
	w     *Worker
	frame *signal.Frame
	// ctx is the attempt's handler context, allocated with the Message.
	ctx lazyctx.Context
}

var sharedDecoder = signal.Decoder{ShareRaw: true}

// Decode returns the entry's decoded frame, decoding it on the first call.
// A handler that cannot decode it should return Unreadable(err): the entry
// is parked at once (reason "format"), since retrying cannot help.
func (m *Message) Decode() (*signal.Frame, error) {
	if m.frame != nil {
		return m.frame, nil
	}
	// The payload is a read-only view of the Redis reply, so the frame may
	// share its bytes instead of copying them.
	f, err := sharedDecoder.Decode(m.Entry.Payload)
	if err != nil {
		return nil, err
	}
	m.frame = f
	return f, nil
}

type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return e.err.Error() }
func (e *unreadableError) Unwrap() error { return e.err }

// Unreadable marks err as a payload that cannot be decoded: the entry is
// parked at once with reason "format", without retries.
func Unreadable(err error) error {
	if err == nil {
		return nil
	}
	return &unreadableError{err: err}
}

// OriginalID is the id that identifies the message across DLQ replays.
func (m *Message) OriginalID() string {
	if m.Entry.OriginalID != "" {
		return m.Entry.OriginalID
	}
	return m.Entry.ID
}

// AddStateOp queues a state write committed atomically with the ack
// (ARCHITECTURE §8). Key must be a state key of the message's shard.
func (m *Message) AddStateOp(op streams.StateOp) { m.ops = append(m.ops, op) }

// StateOps returns the writes queued so far by this attempt.
func (m *Message) StateOps() []streams.StateOp { return m.ops }

// ReadState reads one field of a state hash of the message's shard, seeing
// (in this order of precedence) this attempt's own queued writes, then writes
// of earlier messages handled but not yet committed, then Redis: the next
// message of a conversation always sees the previous one's writes.
func (m *Message) ReadState(ctx context.Context, key, field string) (string, bool, error) {
	for i := len(m.ops) - 1; i >= 0; i-- {
		op := m.ops[i]
		if op.Key == key && op.Field == field {
			switch op.Op {
			case "set":
				return op.Value, true, nil
			case "del":
				return "", false, nil
			}
		}
	}
	if m.w == nil {
		return "", false, errors.New("worker: message not bound to a worker")
	}
	if v, present, ok := m.w.com.overlay(m.Shard, key, field); ok {
		return v, present, nil
	}
	v, err := m.w.store.Client().HGet(ctx, key, field).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, Infrastructure(fmt.Errorf("worker: read state: %w", err), 0)
	}
	return v, true, nil
}

// Keys returns the deployment's key layout (state keys come from it).
func (m *Message) Keys() streams.Keys { return m.w.store.Keys() }

// Store returns the deployment's Redis store (for sent records and locks).
func (m *Message) Store() *streams.Store { return m.w.store }

// Handler handles one message. A returned error (or panic, or exceeding
// HANDLER_TIMEOUT) is a failed attempt unless it is an infrastructure error.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// InfrastructureError marks a failure that is not the message's fault
// (ARCHITECTURE §7.3): the attempt is refunded and the conversation pauses.
type InfrastructureError interface {
	error
	// PauseFor is how long the conversation should wait (0 = the worker's own backoff).
	PauseFor() time.Duration
}

type infraError struct {
	err   error
	pause time.Duration
}

func (e *infraError) Error() string           { return e.err.Error() }
func (e *infraError) Unwrap() error           { return e.err }
func (e *infraError) PauseFor() time.Duration { return e.pause }

// Infrastructure wraps err as an infrastructure failure.
func Infrastructure(err error, pause time.Duration) error {
	if err == nil {
		return nil
	}
	return &infraError{err: err, pause: pause}
}

// Config holds the worker settings.
type Config struct {
	ID              string
	PoolSize        int           // WORKER_POOL_SIZE
	QueueSize       int           // QUEUE_SIZE: read-ahead bound
	LeaseTTL        time.Duration // SHARD_LEASE_TTL
	HandlerTimeout  time.Duration // HANDLER_TIMEOUT
	MaxRetries      int           // DLQ_MAX_RETRIES
	BackoffBase     time.Duration // RETRY_BACKOFF_BASE
	BackoffMax      time.Duration // RETRY_BACKOFF_MAX
	InfraPause      time.Duration // first pause after an infrastructure error (default 500ms)
	InfraPauseMax   time.Duration // cap (default 10s)
	ClaimMinIdle    time.Duration // CLAIM_MIN_IDLE
	DLQMaxLen       int64         // per-shard DLQ cap
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT
	AckBatchMax     int           // default 64
	AckBatchWindow  time.Duration // default 2ms
	ReadCount       int64         // XREADGROUP COUNT (default 128)
	// Redact cleans error texts before they are logged or written to the DLQ.
	Redact func(string) string
}

func (c *Config) defaults() {
	if c.PoolSize <= 0 {
		c.PoolSize = 16
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1000
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = 30 * time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.InfraPause <= 0 {
		c.InfraPause = 500 * time.Millisecond
	}
	if c.InfraPauseMax <= 0 {
		c.InfraPauseMax = 10 * time.Second
	}
	if c.ClaimMinIdle <= 0 {
		c.ClaimMinIdle = time.Minute
	}
	if c.DLQMaxLen <= 0 {
		c.DLQMaxLen = 10000
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.AckBatchMax <= 0 {
		c.AckBatchMax = 64
	}
	if c.AckBatchWindow <= 0 {
		c.AckBatchWindow = 2 * time.Millisecond
	}
	if c.ReadCount <= 0 {
		c.ReadCount = 128
	}
}

// Stats are the worker's counters (read by internal/metrics).
type Stats struct {
	Handled, Failed, Retried, Parked, Paused      atomic.Uint64
	StaleCommits, LeaseLosses, Rebalances         atomic.Uint64
	Acquired, Released, Heartbeats, ParseErrors   atomic.Uint64
	DLQTrimmed, Claimed                           atomic.Uint64
	InFlight, Waiting, ShardsOwned, LiveWorkers   atomic.Int64
	ParkedByReason, FailedByReason, PausedByCause sync.Map
}

func inc(m *sync.Map, k string) {
	v, _ := m.LoadOrStore(k, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// Counts returns a snapshot of a by-label counter map.
func Counts(m *sync.Map) map[string]uint64 {
	out := map[string]uint64{}
	m.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Uint64).Load(); return true })
	return out
}

// Observer receives per-message measurements (internal/metrics plugs in).
type Observer struct {
	HandlerDone func(outcome string, d time.Duration)
	Heartbeat   func(shard int, latency time.Duration)
	EndToEnd    func(latency time.Duration) // upstream timestamp → handler start
}

// Worker is one worker process's consumer.
type Worker struct {
	cfg     Config
	store   *streams.Store
	rdb     *redis.Client
	handler Handler
	log     *zap.Logger
	stats   Stats
	obs     Observer

	leases *leaseManager
	att    *attempter
	disp   *dispatcher
	com    *committer
	reader *reader
}

// New builds a worker. rdb must be a *redis.Client: the reader needs a
// dedicated connection it can block on.
func New(cfg Config, store *streams.Store, rdb *redis.Client, h Handler, obs Observer, log *zap.Logger) (*Worker, error) {
	cfg.defaults()
	if cfg.ID == "" {
		return nil, errors.New("worker: empty worker id")
	}
	if log == nil {
		log = zap.NewNop()
	}
	w := &Worker{cfg: cfg, store: store, rdb: rdb, handler: h, log: log, obs: obs}
	w.com = newCommitter(w)
	w.att = newAttempter(w)
	w.disp = newDispatcher(w)
	w.reader = newReader(w)
	w.leases = newLeaseManager(w)
	return w, nil
}

// Stats returns the live counters.
func (w *Worker) Stats() *Stats { return &w.stats }

// OwnedShards lists the shards this worker holds now.
func (w *Worker) OwnedShards() []int { return w.leases.owned() }

// Registered reports whether the last membership heartbeat succeeded recently.
func (w *Worker) Registered() bool { return w.leases.registered() }

// Run consumes until ctx ends, then shuts down gracefully (ARCHITECTURE §6.7).
func (w *Worker) Run(ctx context.Context) error {
	if err := w.store.EnsureGroups(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if err := streams.LoadScripts(ctx, w.rdb); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(inner) }()
	}
	run(w.com.run)
	run(w.disp.run)
	readCtx, stopReading := context.WithCancel(inner)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() { defer rwg.Done(); w.reader.run(readCtx) }()
	leaseCtx, stopLeases := context.WithCancel(inner)
	var lwg sync.WaitGroup
	lwg.Add(1)
	go func() { defer lwg.Done(); w.leases.run(leaseCtx) }()

	<-ctx.Done()
	w.log.Info("worker stopping: finishing in-flight entries", zap.Duration("shutdown_timeout", w.cfg.ShutdownTimeout))
	deadline := time.Now().Add(w.cfg.ShutdownTimeout)
	stopReading()
	rwg.Wait()
	w.disp.drain(deadline)
	w.com.flushAll()
	stopLeases()
	lwg.Wait()
	w.leases.releaseAll()
	cancel()
	wg.Wait()
	return nil
}
