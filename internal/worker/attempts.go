package worker

import (
	"context"
	"sync"
	"time"

	"github.com/signal-client/signal-client/internal/streams"
)

// attempter counts attempts durably before handlers start (ARCHITECTURE §7.1)
// with group commit: one round trip at a time, carrying every request that
// arrived while the previous one was in flight. At low load a request goes
// out at once; under load up to WORKER_POOL_SIZE increments share a trip.
type attempter struct {
	w       *Worker
	mu      sync.Mutex
	pending []attemptCall
	flying  int // round trips in flight
}

// maxFlying round trips may be in flight at once: with one, a request that
// arrives just after a trip left waits for it and then its own.
const maxFlying = 2

type attemptCall struct {
	req  streams.AttemptReq
	done chan streams.AttemptRes
}

func newAttempter(w *Worker) *attempter { return &attempter{w: w} }

// count adds delta to an entry's attempts and waits for Redis to confirm.
func (a *attempter) count(ctx context.Context, lease streams.Lease, id string, delta int) (streams.Attempts, error) {
	call := attemptCall{req: streams.AttemptReq{Lease: lease, ID: id, Delta: delta}, done: make(chan streams.AttemptRes, 1)}
	a.mu.Lock()
	a.pending = append(a.pending, call)
	start := a.flying < maxFlying
	if start {
		a.flying++
	}
	a.mu.Unlock()
	if start {
		go a.flush()
	}
	select {
	case r := <-call.done:
		return r.Attempts, r.Err
	case <-ctx.Done():
		// The increment may still land; a counted attempt that never ran
		// errs on the side of parking sooner, never later.
		return streams.Attempts{}, ctx.Err()
	}
}

func (a *attempter) flush() {
	for {
		a.mu.Lock()
		batch := a.pending
		a.pending = nil
		if len(batch) == 0 {
			a.flying--
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		reqs := make([]streams.AttemptReq, len(batch))
		for i, c := range batch {
			reqs[i] = c.req
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := a.w.store.CountAttempts(ctx, reqs)
		cancel()
		for i, c := range batch {
			if err != nil {
				c.done <- streams.AttemptRes{Err: err}
			} else {
				c.done <- res[i]
			}
		}
	}
}
