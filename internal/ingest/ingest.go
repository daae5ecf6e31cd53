// Package ingest turns websocket frames into shard-stream entries: it decodes
// and classifies each frame, quarantines bad input, appends good frames through
// dedup-and-append at once when this replica leads and after REPAIR_DELAY when
// it stands by, and keeps frames in memory or in the on-disk spool while Redis
// cannot take them (ARCHITECTURE §5).
package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/signal"
	"github.com/signal-client/signal-client/internal/signal/receive"
	"github.com/signal-client/signal-client/internal/streams"
)

// Role tells whether this replica leads (lock.Leader satisfies it).
type Role interface {
	IsLeader() bool
	Epoch() int64
}

// Spool is the outage spool (see internal/spool); nil when DURABLE_QUEUE_ENABLED is off.
type Spool interface {
	Append(rec []byte) error
	Flush() error
	Depth() int64
	// ReplayBatch hands up to max records after the checkpoint, in order, to
	// fn; when fn returns nil they are committed. It returns how many were
	// handed over (0 when the spool is empty).
	ReplayBatch(ctx context.Context, max int, fn func(recs [][]byte) error) (int, error)
}

// Config holds the ingest settings.
type Config struct {
	Number            string // the bot account
	Instance          string
	DedupWindow       time.Duration
	RepairDelay       time.Duration
	QueueSize         int
	MaxFrameBytes     int
	MaxBatch          int           // appends per pipelined round trip (default 1024, at most QueueSize/2)
	RetryInterval     time.Duration // wait between attempts while Redis is down (default 200ms)
	QuarantineMaxLen  int64
	QuarantineDedup   time.Duration
	StreamMaxLen      int64
	BackpressureCheck time.Duration // default 5s
	// SpoolReplayMark is how long the leader's "replaying my spool" mark
	// lives without renewal (default 10s); a crashed leader's mark expires.
	SpoolReplayMark time.Duration
	// QueueFullWait bounds how long a frame waits for room in a full queue
	// while Redis takes appends and there is no spool (default 1s); then it
	// is dropped. The wait holds up the ingester's read of the receiver's
	// hand-off channel, never the websocket read loop.
	QueueFullWait time.Duration
}

// Stats are the ingester's counters (read by internal/metrics).
type Stats struct {
	Received, Appended, Deduplicated, Repaired   atomic.Uint64
	Quarantined, Dropped, Spooled, SpoolReplayed atomic.Uint64
	AppendErrors, Batches, StaleLeaderAppends    atomic.Uint64
	// UncheckedAppends: appended by a transaction whose duplicate check
	// did not run (ARCHITECTURE §5.3); AppendFallbacks: entries of aborted
	// optimistic transactions, decided by the script.
	UncheckedAppends, AppendFallbacks    atomic.Uint64
	QuarantinedByReason, DroppedByReason sync.Map // string → *atomic.Uint64
	Queued                               atomic.Int64
	Backpressure                         atomic.Bool
	RedisDown                            atomic.Bool
}

func (s *Stats) inc(m *sync.Map, reason string) {
	v, _ := m.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// ByReason returns a snapshot of a by-reason counter map.
func ByReason(m *sync.Map) map[string]uint64 {
	out := map[string]uint64{}
	m.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Uint64).Load(); return true })
	return out
}

// item is one frame on its way to Redis.
type item struct {
	raw        []byte
	receivedAt time.Time
	due        time.Time // repair due time for a standby's frame; zero = at once
	standby    bool      // received while standing by: an append is a repair
	q          *streams.QuarantineEntry
	qDigest    string
	app        streams.Append
}

// Ingester is the pipeline of one replica.
type Ingester struct {
	cfg   Config
	store *streams.Store
	role  Role
	spool Spool
	log   *zap.Logger
	dec   signal.Decoder
	stats Stats
	// ObserveAppend, when set, receives each batch's round-trip time.
	ObserveAppend func(time.Duration)

	mu       sync.Mutex
	queue    []*item // FIFO of frames due now
	repair   []*item // standby frames waiting for their due time, in arrival order
	spooling bool    // frames go to the spool until it is replayed
	// recoveredAt is when a standby first reached Redis again while spooling
	// (only the append goroutine touches it).
	recoveredAt time.Time
	gen         uint64  // bumped when the queue moves to the spool or is emptied at shutdown
	batchBuf    []*item // the append goroutine's batch buffer
	// next is the batch prepared behind the one in flight (append goroutine
	// only; read and written under mu with the queue it refers to);
	// aheadSent counts the batches sent as prepared ahead (tests).
	next      *preparedBatch
	aheadSent atomic.Uint64
	wake      chan struct{}
	room      chan struct{} // closed (and replaced) when the queue shrinks or Redis fails
	stalled   bool          // a wait for room timed out; no more waits until the appender makes room
	// handoff is the channel Run reads: a frame waits for room only while
	// it has room to spare, so waiting never makes the receiver drop.
	handoff <-chan receive.Frame
}

