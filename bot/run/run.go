// Package run starts a bot.Router as a signal-client worker process, so a
// bot author writes their own main:
//
//	func main() {
//		r := bot.New()
//		r.Command("!ping", func(c *bot.Context) error { _, err := c.Reply("pong"); return err })
//		os.Exit(run.Main(r))
//	}
//
// The process is configured exactly like bin/worker (flags, environment,
// config file; see docs/configuration.md), joins the cluster's workers and
// serves health and metrics. Run it beside at least one ingester.
package run

import (
	"context"
	"errors"
	"os"

	"github.com/signal-client/signal-client/bot"
	"github.com/signal-client/signal-client/internal/app"
	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/metrics"
	"github.com/signal-client/signal-client/internal/worker"
)

// Main parses the configuration from os.Args and the environment, runs r
// until SIGINT or SIGTERM, and returns the process exit code.
func Main(r *bot.Router) int {
	return app.Main(config.RoleWorker, os.Args[1:], os.Stdout, os.Stderr, app.RunWorkerWith(Factory(r)))
}

// Worker runs r as a worker with an already loaded configuration until ctx
// ends (for programs that load configuration themselves).
func Worker(ctx context.Context, r *bot.Router, cfg *config.Config) error {
	return app.RunWorkerWith(Factory(r))(ctx, cfg)
}

// Factory builds r's runtime from the worker's assembled parts.
func Factory(r *bot.Router) app.HandlerFactory {
	return func(b *app.Base) (worker.Handler, error) {
		if b.REST == nil || b.Store == nil {
			return nil, errors.New("run: a bot needs SIGNAL_API_URL, SIGNAL_PHONE_NUMBER and Redis (REDIS_URL)")
		}
		return bot.NewRuntime(r, bot.Deps{Config: b.Cfg, REST: b.REST, Store: b.Store, Log: b.Log, Observer: metrics.RegisterSender(b.Registry)})
	}
}
