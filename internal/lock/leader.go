// Package lock holds signal-client's two kinds of ownership in Redis: the
// ingester leader election (through github.com/bsm/redislock) and, for workers,
// shard leases with fencing epochs (ARCHITECTURE §5.1, §6.2, §6.3).
//
// redislock has no fencing token, and a Redis failover can grant its lock
// twice, so the leader lock only decides who appends at once and who does
// housekeeping; correctness of appends comes from dedup-and-append.
package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// EpochSource hands out a new monotonic epoch (streams.Store.NextEpoch).
type EpochSource func(ctx context.Context) (int64, error)

// LeaderOptions configure an election.
type LeaderOptions struct {
	Key      string        // the lock key
	TTL      time.Duration // LOCK_TTL_SECONDS
	ID       string        // this instance, stored as lock metadata so operators see who leads
	Epoch    EpochSource   // called on every win
	Logger   *zap.Logger
	OnChange func(leader bool, epoch int64) // called from Run's goroutine on every role change
}

// Leader runs one instance's side of the election.
type Leader struct {
	opts   LeaderOptions
	locker *redislock.Client
	rdb    redis.UniversalClient

	mu          sync.Mutex
	lock        *redislock.Lock
	epoch       int64
	lastRefresh time.Time
	changes     uint64
}

// NewLeader prepares an election; Run takes part in it.
func NewLeader(rdb redis.UniversalClient, opts LeaderOptions) (*Leader, error) {
	if opts.Key == "" || opts.TTL <= 0 || opts.ID == "" {
		return nil, fmt.Errorf("lock: leader needs a key, a positive TTL and an instance id")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &Leader{opts: opts, locker: redislock.New(rdb), rdb: rdb}, nil
}

// IsLeader reports whether this instance holds the lock (as of its last
// successful obtain or refresh, and no longer than 2/3 TTL after it).
func (l *Leader) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lock != nil
}

// Epoch returns the epoch of the current leadership, or 0 as standby.
func (l *Leader) Epoch() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock == nil {
		return 0
	}
	return l.epoch
}

// Changes counts role changes (for metrics).
func (l *Leader) Changes() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changes
}

// Holder returns the instance id of the current leader ("" when none).
func (l *Leader) Holder(ctx context.Context) (string, error) {
	v, err := l.rdb.Get(ctx, l.opts.Key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lock: leader holder: %w", err)
	}
	// redislock stores token (22 chars of base64url) followed by the metadata.
	if len(v) > 22 {
		return v[22:], nil
	}
	return "", nil
}

// Run takes part in the election until ctx ends, then releases the lock if
// held so a standby takes over at its next try. It returns nil on ctx end.
func (l *Leader) Run(ctx context.Context) error {
	tick := l.opts.TTL / 3
	if tick <= 0 {
		tick = time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		l.step(ctx)
		select {
		case <-ctx.Done():
			l.release()
			return nil
		case <-t.C:
		}
	}
}

func (l *Leader) step(ctx context.Context) {
	l.mu.Lock()
	lk := l.lock
	l.mu.Unlock()
	// Each call gets at most a third of the TTL so a hung Redis cannot keep us
	// believing we lead past the self-fencing point.
	cctx, cancel := context.WithTimeout(ctx, l.opts.TTL/3)
	defer cancel()
	if lk != nil {
		started := time.Now()
		err := lk.Refresh(cctx, l.opts.TTL, nil)
		switch {
		case err == nil:
			l.mu.Lock()
			l.lastRefresh = started
			l.mu.Unlock()
		case errors.Is(err, redislock.ErrNotObtained):
			l.demote("lock lost to another instance")
		default:
			l.mu.Lock()
			stale := time.Since(l.lastRefresh) > l.opts.TTL*2/3
			l.mu.Unlock()
			if stale {
				l.demote("lock not refreshed within 2/3 of its TTL: " + redactErr(err))
			}
		}
		return
	}
	started := time.Now()
	nl, err := l.locker.Obtain(cctx, l.opts.Key, l.opts.TTL, &redislock.Options{Metadata: l.opts.ID})
	if err != nil {
		if !errors.Is(err, redislock.ErrNotObtained) && ctx.Err() == nil {
			l.opts.Logger.Debug("leader lock not obtained", zap.String("error", redactErr(err)))
		}
		return
	}
	var epoch int64
	if l.opts.Epoch != nil {
		epoch, err = l.opts.Epoch(cctx)
		if err != nil {
			// Without an epoch we cannot stamp entries; give the lock back.
			rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
			_ = nl.Release(rctx)
			rcancel()
			l.opts.Logger.Warn("leader epoch not obtained; lock released", zap.String("error", redactErr(err)))
			return
		}
	}
	l.mu.Lock()
	l.lock, l.epoch, l.lastRefresh = nl, epoch, started
	l.changes++
	l.mu.Unlock()
	l.opts.Logger.Info("became ingester leader", zap.Int64("epoch", epoch))
	if l.opts.OnChange != nil {
		l.opts.OnChange(true, epoch)
	}
}

func (l *Leader) demote(why string) {
	l.mu.Lock()
	was := l.lock != nil
	l.lock, l.epoch = nil, 0
	if was {
		l.changes++
	}
	l.mu.Unlock()
	if was {
		l.opts.Logger.Warn("lost ingester leadership", zap.String("reason", why))
		if l.opts.OnChange != nil {
			l.opts.OnChange(false, 0)
		}
	}
}

func (l *Leader) release() {
	l.mu.Lock()
	lk := l.lock
	l.mu.Unlock()
	if lk == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := lk.Release(ctx); err != nil && !errors.Is(err, redislock.ErrLockNotHeld) {
		l.opts.Logger.Warn("leader lock not released; a standby takes over when it expires", zap.String("error", redactErr(err)))
	}
	l.demote("shutting down")
}

// redactErr keeps error texts short; Redis errors carry no message content.
func redactErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
