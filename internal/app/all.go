package app

import (
	"context"
	"fmt"
	"sync"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/memstore"
	"go.uber.org/zap"
)

// RunAll runs bin/signal-client: an ingester and a worker in one process,
// sharing one Redis client, one health server and one metrics registry.
func RunAll(ctx context.Context, cfg *config.Config) error {
	var mem *memstore.Store
	if cfg.StorageType == "memory" {
		var err error
		mem, err = memstore.Start(memstore.Options{Addr: cfg.MemoryStoreAddr, Password: cfg.Redis.Password})
		if err != nil {
			return fmt.Errorf("embedded store: %w", err)
		}
		defer mem.Close()
		cfg.Redis.URL = mem.URL()
		cfg.Redis.Password = mem.Password
	}
	b, err := NewBase(cfg, "signal-client")
	if err != nil {
		return err
	}
	defer b.Close()
	if mem != nil {
		b.memory = true
		b.Log.Warn("STORAGE_TYPE=memory: the embedded store keeps everything in this process and loses it on exit; use STORAGE_TYPE=redis for anything that must survive a restart",
			zap.String("store", mem.Addr()), zap.String("dlqctl", "REDIS_URL=redis://:<REDIS_PASSWORD>@"+mem.Addr()+"/0"))
	}
	if err := b.start(ctx); err != nil {
		return err
	}
	h, err := Builtins(b)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = b.runIngester(ctx, nil) }()
	go func() { defer wg.Done(); errs[1] = b.runWorker(ctx, h) }()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
