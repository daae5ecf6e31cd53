package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signal-client/signal-client/internal/ingest"
	"github.com/signal-client/signal-client/internal/signal/receive"
)

// IngesterSources are what the ingester's series read at scrape time.
type IngesterSources struct {
	Stats      *ingest.Stats
	Receiver   func() receive.Stats
	Connected  func() bool
	Leader     func() bool
	SpoolDepth func() int64 // nil when the spool is off
}

// RegisterIngester registers the ingester series and returns the observer for
// append round-trip times (plug it into ingest.Ingester.ObserveAppend).
func RegisterIngester(reg prometheus.Registerer, s IngesterSources) func(time.Duration) {
	d := map[string]*prometheus.Desc{
		"received":     desc("frames_received_total", "Websocket frames handed to the ingest pipeline."),
		"appended":     desc("frames_appended_total", "Frames appended to a shard stream by this replica (repairs included)."),
		"deduplicated": desc("frames_deduplicated_total", "Frames another replica (or an earlier copy) had already appended."),
		"repaired":     desc("frames_repaired_total", "Frames a standby appended because the leader had not."),
		"quarantined":  desc("frames_quarantined_total", "Frames written to the quarantine stream, by reason.", "reason"),
		"dropped":      desc("frames_dropped_total", "Frames that could not be kept, by reason.", "reason"),
		"spooled":      desc("frames_spooled_total", "Frames written to the outage spool."),
		"unchecked":    desc("ingest_unchecked_appends_total", "Entries appended by an optimistic transaction whose duplicate check did not run (may be duplicates)."),
		"fallbacks":    desc("ingest_append_fallbacks_total", "Entries of optimistic append transactions that were discarded (a copy or a concurrent writer) and decided by the append script."),
		"handoff":      desc("websocket_handoff_dropped_total", "Frames dropped because the receiver's hand-off was full."),
		"reconnects":   desc("websocket_reconnects_total", "Websocket reconnects."),
		"disconnected": desc("websocket_disconnected_seconds_total", "Seconds this replica had no connected websocket."),
		"connected":    desc("websocket_connected", "1 while the websocket is connected."),
		"leader":       desc("ingester_leader", "1 while this replica is the ingester leader."),
		"queued":       desc("ingest_queued_frames", "Frames waiting in memory for Redis."),
		"spool":        desc("spool_entries", "Frames in the outage spool not yet replayed."),
		"backpressure": desc("stream_backpressure", "1 while a shard stream is above STREAM_MAX_LEN."),
	}
	descs := make([]*prometheus.Desc, 0, len(d))
	for _, v := range d {
		descs = append(descs, v)
	}
	reg.MustRegister(funcCollector{descs: descs, collect: func(ch chan<- prometheus.Metric) {
		st := s.Stats
		c := func(k string, v uint64) {
			ch <- prometheus.MustNewConstMetric(d[k], prometheus.CounterValue, float64(v))
		}
		g := func(k string, v float64) { ch <- prometheus.MustNewConstMetric(d[k], prometheus.GaugeValue, v) }
		c("received", st.Received.Load())
		c("appended", st.Appended.Load())
		c("deduplicated", st.Deduplicated.Load())
		c("repaired", st.Repaired.Load())
		c("spooled", st.Spooled.Load())
		c("unchecked", st.UncheckedAppends.Load())
		c("fallbacks", st.AppendFallbacks.Load())
		for _, reason := range []string{"malformed", "oversize", "upstream_error", "exception", "unknown"} {
			ch <- prometheus.MustNewConstMetric(d["quarantined"], prometheus.CounterValue, float64(ingest.ByReason(&st.QuarantinedByReason)[reason]), reason)
		}
		dropped := ingest.ByReason(&st.DroppedByReason)
		for _, reason := range []string{"queue_full", "spool_error", "shutdown_timeout"} {
			ch <- prometheus.MustNewConstMetric(d["dropped"], prometheus.CounterValue, float64(dropped[reason]), reason)
		}
		if s.Receiver != nil {
			rs := s.Receiver()
			c("handoff", rs.Dropped)
			c("reconnects", rs.Reconnects)
			ch <- prometheus.MustNewConstMetric(d["disconnected"], prometheus.CounterValue, rs.DisconnectedSeconds)
		}
		if s.Connected != nil {
			g("connected", b2f(s.Connected()))
		}
		if s.Leader != nil {
			g("leader", b2f(s.Leader()))
		}
		g("queued", float64(st.Queued.Load()))
		g("backpressure", b2f(st.Backpressure.Load()))
		if s.SpoolDepth != nil {
			g("spool", float64(s.SpoolDepth()))
		}
	}})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "ingest_append_duration_seconds",
		Help: "Round-trip time of one pipelined dedup-and-append batch.", Buckets: AppendBuckets})
	reg.MustRegister(h)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}
