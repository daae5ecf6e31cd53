package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signal-client/signal-client/internal/signal/rest"
)

// SendOutcomes are the values of the outcome label of the send series:
// fixed strings, so the series count is bounded.
var SendOutcomes = []string{"ok", "client_error", "server_error", "rate_limited", "timeout", "unknown", "transport", "canceled", "bad_response"}

// RESTMetrics counts REST calls by endpoint template and outcome.
type RESTMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// RegisterREST registers signal_client_send_requests_total{endpoint,outcome}
// and signal_client_send_duration_seconds{endpoint}. Plug Observe into
// rest.Options.Observer: it sees every HTTP attempt of the process (one
// source only, so nothing is counted twice). The /v2/send series start at 0
// for every outcome, so alerts on them never see "absent" as "fine".
func RegisterREST(reg prometheus.Registerer) *RESTMetrics {
	m := &RESTMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "send_requests_total",
			Help: "Calls to signal-cli-rest-api, by endpoint template and outcome."}, []string{"endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "send_duration_seconds",
			Help: "Time from sending a REST request to the end of its answer, by endpoint template.", Buckets: SendBuckets}, []string{"endpoint"}),
	}
	reg.MustRegister(m.requests, m.duration)
	for _, o := range SendOutcomes {
		m.requests.WithLabelValues(rest.EndpointSend, o)
	}
	return m
}

// Observe records one finished call (rest.Options.Observer).
func (m *RESTMetrics) Observe(c rest.Call) {
	m.requests.WithLabelValues(c.Endpoint, Outcome(c)).Inc()
	if c.Status != 0 || c.Outcome == rest.OutcomeOK {
		m.duration.WithLabelValues(c.Endpoint).Observe(c.Duration.Seconds())
	}
}

// Outcome maps a call to one of SendOutcomes: an API error is split into
// client (4xx: the request or the recipient is at fault, retrying will not
// help) and server errors (5xx).
func Outcome(c rest.Call) string {
	switch c.Outcome {
	case rest.OutcomeOK:
		return "ok"
	case rest.OutcomeAPIError:
		if c.Status >= 500 {
			return "server_error"
		}
		return "client_error"
	case rest.OutcomeRateLimited:
		return "rate_limited"
	case rest.OutcomeTimeout:
		return "timeout"
	case rest.OutcomeUnknownOutcome:
		return "unknown"
	case rest.OutcomeTransportError:
		return "transport"
	case rest.OutcomeCanceled:
		return "canceled"
	case rest.OutcomeBadResponse:
		return "bad_response"
	}
	return "unknown"
}

// ObserveDuration is Observe for callers that measure themselves.
func (m *RESTMetrics) ObserveDuration(endpoint, outcome string, d time.Duration) {
	m.requests.WithLabelValues(endpoint, outcome).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}
