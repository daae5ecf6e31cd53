package metrics

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signal-client/signal-client/internal/streams"
	"github.com/signal-client/signal-client/internal/worker"
)

// WorkerSources are what the worker's series read at scrape time.
type WorkerSources struct {
	ID    string
	Store *streams.Store
}

// WorkerMetrics is the worker's instrumentation; Observer plugs into the
// worker, Bind gives the collectors the worker's counters.
type WorkerMetrics struct {
	Observer worker.Observer
	mu       sync.Mutex
	w        *worker.Worker
}

// Bind attaches the running worker.
func (m *WorkerMetrics) Bind(w *worker.Worker) {
	m.mu.Lock()
	m.w = w
	m.mu.Unlock()
}

// RegisterWorker registers the worker series. Per-shard series are exported
// only for shards this worker owns, so each series has one writer.
func RegisterWorker(reg prometheus.Registerer, s WorkerSources) *WorkerMetrics {
	m := &WorkerMetrics{}
	handler := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "handler_duration_seconds",
		Help: "Time handlers took, by outcome (ok, error, paused).", Buckets: HandlerBuckets}, []string{"outcome"})
	e2e := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "e2e_latency_seconds",
		Help: "Upstream message timestamp to handler start.", Buckets: HandlerBuckets})
	hb := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "heartbeat_latency_seconds",
		Help: "Heartbeat entry append to pickup, per shard (a stuck shard shows here without traffic).", Buckets: HandlerBuckets}, []string{"shard"})
	reg.MustRegister(handler, e2e, hb)
	m.Observer = worker.Observer{
		HandlerDone: func(outcome string, d time.Duration) { handler.WithLabelValues(outcome).Observe(d.Seconds()) },
		EndToEnd:    func(d time.Duration) { e2e.Observe(d.Seconds()) },
		Heartbeat:   func(shard int, d time.Duration) { hb.WithLabelValues(strconv.Itoa(shard)).Observe(d.Seconds()) },
	}
	d := map[string]*prometheus.Desc{
		"handled":     desc("messages_handled_total", "Entries handled successfully."),
		"failed":      desc("handler_failures_total", "Failed attempts, by reason (handler_error, panic, timeout).", "reason"),
		"retries":     desc("handler_retries_total", "Attempts scheduled for a retry."),
		"parked":      desc("dlq_moves_total", "Entries parked in the dead-letter stream, by reason.", "reason"),
		"trimmed":     desc("dlq_trimmed_total", "DLQ entries dropped by the DLQ_MAX_LEN cap."),
		"paused":      desc("pauses_total", "Conversation pauses that did not count an attempt, by cause.", "cause"),
		"stale":       desc("stale_commits_total", "Commits rejected because the shard lease had moved."),
		"lost":        desc("shard_lease_lost_total", "Shard leases lost (expired or fenced)."),
		"rebalances":  desc("shard_rebalances_total", "Shards acquired or released by this worker."),
		"owned":       desc("shards_owned", "Shards this worker holds."),
		"workers":     desc("workers_live", "Live workers in the membership, as this worker sees it."),
		"inflight":    desc("entries_in_flight", "Entries read ahead or running in this worker."),
		"waiting":     desc("entries_waiting_behind_busy_conversation", "Entries read ahead and waiting for their conversation."),
		"lag":         desc("shard_lag", "Entries not yet delivered, per owned shard.", "shard"),
		"pending":     desc("shard_pending", "Entries delivered and not acknowledged, per owned shard.", "shard"),
		"length":      desc("shard_stream_length", "Entries in the shard stream, per owned shard.", "shard"),
		"heartbeats":  desc("heartbeats_processed_total", "Heartbeat entries acknowledged."),
		"claimed":     desc("orphans_claimed_total", "Pending entries adopted from other consumer names."),
		"parseErrors": desc("entry_format_errors_total", "Entries this build could not read (parked)."),
	}
	descs := make([]*prometheus.Desc, 0, len(d))
	for _, v := range d {
		descs = append(descs, v)
	}
	reg.MustRegister(funcCollector{descs: descs, collect: func(ch chan<- prometheus.Metric) {
		m.mu.Lock()
		w := m.w
		m.mu.Unlock()
		if w == nil {
			return
		}
		st := w.Stats()
		c := func(k string, v uint64, l ...string) {
			ch <- prometheus.MustNewConstMetric(d[k], prometheus.CounterValue, float64(v), l...)
		}
		g := func(k string, v float64, l ...string) {
			ch <- prometheus.MustNewConstMetric(d[k], prometheus.GaugeValue, v, l...)
		}
		c("handled", st.Handled.Load())
		c("retries", st.Retried.Load())
		c("trimmed", st.DLQTrimmed.Load())
		c("stale", st.StaleCommits.Load())
		c("lost", st.LeaseLosses.Load())
		c("rebalances", st.Rebalances.Load())
		c("heartbeats", st.Heartbeats.Load())
		c("claimed", st.Claimed.Load())
		c("parseErrors", st.ParseErrors.Load())
		failed := worker.Counts(&st.FailedByReason)
		parked := worker.Counts(&st.ParkedByReason)
		for _, r := range []string{"handler_error", "panic", "timeout"} {
			c("failed", failed[r], r)
		}
		for _, r := range []string{"handler_error", "panic", "timeout", "format"} {
			c("parked", parked[r], r)
		}
		paused := worker.Counts(&st.PausedByCause)
		for _, r := range []string{"redis", "handler_infrastructure"} {
			c("paused", paused[r], r)
		}
		g("owned", float64(st.ShardsOwned.Load()))
		g("workers", float64(st.LiveWorkers.Load()))
		g("inflight", float64(st.InFlight.Load()))
		g("waiting", float64(st.Waiting.Load()))
		if s.Store != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for _, n := range w.OwnedShards() {
				ss, err := s.Store.Stats(ctx, n)
				if err != nil {
					break
				}
				shard := strconv.Itoa(n)
				g("lag", float64(ss.Lag), shard)
				g("pending", float64(ss.Pending), shard)
				g("length", float64(ss.Length), shard)
			}
		}
	}})
	return m
}
