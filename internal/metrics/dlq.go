package metrics

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signal-client/signal-client/internal/dlq"
)

// DLQMetrics exports the DLQ depth and oldest entry of the shards this
// worker owns, read from Redis at scrape time (one pipelined round trip), so
// each per-shard series has exactly one writer: the shard's owner.
type DLQMetrics struct {
	mu    sync.Mutex
	owned func() []int
}

// Bind gives the collector the worker's owned shards (nil until bound: no
// series).
func (m *DLQMetrics) Bind(owned func() []int) {
	m.mu.Lock()
	m.owned = owned
	m.mu.Unlock()
}

// RegisterDLQ registers signal_client_dlq_depth{shard} and
// signal_client_dlq_oldest_entry_timestamp_seconds{shard} (the latter only
// for non-empty shards: there is no oldest entry to time otherwise).
func RegisterDLQ(reg prometheus.Registerer, q *dlq.Queue) *DLQMetrics {
	m := &DLQMetrics{}
	depth := desc("dlq_depth", "Entries parked in the dead-letter stream, per shard this worker owns.", "shard")
	oldest := desc("dlq_oldest_entry_timestamp_seconds", "When the oldest entry of the shard's dead-letter stream was parked (Unix seconds), per owned shard with entries.", "shard")
	reg.MustRegister(funcCollector{descs: []*prometheus.Desc{depth, oldest}, collect: func(ch chan<- prometheus.Metric) {
		m.mu.Lock()
		owned := m.owned
		m.mu.Unlock()
		if owned == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ds, err := q.Depths(ctx, owned())
		if err != nil {
			return // Redis down: redis_up says so; no stale numbers
		}
		for _, d := range ds {
			s := strconv.Itoa(d.Shard)
			ch <- prometheus.MustNewConstMetric(depth, prometheus.GaugeValue, float64(d.Depth), s)
			if !d.Oldest.IsZero() {
				ch <- prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, float64(d.Oldest.UnixMilli())/1000, s)
			}
		}
	}})
	return m
}

// QuarantineSources feed the ingester's quarantine and retention series.
type QuarantineSources struct {
	Queue  *dlq.Queue     // dlq.New(store, dlq.Quarantine)
	Leader func() bool    // the quarantine depth is exported by the leader only (one writer)
	Trim   *dlq.TrimStats // the leader's DLQ and quarantine retention
	// StreamTrimmed counts acknowledged shard-stream entries trimmed by
	// STREAM_RETENTION (ingest.Housekeeper.Trimmed); nil leaves it out.
	StreamTrimmed func() uint64
}

// RegisterQuarantine registers signal_client_quarantine_depth,
// signal_client_quarantine_oldest_entry_timestamp_seconds (leader only) and
// signal_client_trimmed_entries_total{stream,cause}: entries removed by
// retention, where stream="dlq" or "quarantine" means dead letters lost to
// DLQ_MAX_LEN / DLQ_RETENTION (or the quarantine's limits) and
// stream="shard" handled entries past STREAM_RETENTION.
func RegisterQuarantine(reg prometheus.Registerer, s QuarantineSources) {
	depth := desc("quarantine_depth", "Frames in the quarantine stream (exported by the leader ingester).")
	oldest := desc("quarantine_oldest_entry_timestamp_seconds", "When the oldest quarantined frame arrived (Unix seconds; leader ingester, only when not empty).")
	trimmed := desc("trimmed_entries_total", "Entries removed by retention, by stream (dlq, quarantine, shard) and cause (max_len, age).", "stream", "cause")
	reg.MustRegister(funcCollector{descs: []*prometheus.Desc{depth, oldest, trimmed}, collect: func(ch chan<- prometheus.Metric) {
		c := func(v uint64, stream, cause string) {
			ch <- prometheus.MustNewConstMetric(trimmed, prometheus.CounterValue, float64(v), stream, cause)
		}
		if s.Trim != nil {
			c(s.Trim.DLQMaxLen.Load(), "dlq", "max_len")
			c(s.Trim.DLQAge.Load(), "dlq", "age")
			c(s.Trim.QuarantineMaxLen.Load(), "quarantine", "max_len")
			c(s.Trim.QuarantineAge.Load(), "quarantine", "age")
		}
		if s.StreamTrimmed != nil {
			c(s.StreamTrimmed(), "shard", "age")
		}
		if s.Queue == nil || (s.Leader != nil && !s.Leader()) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ds, err := s.Queue.Depths(ctx, nil)
		if err != nil || len(ds) != 1 {
			return
		}
		ch <- prometheus.MustNewConstMetric(depth, prometheus.GaugeValue, float64(ds[0].Depth))
		if !ds[0].Oldest.IsZero() {
			ch <- prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, float64(ds[0].Oldest.UnixMilli())/1000)
		}
	}})
}

// HeartbeatMetrics exports, per owned shard, when the newest heartbeat the
// worker handled there was appended (ARCHITECTURE §12). time() minus it is
// how far behind the shard is, and it keeps growing while a shard is stuck,
// with or without traffic: the heartbeat latency histogram only moves once a
// stuck heartbeat is finally handled, this gauge shows the stall while it
// lasts.
type HeartbeatMetrics struct {
	mu    sync.Mutex
	owned func() []int
	last  map[int]time.Time
}

// RegisterHeartbeat registers signal_client_shard_heartbeat_timestamp_seconds{shard}.
func RegisterHeartbeat(reg prometheus.Registerer) *HeartbeatMetrics {
	m := &HeartbeatMetrics{last: map[int]time.Time{}}
	d := desc("shard_heartbeat_timestamp_seconds", "Append time (Unix seconds) of the newest heartbeat entry handled in the shard, per shard this worker owns.", "shard")
	reg.MustRegister(funcCollector{descs: []*prometheus.Desc{d}, collect: func(ch chan<- prometheus.Metric) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.owned == nil {
			return
		}
		owned := map[int]bool{}
		for _, s := range m.owned() {
			owned[s] = true
			if t, ok := m.last[s]; ok {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(t.UnixMilli())/1000, strconv.Itoa(s))
			}
		}
		// A shard that moved away starts afresh if it comes back: its old
		// time would read as a stall.
		for s := range m.last {
			if !owned[s] {
				delete(m.last, s)
			}
		}
	}})
	return m
}

// Bind gives the collector the worker's owned shards.
func (m *HeartbeatMetrics) Bind(owned func() []int) {
	m.mu.Lock()
	m.owned = owned
	m.mu.Unlock()
}

// Observe records a handled heartbeat (chain it into worker.Observer.Heartbeat).
func (m *HeartbeatMetrics) Observe(shard int, latency time.Duration) {
	at := time.Now().Add(-latency)
	m.mu.Lock()
	if at.After(m.last[shard]) {
		m.last[shard] = at
	}
	m.mu.Unlock()
}
