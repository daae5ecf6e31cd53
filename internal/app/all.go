package app

import (
	"context"
	"fmt"
	"sync"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/handlers"
)

// RunAll runs bin/signal-client: an ingester and a worker in one process,
// sharing one Redis client, one health server and one metrics registry.
func RunAll(ctx context.Context, cfg *config.Config) error {
	if cfg.StorageType == "memory" {
		return fmt.Errorf("STORAGE_TYPE=memory (the embedded store) lands with the all-in-one issue; set STORAGE_TYPE=redis and REDIS_URL for now")
	}
	b, err := NewBase(cfg, "signal-client")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.start(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = b.runIngester(ctx, nil) }()
	go func() { defer wg.Done(); errs[1] = b.runWorker(ctx, handlers.Builtins{Sender: b.REST}) }()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
