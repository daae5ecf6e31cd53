package worker

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/signal-client/signal-client/internal/streams"
)

// dispatcher runs each conversation's entries one at a time, in the order the
// reader handed them over, with up to PoolSize conversations in parallel
// (ARCHITECTURE §6.5). An entry waiting for a retry blocks its conversation and
// nothing else.
type dispatcher struct {
	w *Worker

	mu sync.Mutex
	// work wakes one pool goroutine per ready conversation; room wakes the
	// reader when read-ahead frees up. Two conditions, so that neither side
	// wakes the whole pool for nothing.
	work     *sync.Cond
	room     *sync.Cond
	roomWait bool // the reader waits on room
	convs    map[string]*conv
	ready    []*conv
	queued   int // entries waiting (not running)
	running  int
	byShard  map[int]int // running entries per shard
	shardCtx map[int]shardCtx
	open     map[int]bool // shards whose entries may be queued (held, not being released)
	// known holds every entry queued or running, by shard, so that the
	// reader's scan of idle pending entries (reader.adoptOrphans) re-queues
	// only entries this worker has lost track of.
	known    map[int]map[string]bool
	stopping bool
}

type shardCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// item is one queued entry with what this worker knows of its attempts.
type item struct {
	m streams.Message
	// attempt is the number of the next attempt when known (1 for an entry
	// read fresh with ">"); 0 means unknown: an entry adopted from a shard's
	// pending history, whose count is in Redis.
	attempt int64
	// recorded is the attempt count Redis holds for the entry (0: no record).
	recorded int64
}

type conv struct {
	key        string
	shard      int
	q          []*item
	running    bool
	inReady    bool
	notBefore  time.Time
	infraFails int
	timer      *time.Timer
}

func newDispatcher(w *Worker) *dispatcher {
	d := &dispatcher{w: w, convs: map[string]*conv{}, byShard: map[int]int{}, shardCtx: map[int]shardCtx{}, open: map[int]bool{}, known: map[int]map[string]bool{}}
	d.work = sync.NewCond(&d.mu)
	d.room = sync.NewCond(&d.mu)
	return d
}

func (d *dispatcher) stats() {
	d.w.stats.InFlight.Store(int64(d.queued + d.running))
	d.w.stats.Waiting.Store(int64(d.queued))
}

// enqueue queues entries of one shard, in order; fresh says they were read
// with ">" (never delivered before), so their first attempt needs no attempt
// record up front. One lock per read, not per entry: the handlers take the
// same lock for every entry they start and finish.
func (d *dispatcher) enqueue(shard int, msgs []streams.Message, fresh bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.open[shard] {
		// Being released or revoked: a read that raced with it must not queue
		// entries the next owner will handle (it reads them from history).
		return
	}
	if _, ok := d.shardCtx[shard]; !ok {
		ctx, cancel := context.WithCancel(context.Background())
		d.shardCtx[shard] = shardCtx{ctx, cancel}
	}
	kn := d.known[shard]
	if kn == nil {
		kn = map[string]bool{}
		d.known[shard] = kn
	}
	for _, m := range msgs {
		if kn[m.ID] {
			continue // queued or running already (a rescan of idle pending entries)
		}
		key := m.Conversation()
		if key == "" {
			key = "\x00" + strconv.Itoa(shard) + "/" + m.ID // heartbeats and the like: their own queue (ids repeat across shards)
		}
		c := d.convs[key]
		if c == nil {
			c = &conv{key: key, shard: shard}
			d.convs[key] = c
		}
		kn[m.ID] = true
		it := &item{m: m}
		if fresh {
			it.attempt = 1
		}
		c.q = append(c.q, it)
		d.queued++
		d.maybeReadyLocked(c)
	}
	d.stats()
}

func (d *dispatcher) maybeReadyLocked(c *conv) {
	if c.running || c.inReady || len(c.q) == 0 || (!c.notBefore.IsZero() && time.Now().Before(c.notBefore)) {
		return
	}
	c.inReady = true
	d.ready = append(d.ready, c)
	d.work.Signal()
}

// roomLocked wakes the reader when it waits and read-ahead has room.
func (d *dispatcher) roomLocked() {
	if d.roomWait && d.queued+d.running < d.w.cfg.QueueSize {
		d.room.Signal()
	}
}

// waitRoom blocks until fewer than max entries are queued or running, and
// returns how many more may be read.
func (d *dispatcher) waitRoom(ctx context.Context, max int) int {
	stop := context.AfterFunc(ctx, func() { d.mu.Lock(); d.room.Broadcast(); d.mu.Unlock() })
	defer stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.queued+d.running >= max && ctx.Err() == nil {
		d.roomWait = true
		d.room.Wait()
		d.roomWait = false
	}
	return max - (d.queued + d.running)
}

func (d *dispatcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < d.w.cfg.PoolSize; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, it, sctx, ok := d.take(ctx)
				if !ok {
					return
				}
				out := d.w.process(sctx, c.shard, it, &c.infraFails)
				d.finish(c, it, out)
			}
		}()
	}
	<-ctx.Done()
	d.mu.Lock()
	d.stopping = true
	d.work.Broadcast()
	d.mu.Unlock()
	wg.Wait()
}

