package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/dlq"
	"github.com/signal-client/signal-client/internal/health"
	"github.com/signal-client/signal-client/internal/logging"
	"github.com/signal-client/signal-client/internal/metrics"
	"github.com/signal-client/signal-client/internal/preflight"
	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/streams"
	"github.com/signal-client/signal-client/internal/version"
)

// Base is what every long-running binary shares.
type Base struct {
	Cfg      *config.Config
	Log      *zap.Logger
	Redactor *logging.Redactor
	Redis    *redis.Client
	Keys     streams.Keys
	Store    *streams.Store
	REST     *rest.Client
	Health   *health.Server
	Registry *prometheus.Registry

	preflightOK atomic.Bool
	redisUp     atomic.Bool
	// pending counts the components (ingester, worker) whose readiness
	// checks are not registered yet: until then /ready must not say ready.
	pending atomic.Int32
	// memory is set for the embedded store: its Redis-side checks (version,
	// eviction, persistence) do not apply.
	memory bool
}

// NewBase builds the shared parts (nothing is contacted yet).
func NewBase(cfg *config.Config, component string) (*Base, error) {
	var key []byte
	if cfg.Log.RedactionKey != "" {
		key = []byte(cfg.Log.RedactionKey)
	}
	red := logging.NewRedactor(key)
	log, err := logging.New(logging.Options{Level: cfg.Log.Level, Format: cfg.Log.Format, Redact: cfg.Log.RedactionEnabled, Redactor: red})
	if err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	log = log.With(zap.String("component", component), zap.String("instance", cfg.InstanceID))
	for _, w := range cfg.Warnings {
		log.Warn("configuration: " + w)
	}
	b := &Base{Cfg: cfg, Log: log, Redactor: red, Health: health.New(), Registry: metrics.NewRegistry(component)}
	switch component {
	case "ingester", "worker":
		b.pending.Store(1)
	case "signal-client":
		b.pending.Store(2)
	}
	metrics.RegisterRedisUp(b.Registry, b.RedisUp)
	if cfg.StorageType != "memory" || cfg.Redis.URL != "" {
		opts, err := cfg.RedisOptions()
		if err != nil {
			return nil, err
		}
		b.Redis = redis.NewClient(opts)
	}
	if cfg.Signal.PhoneNumber != "" {
		b.Keys, err = streams.NewKeys(cfg.Redis.KeyPrefix, cfg.Signal.PhoneNumber)
		if err != nil {
			return nil, err
		}
		if b.Redis != nil {
			b.Store = streams.NewStore(b.Redis, b.Keys, cfg.WorkerShardCount)
		}
	}
	if cfg.Signal.APIURL != "" {
		scheme := cfg.Signal.AuthScheme // "" sends the token bare
		b.REST, err = rest.New(rest.Options{BaseURL: cfg.Signal.APIURL, Number: cfg.Signal.PhoneNumber, Token: cfg.Signal.APIToken,
			AuthScheme: &scheme, Timeout: cfg.Signal.Timeout, MaxInFlight: cfg.Signal.MaxConcurrency,
			Observer: metrics.RegisterREST(b.Registry).Observe})
		if err != nil {
			return nil, err
		}
	}
	b.Health.Handle("/dlq", dlq.Handler(b.Store))
	b.Health.AddCheck("preflight", func(context.Context) health.Result {
		if b.preflightOK.Load() && b.pending.Load() > 0 {
			return health.Result{OK: false, Message: "starting: the start-up checks passed, the ingester or worker is not running yet"}
		}
		if b.preflightOK.Load() {
			return health.Result{OK: true}
		}
		return health.Result{OK: false, Message: "start-up checks have not passed yet (see the log)"}
	})
	if b.Redis != nil {
		b.Health.AddCheck("redis", func(ctx context.Context) health.Result {
			if err := b.Redis.Ping(ctx).Err(); err != nil {
				b.redisUp.Store(false)
				return health.Result{OK: false, Message: "redis unreachable: " + err.Error()}
			}
			b.redisUp.Store(true)
			return health.Result{OK: true}
		})
	}
	log.Info("starting", zap.String("version", version.String()), zap.String("account", logging.MaskPhone(cfg.Signal.PhoneNumber)),
		zap.Int("shards", cfg.WorkerShardCount))
	return b, nil
}

