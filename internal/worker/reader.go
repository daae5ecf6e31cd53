package worker

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// reader feeds the dispatcher from the owned shard streams (ARCHITECTURE §6.4):
// a newly acquired shard's pending history first, then new entries through one
// blocking XREADGROUP over every owned stream, on a dedicated connection that
// the lease manager wakes with CLIENT UNBLOCK when the owned set changes.
type reader struct {
	w *Worker

	mu      sync.Mutex
	shards  map[int]bool // readable with ">"
	backlog []int        // acquired, history not read yet
	connID  int64
	wake    chan struct{}
	// last is the highest entry id handed over per shard; after a failed
	// blocking read the shard's history is read again from there, so entries
	// Redis delivered to a read whose reply was lost are not stranded.
	last    map[int]string
	recover []int
	// unblocking is set while a CLIENT UNBLOCK is on its way.
	unblocking bool
	// shortBlock: the store cannot unblock a read (no CLIENT ID), so blocking
	// reads are short and a new shard set waits at most that long.
	shortBlock bool
	// inRead lists the shards of the blocking read in flight (until its
	// entries are dispatched): a shard is handed over only once no read of
	// this worker can still deliver its entries (see awaitOut).
	inRead map[int]bool
	// hot: the next read of new entries does not block (see read). hot and
	// buf (the raw replies) belong to the run goroutine.
	hot bool
	buf streams.ReadBuffer
}

// blockFor bounds one blocking read; a wake-up or a new entry ends it sooner.
const blockFor = 5 * time.Second

// shortBlockFor bounds a blocking read on a store that cannot be unblocked.
const shortBlockFor = 100 * time.Millisecond

func newReader(w *Worker) *reader {
	return &reader{w: w, shards: map[int]bool{}, wake: make(chan struct{}, 1), last: map[int]string{}}
}

func (r *reader) add(shard int) {
	r.mu.Lock()
	r.backlog = append(r.backlog, shard)
	delete(r.last, shard)
	r.mu.Unlock()
	r.poke()
}

