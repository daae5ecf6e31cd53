package ingest

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// Housekeeper does the leader's periodic work (ARCHITECTURE §9.1, §12): it
// trims acknowledged entries older than STREAM_RETENTION from every shard and
// appends a heartbeat entry to every shard. Standbys run it too; it acts only
// while the replica leads. Two leaders after a failover are harmless: trims
// are idempotent and extra heartbeats are just measured twice.
type Housekeeper struct {
	Store             *streams.Store
	Role              Role
	Instance          string
	Retention         time.Duration
	TrimInterval      time.Duration // default 30s
	HeartbeatInterval time.Duration // default 5s; negative disables
	Log               *zap.Logger

	Trimmed    atomic.Uint64
	Heartbeats atomic.Uint64
}

// Run works until ctx ends.
func (h *Housekeeper) Run(ctx context.Context) {
	if h.TrimInterval <= 0 {
		h.TrimInterval = 30 * time.Second
	}
	if h.HeartbeatInterval == 0 {
		h.HeartbeatInterval = 5 * time.Second
	}
	if h.Log == nil {
		h.Log = zap.NewNop()
	}
	trim := time.NewTicker(h.TrimInterval)
	defer trim.Stop()
	var hb <-chan time.Time
	if h.HeartbeatInterval > 0 {
		t := time.NewTicker(h.HeartbeatInterval)
		defer t.Stop()
		hb = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-trim.C:
			if h.Role.IsLeader() {
				h.TrimAll(ctx, now)
			}
		case now := <-hb:
			if h.Role.IsLeader() {
				if err := h.Store.AppendHeartbeats(ctx, h.Instance, h.Role.Epoch(), now); err != nil {
					h.Log.Warn("heartbeat append failed", zap.Error(err))
				} else {
					h.Heartbeats.Add(1)
				}
			}
		}
	}
}

// TrimAll trims every shard once.
func (h *Housekeeper) TrimAll(ctx context.Context, now time.Time) {
	for n := 0; n < h.Store.Shards(); n++ {
		k, err := h.Store.TrimShard(ctx, n, h.Retention, now)
		if err != nil {
			h.Log.Warn("trim failed", zap.Int("shard", n), zap.Error(err))
			return
		}
		h.Trimmed.Add(uint64(k))
	}
}