func (d *dispatcher) take(ctx context.Context) (*conv, *item, context.Context, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.ready) == 0 && !d.stopping && ctx.Err() == nil {
		d.work.Wait()
	}
	if d.stopping || ctx.Err() != nil {
		return nil, nil, nil, false
	}
	var c *conv
	c, d.ready = popFront(d.ready)
	c.inReady = false
	c.running = true
	var m *item
	m, c.q = popFront(c.q)
	d.queued--
	d.running++
	d.byShard[c.shard]++
	d.stats()
	sc, ok := d.shardCtx[c.shard]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		sc = shardCtx{ctx, cancel}
		d.shardCtx[c.shard] = sc
	}
	return c, m, sc.ctx, true
}

// outcome of one attempt.
type outcome struct {
	retryAfter time.Duration // > 0: put the entry back at the head and wait
}

func (d *dispatcher) finish(c *conv, it *item, out outcome) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running--
	d.byShard[c.shard]--
	c.running = false
	if d.convs[c.key] != c {
		// The shard was dropped while this ran: forget the conversation
		// (its known entries went with the drop).
		d.roomLocked()
		d.stats()
		return
	}
	if out.retryAfter <= 0 {
		delete(d.known[c.shard], it.m.ID)
	}
	if out.retryAfter > 0 {
		c.q = append([]*item{it}, c.q...)
		d.queued++
		c.notBefore = time.Now().Add(out.retryAfter)
		if c.timer != nil {
			c.timer.Stop()
		}
		c.timer = time.AfterFunc(out.retryAfter, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.convs[c.key] == c {
				d.maybeReadyLocked(c)
			}
		})
	} else if len(c.q) == 0 {
		delete(d.convs, c.key)
	}
	d.maybeReadyLocked(c)
	d.roomLocked()
	d.stats()
}

// has reports whether an entry is queued or running here.
func (d *dispatcher) has(shard int, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.known[shard][id]
}

// openShard lets entries of a newly acquired shard be queued.
func (d *dispatcher) openShard(shard int) {
	d.mu.Lock()
	d.open[shard] = true
	d.mu.Unlock()
}

// dropShard forgets every queued entry of a shard and cancels its running
// handlers (self-fencing; the entries stay pending for the next owner).
func (d *dispatcher) dropShard(shard int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.open, shard)
	d.dropQueuedLocked(shard)
	if sc, ok := d.shardCtx[shard]; ok {
		sc.cancel()
		delete(d.shardCtx, shard)
	}
	d.room.Broadcast()
	d.stats()
}

func (d *dispatcher) dropQueuedLocked(shard int) {
	delete(d.known, shard) // running entries of a dropped shard end without a commit
	for k, c := range d.convs {
		if c.shard != shard {
			continue
		}
		d.queued -= len(c.q)
		c.q = nil
		if c.timer != nil {
			c.timer.Stop()
		}
		delete(d.convs, k)
	}
	kept := d.ready[:0]
	for _, c := range d.ready {
		if c.shard != shard {
			kept = append(kept, c)
		}
	}
	d.ready = kept
}

// finishShard (cooperative release) drops the shard's entries that have not
// started and waits for the running ones, up to deadline.
func (d *dispatcher) finishShard(shard int, deadline time.Time) {
	d.mu.Lock()
	delete(d.open, shard)
	d.dropQueuedLocked(shard)
	d.roomLocked()
	d.stats()
	d.mu.Unlock()
	d.waitIdle(func() bool { return d.byShard[shard] == 0 }, deadline)
	d.mu.Lock()
	if sc, ok := d.shardCtx[shard]; ok {
		sc.cancel()
		delete(d.shardCtx, shard)
	}
	d.mu.Unlock()
}

// drain (shutdown) stops starting entries and waits for running ones.
func (d *dispatcher) drain(deadline time.Time) {
	d.mu.Lock()
	d.stopping = true
	d.work.Broadcast()
	d.mu.Unlock()
	d.waitIdle(func() bool { return d.running == 0 }, deadline)
	d.mu.Lock()
	for _, sc := range d.shardCtx {
		sc.cancel()
	}
	d.mu.Unlock()
}

func (d *dispatcher) waitIdle(done func() bool, deadline time.Time) {
	for {
		d.mu.Lock()
		ok := done()
		d.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// popFront removes the first element of a FIFO slice. A short one is
// shifted down, so it keeps its capacity: reslicing past the head shrinks
// it, and a conversation's queue, which holds one entry at a time at low
// load, was reallocated on almost every append.
func popFront[T any](q []T) (T, []T) {
	first := q[0]
	var zero T
	if len(q) <= 16 {
		copy(q, q[1:])
		q[len(q)-1] = zero
		return first, q[:len(q)-1]
	}
	q[0] = zero
	return first, q[1:]
}