// wsAuthScheme maps API_AUTH_SCHEME to the receiver's spelling of "bare".
func wsAuthScheme(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Close releases the clients.
func (b *Base) Close() {
	if b.Redis != nil {
		_ = b.Redis.Close()
	}
	_ = b.Log.Sync()
}

// RedisUp reports the last Redis health seen by /ready or the preflight.
func (b *Base) RedisUp() bool { return b.redisUp.Load() }

// errRefused marks a preflight failure that retrying cannot fix.
var errRefused = errors.New("preflight refused")

// Preflight runs the start-up checks until they pass. An unreachable
// dependency is retried (and reported in /ready); a definitive refusal (wrong
// mode, too old a version, an evicting Redis) ends the process with the one
// line that says what to change.
func (b *Base) Preflight(ctx context.Context, withREST bool) error {
	in := preflight.Inputs{}
	if b.Redis != nil && !b.memory {
		in.Redis = b.Redis
	}
	if withREST && b.REST != nil {
		in.About = func(ctx context.Context) (string, string, error) {
			a, err := b.REST.About(ctx)
			if err != nil {
				return "", "", err
			}
			return a.Mode, a.Version, nil
		}
	}
	var lastLog time.Time
	for {
		r := preflight.Run(ctx, in)
		if r.OK() {
			preflight.Log(b.Log, r)
			b.preflightOK.Store(true)
			b.redisUp.Store(in.Redis != nil)
			return nil
		}
		transient := true
		for _, c := range r.Failed() {
			if c.Name != preflight.CheckSignalAPI && c.Name != preflight.CheckRedis {
				transient = false
			}
		}
		if !transient {
			preflight.Log(b.Log, r)
			return fmt.Errorf("%w: %s", errRefused, r.Summary())
		}
		if time.Since(lastLog) > 30*time.Second {
			lastLog = time.Now()
			preflight.Log(b.Log, r)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// Serve starts the health and metrics servers; they stop when ctx ends.
func (b *Base) Serve(ctx context.Context) error {
	haddr, herr, err := health.Serve(ctx, b.Cfg.HealthListenAddr(), b.Health.Handler())
	if err != nil {
		return fmt.Errorf("health server on %s: %w (set HEALTH_PORT to a free port)", b.Cfg.HealthListenAddr(), err)
	}
	maddr, merr, err := metrics.Serve(ctx, b.Cfg.MetricsListenAddr(), b.Registry, b.Cfg.DebugPprof)
	if err != nil {
		return fmt.Errorf("metrics server on %s: %w (set METRICS_PORT to a free port)", b.Cfg.MetricsListenAddr(), err)
	}
	b.Log.Info("serving health and metrics", zap.String("health", haddr.String()), zap.String("metrics", maddr.String()),
		zap.Bool("pprof", b.Cfg.DebugPprof))
	if b.Redis != nil {
		// redis_up follows Redis even when nobody asks /ready.
		go func() {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				b.redisUp.Store(b.Redis.Ping(pctx).Err() == nil)
				cancel()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	go func() {
		for _, c := range []<-chan error{herr, merr} {
			if err := <-c; err != nil {
				b.Log.Error("http server stopped", zap.Error(err))
			}
		}
	}()
	return nil
}

// start serves health and metrics, passes the preflight and prepares the
// streams: what every long-running binary does before its own work.
func (b *Base) start(ctx context.Context) error {
	if err := b.Serve(ctx); err != nil {
		return err
	}
	if err := b.Preflight(ctx, true); err != nil {
		return err
	}
	return b.InitStreams(ctx)
}

// InitStreams records the shard count and creates the consumer groups.
func (b *Base) InitStreams(ctx context.Context) error {
	hint := b.Cfg.Signal.PhoneNumber
	if len(hint) > 2 {
		hint = hint[len(hint)-2:]
	}
	if err := b.Store.InitMeta(ctx, hint); err != nil {
		return err
	}
	if err := streams.LoadScripts(ctx, b.Redis); err != nil {
		return err
	}
	return b.Store.EnsureGroups(ctx)
}

// trimErr keeps the first line of an error for a health message.
func trimErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
