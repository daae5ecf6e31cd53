package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// backoff is RETRY_BACKOFF_BASE × 2^(attempt-1), capped at RETRY_BACKOFF_MAX,
// with jitter in [d/2, d] (ARCHITECTURE §7.2).
func backoff(base, max time.Duration, attempt int64) time.Duration {
	d := base
	for i := int64(1); i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// process runs one attempt of one entry and says whether to retry it.
//
// Attempts (ARCHITECTURE §7.1): an entry read fresh runs its first attempt at
// once, without a Redis round trip; the committer lists it in the shard's
// started marker with its next round, so a crash still counts it. Every other
// attempt (a retry, or an entry adopted from pending history) is recorded in
// Redis before it starts, and a failure is recorded before its backoff.
func (w *Worker) process(ctx context.Context, shard int, it *item, infraFails *int) outcome {
	lease, ok := w.leases.get(shard)
	if !ok {
		return outcome{} // shard gone; the entry stays pending for its next owner
	}
	xm := it.m
	e, err := streams.ParseMessage(xm)
	if err != nil {
		w.stats.ParseErrors.Add(1)
		// Keep what can be kept: the payload and the conversation, so the
		// parked entry stays inspectable and replayable.
		kept := streams.Entry{ID: xm.ID, Kind: "unknown", Conversation: xm.Conversation(), Payload: []byte(xm.Value(streams.FieldPayload))}
		return w.parkNow(ctx, lease, kept, "format", err.Error(), infraFails)
	}
	if e.Kind == streams.KindHeartbeat {
		if w.obs.Heartbeat != nil {
			w.obs.Heartbeat(shard, time.Since(time.UnixMilli(e.Timestamp)))
		}
		w.stats.Heartbeats.Add(1)
		w.com.add(shard, lease, e.ID, it.recorded > 0, nil)
		return outcome{}
	}
	fast := it.attempt == 1 && it.recorded == 0
	var att streams.Attempts
	if fast {
		now := time.Now()
		att = streams.Attempts{Count: 1, First: now, Last: now}
		w.com.start(shard, lease, e.ID)
	} else {
		delta := 1 // adopted: one more than Redis has
		if it.attempt > 0 {
			delta = max(int(it.attempt-it.recorded), 0) // 0: already recorded (a refund that failed)
		}
		att, err = w.att.count(ctx, lease, e.ID, delta)
		if err != nil {
			return w.infraOrStale(shard, err, 0, infraFails, "redis")
		}
		it.attempt, it.recorded = att.Count, att.Count
		if att.Count > int64(1+w.cfg.MaxRetries) {
			// The budget was spent by attempts that never reported (a crash, or a
			// park that failed): park without running the handler again.
			att.Count--
			return w.park(ctx, lease, e, att, "handler_error", "attempts exhausted before this worker took the entry", infraFails)
		}
	}

	msg := &Message{Entry: e, Shard: shard, Attempt: att.Count, Epoch: lease.Epoch, Started: time.Now(), w: w}
	if w.obs.EndToEnd != nil && e.Timestamp > 0 && att.Count == 1 {
		w.obs.EndToEnd(time.Since(time.UnixMilli(e.Timestamp)))
	}
	// Lazy: a handler that never waits on its context costs no timer.
	msg.ctx.Init(ctx, msg.Started.Add(w.cfg.HandlerTimeout))
	hctx := &msg.ctx
	herr, reason := w.call(hctx, msg)
	hctx.Cancel(nil)
	dur := time.Since(msg.Started)

	if herr == nil {
		*infraFails = 0
		w.stats.Handled.Add(1)
		w.observe("ok", dur)
		w.com.add(shard, lease, e.ID, it.recorded > 0, msg.ops)
		return outcome{}
	}
	if ctx.Err() != nil {
		return outcome{} // shard revoked or shutting down mid-handler: not the message's fault, nothing committed
	}
	var unreadable *unreadableError
	if errors.As(herr, &unreadable) {
		if fast {
			w.com.unstart(shard, e.ID)
		}
		it.recorded = 0 // the park deletes any record
		return w.parkNow(ctx, lease, e, "format", unreadable.Error(), infraFails)
	}
	var infra InfrastructureError
	if errors.As(herr, &infra) {
		w.observe("paused", dur)
		if fast {
			w.com.unstart(shard, e.ID) // nothing recorded, nothing to refund
		} else if _, rerr := w.att.count(ctx, lease, e.ID, -1); rerr != nil && errors.Is(rerr, streams.ErrStale) {
			w.leases.revoke(shard, "stale attempt refund")
			return outcome{}
		} else if rerr == nil {
			it.recorded--
		}
		return w.infraOrStale(shard, herr, infra.PauseFor(), infraFails, "handler_infrastructure")
	}
	*infraFails = 0
	w.stats.Failed.Add(1)
	inc(&w.stats.FailedByReason, reason)
	w.observe("error", dur)
	if fast {
		// Record the failed first attempt before waiting, so that a crash
		// during the backoff does not forget it.
		w.com.unstart(shard, e.ID)
		if a, err := w.att.count(ctx, lease, e.ID, 1); err == nil {
			att, it.recorded = a, a.Count
		} else if errors.Is(err, streams.ErrStale) {
			w.stats.StaleCommits.Add(1)
			w.leases.revoke(shard, "stale lease at attempt count")
			return outcome{}
		}
		// Redis unreachable: the attempt is counted when the retry starts.
	}
	if att.Count >= int64(1+w.cfg.MaxRetries) {
		return w.park(ctx, lease, e, att, reason, w.redact(herr.Error()), infraFails)
	}
	it.attempt = att.Count + 1
	w.stats.Retried.Add(1)
	wait := backoff(w.cfg.BackoffBase, w.cfg.BackoffMax, att.Count)
	w.log.Info("handler failed; will retry", zap.Int("shard", shard), zap.String("reason", reason),
		zap.Int64("attempt", att.Count), zap.Duration("retry_in", wait), zap.String("error", w.redact(herr.Error())))
	return outcome{retryAfter: wait}
}

func (w *Worker) observe(outcome string, d time.Duration) {
	if w.obs.HandlerDone != nil {
		w.obs.HandlerDone(outcome, d)
	}
}

func (w *Worker) redact(s string) string {
	if w.cfg.Redact != nil {
		return w.cfg.Redact(s)
	}
	return s
}

// call runs the handler, turning a panic into an error (logged with stack)
// and classifying the failure.
func (w *Worker) call(ctx context.Context, m *Message) (err error, reason string) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("handler panicked", zap.String("panic", w.redact(fmt.Sprint(r))), zap.ByteString("stack", debug.Stack()))
			err, reason = fmt.Errorf("handler panic: %v", r), "panic"
		}
	}()
	if w.handler == nil {
		return nil, ""
	}
	err = w.handler.Handle(ctx, m)
	if err == nil {
		return nil, ""
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("handler exceeded HANDLER_TIMEOUT=%s: %w", w.cfg.HandlerTimeout, err), "timeout"
	}
	return err, "handler_error"
}

