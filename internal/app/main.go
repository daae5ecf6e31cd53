// Package app assembles signal-client's binaries from their parts: it turns a
// configuration into a logger, a Redis client, the key layout, a REST client,
// the preflight, the health and metrics servers, and runs the ingester or the
// worker on them. cmd/*/main.go only call Main with their role and run func.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/signal-client/signal-client/internal/config"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // the run failed (preflight refusal, fatal error)
	ExitConfig = 2 // the configuration was refused
)

// RunFunc runs a binary until ctx ends.
type RunFunc func(ctx context.Context, cfg *config.Config) error

// Main parses the configuration for role and runs run with a context that
// SIGINT / SIGTERM cancel. It returns the process exit code.
func Main(role string, args []string, stdout, stderr io.Writer, run RunFunc) int {
	cfg, err := config.Load(role, args, os.LookupEnv)
	var help *config.HelpError
	switch {
	case errors.As(err, &help):
		fmt.Fprint(stdout, help.Usage)
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", role, err)
		return ExitConfig
	}
	if cfg.PrintConfig {
		if err := cfg.Print(stdout); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", role, err)
			return ExitFailed
		}
		return ExitOK
	}
	setGCPercent(role, os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", role, err)
		return ExitFailed
	}
	return ExitOK
}

// workerGCPercent is the worker's garbage-collector target when GOGC is not
// set. A worker's garbage is per message and short-lived, and its live heap is
// small (a few MiB), so the Go default (100) runs a collection every few MiB
// allocated: at full load that was about 9% of the worker's CPU above this
// setting, for 2-4 MiB more peak RSS (docs/performance.md).
const workerGCPercent = 200

// setGCPercent applies workerGCPercent to the roles that run a worker unless
// the operator set GOGC (which the runtime has applied already and which
// always wins).
func setGCPercent(role string, lookup func(string) (string, bool)) (applied bool) {
	if role != config.RoleWorker && role != config.RoleAll {
		return false
	}
	if _, set := lookup("GOGC"); set {
		return false
	}
	debug.SetGCPercent(workerGCPercent)
	return true
}