// New builds an ingester; spool may be nil.
func New(cfg Config, store *streams.Store, role Role, spool Spool, log *zap.Logger) *Ingester {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.MaxBatch <= 0 {
		// At most half the queue in flight, so that frames arriving during a
		// round trip find room in the other half.
		cfg.MaxBatch = min(1024, max(64, cfg.QueueSize/2))
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 200 * time.Millisecond
	}
	if cfg.QuarantineMaxLen <= 0 {
		cfg.QuarantineMaxLen = 10000
	}
	if cfg.QuarantineDedup <= 0 {
		cfg.QuarantineDedup = time.Hour
	}
	if cfg.SpoolReplayMark <= 0 {
		cfg.SpoolReplayMark = 10 * time.Second
	}
	if cfg.BackpressureCheck <= 0 {
		cfg.BackpressureCheck = 5 * time.Second
	}
	if cfg.QueueFullWait <= 0 {
		cfg.QueueFullWait = time.Second
	}
	if log == nil {
		log = zap.NewNop()
	}
	in := &Ingester{cfg: cfg, store: store, role: role, spool: spool, log: log,
		dec: signal.Decoder{MaxFrameBytes: cfg.MaxFrameBytes, ShareRaw: true}, wake: make(chan struct{}, 1), room: make(chan struct{})}
	if spool != nil && spool.Depth() > 0 {
		// Frames spooled before a crash come first: new ones queue behind them.
		in.spooling = true
	}
	return in
}

// Stats returns the live counters.
func (in *Ingester) Stats() *Stats { return &in.stats }

// Run consumes frames until the channel closes or ctx ends, then flushes what
// it holds (within the caller's shutdown deadline, via flushCtx).
func (in *Ingester) Run(ctx context.Context, frames <-chan receive.Frame, flushCtx func() (context.Context, context.CancelFunc)) error {
	in.handoff = frames
	var wg sync.WaitGroup
	actx, cancelAppender := context.WithCancel(context.Background())
	wg.Add(2)
	go func() { defer wg.Done(); in.appendLoop(actx) }()
	go func() { defer wg.Done(); in.backpressureLoop(actx) }()

	repairTick := time.NewTicker(in.repairTick())
	defer repairTick.Stop()
	var batch []receive.Frame
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case f, ok := <-frames:
			if !ok {
				break loop
			}
			// Take whatever else is waiting too: decoding a burst in parallel
			// keeps up with Redis; a lone frame is handled at once.
			batch = append(batch[:0], f)
		more:
			for len(batch) < decodeBatch {
				select {
				case g, ok := <-frames:
					if !ok {
						break more
					}
					batch = append(batch, g)
				default:
					break more
				}
			}
			in.acceptAll(batch)
		case <-repairTick.C:
			in.promoteRepairs(time.Now())
		}
	}
	// Shutdown: every held frame is due now (a standby's copies are harmless
	// duplicates if the leader has them).
	in.promoteRepairs(time.Now().Add(in.cfg.RepairDelay + time.Hour))
	fctx, cancel := flushCtx()
	defer cancel()
	in.drain(fctx)
	cancelAppender()
	wg.Wait()
	if in.spool != nil {
		if err := in.spool.Flush(); err != nil {
			return fmt.Errorf("ingest: flush spool: %w", err)
		}
	}
	return nil
}

func (in *Ingester) repairTick() time.Duration {
	d := in.cfg.RepairDelay / 4
	if d < 5*time.Millisecond {
		d = 5 * time.Millisecond
	}
	return d
}

// decodeBatch bounds how many waiting frames are decoded together.
const decodeBatch = 256

