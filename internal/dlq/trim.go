package dlq

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// Trimmer applies DLQ and quarantine retention (ARCHITECTURE §9.2): every
// shard's DLQ keeps at most ceil(DLQ_MAX_LEN / shards) entries and nothing
// parked longer ago than DLQ_RETENTION; the quarantine likewise with
// QUARANTINE_MAX_LEN and QUARANTINE_RETENTION. Every trimmed entry is
// counted (dead letters lost to retention must be visible). The leader
// ingester runs it as part of its housekeeping; it acts only while IsLeader
// says so, and two leaders trimming at once is harmless.
type Trimmer struct {
	Store               *streams.Store
	IsLeader            func() bool   // nil = always
	Interval            time.Duration // TRIM_INTERVAL, default 30s
	DLQMaxLen           int           // DLQ_MAX_LEN (whole queue); 0 = no count limit
	DLQRetention        time.Duration // DLQ_RETENTION; 0 = no age limit
	QuarantineMaxLen    int           // QUARANTINE_MAX_LEN; 0 = no count limit
	QuarantineRetention time.Duration // QUARANTINE_RETENTION; 0 = no age limit
	Log                 *zap.Logger

	stats TrimStats
}

// TrimStats counts trimmed entries by stream and cause.
type TrimStats struct {
	DLQMaxLen, DLQAge               atomic.Uint64
	QuarantineMaxLen, QuarantineAge atomic.Uint64
}

// Stats returns the trimmer's counters.
func (t *Trimmer) Stats() *TrimStats { return &t.stats }

// Run trims every Interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	iv := t.Interval
	if iv <= 0 {
		iv = 30 * time.Second
	}
	tk := time.NewTicker(iv)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			if t.IsLeader == nil || t.IsLeader() {
				if err := t.TrimOnce(ctx, now); err != nil && t.Log != nil {
					t.Log.Warn("DLQ and quarantine retention failed; will retry", zap.Error(err))
				}
			}
		}
	}
}

// TrimOnce trims every DLQ shard and the quarantine once.
func (t *Trimmer) TrimOnce(ctx context.Context, now time.Time) error {
	rdb := t.Store.Client()
	keys := t.Store.Keys()
	shards := t.Store.Shards()
	perShard := int64(0)
	if t.DLQMaxLen > 0 {
		perShard = int64((t.DLQMaxLen + shards - 1) / shards)
	}
	minID := func(retention time.Duration) string {
		return strconv.FormatInt(now.Add(-retention).UnixMilli(), 10) + "-0"
	}
	pipe := rdb.Pipeline()
	type pair struct{ age, count interface{ Val() int64 } }
	dlq := make([]pair, shards)
	for n := 0; n < shards; n++ {
		if t.DLQRetention > 0 {
			dlq[n].age = pipe.XTrimMinID(ctx, keys.DLQ(n), minID(t.DLQRetention))
		}
		if perShard > 0 {
			dlq[n].count = pipe.XTrimMaxLen(ctx, keys.DLQ(n), perShard)
		}
	}
	var q pair
	if t.QuarantineRetention > 0 {
		q.age = pipe.XTrimMinID(ctx, keys.Quarantine(), minID(t.QuarantineRetention))
	}
	if t.QuarantineMaxLen > 0 {
		q.count = pipe.XTrimMaxLen(ctx, keys.Quarantine(), int64(t.QuarantineMaxLen))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("dlq: trim: %w", err)
	}
	add := func(c *atomic.Uint64, cmd interface{ Val() int64 }) int64 {
		if cmd == nil {
			return 0
		}
		n := cmd.Val()
		c.Add(uint64(n))
		return n
	}
	var dlqAge, dlqCount int64
	for _, p := range dlq {
		dlqAge += add(&t.stats.DLQAge, p.age)
		dlqCount += add(&t.stats.DLQMaxLen, p.count)
	}
	qAge := add(&t.stats.QuarantineAge, q.age)
	qCount := add(&t.stats.QuarantineMaxLen, q.count)
	if t.Log != nil && dlqAge+dlqCount+qAge+qCount > 0 {
		t.Log.Warn("retention trimmed parked entries", zap.Int64("dlq_age", dlqAge), zap.Int64("dlq_max_len", dlqCount),
			zap.Int64("quarantine_age", qAge), zap.Int64("quarantine_max_len", qCount))
	}
	return nil
}
