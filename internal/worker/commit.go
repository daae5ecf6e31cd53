package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// committer acknowledges handled entries (ARCHITECTURE §6.6) with group
// commit: one round trip at a time, carrying every shard's entries handled
// while the previous one was in flight (one fenced script call per shard and
// per ACK_BATCH_MAX entries). At low load an ack goes out at once; under load
// batches grow by themselves. Nothing runs while nothing is pending, so an
// idle worker does not wake up.
type committer struct {
	w *Worker

	mu       sync.Mutex
	batches  map[int]*batch
	busy     bool
	idle     *sync.Cond // signalled when a flush round ends
	inflight map[int]bool
	// flying is the round being committed, kept so state reads see its
	// writes until Redis has them (read-your-writes with batched acks).
	flying map[int]*batch
}

type batch struct {
	lease streams.Lease
	ids   []string
	ops   []streams.StateOp
}

func newCommitter(w *Worker) *committer {
	c := &committer{w: w, batches: map[int]*batch{}, inflight: map[int]bool{}}
	c.idle = sync.NewCond(&c.mu)
	return c
}

func (c *committer) run(ctx context.Context) { <-ctx.Done() }

func (c *committer) add(shard int, lease streams.Lease, id string, ops []streams.StateOp) {
	c.mu.Lock()
	b := c.batches[shard]
	if b != nil && b.lease.Token != lease.Token {
		// The shard was lost and taken again: the old batch is stale.
		delete(c.batches, shard)
		b = nil
	}
	if b == nil {
		b = &batch{lease: lease}
		c.batches[shard] = b
	}
	b.ids = append(b.ids, id)
	b.ops = append(b.ops, ops...)
	start := !c.busy
	c.busy = true
	c.mu.Unlock()
	if start {
		go c.loop()
	}
}

// loop commits rounds until nothing is pending.
func (c *committer) loop() {
	for {
		c.mu.Lock()
		if len(c.batches) == 0 {
			c.busy = false
			c.idle.Broadcast()
			c.mu.Unlock()
			return
		}
		round := c.batches
		c.batches = map[int]*batch{}
		for n := range round {
			c.inflight[n] = true
		}
		c.flying = round
		c.mu.Unlock()
		c.commit(round)
		c.mu.Lock()
		c.flying = nil
		for n := range round {
			delete(c.inflight, n)
		}
		c.idle.Broadcast()
		c.mu.Unlock()
	}
}

func (c *committer) commit(round map[int]*batch) {
	var reqs []streams.CommitReq
	var shards []int
	max := c.w.cfg.AckBatchMax
	for n, b := range round {
		for lo := 0; lo < len(b.ids); lo += max {
			hi := min(lo+max, len(b.ids))
			r := streams.CommitReq{Lease: b.lease, IDs: b.ids[lo:hi]}
			if lo == 0 {
				r.Ops = b.ops // state writes go with the first chunk, in order
			}
			reqs = append(reqs, r)
			shards = append(shards, n)
		}
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		errs, err := c.w.store.CommitMany(ctx, reqs)
		cancel()
		if err == nil {
			stale := map[int]bool{}
			for i, e := range errs {
				switch {
				case e == nil:
				case errors.Is(e, streams.ErrStale):
					if !stale[shards[i]] {
						stale[shards[i]] = true
						c.w.stats.StaleCommits.Add(1)
						c.w.log.Warn("stale commit rejected: the shard moved; its entries will be handled by the new owner",
							zap.Int("shard", shards[i]), zap.Int("entries", len(reqs[i].IDs)))
						c.w.leases.revoke(shards[i], "stale commit")
					}
				default:
					c.w.log.Warn("commit failed; entries stay pending and will be handled again", zap.Int("shard", shards[i]), zap.Error(e))
				}
			}
			return
		}
		// Redis unreachable: keep trying while we still hold any of the shards.
		held := false
		for _, n := range shards {
			if _, ok := c.w.leases.get(n); ok {
				held = true
			}
		}
		if !held || attempt >= 20 {
			c.w.log.Warn("commit failed; entries stay pending and will be handled again", zap.Error(err))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// flushShard waits until the shard's handled entries are committed (a
// cooperative release commits before giving the lease back).
func (c *committer) flushShard(shard int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.batches[shard] != nil || c.inflight[shard] {
		if !c.busy && c.batches[shard] != nil {
			c.busy = true
			go c.loop()
		}
		c.idle.Wait()
	}
}

// flushAll waits until everything handled is committed (shutdown).
func (c *committer) flushAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.batches) > 0 || len(c.inflight) > 0 {
		if !c.busy && len(c.batches) > 0 {
			c.busy = true
			go c.loop()
		}
		c.idle.Wait()
	}
}

// dropShard forgets a revoked shard's open batch without committing it.
func (c *committer) dropShard(shard int) {
	c.mu.Lock()
	delete(c.batches, shard)
	c.mu.Unlock()
}

// overlay returns the latest uncommitted write of a state field (ok=false
// when there is none): set → (value, true, true), del → ("", false, true).
func (c *committer) overlay(shard int, key, field string) (value string, present, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range []*batch{c.flying[shard], c.batches[shard]} {
		if b == nil {
			continue
		}
		for _, op := range b.ops {
			if op.Key != key || op.Field != field {
				continue
			}
			switch op.Op {
			case "set":
				value, present, ok = op.Value, true, true
			case "del":
				value, present, ok = "", false, true
			}
		}
	}
	return value, present, ok
}
