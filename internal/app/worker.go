package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/dlq"
	"github.com/signal-client/signal-client/internal/handlers"
	"github.com/signal-client/signal-client/internal/health"
	"github.com/signal-client/signal-client/internal/metrics"
	"github.com/signal-client/signal-client/internal/worker"
)

// HandlerFactory builds the worker's handler once the shared parts exist
// (bot/run passes one for a user's own router).
type HandlerFactory func(b *Base) (worker.Handler, error)

// Builtins builds the built-in handlers of internal/handlers.
func Builtins(b *Base) (worker.Handler, error) {
	if b.REST == nil || b.Store == nil {
		return nil, errors.New("worker: handlers need SIGNAL_API_URL, SIGNAL_PHONE_NUMBER and Redis")
	}
	return handlers.New(bot.Deps{Config: b.Cfg, REST: b.REST, Store: b.Store, Log: b.Log, Observer: metrics.RegisterSender(b.Registry)})
}

// RunWorker runs bin/worker with the built-in handlers (ARCHITECTURE §6).
func RunWorker(ctx context.Context, cfg *config.Config) error {
	return RunWorkerWith(Builtins)(ctx, cfg)
}

// RunWorkerWith returns the run function of a worker whose handler f builds.
func RunWorkerWith(f HandlerFactory) RunFunc {
	return func(ctx context.Context, cfg *config.Config) error {
		b, err := NewBase(cfg, "worker")
		if err != nil {
			return err
		}
		defer b.Close()
		if err := b.start(ctx); err != nil {
			return err
		}
		h, err := f(b)
		if err != nil {
			return err
		}
		return b.runWorker(ctx, h)
	}
}

func (b *Base) runWorker(ctx context.Context, h worker.Handler) error {
	cfg := b.Cfg
	wcfg := worker.Config{ID: cfg.InstanceID, PoolSize: cfg.WorkerPoolSize, QueueSize: cfg.QueueSize, LeaseTTL: cfg.ShardLeaseTTL,
		HandlerTimeout: cfg.HandlerTimeout, MaxRetries: cfg.DLQMaxRetries, BackoffBase: cfg.RetryBackoffBase, BackoffMax: cfg.RetryBackoffMax,
		ClaimMinIdle: cfg.ClaimMinIdle, DLQMaxLen: int64((cfg.DLQMaxLen + cfg.WorkerShardCount - 1) / cfg.WorkerShardCount),
		ShutdownTimeout: cfg.ShutdownTimeout * 3 / 4, AckBatchMax: cfg.AckBatchMax, AckBatchWindow: cfg.AckBatchWindow,
		Redact: b.Redactor.RedactString}
	obs := metrics.RegisterWorker(b.Registry, metrics.WorkerSources{ID: cfg.InstanceID, Store: b.Store})
	hb := metrics.RegisterHeartbeat(b.Registry)
	dm := metrics.RegisterDLQ(b.Registry, dlq.New(b.Store, dlq.DeadLetters))
	prevHB := obs.Observer.Heartbeat
	obs.Observer.Heartbeat = func(shard int, d time.Duration) {
		if prevHB != nil {
			prevHB(shard, d)
		}
		hb.Observe(shard, d)
	}
	w, err := worker.New(wcfg, b.Store, b.Redis, h, obs.Observer, b.Log)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	obs.Bind(w)
	hb.Bind(w.OwnedShards)
	dm.Bind(w.OwnedShards)
	b.Health.AddCheck("membership", func(context.Context) health.Result {
		if w.Registered() {
			return health.Result{OK: true}
		}
		return health.Result{OK: false, Message: "not registered in the worker membership (Redis unreachable?)"}
	})
	// Owning no shard is not a failure (ARCHITECTURE §12): a worker waiting
	// for leases other workers still hold, or idle because workers outnumber
	// shards, is ready; the check says which.
	b.Health.AddCheck("leases", func(context.Context) health.Result {
		n := len(w.OwnedShards())
		live := w.Stats().LiveWorkers.Load()
		switch {
		case n > 0:
			return health.Result{OK: true, Detail: map[string]any{"owned": n}}
		case live > int64(cfg.WorkerShardCount):
			return health.Result{OK: true, Message: fmt.Sprintf("idle: %d live workers for %d shards", live, cfg.WorkerShardCount)}
		}
		return health.Result{OK: true, Message: "waiting for shard leases: every shard is held by another (possibly dead) worker until its lease expires (SHARD_LEASE_TTL)"}
	})
	b.pending.Add(-1) // its checks are registered: /ready may now say ready
	b.Health.AddInfo(func() map[string]any {
		st := w.Stats()
		return map[string]any{"shards_owned": w.OwnedShards(), "live_workers": st.LiveWorkers.Load(), "in_flight": st.InFlight.Load()}
	})
	// A bot's OnStart hooks (proactive sends) run beside the worker.
	if s, ok := h.(interface{ RunStartHooks(context.Context) func() }); ok {
		wait := s.RunStartHooks(ctx)
		defer wait()
	}
	return w.Run(ctx)
}