// acceptAll decodes frames (in parallel when there are many) and queues them
// in their order. It never blocks on Redis.
func (in *Ingester) acceptAll(frames []receive.Frame) {
	items := make([]item, len(frames))
	workers := runtime.GOMAXPROCS(0)
	if len(frames) < 32 || workers < 2 {
		for i, f := range frames {
			in.classifyInto(&items[i], f.Data, f.ReceivedAt)
		}
	} else {
		var wg sync.WaitGroup
		chunk := (len(frames) + workers - 1) / workers
		for lo := 0; lo < len(frames); lo += chunk {
			hi := min(lo+chunk, len(frames))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					in.classifyInto(&items[i], frames[i].Data, frames[i].ReceivedAt)
				}
			}()
		}
		wg.Wait()
	}
	for i := range items {
		in.acceptItem(&items[i])
	}
}

// accept decodes one frame and queues it.
func (in *Ingester) accept(raw []byte, at time.Time) {
	it := in.classify(raw, at)
	in.acceptItem(&it)
}

func (in *Ingester) acceptItem(it *item) {
	in.stats.Received.Add(1)
	at := it.receivedAt
	in.mu.Lock()
	in.waitRoomLocked()
	if !it.standby || in.role.IsLeader() {
		// A standby that just became leader still holds older frames for
		// repair: they go first, so the conversation's order holds.
		held := in.repair
		in.repair = nil
		for _, r := range held {
			in.enqueueLocked(r)
		}
		it.standby = false
		in.enqueueLocked(it)
	} else if in.spooling || len(in.queue)+len(in.repair) >= in.cfg.QueueSize {
		// Memory holds at most QUEUE_SIZE frames, repairs included.
		in.enqueueLocked(it)
	} else {
		it.due = at.Add(in.cfg.RepairDelay)
		in.repair = append(in.repair, it)
	}
	in.mu.Unlock()
	in.poke()
}

// waitRoomLocked waits, while the queue is full and Redis takes appends, for
// the appender to make room, at most QueueFullWait; the caller then queues
// the frame or, if still full, drops it as before. A full queue is normal
// for a moment in a burst: the batch in flight holds its slots until Redis
// answers. Without the wait every frame arriving meanwhile was dropped
// (measured: 15-25 % of a 2000-5000 frame burst at 40k frames/s with the
// default QUEUE_SIZE). It waits only while the receiver's hand-off channel
// has room to spare (an eighth of it, more than arrives between two looks
// at it at 40k frames/s), so that the frames behind it are never dropped by
// the receiver instead (a loss is then counted here, as before). It does not
// wait with a spool (the spool takes the overflow without loss) or while
// Redis is down (nothing would make room).
// Once a wait has timed out, frames are dropped without waiting until the
// appender makes room again, so a hung Redis costs one wait, not one per
// frame. Repairs a standby holds are made due at once, so that the appender
// can make room from them.
func (in *Ingester) waitRoomLocked() {
	var deadline time.Time
	for in.spool == nil && !in.spooling && !in.stalled && len(in.queue)+len(in.repair) >= in.cfg.QueueSize &&
		!in.stats.RedisDown.Load() && in.handoffRoom() {
		if len(in.queue) == 0 {
			in.queue = append(in.queue, in.repair...)
			clear(in.repair)
			in.repair = in.repair[:0]
			in.stats.Queued.Store(int64(len(in.queue)))
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(in.cfg.QueueFullWait)
		}
		if !now.Before(deadline) {
			in.stalled = true
			return
		}
		room := in.room
		in.mu.Unlock()
		in.poke()
		// Wake at room, at the deadline, or to look at the hand-off again.
		t := time.NewTimer(min(deadline.Sub(now), handoffPoll))
		select {
		case <-room:
		case <-t.C:
		}
		t.Stop()
		in.mu.Lock()
	}
}

// handoffPoll is how often a frame waiting for room checks the hand-off.
const handoffPoll = time.Millisecond

// handoffRoom reports whether the hand-off channel has room to spare.
func (in *Ingester) handoffRoom() bool {
	return in.handoff != nil && len(in.handoff) < cap(in.handoff)-cap(in.handoff)/8
}

// roomLocked wakes the frames waiting in waitRoomLocked.
func (in *Ingester) roomLocked(progress bool) {
	if progress {
		in.stalled = false
	}
	close(in.room)
	in.room = make(chan struct{})
}

