// Package dlqctl implements bin/dlqctl, the operator's tool for the
// dead-letter streams (one per shard, presented as one) and the ingester's
// quarantine. It uses the same configuration as every other binary.
package dlqctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/streams"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitNoRedis = 3
)

// Main runs dlqctl and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	code := exitOK
	cfgFlags := config.FlagSet(config.RoleDLQCtl)
	root := &cobra.Command{
		Use:   "dlqctl",
		Short: "Inspect and repair signal-client's dead-letter queue",
		Long: "dlqctl shows the dead-letter streams of every shard as one queue. Configuration comes from the same\n" +
			"environment variables and flags as the other binaries (REDIS_URL, SIGNAL_PHONE_NUMBER, REDIS_KEY_PREFIX,\n" +
			"WORKER_SHARD_COUNT, ...), e.g. `dlqctl stats --redis-url redis://...`.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().AddFlagSet(cfgFlags)
	root.SetOut(stdout)
	root.SetErr(stderr)
	var asJSON bool
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Depth of the DLQ by shard and reason, and its oldest entry",
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open(cfgFlags)
			if err != nil {
				return err
			}
			defer st.Client().Close()
			return runStats(cmd.Context(), st, stdout, asJSON)
		},
	}
	stats.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	root.AddCommand(stats)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		var ce *config.Error
		var re *redisError
		switch {
		case errors.As(err, &ce):
			code = exitUsage
		case errors.As(err, &re):
			code = exitNoRedis
		default:
			code = exitFailed
		}
		fmt.Fprintf(stderr, "dlqctl: %v\n", err)
	}
	return code
}

type redisError struct{ err error }

func (e *redisError) Error() string {
	return "redis unreachable: " + e.err.Error() + " (check REDIS_URL / REDIS_HOST, REDIS_PORT and REDIS_PASSWORD)"
}
func (e *redisError) Unwrap() error { return e.err }

func open(fs *pflag.FlagSet) (*streams.Store, error) {
	cfg, err := config.LoadParsed(config.RoleDLQCtl, fs, os.LookupEnv)
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
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, &redisError{err}
	}
	keys, err := streams.NewKeys(cfg.Redis.KeyPrefix, cfg.Signal.PhoneNumber)
	if err != nil {
		return nil, err
	}
	return streams.NewStore(rdb, keys, cfg.WorkerShardCount), nil
}

type shardStats struct {
	Shard  int            `json:"shard"`
	Depth  int64          `json:"depth"`
	Reason map[string]int `json:"by_reason"`
	Oldest string         `json:"oldest_entry,omitempty"`
}

func runStats(ctx context.Context, st *streams.Store, w io.Writer, asJSON bool) error {
	var total int64
	byReason := map[string]int{}
	var shards []shardStats
	var oldest string
	for n := 0; n < st.Shards(); n++ {
		key := st.Keys().DLQ(n)
		msgs, err := st.Client().XRange(ctx, key, "-", "+").Result()
		if err != nil {
			return &redisError{err}
		}
		if len(msgs) == 0 {
			continue
		}
		s := shardStats{Shard: n, Depth: int64(len(msgs)), Reason: map[string]int{}, Oldest: msgs[0].ID}
		for _, m := range msgs {
			r, _ := m.Values[streams.DLQFieldReason].(string)
			s.Reason[r]++
			byReason[r]++
		}
		if oldest == "" || msgs[0].ID < oldest {
			oldest = msgs[0].ID
		}
		total += s.Depth
		shards = append(shards, s)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(map[string]any{"depth": total, "by_reason": byReason, "by_shard": shards, "oldest_entry": oldest})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "depth\t%d\n", total)
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(tw, "reason %s\t%d\n", r, byReason[r])
	}
	for _, s := range shards {
		fmt.Fprintf(tw, "shard %d\t%d\n", s.Shard, s.Depth)
	}
	if oldest != "" {
		fmt.Fprintf(tw, "oldest\t%s\n", strings.SplitN(oldest, "-", 2)[0])
	}
	return tw.Flush()
}
