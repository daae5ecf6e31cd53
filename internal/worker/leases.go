package worker

import (
	"context"
	"errors"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// leaseManager keeps membership and shard leases (ARCHITECTURE §6.1–§6.2).
type leaseManager struct {
	w *Worker

	mu        sync.Mutex
	held      map[int]*heldLease
	lastBeat  time.Time
	releasing sync.WaitGroup
}

type heldLease struct {
	lease     streams.Lease
	lastOK    time.Time // when the last successful refresh (or the acquire) was sent
	releasing bool
}

func newLeaseManager(w *Worker) *leaseManager {
	return &leaseManager{w: w, held: map[int]*heldLease{}}
}

func (m *leaseManager) owned() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int, 0, len(m.held))
	for n := range m.held {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func (m *leaseManager) registered() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.lastBeat.IsZero() && time.Since(m.lastBeat) < m.w.cfg.LeaseTTL
}

// get returns the lease of a shard this worker may work on.
func (m *leaseManager) get(shard int) (streams.Lease, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.held[shard]
	if !ok {
		return streams.Lease{}, false
	}
	return h.lease, true
}

// held0 reports whether a shard is held, and whether it is being released.
func (m *leaseManager) held0(shard int) (releasing, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.held[shard]
	if !ok {
		return false, false
	}
	return h.releasing, true
}

func (m *leaseManager) run(ctx context.Context) {
	ttl := m.w.cfg.LeaseTTL
	// The fence runs on its own: a step blocked on an unreachable Redis must
	// not delay it.
	fctx, stopFence := context.WithCancel(context.Background())
	fenceDone := make(chan struct{})
	go func() {
		defer close(fenceDone)
		fence := time.NewTicker(ttl / 12)
		defer fence.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-fence.C:
				m.selfFence()
			}
		}
	}()
	defer func() { stopFence(); <-fenceDone }()
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	m.step(ctx)
	for {
		select {
		case <-ctx.Done():
			m.releasing.Wait()
			return
		case <-tick.C:
			m.step(ctx)
		}
	}
}

// selfFence stops work on every shard whose lease was not refreshed for 2/3
// of its TTL: Redis measures the TTL from a later instant, so the worker
// always stops before another worker can hold the shard (ARCHITECTURE §6.2).
func (m *leaseManager) selfFence() {
	limit := m.w.cfg.LeaseTTL * 2 / 3
	m.mu.Lock()
	var stale []int
	for n, h := range m.held {
		if time.Since(h.lastOK) > limit {
			stale = append(stale, n)
		}
	}
	m.mu.Unlock()
	for _, n := range stale {
		m.revoke(n, "lease not refreshed within 2/3 of SHARD_LEASE_TTL (Redis unreachable?)")
	}
}

// revoke stops all work on a shard at once; nothing is committed for it.
func (m *leaseManager) revoke(shard int, why string) {
	m.mu.Lock()
	_, ok := m.held[shard]
	delete(m.held, shard)
	m.mu.Unlock()
	if !ok {
		return
	}
	m.w.stats.LeaseLosses.Add(1)
	m.w.stats.ShardsOwned.Add(-1)
	m.w.log.Warn("shard lease lost; stopped handling it", zap.Int("shard", shard), zap.String("reason", why))
	m.w.reader.remove(shard)
	m.w.disp.dropShard(shard)
	m.w.com.dropShard(shard)
}

func rank(worker string, shard int) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(worker + "/" + strconv.Itoa(shard)))
	return h.Sum64()
}

