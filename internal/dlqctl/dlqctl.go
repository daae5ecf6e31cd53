// Package dlqctl implements bin/dlqctl, the operator's tool for the
// dead-letter streams (one per shard, presented as one queue by internal/dlq)
// and the ingester's quarantine (--quarantine). It uses the same
// configuration as every other binary. Results go to stdout (a table for
// people, --json for scripts); messages, progress and the audit log line go
// to stderr. Mutating commands (replay, purge, import) and export leave an
// audit record in P:{A}:audit and in the log.
package dlqctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/dlq"
	"github.com/signal-client/signal-client/internal/logging"
	"github.com/signal-client/signal-client/internal/streams"
)

// Exit codes (docs/operations.md lists them).
const (
	ExitOK          = 0   // done; also when nothing matched (with a message on stderr)
	ExitFailed      = 1   // the command failed part way (see the message)
	ExitUsage       = 2   // bad flags, arguments or configuration; a refused command (purge without --yes)
	ExitNoRedis     = 3   // Redis unreachable
	ExitUnknownID   = 4   // an id names no entry (nothing was changed)
	ExitInterrupted = 130 // SIGINT/SIGTERM: the batch in flight was finished and counted
)

// IO is where a run reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Env looks up environment variables (nil = none).
	Env config.LookupFunc
	// Terminal turns the progress display on (Main sets it when stderr is a
	// terminal).
	Terminal bool
}

// Main runs dlqctl as a process: the environment, stdin, and SIGINT/SIGTERM
// ending the run between batches. It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// dlqctl says itself what failed and what to do; go-redis's own
	// connection-pool lines would only repeat it less clearly.
	redis.SetLogger(quietLogger{})
	return Run(ctx, args, IO{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Env: os.LookupEnv, Terminal: isTerminal(stderr)})
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// usageError is a refused command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// redisError is Redis unreachable.
type redisError struct{ err error }

func (e *redisError) Error() string {
	return "redis unreachable: " + e.err.Error() + " (check REDIS_URL, or REDIS_HOST, REDIS_PORT and REDIS_PASSWORD)"
}
func (e *redisError) Unwrap() error { return e.err }

// interrupted ends a run that was stopped by a signal.
var errInterrupted = errors.New("interrupted")

// Run runs dlqctl with args and returns the exit code.
func Run(ctx context.Context, args []string, io IO) int {
	if io.Env == nil {
		io.Env = config.EnvMap(nil)
	}
	if io.Stdin == nil {
		io.Stdin = eofReader{}
	}
	a := &app{io: io, cfgFlags: config.FlagSet(config.RoleDLQCtl)}
	root := a.root()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(io.Stderr, "dlqctl: %v\n", err)
	var ce *config.Error
	var ue *usageError
	var re *redisError
	var ie *dlq.IDError
	var inv *dlq.InvalidIDError
	var ne net.Error
	switch {
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	case errors.As(err, &ie):
		if len(ie.Unknown) > 0 {
			return ExitUnknownID
		}
		return ExitUsage
	case errors.As(err, &ce), errors.As(err, &ue), errors.As(err, &inv), errors.Is(err, dlq.ErrNotReplayable):
		return ExitUsage
	case errors.As(err, &re), errors.As(err, &ne):
		return ExitNoRedis
	case isUnknownCommand(err):
		return ExitUsage
	}
	return ExitFailed
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// isUnknownCommand recognises cobra's complaint about a subcommand name (a
// plain error; flag errors are wrapped by the flag error func).
func isUnknownCommand(err error) bool { return strings.HasPrefix(err.Error(), "unknown command") }

type app struct {
	io       IO
	cfgFlags *pflag.FlagSet
	actor    string
}

// env is an opened deployment.
type env struct {
	cfg   *config.Config
	store *streams.Store
	log   *zap.Logger
}

func (e *env) close() {
	_ = e.store.Client().Close()
	_ = e.log.Sync()
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "dlqctl",
		Short: "Inspect and repair signal-client's dead-letter queue and quarantine",
		Long: "dlqctl shows the dead-letter streams of every shard as one queue, oldest parked first, and the ingester's\n" +
			"quarantine of undecodable frames with --quarantine. Configuration comes from the same environment variables\n" +
			"and flags as the other binaries (REDIS_URL, SIGNAL_PHONE_NUMBER, REDIS_KEY_PREFIX, ...), e.g.\n" +
			"`dlqctl stats --redis-url redis://...`. The shard count is read from the deployment itself.\n\n" +
			"Exit codes: 0 done (also when nothing matched), 1 failed, 2 usage or refused, 3 Redis unreachable,\n" +
			"4 unknown id (nothing changed), 130 interrupted (the batch in flight was finished).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.PersistentFlags().AddFlagSet(a.cfgFlags)
	root.PersistentFlags().StringVar(&a.actor, "actor", "", "who runs this, for the audit record (default: $SUDO_USER or the login name @ host)")
	root.SetOut(a.io.Stdout)
	root.SetErr(a.io.Stderr)
	root.SetIn(a.io.Stdin)
	root.AddCommand(a.listCmd(), a.showCmd(), a.statsCmd(), a.replayCmd(), a.purgeCmd(), a.exportCmd(), a.importCmd(), a.auditCmd(), a.shardsCmd())
	return root
}

// open reads the configuration and connects; the shard count comes from the
// deployment's meta hash (what the streams were created with), so dlqctl
// needs no WORKER_SHARD_COUNT.
func (a *app) open(ctx context.Context) (*env, error) {
	cfg, err := config.LoadParsed(config.RoleDLQCtl, a.cfgFlags, a.io.Env)
	if err != nil {
		return nil, err
	}
	if cfg.Signal.PhoneNumber == "" {
		return nil, &config.Error{Variable: "SIGNAL_PHONE_NUMBER", Unset: true, Expected: "the bot account in E.164 form, e.g. +15551234567 (it selects the deployment's keys)"}
	}
	opts, err := cfg.RedisOptions()
	if err != nil {
		return nil, err
	}
	keys, err := streams.NewKeys(cfg.Redis.KeyPrefix, cfg.Signal.PhoneNumber)
	if err != nil {
		return nil, err
	}
	log, err := logging.New(logging.Options{Level: cfg.Log.Level, Format: cfg.Log.Format, Redact: cfg.Log.RedactionEnabled, Output: a.io.Stderr})
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, &redisError{err}
	}
	shards := cfg.WorkerShardCount
	if v, err := rdb.HGet(pctx, keys.Meta(), "shard_count").Result(); err == nil {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			shards = n
		}
	} else if !errors.Is(err, redis.Nil) {
		rdb.Close()
		return nil, &redisError{err}
	}
	return &env{cfg: cfg, store: streams.NewStore(rdb, keys, shards), log: log.With(zap.String("component", "dlqctl"))}, nil
}

func (a *app) who() string {
	if a.actor != "" {
		return a.actor
	}
	return dlq.Actor()
}
