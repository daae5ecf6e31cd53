package dlqctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// shardsCmd is the one safe way to change WORKER_SHARD_COUNT
// (ARCHITECTURE §9.4): the shard of a conversation is its hash modulo the
// count, so entries still in flight under the old count would be handled out
// of order or not at all, and per-conversation state lives in shard-tagged
// keys named by a digest that cannot be re-sharded.
func (a *app) shardsCmd() *cobra.Command {
	c := &cobra.Command{Use: "shards", Short: "Show or change the deployment's shard count"}
	var yes, discardState bool
	set := &cobra.Command{
		Use:   "set N",
		Short: "Change the shard count recorded in Redis; refuses unless every shard is drained; needs --yes",
		Long: "shards set records a new shard count for the deployment. Do it with every ingester and worker stopped, after\n" +
			"the workers drained every shard (dlqctl stats; lag and pending 0). It refuses while any shard stream holds\n" +
			"undelivered or unacknowledged entries, while the ingester leader lock is held, or while per-conversation\n" +
			"state exists (state keys are tied to the old count: --discard-state deletes them, e.g. !count counters).\n" +
			"Parked DLQ entries stay where they are and can still be replayed (replay puts them in their shard under\n" +
			"the new count). Then start everything with WORKER_SHARD_COUNT=N.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 || n > streams.MaxShards {
				return usagef("shard count %q: expected an integer from 1 to %d", args[0], streams.MaxShards)
			}
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			return a.setShards(cmd.Context(), e, n, yes, discardState)
		},
	}
	set.Flags().BoolVar(&yes, "yes", false, "really change it")
	set.Flags().BoolVar(&discardState, "discard-state", false, "delete per-conversation state (it cannot follow the new count)")
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the recorded shard count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer e.close()
			fmt.Fprintln(a.io.Stdout, e.store.Shards())
			return nil
		},
	}
	c.AddCommand(set, show)
	return c
}

func (a *app) setShards(ctx context.Context, e *env, n int, yes, discardState bool) error {
	st := e.store
	rdb := st.Client()
	old := st.Shards()
	if n == old {
		fmt.Fprintf(a.io.Stdout, "the shard count is already %d; nothing changed\n", n)
		return nil
	}
	if held, err := rdb.Exists(ctx, st.Keys().Leader()).Result(); err != nil {
		return &redisError{err}
	} else if held == 1 {
		return usagef("an ingester holds the leader lock: stop every ingester first (they must not append under the old count); nothing changed")
	}
	var busy []string
	for s := 0; s < old; s++ {
		ss, err := st.Stats(ctx, s)
		if err != nil {
			return &redisError{err}
		}
		if ss.Lag != 0 || ss.Pending != 0 {
			busy = append(busy, fmt.Sprintf("shard %d (lag %d, pending %d)", s, ss.Lag, ss.Pending))
		}
	}
	if len(busy) > 0 {
		return usagef("not drained: %s; let the workers finish (dlqctl stats), then run this again; nothing changed", strings.Join(busy, ", "))
	}
	pattern := st.Keys().Prefix() + ":{" + st.Keys().Account() + ".s*}:st:*"
	var stateKeys []string
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		stateKeys = append(stateKeys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return &redisError{err}
	}
	if len(stateKeys) > 0 && !discardState {
		return usagef("%d conversations have state (e.g. counters) tied to the old count; add --discard-state to delete it, or keep %d shards; nothing changed", len(stateKeys), old)
	}
	if !yes {
		return usagef("would change the shard count from %d to %d%s: add --yes; nothing changed", old, n,
			map[bool]string{true: fmt.Sprintf(" and delete the state of %d conversations", len(stateKeys)), false: ""}[len(stateKeys) > 0])
	}
	for _, k := range stateKeys {
		if err := rdb.Del(ctx, k).Err(); err != nil {
			return &redisError{err}
		}
	}
	if err := rdb.HSet(ctx, st.Keys().Meta(), "shard_count", n).Err(); err != nil {
		return &redisError{err}
	}
	rec := []any{"who", a.who(), "cmd", "shards set", "from", old, "to", n, "state_deleted", len(stateKeys),
		"at", time.Now().UTC().Format(time.RFC3339)}
	if _, err := st.AppendAudit(ctx, rec); err != nil {
		e.log.Warn("audit record not written", zap.Error(err))
	}
	e.log.Info("dlqctl audit", zap.String("cmd", "shards set"), zap.Int("from", old), zap.Int("to", n), zap.Int("state_deleted", len(stateKeys)))
	fmt.Fprintf(a.io.Stdout, "shard count changed from %d to %d; start every process with WORKER_SHARD_COUNT=%d\n", old, n, n)
	return nil
}