func (r *reader) remove(shard int) {
	r.mu.Lock()
	delete(r.shards, shard)
	for i, n := range r.backlog {
		if n == shard {
			r.backlog = append(r.backlog[:i], r.backlog[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	r.poke()
}

// poke interrupts a blocked read so the next one uses the new shard set.
func (r *reader) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
	r.mu.Lock()
	id := r.connID
	busy := r.unblocking
	if id != 0 && !busy {
		r.unblocking = true
	}
	r.mu.Unlock()
	if id == 0 || busy {
		return
	}
	// Asynchronous: poke is called on the self-fencing path, which must not
	// wait for a Redis that may be unreachable.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_ = r.w.rdb.ClientUnblock(ctx, id).Err()
		cancel()
		r.mu.Lock()
		r.unblocking = false
		r.mu.Unlock()
	}()
}

func (r *reader) run(ctx context.Context) {
	w := r.w
	var conn *redis.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	stop := context.AfterFunc(ctx, r.poke)
	defer stop()
	var lastOrphanScan time.Time
	for ctx.Err() == nil {
		if conn == nil {
			// A dedicated connection whose id the lease manager can unblock;
			// replaced whenever a read fails.
			c := w.rdb.Conn()
			id, err := c.ClientID(ctx).Result()
			if err != nil && c.Ping(ctx).Err() != nil {
				c.Close()
				r.sleep(ctx, 200*time.Millisecond)
				continue
			}
			if err != nil {
				// A store without CLIENT ID (the embedded one) cannot be
				// unblocked: reads then block for a short time only.
				id = 0
				r.shortBlock = true
			}
			conn = c
			r.mu.Lock()
			r.connID = id
			r.mu.Unlock()
		}
		room := w.disp.waitRoom(ctx, w.cfg.QueueSize)
		if room <= 0 {
			continue
		}
		r.mu.Lock()
		var next = -1
		from := "0"
		if len(r.backlog) > 0 {
			next, r.backlog = r.backlog[0], r.backlog[1:]
		} else if len(r.recover) > 0 {
			next, r.recover = r.recover[0], r.recover[1:]
			if id, ok := r.last[next]; ok {
				from = id
			}
		}
		r.mu.Unlock()
		if next >= 0 {
			if err := r.readHistory(ctx, next, from); err != nil {
				// Retry from what was handed over so far (r.last), not from 0:
				// entries already queued must not be queued twice.
				r.mu.Lock()
				r.recover = append(r.recover, next)
				r.mu.Unlock()
				r.sleep(ctx, 200*time.Millisecond)
				continue
			}
			r.mu.Lock()
			if _, still := w.leases.get(next); still && !r.removed(next) {
				r.shards[next] = true
			}
			r.mu.Unlock()
			continue
		}
		if time.Since(lastOrphanScan) > w.cfg.ClaimMinIdle {
			lastOrphanScan = time.Now()
			r.adoptOrphans(ctx)
		}
		r.mu.Lock()
		owned := make([]int, 0, len(r.shards))
		for n := range r.shards {
			owned = append(owned, n)
		}
		r.mu.Unlock()
		if len(owned) == 0 {
			select {
			case <-ctx.Done():
			case <-r.wake:
			}
			continue
		}
		sort.Ints(owned)
		streamsArg := make([]string, 0, 2*len(owned))
		for _, n := range owned {
			streamsArg = append(streamsArg, w.store.Keys().Stream(n))
		}
		for range owned {
			streamsArg = append(streamsArg, ">")
		}
		count := w.cfg.ReadCount
		if int64(room) < count {
			count = int64(room)
		}
		// Drain a pending wake-up: the set we read now is current.
		select {
		case <-r.wake:
		default:
		}
		block := blockFor
		if r.shortBlock {
			block = shortBlockFor
		}
		r.mu.Lock()
		r.inRead = make(map[int]bool, len(owned))
		for _, n := range owned {
			r.inRead[n] = true
		}
		r.mu.Unlock()
		res, err := r.read(ctx, conn, streamsArg, len(owned), count, block)
		if err != nil {
			r.readEnded()
			if errors.Is(err, redis.Nil) || ctx.Err() != nil {
				continue
			}
			w.log.Warn("read from shard streams failed; re-reading their pending entries", zap.Error(err))
			conn.Close()
			conn = nil
			r.mu.Lock()
			r.connID = 0
			r.recover = append(r.recover[:0], owned...)
			r.mu.Unlock()
			r.sleep(ctx, 200*time.Millisecond)
			continue
		}
		for _, s := range res {
			shard := r.shardOf(s.Stream, owned)
			r.dispatch(shard, s.Messages, true)
		}
		r.readEnded()
	}
}

// hotAfter is how many entries a read must return for the next read not to
// block (see read).
const hotAfter = 8

// read runs one read of new entries. While entries keep coming (the last
// read returned hotAfter or more) it does not block and parses the reply
// itself (streams.ReadGroup: no map per entry); otherwise it blocks
// in go-redis' XReadGroup, which alone extends the socket deadline by the
// BLOCK time. So a burst is read without go-redis' per-entry maps, and an
// idle or quiet worker still waits in one blocking read that the first new
// entry ends: a non-blocking read that finds nothing is followed by a
// blocking one, never by another poll.
func (r *reader) read(ctx context.Context, conn *redis.Conn, streamsArg []string, n int, count int64, block time.Duration) ([]streams.StreamMessages, error) {
	var res []streams.StreamMessages
	var err error
	if r.hot {
		res, err = streams.ReadGroup(ctx, conn, &r.buf, streams.GroupName, streams.OwnerConsumer, count, streamsArg[:n], streamsArg[n:])
	} else {
		var xs []redis.XStream
		xs, err = conn.XReadGroup(ctx, &redis.XReadGroupArgs{Group: streams.GroupName, Consumer: streams.OwnerConsumer,
			Streams: streamsArg, Count: count, Block: block}).Result()
		res = make([]streams.StreamMessages, len(xs))
		for i, x := range xs {
			res[i] = streams.StreamMessages{Stream: x.Stream, Messages: streams.MessagesOf(x.Messages)}
		}
	}
	got := 0
	for _, s := range res {
		got += len(s.Messages)
	}
	r.hot = err == nil && got >= hotAfter
	return res, err
}

func (r *reader) readEnded() {
	r.mu.Lock()
	r.inRead = nil
	r.mu.Unlock()
}

// awaitOut waits (up to deadline) until no blocking read in flight includes
// shard. A cooperative release calls it after remove and before giving the
// lease back: an entry such a read delivered after the next owner had read
// the shard's pending history would sit in the pending list unseen.
// Delivered before the hand-over, it is in that history.
func (r *reader) awaitOut(shard int, deadline time.Time) {
	for time.Now().Before(deadline) {
		r.mu.Lock()
		in := r.inRead[shard]
		r.mu.Unlock()
		if !in {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *reader) shardOf(stream string, owned []int) int {
	for _, n := range owned {
		if r.w.store.Keys().Stream(n) == stream {
			return n
		}
	}
	return -1
}

// dispatch queues entries read from a shard; fresh says they were read with
// ">" and were never delivered before.
func (r *reader) dispatch(shard int, msgs []streams.Message, fresh bool) {
	if shard < 0 {
		return
	}
	if _, ok := r.w.leases.get(shard); !ok {
		return // revoked while reading: the next owner reads them from history
	}
	r.w.disp.enqueue(shard, msgs, fresh)
	if len(msgs) > 0 {
		r.mu.Lock()
		r.last[shard] = msgs[len(msgs)-1].ID
		r.mu.Unlock()
	}
}

// readHistory hands over a shard's pending entries (its consumer's history),
// in id order, before any new entry (ARCHITECTURE §6.4).
func (r *reader) readHistory(ctx context.Context, shard int, start string) error {
	w := r.w
	if start == "0" {
		// A shard just acquired: first attempts its previous owner started on
		// the fast path count before anything here runs (ARCHITECTURE §7.1).
		lease, ok := w.leases.get(shard)
		if !ok {
			return nil
		}
		n, err := w.store.PromoteStarted(ctx, lease)
		if errors.Is(err, streams.ErrStale) {
			return nil // lost already; the next owner promotes them
		}
		if err != nil {
			return err
		}
		if n > 0 {
			w.log.Info("adopted entries whose first attempt had started counted", zap.Int("shard", shard), zap.Int64("entries", n))
		}
	}
	for ctx.Err() == nil {
		res, err := streams.ReadGroup(ctx, w.rdb, &r.buf, streams.GroupName, streams.OwnerConsumer, 256, []string{w.store.Keys().Stream(shard)}, []string{start})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			return nil
		}
		msgs := res[0].Messages
		r.dispatch(shard, msgs, false)
		start = msgs[len(msgs)-1].ID
	}
	return ctx.Err()
}

// adoptOrphans claims entries left pending under other consumer names (older
// versions, manual reads) once they are idle for CLAIM_MIN_IDLE.
func (r *reader) adoptOrphans(ctx context.Context) {
	w := r.w
	r.mu.Lock()
	owned := make([]int, 0, len(r.shards))
	for n := range r.shards {
		owned = append(owned, n)
	}
	r.mu.Unlock()
	for _, n := range owned {
		key := w.store.Keys().Stream(n)
		consumers, err := w.rdb.XInfoConsumers(ctx, key, streams.GroupName).Result()
		if err != nil {
			continue
		}
		for _, c := range consumers {
			if c.Pending == 0 {
				continue
			}
			if c.Name == streams.OwnerConsumer {
				r.rescanOwn(ctx, n, key)
				continue
			}
			pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: streams.GroupName,
				Idle: w.cfg.ClaimMinIdle, Start: "-", End: "+", Count: 256, Consumer: c.Name}).Result()
			if err != nil || len(pend) == 0 {
				continue
			}
			ids := make([]string, len(pend))
			for i, p := range pend {
				ids[i] = p.ID
			}
			msgs, err := w.rdb.XClaim(ctx, &redis.XClaimArgs{Stream: key, Group: streams.GroupName,
				Consumer: streams.OwnerConsumer, MinIdle: w.cfg.ClaimMinIdle, Messages: ids}).Result()
			if err != nil {
				continue
			}
			w.stats.Claimed.Add(uint64(len(msgs)))
			r.dispatch(n, streams.MessagesOf(msgs), false)
		}
	}
}

// rescanOwn re-queues the shard's own pending entries that have been idle
// for CLAIM_MIN_IDLE and that this worker neither queues nor runs: entries a
// read delivered to this consumer name while the shard was changing hands
// (ARCHITECTURE §6.4). Handled ones wait for their ack and are not idle that
// long unless Redis is failing, and then handling them again is at-least-once.
func (r *reader) rescanOwn(ctx context.Context, shard int, key string) {
	w := r.w
	pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: streams.GroupName,
		Idle: w.cfg.ClaimMinIdle, Start: "-", End: "+", Count: 256, Consumer: streams.OwnerConsumer}).Result()
	if err != nil || len(pend) == 0 {
		return
	}
	var ids []string
	for _, p := range pend {
		if !w.disp.has(shard, p.ID) {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	msgs, err := w.rdb.XClaim(ctx, &redis.XClaimArgs{Stream: key, Group: streams.GroupName,
		Consumer: streams.OwnerConsumer, MinIdle: w.cfg.ClaimMinIdle, Messages: ids}).Result()
	if err != nil || len(msgs) == 0 {
		return
	}
	if _, ok := w.leases.get(shard); !ok {
		return
	}
	w.stats.Claimed.Add(uint64(len(msgs)))
	w.log.Warn("re-queued pending entries of this shard that no handler had", zap.Int("shard", shard), zap.Int("entries", len(msgs)))
	w.disp.enqueue(shard, streams.MessagesOf(msgs), false) // not through dispatch: r.last must not move back
}

func (r *reader) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-r.wake:
	}
}

// removed reports (r.mu held) whether a shard was removed after it was
// queued for a history read; its lease may still be held while releasing.
func (r *reader) removed(shard int) bool {
	h, ok := r.w.leases.held0(shard)
	return !ok || h
}
