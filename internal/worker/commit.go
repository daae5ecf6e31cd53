package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// committer batches acknowledgements per shard (ARCHITECTURE §6.6): a batch
// closes after AckBatchMax entries or AckBatchWindow, whichever comes first,
// and is committed by one fenced script call. A timer is armed only while a
// batch is open, so an idle worker does not wake up.
type committer struct {
	w       *Worker
	mu      sync.Mutex
	batches map[int]*batch
	flushMu sync.Mutex // one commit at a time per worker keeps batch order per shard
}

type batch struct {
	lease streams.Lease
	ids   []string
	ops   []streams.StateOp
	timer *time.Timer
}

func newCommitter(w *Worker) *committer { return &committer{w: w, batches: map[int]*batch{}} }

func (c *committer) run(ctx context.Context) { <-ctx.Done() }

func (c *committer) add(shard int, lease streams.Lease, id string, ops []streams.StateOp) {
	c.mu.Lock()
	b := c.batches[shard]
	if b != nil && b.lease.Token != lease.Token {
		c.mu.Unlock()
		c.flushShard(shard)
		c.mu.Lock()
		b = c.batches[shard]
	}
	if b == nil {
		b = &batch{lease: lease}
		c.batches[shard] = b
		b.timer = time.AfterFunc(c.w.cfg.AckBatchWindow, func() { c.flushShard(shard) })
	}
	b.ids = append(b.ids, id)
	b.ops = append(b.ops, ops...)
	full := len(b.ids) >= c.w.cfg.AckBatchMax
	c.mu.Unlock()
	if full {
		c.flushShard(shard)
	}
}

// flushShard commits a shard's open batch. On a Redis error the batch is
// kept and retried; on a stale lease it is dropped (the entries are
// re-handled by the shard's new owner).
func (c *committer) flushShard(shard int) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	b := c.batches[shard]
	delete(c.batches, shard)
	c.mu.Unlock()
	if b == nil {
		return
	}
	b.timer.Stop()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.w.store.Commit(ctx, b.lease, b.ids, b.ops)
		cancel()
		if err == nil {
			return
		}
		if errors.Is(err, streams.ErrStale) {
			c.w.stats.StaleCommits.Add(1)
			c.w.log.Warn("stale commit rejected: the shard moved; its entries will be handled by the new owner",
				zap.Int("shard", shard), zap.Int("entries", len(b.ids)))
			c.w.leases.revoke(shard, "stale commit")
			return
		}
		if _, held := c.w.leases.get(shard); !held || attempt >= 20 {
			c.w.log.Warn("commit failed; entries stay pending and will be handled again", zap.Int("shard", shard), zap.Error(err))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *committer) flushAll() {
	c.mu.Lock()
	shards := make([]int, 0, len(c.batches))
	for n := range c.batches {
		shards = append(shards, n)
	}
	c.mu.Unlock()
	for _, n := range shards {
		c.flushShard(n)
	}
}

// dropShard forgets a revoked shard's open batch without committing it.
func (c *committer) dropShard(shard int) {
	c.mu.Lock()
	if b := c.batches[shard]; b != nil {
		b.timer.Stop()
		delete(c.batches, shard)
	}
	c.mu.Unlock()
}
