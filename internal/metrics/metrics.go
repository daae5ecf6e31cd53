// Package metrics defines every Prometheus series signal-client exports
// (prefix signal_client_, base units, _total counters), in one place so names
// stay consistent across binaries and docs/operations.md can map them. The
// components keep plain counters (atomic Stats); the collectors here read them
// at scrape time, so no package registers anything globally.
package metrics

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signal-client/signal-client/internal/health"
	"github.com/signal-client/signal-client/internal/version"
)

// Namespace prefixes every series.
const Namespace = "signal_client"

// NewRegistry returns a registry with the Go and process collectors and
// signal_client_build_info{version,goversion,component}.
func NewRegistry(component string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Build information; the value is always 1."}, []string{"version", "goversion", "component"})
	bi.WithLabelValues(version.String(), runtime.Version(), component).Set(1)
	reg.MustRegister(bi)
	return reg
}

// Serve exposes /metrics of reg on addr until ctx ends. With withPprof
// (DEBUG_PPROF) it also serves the net/http/pprof handlers under /debug/pprof/.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, withPprof bool) (net.Addr, <-chan error, error) {
	return health.Serve(ctx, addr, Handler(reg, withPprof))
}

// Handler is the mux of the metrics server: /metrics, and with withPprof the
// profiling endpoints (/debug/pprof/, .../cmdline, .../profile, .../symbol,
// .../trace and the named profiles such as heap and goroutine).
func Handler(reg *prometheus.Registry, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if withPprof {
		// pprof.Index serves the named profiles (/debug/pprof/heap, ...) too.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Buckets for latency histograms (bots-and-operations B.2.3).
var (
	AppendBuckets  = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25}
	HandlerBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	SendBuckets    = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// funcCollector turns a snapshot function into const metrics at scrape time.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (c funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// RegisterRedisUp exports signal_client_redis_up, once per process whatever
// components it runs.
func RegisterRedisUp(reg prometheus.Registerer, up func() bool) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "redis_up",
		Help: "1 while Redis answered this process's last check."}, func() float64 { return b2f(up()) }))
}
