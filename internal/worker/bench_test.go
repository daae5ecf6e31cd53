package worker

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/streams"
)

// The consume path against its ceiling, in the same run on the same Redis:
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench 'Consume' -benchtime 20000x ./internal/worker/; done
//
// Both consume the same prefilled 16 shard streams of ~400-byte entries.
// raw is one XREADGROUP COUNT 128 over all streams plus one pipelined XACK
// per read; worker1/worker2 are the whole worker (leases, per-conversation
// dispatch to a no-op handler, attempt accounting, fenced batched commits)
// with 1 and 2 workers. The loop (rather than -count, which repeats each
// sub-benchmark back to back) interleaves them, so on a noisy machine each
// ratio compares runs made seconds apart. Compare msgs/s, medians, and the
// CPU per message of the benchmark process (go-µs/msg: the worker, plus the
// polling loop) and of Redis (redis-µs/msg): on two cores CPU is what the
// end-to-end pipeline is short of.

func prefill(b *testing.B, e *env, n int) {
	payload := string(payload("conv-0", 0)) + strings.Repeat(" ", 300)
	ctx := context.Background()
	for i := 0; i < n; i += 512 {
		var reqs []streams.Append
		for j := i; j < i+512 && j < n; j++ {
			conv := fmt.Sprintf("conv-%d", j%500)
			reqs = append(reqs, streams.Append{Shard: streams.ShardOf(conv, 16), Identity: fmt.Sprint(j),
				Entry: streams.Entry{Kind: "message", Conversation: conv, Timestamp: time.Now().UnixMilli(), Payload: []byte(payload)}})
		}
		if _, err := e.store.AppendBatch(ctx, reqs, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEnv(b *testing.B) *env {
	c := srv.Client()
	b.Cleanup(func() { c.Close() })
	k, _ := streams.NewKeys(fmt.Sprintf("bench%d", time.Now().UnixNano()), "+15550000001")
	st := streams.NewStore(c, k, 16)
	if err := st.EnsureGroups(context.Background()); err != nil {
		b.Fatal(err)
	}
	return &env{keys: k, store: st, c: c}
}

func BenchmarkConsume(b *testing.B) {
	b.Run("raw", benchRaw)
	b.Run("worker1", func(b *testing.B) { benchWorkers(b, 1) })
	b.Run("worker2", func(b *testing.B) { benchWorkers(b, 2) })
}

func benchRaw(b *testing.B) {
	e := benchEnv(b)
	prefill(b, e, b.N)
	ctx := context.Background()
	args := make([]string, 0, 32)
	for n := 0; n < 16; n++ {
		args = append(args, e.keys.Stream(n))
	}
	for n := 0; n < 16; n++ {
		args = append(args, ">")
	}
	cpu := srv.StartCPU(b)
	b.ResetTimer()
	done := 0
	for done < b.N {
		res, err := e.c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: streams.GroupName, Consumer: "raw", Streams: args, Count: 128, Block: -1}).Result()
		if err != nil && err != redis.Nil {
			b.Fatal(err)
		}
		pipe := e.c.Pipeline()
		for _, s := range res {
			ids := make([]string, len(s.Messages))
			for i, m := range s.Messages {
				ids[i] = m.ID
			}
			pipe.XAck(ctx, s.Stream, streams.GroupName, ids...)
			done += len(ids)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu.Report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func benchWorkers(b *testing.B, workers int) {
	e := benchEnv(b)
	prefill(b, e, b.N)
	cpu := srv.StartCPU(b)
	b.ResetTimer()
	// msgs/s counts from the first handler start: the workers' start-up
	// (membership, the first leases) is not throughput, and raw has none.
	// With two workers the run still includes the second one joining and
	// the shards rebalancing.
	var first atomic.Int64
	h := HandlerFunc(func(context.Context, *Message) error {
		if first.Load() == 0 {
			first.CompareAndSwap(0, time.Now().UnixNano())
		}
		return nil
	})
	var ws []*Worker
	var stops []func()
	for i := 0; i < workers; i++ {
		c := srv.Client()
		w, err := New(Config{ID: fmt.Sprintf("bw%d", i), PoolSize: 16, QueueSize: 1000, LeaseTTL: 5 * time.Second, ShutdownTimeout: time.Second},
			streams.NewStore(c, e.keys, 16), c, h, Observer{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		ws = append(ws, w)
		stops = append(stops, func() { cancel(); <-done; c.Close() })
	}
	for {
		var handled uint64
		for _, w := range ws {
			handled += w.Stats().Handled.Load()
		}
		if handled >= uint64(b.N) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	end := time.Now()
	b.StopTimer()
	cpu.Report(b, b.N)
	b.ReportMetric(float64(b.N)/end.Sub(time.Unix(0, first.Load())).Seconds(), "msgs/s")
	for _, s := range stops {
		s()
	}
}
