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

// readCounter counts the reads of new entries, blocking or not.
type readCounter struct{ blocking, polling atomic.Int64 }

func (h *readCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *readCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *readCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) > 0 && strings.EqualFold(fmt.Sprint(args[0]), "xreadgroup") && fmt.Sprint(args[len(args)-1]) == ">" {
			block := false
			for _, a := range args {
				if strings.EqualFold(fmt.Sprint(a), "block") {
					block = true
				}
			}
			if block {
				h.blocking.Add(1)
			} else {
				h.polling.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}

// A burst is read without blocking (and without go-redis' per-entry maps);
// once it is over the reader waits in one blocking read, polling nothing,
// and the next entry ends that wait at once.
func TestReaderReadsBurstsWithoutBlockingAndIdlesBlocked(t *testing.T) {
	e := newEnv(t, 4)
	rec := newRecorder()
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	var reads readCounter
	c.AddHook(&reads)
	cfg := Config{ID: "w1", PoolSize: 8, QueueSize: 1000, LeaseTTL: 600 * time.Millisecond, HandlerTimeout: time.Second,
		MaxRetries: 2, BackoffBase: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond, ShutdownTimeout: 2 * time.Second,
		InfraPause: 10 * time.Millisecond, InfraPauseMax: 50 * time.Millisecond}
	w, err := New(cfg, streams.NewStore(c, e.keys, e.store.Shards()), c, rec.handler("w1", nil), Observer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 5*time.Second, func() bool { return reads.blocking.Load() > 0 }, "the reader to block waiting for entries")

	const convs, per = 20, 30
	var batch []streams.Append
	for i := range per {
		for cv := range convs {
			conv := fmt.Sprintf("conv-%d", cv)
			batch = append(batch, streams.Append{Shard: streams.ShardOf(conv, 4), Identity: fmt.Sprintf("%s/%d", conv, i),
				Entry: streams.Entry{Kind: "message", Conversation: conv, Timestamp: time.Now().UnixMilli(), Payload: payload(conv, i)}})
		}
	}
	if _, err := e.store.AppendBatch(context.Background(), batch, time.Hour); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.total() == convs*per }, "every entry handled")
	rec.check(t, convs, per)
	if reads.polling.Load() == 0 {
		t.Fatalf("a burst of %d entries was read by %d blocking reads and no non-blocking one", convs*per, reads.blocking.Load())
	}

	time.Sleep(100 * time.Millisecond) // the read after the burst is under way
	b0, p0 := reads.blocking.Load(), reads.polling.Load()
	time.Sleep(700 * time.Millisecond)
	if b, p := reads.blocking.Load()-b0, reads.polling.Load()-p0; b+p > 0 {
		t.Fatalf("idle reader made %d blocking and %d non-blocking reads in 700ms; it should wait in one blocking read", b, p)
	}
	start := time.Now()
	e.append("conv-0", per)
	eventually(t, 2*time.Second, func() bool { return rec.total() == convs*per+1 }, "the entry after the idle time handled")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("an entry arriving while idle was picked up after %v", d)
	}
}