// classify decodes one frame into the item it becomes.
func (in *Ingester) classify(raw []byte, at time.Time) item {
	var it item
	in.classifyInto(&it, raw, at)
	return it
}

// classifyInto is classify writing into *it (an item is a few hundred bytes;
// acceptAll fills its slice in place instead of copying each one).
func (in *Ingester) classifyInto(it *item, raw []byte, at time.Time) {
	*it = item{raw: raw, receivedAt: at, standby: !in.role.IsLeader()}
	// The frame lives only during the call: the item keeps strings, which
	// are parts of raw or copies, never the frame.
	err := in.dec.DecodeScoped(raw, func(f *signal.Frame) { in.classifyFrame(it, f) })
	switch {
	case errors.Is(err, signal.ErrTooLarge):
		keep := raw
		if len(keep) > 4096 {
			keep = keep[:4096]
		}
		in.quarantine(it, "oversize", fmt.Sprintf("frame of %d bytes exceeds MAX_FRAME_BYTES=%d", len(raw), in.cfg.MaxFrameBytes), keep)
		return
	case err != nil:
		in.quarantine(it, "malformed", err.Error(), raw)
	}
}

// classifyFrame makes it the item of a decoded frame.
func (in *Ingester) classifyFrame(it *item, f *signal.Frame) {
	raw := it.raw
	kind := f.Kind()
	switch kind {
	case signal.KindError:
		in.quarantine(it, "upstream_error", "error frame from signal-cli-rest-api", raw)
		return
	case signal.KindException:
		in.quarantine(it, "exception", "signal-cli could not process this envelope", raw)
		return
	}
	conv := f.Conversation()
	if kind == signal.KindUnknown || conv.Key == "" {
		in.quarantine(it, "unknown", "frame of kind "+string(kind)+" without a conversation", raw)
		return
	}
	var identity string
	if id, ok := f.Identity(); ok {
		identity = id.Key()
	} else {
		identity = signal.RawDigest(raw)
	}
	var ts int64
	if f.Envelope != nil {
		ts = int64(f.Envelope.Timestamp)
	}
	it.app = streams.Append{
		Shard:    streams.ShardOf(conv.Key, in.store.Shards()),
		Identity: identity,
		Entry: streams.Entry{Kind: string(kind), Conversation: conv.Key, Timestamp: ts,
			ReceivedAt: it.receivedAt.UnixMilli(), Ingester: in.cfg.Instance, Payload: raw},
	}
}

// quarantine makes it a quarantine entry of the given reason.
func (in *Ingester) quarantine(it *item, reason, detail string, keep []byte) {
	it.q = &streams.QuarantineEntry{Reason: reason, Detail: detail, Payload: keep, Size: len(it.raw),
		ReceivedAt: it.receivedAt.UnixMilli(), Ingester: in.cfg.Instance}
	it.qDigest = signal.RawDigest(it.raw)
}

// enqueueLocked puts an item on the due queue, or in the spool while spooling.
func (in *Ingester) enqueueLocked(it *item) {
	if in.spooling {
		in.spoolLocked(it)
		return
	}
	if len(in.queue)+len(in.repair) >= in.cfg.QueueSize {
		if in.spool != nil {
			in.startSpoolingLocked()
			in.spoolLocked(it)
			return
		}
		in.drop(it, "queue_full")
		return
	}
	in.queue = append(in.queue, it)
	in.stats.Queued.Store(int64(len(in.queue)))
}

func (in *Ingester) drop(it *item, reason string) {
	in.stats.Dropped.Add(1)
	in.stats.inc(&in.stats.DroppedByReason, reason)
	in.log.Warn("frame dropped: it could not be kept (enable DURABLE_QUEUE_ENABLED to spool frames to disk)",
		zap.String("reason", reason), zap.Int("bytes", len(it.raw)))
}

// Spool records are [8-byte received-at ms][raw frame]; they are decoded again
// on replay, which gives the same shard and identity.
func spoolRecord(it *item) []byte {
	rec := make([]byte, 8+len(it.raw))
	binary.BigEndian.PutUint64(rec, uint64(it.receivedAt.UnixMilli()))
	copy(rec[8:], it.raw)
	return rec
}

