package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// procUsage is one process's share of a scenario.
type procUsage struct {
	Name string
	usage
}

// result is one run of one scenario.
type result struct {
	Scenario string
	N        int
	Elapsed  time.Duration
	Rate     float64 // messages per second
	// P50/P99/Max is the latency the scenario measures (see LatencyOf).
	P50, P99, Max time.Duration
	LatencyOf     string
	Procs         []procUsage
	IdleCPU       string  // signal-client only: CPU with no traffic after the run
	InjectRate    float64 // signal-client only: frames/s the emulator admin API took (paced) or emitted (a released burst)
	InjectOf      string  // signal-client only: what InjectRate measured ("injection ran at", …)
	// signal-client only:
	Idle       []idleCPU       // the IdleCPU figures, per process
	MaxLead    time.Duration   // envelope timestamps bumped this far ahead of the clock at most
	ShardsUsed int             // shard streams the conversations hashed to
	Timeline   []sample        // worker scrapes during the run (pipelineConfig.Sample)
	Profiles   []profileResult // CPU profiles (pipelineConfig.Pprof)
}

// idleCPU is one process's CPU with no traffic, in % of a core.
type idleCPU struct {
	Name string
	Pct  float64
}

// selfUsage reads the bench process's own CPU and peak RSS; the raw and asynq
// scenarios run inside it, so their client-side cost lands here.
func selfUsage() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return usage{CPU: cpu, PeakRSS: ru.Maxrss * 1024}
}

// payload is ~400 bytes, the size of a typical signal-cli text frame; its
// first 8 bytes carry the send time for the latency figure.
func payload(t time.Time) []byte {
	b := make([]byte, 400)
	binary.LittleEndian.PutUint64(b, uint64(t.UnixNano()))
	copy(b[8:], strings.Repeat("x", 392))
	return b
}

func sentAt(b []byte) time.Time {
	if len(b) < 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(b)))
}

// runRaw is the ceiling: pipelined XADD (batches of 100) into one stream, and
// a concurrent consumer doing XREADGROUP COUNT 500 and one XACK per batch.
func runRaw(ctx context.Context, rs *redisServer, n int) (result, error) {
	if err := rs.flush(ctx); err != nil {
		return result{}, fmt.Errorf("bench: raw: flush: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: rs.addr, PoolSize: 4})
	defer c.Close()
	const stream, group = "bench:raw", "g"
	if err := c.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		return result{}, fmt.Errorf("bench: raw: create group: %w", err)
	}
	r0, s0 := mustUsage(rs.pid()), selfUsage()
	start := time.Now()
	lat := make(latencies, 0, n)
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		const batch = 100
		for i := 0; i < n; i += batch {
			p := c.Pipeline()
			now := time.Now()
			for j := i; j < i+batch && j < n; j++ {
				p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"d", payload(now)}})
			}
			if _, err := p.Exec(ctx); err != nil {
				errc <- fmt.Errorf("bench: raw: xadd: %w", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for len(lat) < n {
			res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{stream, ">"}, Count: 500, Block: time.Second}).Result()
			if err == redis.Nil {
				continue
			}
			if err != nil {
				errc <- fmt.Errorf("bench: raw: xreadgroup: %w", err)
				return
			}
			now := time.Now()
			ids := make([]string, 0, 500)
			for _, s := range res {
				for _, m := range s.Messages {
					d, _ := m.Values["d"].(string)
					lat = append(lat, now.Sub(sentAt([]byte(d))))
					ids = append(ids, m.ID)
				}
			}
			if len(ids) > 0 {
				if err := c.XAck(ctx, stream, group, ids...).Err(); err != nil {
					errc <- fmt.Errorf("bench: raw: xack: %w", err)
					return
				}
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errc:
		return result{}, err
	default:
	}
	r1, s1 := mustUsage(rs.pid()), selfUsage()
	return result{Scenario: "raw", N: n, Elapsed: elapsed, Rate: float64(n) / elapsed.Seconds(),
		P50: lat.pct(0.5), P99: lat.pct(0.99), Max: lat.pct(1), LatencyOf: "XADD → read by consumer",
		Procs: []procUsage{{"bench (client)", delta(s0, s1)}, {"redis", delta(r0, r1)}}}, nil
}

// runAsynq enqueues n no-op tasks from 8 goroutines while one asynq server
// (concurrency 16) processes them.
func runAsynq(ctx context.Context, rs *redisServer, n int) (result, error) {
	if err := rs.flush(ctx); err != nil {
		return result{}, fmt.Errorf("bench: asynq: flush: %w", err)
	}
	opt := asynq.RedisClientOpt{Addr: rs.addr}
	var done atomic.Int64
	var mu sync.Mutex
	lat := make(latencies, 0, n)
	finished := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(_ context.Context, t *asynq.Task) error {
		d := time.Since(sentAt(t.Payload()))
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 16, LogLevel: asynq.ErrorLevel})
	if err := srv.Start(mux); err != nil {
		return result{}, fmt.Errorf("bench: asynq: start server: %w", err)
	}
	defer srv.Shutdown()
	cl := asynq.NewClient(opt)
	defer cl.Close()
	r0, s0 := mustUsage(rs.pid()), selfUsage()
	start := time.Now()
	const producers = 8
	errc := make(chan error, producers)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := p; i < n; i += producers {
				if _, err := cl.EnqueueContext(ctx, asynq.NewTask("noop", payload(time.Now()), asynq.MaxRetry(0))); err != nil {
					errc <- fmt.Errorf("bench: asynq: enqueue: %w", err)
					return
				}
			}
		}(p)
	}
	wg.Wait()
	select {
	case err := <-errc:
		return result{}, err
	default:
	}
	select {
	case <-finished:
	case <-ctx.Done():
		return result{}, fmt.Errorf("bench: asynq: %d of %d tasks processed: %w", done.Load(), n, ctx.Err())
	}
	elapsed := time.Since(start)
	r1, s1 := mustUsage(rs.pid()), selfUsage()
	mu.Lock()
	defer mu.Unlock()
	return result{Scenario: "asynq", N: n, Elapsed: elapsed, Rate: float64(n) / elapsed.Seconds(),
		P50: lat.pct(0.5), P99: lat.pct(0.99), Max: lat.pct(1), LatencyOf: "enqueue → handler start",
		Procs: []procUsage{{"bench (client+server)", delta(s0, s1)}, {"redis", delta(r0, r1)}}}, nil
}

func mustUsage(pid int) usage {
	u, _ := readUsage(pid)
	return u
}

// delta is the CPU used between two readings; peak RSS is the later reading
// (VmHWM cannot be reset, so for long-lived processes it covers the whole run).
func delta(a, b usage) usage { return usage{CPU: b.CPU - a.CPU, PeakRSS: b.PeakRSS} }
