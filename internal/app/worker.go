package app

import (
	"context"
	"fmt"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/handlers"
	"github.com/signal-client/signal-client/internal/health"
	"github.com/signal-client/signal-client/internal/metrics"
	"github.com/signal-client/signal-client/internal/worker"
)

// RunWorker runs bin/worker with the built-in handlers (ARCHITECTURE §6).
func RunWorker(ctx context.Context, cfg *config.Config) error {
	b, err := NewBase(cfg, "worker")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.start(ctx); err != nil {
		return err
	}
	return b.runWorker(ctx, handlers.Builtins{Sender: b.REST})
}

func (b *Base) runWorker(ctx context.Context, h worker.Handler) error {
	cfg := b.Cfg
	wcfg := worker.Config{ID: cfg.InstanceID, PoolSize: cfg.WorkerPoolSize, QueueSize: cfg.QueueSize, LeaseTTL: cfg.ShardLeaseTTL,
		HandlerTimeout: cfg.HandlerTimeout, MaxRetries: cfg.DLQMaxRetries, BackoffBase: cfg.RetryBackoffBase, BackoffMax: cfg.RetryBackoffMax,
		ClaimMinIdle: cfg.ClaimMinIdle, DLQMaxLen: int64((cfg.DLQMaxLen + cfg.WorkerShardCount - 1) / cfg.WorkerShardCount),
		ShutdownTimeout: cfg.ShutdownTimeout * 3 / 4, AckBatchMax: cfg.AckBatchMax, AckBatchWindow: cfg.AckBatchWindow,
		Redact: b.Redactor.RedactString}
	obs := metrics.RegisterWorker(b.Registry, metrics.WorkerSources{ID: cfg.InstanceID, Store: b.Store})
	w, err := worker.New(wcfg, b.Store, b.Redis, h, obs.Observer, b.Log)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	obs.Bind(w)
	b.Health.AddCheck("membership", func(context.Context) health.Result {
		if w.Registered() {
			return health.Result{OK: true}
		}
		return health.Result{OK: false, Message: "not registered in the worker membership (Redis unreachable?)"}
	})
	b.Health.AddInfo(func() map[string]any {
		st := w.Stats()
		return map[string]any{"shards_owned": w.OwnedShards(), "live_workers": st.LiveWorkers.Load(), "in_flight": st.InFlight.Load()}
	})
	return w.Run(ctx)
}