// startSpoolingLocked moves everything queued into the spool, in order, so
// that frames already waiting are not overtaken by spooled ones.
func (in *Ingester) startSpoolingLocked() {
	if in.spooling {
		return
	}
	in.spooling = true
	in.gen++
	for _, it := range in.queue {
		in.spoolLocked(it)
	}
	in.queue = in.queue[:0]
	in.stats.Queued.Store(0)
}

func (in *Ingester) spoolLocked(it *item) {
	if err := in.spool.Append(spoolRecord(it)); err != nil {
		in.drop(it, "spool_error")
		in.log.Error("spool append failed", zap.Error(err))
		return
	}
	in.stats.Spooled.Add(1)
}

func (in *Ingester) promoteRepairs(now time.Time) {
	in.mu.Lock()
	leader := in.role.IsLeader()
	n := 0
	for n < len(in.repair) && (leader || !in.repair[n].due.After(now)) {
		n++
	}
	due := append([]*item(nil), in.repair[:n]...)
	in.repair = append(in.repair[:0], in.repair[n:]...)
	for _, it := range due {
		in.enqueueLocked(it)
	}
	in.mu.Unlock()
	if n > 0 {
		in.poke()
	}
}

func (in *Ingester) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// drain keeps appending until nothing is queued or ctx ends; what is left
// goes to the spool (if any) or is counted as dropped.
func (in *Ingester) drain(ctx context.Context) {
	for ctx.Err() == nil {
		in.mu.Lock()
		empty := len(in.queue) == 0
		in.mu.Unlock()
		if empty {
			return
		}
		in.poke()
		time.Sleep(5 * time.Millisecond)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.gen++ // a batch still in flight must not drop frames from the emptied queue
	for _, it := range in.queue {
		if in.spool != nil {
			in.spoolLocked(it)
		} else {
			in.drop(it, "shutdown_timeout")
		}
	}
	in.queue = nil
}

func (in *Ingester) appendLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.wake:
		case <-time.After(in.cfg.RetryInterval):
		}
		for ctx.Err() == nil {
			progressed, err := in.step(ctx)
			if err != nil {
				in.recoveredAt = time.Time{} // a new outage: a standby waits again before replaying
				in.mu.Lock()
				wasDown := in.stats.RedisDown.Swap(true)
				in.roomLocked(false) // frames waiting for room are dropped now
				in.mu.Unlock()
				if !wasDown {
					in.log.Error("redis unavailable: frames are kept in memory or spooled until it returns", zap.Error(err))
				}
				break
			}
			if in.stats.RedisDown.Swap(false) {
				in.log.Info("redis available again")
			}
			if !progressed {
				break
			}
		}
	}
}

// step appends one batch (from the spool while spooling, else from the
// queue). It reports whether it did anything. When more frames wait behind
// the batch, it prepares the next batch while this one is at Redis; the
// next step sends that one if it is still the queue's head.
func (in *Ingester) step(ctx context.Context) (bool, error) {
	in.mu.Lock()
	spooling := in.spooling
	if spooling {
		in.next = nil // the queue it was taken from went to the spool
	}
	in.mu.Unlock()
	if spooling {
		return in.replaySpool(ctx)
	}
	in.mu.Lock()
	var p *preparedBatch
	var batch []*item
	if in.next.coversLocked(in) {
		p, batch = in.next, in.next.items
		in.aheadSent.Add(1)
	} else {
		n := min(len(in.queue), in.cfg.MaxBatch)
		// The batch is a copy: while it is in flight the queue may move to
		// the spool and fill again. The buffer is the append goroutine's own.
		batch = append(in.batchBuf[:0], in.queue[:n]...)
		in.batchBuf = batch
	}
	in.next = nil
	n := len(batch)
	var ahead []*item
	if rest := len(in.queue) - n; rest > 0 {
		ahead = append([]*item(nil), in.queue[n:n+min(rest, in.cfg.MaxBatch)]...)
	}
	gen := in.gen
	in.mu.Unlock()
	if n == 0 {
		return false, nil
	}
	var next *preparedBatch
	var wg sync.WaitGroup
	if ahead != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next = in.prepare(ctx, ahead)
			next.gen = gen
		}()
	}
	if p == nil {
		p = in.prepare(ctx, batch)
	}
	err := in.send(ctx, p)
	wg.Wait()
	if err != nil {
		if in.spool != nil {
			// Move everything queued to the spool, in order, and keep going from there.
			in.mu.Lock()
			in.startSpoolingLocked()
			in.mu.Unlock()
			_ = in.spool.Flush()
		}
		return false, err
	}
	in.mu.Lock()
	// If the queue moved to the spool while this batch was in flight, the
	// batch is at the spool's head too; its replay is deduplicated.
	if in.gen == gen {
		// Drop the batch from the head without moving the rest (a long queue
		// would be copied once per batch); append reallocates, and so
		// compacts, when the capacity behind the tail runs out.
		clear(in.queue[:n])
		in.queue = in.queue[n:]
		if len(in.queue) == 0 {
			in.queue = in.queue[:0:0]
		}
		in.stats.Queued.Store(int64(len(in.queue)))
		in.roomLocked(true)
		in.next = next
	}
	clear(batch) // release the frames' bytes
	in.mu.Unlock()
	return true, nil
}

