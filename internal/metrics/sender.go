package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signal-client/signal-client/internal/sender"
)

// breakerValue encodes a breaker state as one series (0 closed, 1 half-open,
// 2 open), as bots-and-operations B.2.3 proposes, not one-hot.
func breakerValue(s sender.State) float64 {
	switch s {
	case sender.HalfOpen:
		return 1
	case sender.Open:
		return 2
	}
	return 0
}

// RegisterSender registers the sender's series and returns the observer to
// pass to the bot runtime (bot.Deps.Observer):
// signal_client_rate_limiter_wait_seconds{reason},
// signal_client_send_refused_total{endpoint,reason},
// signal_client_sends_skipped_idempotent_total{endpoint,what},
// signal_client_circuit_breaker_state{endpoint}.
// REST attempts themselves are counted once, by RegisterREST.
func RegisterSender(reg prometheus.Registerer) sender.Observer {
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "rate_limiter_wait_seconds",
		Help:    "Time calls waited for the cluster-wide rate limit or an API_MAX_CONCURRENCY slot, by reason.",
		Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}, []string{"reason"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "send_refused_total",
		Help: "Calls the sender did not make, by endpoint template and reason (breaker_open, paused, rate_wait, no_slot, deadline, redis)."},
		[]string{"endpoint", "reason"})
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "sends_skipped_idempotent_total",
		Help: "Keyed calls skipped on a retry because their record says they were made (confirmed) or may have been (unknown)."},
		[]string{"endpoint", "what"})
	breaker := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "circuit_breaker_state",
		Help: "Circuit breaker state per endpoint template: 0 closed, 1 half-open, 2 open."}, []string{"endpoint"})
	reg.MustRegister(wait, refused, skipped, breaker)
	var mu sync.Mutex
	return sender.Observer{
		Waited:   func(reason string, d time.Duration) { wait.WithLabelValues(reason).Observe(d.Seconds()) },
		Refused:  func(endpoint, reason string) { refused.WithLabelValues(endpoint, reason).Inc() },
		Replayed: func(endpoint, what string) { skipped.WithLabelValues(endpoint, what).Inc() },
		Breaker: func(endpoint string, _, to sender.State) {
			mu.Lock()
			defer mu.Unlock()
			breaker.WithLabelValues(endpoint).Set(breakerValue(to))
		},
	}
}