func (m *leaseManager) step(ctx context.Context) {
	w := m.w
	ttl := w.cfg.LeaseTTL
	cctx, cancel := context.WithTimeout(ctx, ttl/3)
	defer cancel()
	sent := time.Now()
	members, err := w.store.Heartbeat(cctx, w.cfg.ID, ttl)
	if err == nil {
		m.mu.Lock()
		m.lastBeat = sent
		m.mu.Unlock()
		w.stats.LiveWorkers.Store(int64(len(members)))
	}

	m.mu.Lock()
	var leases []streams.Lease
	for _, h := range m.held {
		leases = append(leases, h.lease)
	}
	m.mu.Unlock()
	if len(leases) > 0 {
		sent := time.Now()
		ok, rerr := w.store.RefreshLeases(cctx, leases, ttl)
		if rerr == nil {
			for i, l := range leases {
				if ok[i] {
					m.mu.Lock()
					if h, held := m.held[l.Shard]; held && h.lease.Token == l.Token {
						h.lastOK = sent
					}
					m.mu.Unlock()
				} else {
					m.revoke(l.Shard, "lease taken over (expired before it was refreshed)")
				}
			}
		}
	}
	m.selfFence()
	if err != nil || len(members) == 0 || ctx.Err() != nil {
		return // without a membership view, neither take nor give
	}
	shards := w.store.Shards()
	fair := (shards + len(members) - 1) / len(members)

	m.mu.Lock()
	var active []int
	for n, h := range m.held {
		if !h.releasing {
			active = append(active, n)
		}
	}
	m.mu.Unlock()

	if len(active) > fair {
		// Give back the shards that rank us lowest, cooperatively.
		sort.Slice(active, func(i, j int) bool { return rank(w.cfg.ID, active[i]) < rank(w.cfg.ID, active[j]) })
		for _, n := range active[:len(active)-fair] {
			m.release(ctx, n)
		}
		return
	}
	if len(active) == fair {
		return
	}
	holders, err := w.store.LeaseHolders(cctx)
	if err != nil {
		return
	}
	var free []int
	for n, h := range holders {
		if h == "" {
			free = append(free, n)
		}
	}
	sort.Slice(free, func(i, j int) bool { return rank(w.cfg.ID, free[i]) > rank(w.cfg.ID, free[j]) })
	for _, n := range free {
		if len(active) >= fair {
			break
		}
		sent := time.Now()
		l, err := w.store.AcquireLease(cctx, n, w.cfg.ID, ttl)
		if errors.Is(err, streams.ErrLeaseHeld) {
			continue
		}
		if err != nil {
			return
		}
		m.mu.Lock()
		m.held[n] = &heldLease{lease: l, lastOK: sent}
		m.mu.Unlock()
		active = append(active, n)
		w.stats.Acquired.Add(1)
		w.stats.Rebalances.Add(1)
		w.stats.ShardsOwned.Add(1)
		w.log.Info("shard acquired", zap.Int("shard", n), zap.Int64("epoch", l.Epoch), zap.Int("fair_share", fair), zap.Int("workers", len(members)))
		w.disp.openShard(n)
		w.reader.add(n)
	}
}

// release hands a surplus shard over: stop reading it, finish its in-flight
// entries, commit, then give the lease back, so only this shard pauses.
func (m *leaseManager) release(ctx context.Context, shard int) {
	m.mu.Lock()
	h, ok := m.held[shard]
	if !ok || h.releasing {
		m.mu.Unlock()
		return
	}
	h.releasing = true
	m.mu.Unlock()
	m.releasing.Add(1)
	go func() {
		defer m.releasing.Done()
		w := m.w
		w.reader.remove(shard)
		w.reader.awaitOut(shard, time.Now().Add(blockFor+time.Second))
		w.disp.finishShard(shard, time.Now().Add(w.cfg.ShutdownTimeout))
		w.com.flushShard(shard)
		m.mu.Lock()
		h, ok := m.held[shard]
		delete(m.held, shard)
		m.mu.Unlock()
		if !ok {
			return // revoked meanwhile
		}
		w.stats.ShardsOwned.Add(-1)
		w.stats.Released.Add(1)
		w.stats.Rebalances.Add(1)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := w.store.ReleaseLease(rctx, h.lease); err != nil {
			w.log.Warn("shard lease not released; it expires by itself", zap.Int("shard", shard), zap.Error(err))
		}
		w.log.Info("shard released to rebalance", zap.Int("shard", shard))
	}()
}

// releaseAll gives every lease back at shutdown (after the final commit).
func (m *leaseManager) releaseAll() {
	m.releasing.Wait()
	m.mu.Lock()
	held := m.held
	m.held = map[int]*heldLease{}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, h := range held {
		_, _ = m.w.store.ReleaseLease(ctx, h.lease)
		m.w.stats.ShardsOwned.Add(-1)
	}
	_ = m.w.store.Leave(ctx, m.w.cfg.ID)
}