// write appends a batch: quarantine entries one by one (rare), appends in one
// pipelined round trip.
func (in *Ingester) write(ctx context.Context, batch []*item) error {
	return in.send(ctx, in.prepare(ctx, batch))
}

// preparedBatch is a batch with its appends planned (streams.PrepareAppend).
type preparedBatch struct {
	items []*item
	gen   uint64 // the queue generation it was taken from
	epoch int64
	idx   []int // items[idx[j]] is the item of append j
	plan  *streams.PreparedAppend
}

// prepare plans the appends of a batch; it does no I/O, so the append
// goroutine runs it for the next batch while the current one is at Redis.
func (in *Ingester) prepare(ctx context.Context, batch []*item) *preparedBatch {
	p := &preparedBatch{items: batch, epoch: in.role.Epoch()}
	reqs := make([]streams.Append, 0, len(batch))
	p.idx = make([]int, 0, len(batch))
	for i, it := range batch {
		if it.q != nil {
			continue
		}
		a := it.app
		if it.standby {
			a.Entry.Epoch = 0
			a.Repair = true
		} else {
			a.Entry.Epoch = p.epoch
		}
		reqs = append(reqs, a)
		p.idx = append(p.idx, i)
	}
	p.plan = in.store.PrepareAppend(ctx, reqs, in.cfg.DedupWindow)
	return p
}

// covers reports whether p was prepared for exactly the head of the queue
// as it is now (under in.mu): same generation, same items in order.
func (p *preparedBatch) coversLocked(in *Ingester) bool {
	if p == nil || p.gen != in.gen || len(in.queue) < len(p.items) {
		return false
	}
	for i, it := range p.items {
		if in.queue[i] != it {
			return false
		}
	}
	return true
}

// send writes a prepared batch: its quarantine entries, then its appends.
func (in *Ingester) send(ctx context.Context, p *preparedBatch) error {
	batch := p.items
	for _, it := range batch {
		if it.q == nil {
			continue
		}
		first, err := in.store.Quarantine(ctx, it.qDigest, *it.q, in.cfg.QuarantineDedup, in.cfg.QuarantineMaxLen)
		if err != nil {
			return err
		}
		if first {
			in.stats.Quarantined.Add(1)
			in.stats.inc(&in.stats.QuarantinedByReason, it.q.Reason)
			in.log.Warn("frame quarantined", zap.String("reason", it.q.Reason), zap.String("detail", it.q.Detail), zap.Int("bytes", it.q.Size))
		}
		// a retried batch repeats this call; its dedup marker makes that a no-op
	}
	if p.plan.Len() == 0 {
		return nil
	}
	if in.role.Epoch() != p.epoch {
		p = in.prepare(ctx, batch) // the epoch changed since it was planned
	}
	start := time.Now()
	res, err := in.store.AppendPrepared(ctx, p.plan)
	if err != nil {
		in.stats.AppendErrors.Add(1)
		return err
	}
	if in.ObserveAppend != nil {
		in.ObserveAppend(time.Since(start))
	}
	in.stats.Batches.Add(1)
	unchecked := 0
	for j, r := range res {
		it := batch[p.idx[j]]
		if r.Fallback {
			in.stats.AppendFallbacks.Add(1)
		}
		if r.Unchecked {
			unchecked++
			in.stats.UncheckedAppends.Add(1)
		}
		switch {
		case r.Err != nil:
			in.stats.AppendErrors.Add(1)
			return fmt.Errorf("ingest: append: %w", r.Err)
		case r.Duplicate:
			in.stats.Deduplicated.Add(1)
		case it.standby:
			in.stats.Repaired.Add(1)
			in.stats.Appended.Add(1)
		default:
			in.stats.Appended.Add(1)
		}
	}
	if unchecked > 0 {
		in.log.Error("entries appended without their duplicate check; the append script alone is used for the next minutes (ARCHITECTURE §5.3): check that this Redis user may run SADD, SINTERSTORE and DEL",
			zap.Int("entries", unchecked))
	}
	return nil
}

