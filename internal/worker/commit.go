package worker

import (
	"context"
	"errors"
	"strings"
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
	// started lists, per shard, the first attempts running unrecorded on the
	// fast path; it reaches the shard's started marker in Redis (ARCHITECTURE
	// §7.1) with the next round that happens anyway, or markerDelay after a
	// start, so a crash still counts them. A first attempt that ends before
	// either costs no marker write at all: at low load that saves a round
	// trip per message.
	started      map[int]map[string]struct{}
	startedLease map[int]streams.Lease
	// written is the marker each shard holds in Redis as far as this worker
	// knows ("" = none; markerUnknown after a failed write).
	written     map[int]string
	markerTimer bool // a markerDelay timer is armed
}

// markerDelay bounds how long a running first attempt may go without its
// started marker in Redis.
const markerDelay = time.Millisecond

const markerUnknown = "\x01"

type batch struct {
	lease    streams.Lease
	ids      []string
	recorded []bool // ids[i] has an attempt record to delete
	ops      []streams.StateOp
	marker   bool   // write the started marker with this round
	snapshot string // the started set when the round left (marker only)
}

func newCommitter(w *Worker) *committer {
	c := &committer{w: w, batches: map[int]*batch{}, inflight: map[int]bool{}, started: map[int]map[string]struct{}{},
		startedLease: map[int]streams.Lease{}, written: map[int]string{}}
	c.idle = sync.NewCond(&c.mu)
	return c
}

func (c *committer) run(ctx context.Context) { <-ctx.Done() }

// batchLocked returns the shard's open batch for lease (c.mu held).
func (c *committer) batchLocked(shard int, lease streams.Lease) *batch {
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
	return b
}

// kickLocked starts a commit loop unless one runs (c.mu held); the caller
// runs it with go c.loop() when it returns true.
func (c *committer) kickLocked() bool {
	start := !c.busy
	c.busy = true
	return start
}

// add queues a handled entry's acknowledgement and its state writes.
// recorded says the entry has an attempt record to delete with the ack.
func (c *committer) add(shard int, lease streams.Lease, id string, recorded bool, ops []streams.StateOp) {
	c.mu.Lock()
	b := c.batchLocked(shard, lease)
	if s := c.started[shard]; s != nil {
		delete(s, id)
	}
	b.ids = append(b.ids, id)
	b.recorded = append(b.recorded, recorded)
	b.ops = append(b.ops, ops...)
	start := c.kickLocked()
	c.mu.Unlock()
	if start {
		go c.loop()
	}
}

// start records that a first attempt begins unrecorded; it reaches the
// shard's started marker with the next round, or markerDelay later. It does
// not wait for Redis.
func (c *committer) start(shard int, lease streams.Lease, id string) {
	c.mu.Lock()
	s := c.started[shard]
	if s == nil {
		s = map[string]struct{}{}
		c.started[shard] = s
	}
	s[id] = struct{}{}
	c.startedLease[shard] = lease
	arm := !c.markerTimer
	c.markerTimer = true
	c.mu.Unlock()
	if arm {
		time.AfterFunc(markerDelay, c.markerTick)
	}
}

// markerTick sends the markers that differ from what Redis holds.
func (c *committer) markerTick() {
	c.mu.Lock()
	c.markerTimer = false
	kick := false
	for n, s := range c.started {
		if len(s) == 0 && c.written[n] == "" {
			continue
		}
		if joinIDs(s) != c.written[n] {
			c.batchLocked(n, c.startedLease[n]).marker = true
			kick = true
		}
	}
	start := kick && c.kickLocked()
	c.mu.Unlock()
	if start {
		go c.loop()
	}
}

// unstart forgets a started entry that got an attempt record or did not
// count (the next round or marker tick rewrites the marker).
func (c *committer) unstart(shard int, id string) {
	c.mu.Lock()
	if s := c.started[shard]; s != nil {
		delete(s, id)
	}
	c.mu.Unlock()
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
		for n, b := range round {
			c.inflight[n] = true
			// Any round carries the shard's marker when it changed, so under
			// load markers ride along with the acks.
			snap := joinIDs(c.started[n])
			if b.marker || snap != c.written[n] {
				if snap == c.written[n] {
					b.marker = false
				} else {
					b.marker, b.snapshot = true, snap
					c.written[n] = snap
				}
			}
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
		marker := ""
		if b.marker {
			marker = b.snapshot
			if marker == "" {
				marker = streams.MarkerClear
			}
		}
		for lo := 0; lo == 0 || lo < len(b.ids); lo += max {
			hi := min(lo+max, len(b.ids))
			r := streams.CommitReq{Lease: b.lease, IDs: b.ids[lo:hi]}
			for i := lo; i < hi; i++ {
				if b.recorded[i] {
					r.Recorded = append(r.Recorded, b.ids[i])
				}
			}
			if lo == 0 {
				r.Ops = b.ops // state writes go with the first chunk, in order
				r.Marker = marker
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
				if e != nil && reqs[i].Marker != "" {
					c.markerLost(shards[i])
				}
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
			for i := range reqs {
				if reqs[i].Marker != "" {
					c.markerLost(shards[i])
				}
			}
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
	delete(c.started, shard)
	delete(c.written, shard)
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
	delete(c.started, shard)
	delete(c.written, shard)
	c.mu.Unlock()
}

// markerLost forgets what a shard's marker holds after a failed write, so
// the next round or tick writes it again.
func (c *committer) markerLost(shard int) {
	c.mu.Lock()
	c.written[shard] = markerUnknown
	c.mu.Unlock()
}

// joinIDs is the started marker's value: the ids, comma-separated.
func joinIDs(ids map[string]struct{}) string {
	if len(ids) == 0 {
		return ""
	}
	var sb strings.Builder
	for id := range ids {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(id)
	}
	return sb.String()
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