// infraOrStale pauses the conversation for a failure that is not the
// message's fault, or drops the shard when the lease is gone.
func (w *Worker) infraOrStale(shard int, err error, pause time.Duration, infraFails *int, cause string) outcome {
	if errors.Is(err, streams.ErrStale) {
		w.stats.StaleCommits.Add(1)
		w.leases.revoke(shard, "stale lease at attempt count")
		return outcome{}
	}
	*infraFails++
	if pause <= 0 {
		pause = w.cfg.InfraPause
		for i := 1; i < *infraFails && pause < w.cfg.InfraPauseMax; i++ {
			pause *= 2
		}
		if pause > w.cfg.InfraPauseMax {
			pause = w.cfg.InfraPauseMax
		}
	}
	w.stats.Paused.Add(1)
	inc(&w.stats.PausedByCause, cause)
	if *infraFails == 1 {
		w.log.Warn("conversation paused: infrastructure failure, attempt not counted", zap.Int("shard", shard),
			zap.String("cause", cause), zap.Duration("pause", pause), zap.String("error", w.redact(err.Error())))
	}
	return outcome{retryAfter: pause}
}

func (w *Worker) parkNow(ctx context.Context, lease streams.Lease, e streams.Entry, reason, msg string, infraFails *int) outcome {
	now := time.Now()
	return w.park(ctx, lease, e, streams.Attempts{Count: 0, First: now, Last: now}, reason, msg, infraFails)
}

func (w *Worker) park(ctx context.Context, lease streams.Lease, e streams.Entry, att streams.Attempts, reason, msg string, infraFails *int) outcome {
	_, trimmed, err := w.store.Park(ctx, lease, streams.Parked{Entry: e, Attempts: att, Reason: reason, Error: msg, Worker: w.cfg.ID}, w.cfg.DLQMaxLen)
	if err != nil {
		return w.infraOrStale(lease.Shard, err, 0, infraFails, "redis")
	}
	w.stats.Parked.Add(1)
	inc(&w.stats.ParkedByReason, reason)
	w.stats.DLQTrimmed.Add(uint64(trimmed))
	w.log.Warn("entry parked in the dead-letter queue", zap.Int("shard", lease.Shard), zap.String("entry", e.ID),
		zap.String("reason", reason), zap.Int64("attempts", att.Count))
	return outcome{}
}
