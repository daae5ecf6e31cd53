package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/config"
	"github.com/signal-client/signal-client/internal/dlq"
	"github.com/signal-client/signal-client/internal/health"
	"github.com/signal-client/signal-client/internal/ingest"
	"github.com/signal-client/signal-client/internal/lock"
	"github.com/signal-client/signal-client/internal/metrics"
	"github.com/signal-client/signal-client/internal/signal/receive"
	"github.com/signal-client/signal-client/internal/spool"
)

// receiveLimit is the websocket read limit: a multiple of MAX_FRAME_BYTES,
// so an oversize frame is read and quarantined instead of costing a
// reconnect (during which upstream drops frames).
func receiveLimit(maxFrame int) int64 {
	l := int64(maxFrame) * 8
	if l < 64<<20 {
		l = 64 << 20
	}
	return l
}

// RunIngester runs bin/ingester (ARCHITECTURE §5).
func RunIngester(ctx context.Context, cfg *config.Config) error {
	b, err := NewBase(cfg, "ingester")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.start(ctx); err != nil {
		return err
	}
	return b.runIngester(ctx, nil)
}

// runIngester runs the ingester on b; ready is closed once it consumes frames.
func (b *Base) runIngester(ctx context.Context, ready chan<- struct{}) error {
	cfg := b.Cfg
	var sp ingest.Spool
	var spoolDepth func() int64
	if cfg.DurableQueueEnabled {
		s, err := spool.Open(cfg.SpoolDir, spool.Options{Logger: b.Log})
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		defer s.Close()
		a := &spoolAdapter{s: s}
		sp, spoolDepth = a, a.Depth
		if d := s.Depth(); d > 0 {
			b.Log.Info("spooled frames from an earlier run will be appended first", zap.Int("records", d))
		}
	}

	leader, err := lock.NewLeader(b.Redis, lock.LeaderOptions{Key: b.Keys.Leader(), TTL: cfg.LockTTL, ID: cfg.InstanceID, Logger: b.Log,
		Epoch: func(ctx context.Context) (int64, error) { return b.Store.NextEpoch(ctx, b.Keys.LeaderEpoch()) }})
	if err != nil {
		return err
	}
	rcv, err := receive.New(receive.Options{ServiceURL: cfg.Signal.ServiceURL, Number: cfg.Signal.PhoneNumber, PathTemplate: cfg.Signal.WSPath,
		Token: cfg.Signal.APIToken, AuthScheme: wsAuthScheme(cfg.Signal.AuthScheme), ClientID: cfg.InstanceID,
		HandOff: cfg.QueueSize, MaxFrameBytes: receiveLimit(cfg.MaxFrameBytes), Logger: b.Log})
	if err != nil {
		return err
	}
	ing := ingest.New(ingest.Config{Number: cfg.Signal.PhoneNumber, Instance: cfg.InstanceID, DedupWindow: cfg.DedupWindow,
		RepairDelay: cfg.RepairDelay, QueueSize: cfg.QueueSize, MaxFrameBytes: cfg.MaxFrameBytes, StreamMaxLen: int64(cfg.StreamMaxLen),
		QuarantineMaxLen: int64(cfg.QuarantineMaxLen)},
		b.Store, leader, sp, b.Log)
	ing.ObserveAppend = metrics.RegisterIngester(b.Registry, metrics.IngesterSources{Stats: ing.Stats(), Receiver: rcv.Stats,
		Connected: rcv.Connected, Leader: leader.IsLeader, SpoolDepth: spoolDepth})
	hk := &ingest.Housekeeper{Store: b.Store, Role: leader, Instance: cfg.InstanceID, Retention: cfg.StreamRetention,
		TrimInterval: cfg.TrimInterval, HeartbeatInterval: cfg.HeartbeatInterval, Log: b.Log}
	// DLQ and quarantine retention (ARCHITECTURE §9.2), by the leader.
	dlqTrim := &dlq.Trimmer{Store: b.Store, IsLeader: leader.IsLeader, Interval: cfg.TrimInterval, DLQMaxLen: cfg.DLQMaxLen,
		DLQRetention: cfg.DLQRetention, QuarantineMaxLen: cfg.QuarantineMaxLen, QuarantineRetention: cfg.QuarantineRetention, Log: b.Log}
	metrics.RegisterQuarantine(b.Registry, metrics.QuarantineSources{Queue: dlq.New(b.Store, dlq.Quarantine), Leader: leader.IsLeader,
		Trim: dlqTrim.Stats(), StreamTrimmed: hk.Trimmed.Load})

	b.Health.AddCheck("websocket", func(context.Context) health.Result {
		st := rcv.State()
		if st.Connected {
			return health.Result{OK: true}
		}
		return health.Result{OK: false, Message: "websocket to signal-cli-rest-api not connected: " + st.LastError}
	})
	b.pending.Add(-1) // its checks are registered: /ready may now say ready
	b.Health.AddInfo(func() map[string]any {
		role := "standby"
		if leader.IsLeader() {
			role = "leader"
		}
		st := rcv.State()
		return map[string]any{"role": role, "epoch": leader.Epoch(), "websocket_connected": st.Connected,
			"reconnects": st.Reconnects, "queued": ing.Stats().Queued.Load()}
	})

	// Shutdown order: stop reading, flush what is held, then release the
	// lock so a standby leads at once (ARCHITECTURE §5.1).
	rctx, stopReading := context.WithCancel(context.Background())
	lctx, stopLeading := context.WithCancel(context.Background())
	hctx, stopHousekeeping := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); _ = rcv.Run(rctx) }()
	go func() { defer wg.Done(); _ = leader.Run(lctx) }()
	go func() { defer wg.Done(); hk.Run(hctx) }()
	go func() { defer wg.Done(); dlqTrim.Run(hctx) }()
	if ready != nil {
		close(ready)
	}
	var deadline time.Time
	ingDone := make(chan error, 1)
	go func() {
		ingDone <- ing.Run(context.Background(), rcv.Frames(), func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), deadline)
		})
	}()
	<-ctx.Done()
	deadline = time.Now().Add(cfg.ShutdownTimeout * 3 / 4)
	b.Log.Info("ingester stopping: flushing held frames", zap.Duration("shutdown_timeout", cfg.ShutdownTimeout))
	stopReading() // closes rcv.Frames(), which ends ing.Run after its flush
	ierr := <-ingDone
	stopHousekeeping()
	stopLeading()
	wg.Wait()
	st := ing.Stats()
	b.Log.Info("ingester stopped", zap.Uint64("received", st.Received.Load()), zap.Uint64("appended", st.Appended.Load()),
		zap.Uint64("deduplicated", st.Deduplicated.Load()), zap.Uint64("repaired", st.Repaired.Load()),
		zap.Uint64("quarantined", st.Quarantined.Load()), zap.Uint64("dropped", st.Dropped.Load()))
	return ierr
}

// spoolAdapter gives internal/spool the batch-replay shape ingest wants.
type spoolAdapter struct {
	s  *spool.Spool
	mu sync.Mutex // one replay at a time
}

func (a *spoolAdapter) Append(rec []byte) error { return a.s.Append(rec) }
func (a *spoolAdapter) Flush() error            { return a.s.Flush() }
func (a *spoolAdapter) Depth() int64            { return int64(a.s.Depth()) }

func (a *spoolAdapter) ReplayBatch(ctx context.Context, max int, fn func([][]byte) error) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, err := a.s.NewReader()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var recs [][]byte
	var last spool.Position
	for len(recs) < max {
		rec, pos, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		recs = append(recs, rec)
		last = pos
	}
	if len(recs) == 0 {
		return 0, nil
	}
	if err := fn(recs); err != nil {
		return 0, err
	}
	if err := a.s.Commit(last); err != nil {
		return 0, err
	}
	return len(recs), nil
}