// replaySpool appends the next batch of spooled frames; when the spool is
// empty it switches back to direct appends.
func (in *Ingester) replaySpool(ctx context.Context) (bool, error) {
	// Spooled frames become durable (and visible to the replay) on Flush.
	if err := in.spool.Flush(); err != nil {
		in.log.Error("spool flush failed", zap.Error(err))
	}
	if in.stats.Backpressure.Load() {
		return false, nil
	}
	if ok, err := in.replayAllowed(ctx); !ok || err != nil {
		return false, err
	}
	var werr error
	n, err := in.spool.ReplayBatch(ctx, in.cfg.MaxBatch, func(recs [][]byte) error {
		batch := make([]*item, 0, len(recs))
		for _, rec := range recs {
			if len(rec) < 8 {
				continue
			}
			at := time.UnixMilli(int64(binary.BigEndian.Uint64(rec)))
			it := in.classify(rec[8:], at)
			it.standby = false
			batch = append(batch, &it)
		}
		werr = in.write(ctx, batch)
		return werr
	})
	if werr != nil {
		return false, werr
	}
	if err != nil {
		return false, fmt.Errorf("ingest: replay spool: %w", err)
	}
	in.stats.SpoolReplayed.Add(uint64(n))
	if n > 0 {
		return true, nil
	}
	in.mu.Lock()
	drained := in.spool.Depth() == 0
	if drained {
		in.spooling = false
		in.log.Info("spool replayed; appending directly again")
	}
	in.mu.Unlock()
	if drained {
		in.recoveredAt = time.Time{}
		if err := in.store.ClearSpoolReplay(ctx, in.cfg.Instance); err != nil {
			return false, err
		}
	}
	return false, nil
}

// replayAllowed serialises spool replays across replicas after an outage
// (ARCHITECTURE §5.6): one replica at a time holds the replay mark, so each
// replays its frames in order without interleaving with another's. The
// leader may take it at once; a standby only REPAIR_DELAY after it reached
// Redis again, so the leader usually goes first and a standby's replay is
// mostly duplicates plus the frames the leader never saw (repairs, which land
// after newer frames).
func (in *Ingester) replayAllowed(ctx context.Context) (bool, error) {
	if in.recoveredAt.IsZero() {
		in.recoveredAt = time.Now()
	}
	if !in.role.IsLeader() && time.Since(in.recoveredAt) < in.cfg.RepairDelay {
		return false, nil
	}
	return in.store.TakeSpoolReplay(ctx, in.cfg.Instance, in.cfg.SpoolReplayMark)
}

// backpressureLoop watches shard lengths (ARCHITECTURE §9.1).
func (in *Ingester) backpressureLoop(ctx context.Context) {
	if in.cfg.StreamMaxLen <= 0 {
		return
	}
	t := time.NewTicker(in.cfg.BackpressureCheck)
	defer t.Stop()
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		over := -1
		for n := 0; n < in.store.Shards(); n++ {
			st, err := in.store.Stats(ctx, n)
			if err != nil {
				over = -2
				break
			}
			if st.Length > in.cfg.StreamMaxLen {
				over = n
				break
			}
		}
		if over == -2 {
			continue
		}
		on := over >= 0
		was := in.stats.Backpressure.Swap(on)
		if on && (!was || time.Since(lastLog) > time.Minute) {
			lastLog = time.Now()
			in.log.Warn("shard stream above STREAM_MAX_LEN: workers are stopped or too slow; nothing is deleted",
				zap.Int("shard", over), zap.Int64("stream_max_len", in.cfg.StreamMaxLen), zap.Bool("spooling", in.spool != nil))
		}
		if on && in.spool != nil {
			in.mu.Lock()
			in.startSpoolingLocked()
			in.mu.Unlock()
		}
		if !on && was {
			in.poke()
		}
	}
}
