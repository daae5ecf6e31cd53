package emulator

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// stage holds frames uploaded ahead of a burst (Stage) until ReleaseStaged injects them.
type stage struct {
	mu     sync.Mutex
	frames []injection
}

// Stage appends frames (copied) to the stage without injecting them and returns how many
// frames the stage holds now. With account "" each frame's account is read from its
// "account" field at once, as InjectParams does; a frame without one is kept in place
// and counted as unparseable when released.
//
// Staging is for benchmarks: upload a burst first, then release it with one call, so the
// burst reaches the sockets as fast as they take it instead of as fast as an injector can
// post it.
func (e *Emulator) Stage(account string, frames ...[]byte) int {
	owned := make([][]byte, len(frames))
	for i, f := range frames {
		owned[i] = slices.Clone(f)
	}
	return e.stageOwned(account, owned)
}

// stageOwned is Stage for frames nobody else modifies.
func (e *Emulator) stageOwned(account string, frames [][]byte) int {
	evs := make([]injection, len(frames))
	for i, f := range frames {
		ev := injection{account: account, frame: f}
		if account == "" {
			var w struct {
				Account string `json:"account"`
			}
			if err := json.Unmarshal(f, &w); err != nil {
				ev.skip = true
			}
			ev.account = w.Account
		}
		evs[i] = ev
	}
	e.stage.mu.Lock()
	defer e.stage.mu.Unlock()
	e.stage.frames = append(e.stage.frames, evs...)
	return len(e.stage.frames)
}

// Staged returns how many frames the stage holds.
func (e *Emulator) Staged() int {
	e.stage.mu.Lock()
	defer e.stage.mu.Unlock()
	return len(e.stage.frames)
}

// DiscardStaged empties the stage without injecting and returns how many frames it held.
func (e *Emulator) DiscardStaged() int {
	e.stage.mu.Lock()
	defer e.stage.mu.Unlock()
	n := len(e.stage.frames)
	e.stage.frames = nil
	return n
}

// ReleaseResult describes one ReleaseStaged.
type ReleaseResult struct {
	// Released frames were taken from the stage and injected in staging order.
	Released int `json:"released"`
	// Accepted sums, over the released frames, the sockets that accepted each (N open
	// sockets of the account: N per frame unless some dropped it).
	Accepted int64 `json:"accepted"`
	// Unreached frames were accepted by no socket: none open for the account, dropped
	// everywhere, held or discarded during a crash, unparseable, or queued for polling in
	// normal mode.
	Unreached int `json:"unreached"`
	// Written is true when the call waited until every socket that accepted a released
	// frame had written it (or closed).
	Written bool `json:"written"`
	// Took is the time from taking the frames off the stage until they were offered to the
	// sockets, or, with Written, until they were written.
	Took time.Duration `json:"-"`
	// TookMS is Took in milliseconds.
	TookMS float64 `json:"took_ms"`
}

// ReleaseStaged empties the stage and injects its frames in order, with Inject's
// semantics for every frame (account filter, every open socket of the account, delivery
// mode and socket faults, discarding while no socket is open, crash holding, webhook). In
// reliable delivery each socket's writer then sends them as fast as the socket takes
// them, coalescing queued frames into large writes.
//
// With wait, it returns only once every socket that accepted a released frame has written
// all frames it accepted so far, or has closed, or ctx ended (then it returns ctx's
// error with the counts so far).
func (e *Emulator) ReleaseStaged(ctx context.Context, wait bool) (ReleaseResult, error) {
	began := time.Now()
	e.stage.mu.Lock()
	evs := e.stage.frames
	e.stage.frames = nil
	e.stage.mu.Unlock()

	accepted := make([]int, len(evs))
	touched := map[*socket]struct{}{}
	e.injectAll(evs, accepted, touched)
	res := ReleaseResult{Released: len(evs)}
	for _, n := range accepted {
		res.Accepted += int64(n)
		if n == 0 {
			res.Unreached++
		}
	}
	var err error
	if wait {
		err = waitWritten(ctx, touched)
		res.Written = err == nil
	}
	res.Took = time.Since(began)
	res.TookMS = float64(res.Took) / float64(time.Millisecond)
	return res, err
}

// waitWritten polls until every socket in socks has written every frame it accepted so
// far, or closed.
func waitWritten(ctx context.Context, socks map[*socket]struct{}) error {
	target := make(map[*socket]int64, len(socks))
	for k := range socks {
		target[k] = k.accepted.Load()
	}
	t := time.NewTicker(500 * time.Microsecond)
	defer t.Stop()
	for {
		for k, n := range target {
			select {
			case <-k.done:
				delete(target, k)
				continue
			default:
			}
			if k.delivered.Load() >= n {
				delete(target, k)
			}
		}
		if len(target) == 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
