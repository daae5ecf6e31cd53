package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/dlq"
	"github.com/signal-client/signal-client/internal/ingest"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/streams"
)

// samples flattens a gather into "name{l=v,...}" → value.
func samples(t *testing.T, g prometheus.Gatherer, prefix string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), prefix) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func TestRESTMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := RegisterREST(reg)
	calls := []rest.Call{
		{Endpoint: rest.EndpointSend, Status: 201, Outcome: rest.OutcomeOK, Duration: 200 * time.Millisecond},
		{Endpoint: rest.EndpointSend, Status: 400, Outcome: rest.OutcomeAPIError, Duration: 10 * time.Millisecond},
		{Endpoint: rest.EndpointSend, Status: 503, Outcome: rest.OutcomeAPIError, Duration: 10 * time.Millisecond},
		{Endpoint: rest.EndpointSend, Status: 429, Outcome: rest.OutcomeRateLimited},
		{Endpoint: rest.EndpointSend, Outcome: rest.OutcomeUnknownOutcome},
		{Endpoint: rest.EndpointReactions, Status: 204, Outcome: rest.OutcomeOK},
		{Endpoint: rest.EndpointAbout, Outcome: rest.OutcomeTransportError},
	}
	for _, c := range calls {
		m.Observe(c)
	}
	got := samples(t, reg, "signal_client_send_")
	want := map[string]float64{
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=ok}":               1,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=client_error}":     1,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=server_error}":     1,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=rate_limited}":     1,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=unknown}":          1,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=timeout}":          0,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=transport}":        0,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=canceled}":         0,
		"signal_client_send_requests_total{endpoint=/v2/send,outcome=bad_response}":     0,
		"signal_client_send_requests_total{endpoint=/v1/reactions/{number},outcome=ok}": 1,
		"signal_client_send_requests_total{endpoint=/v1/about,outcome=transport}":       1,
		"signal_client_send_duration_seconds{endpoint=/v2/send}_count":                  4, // answered calls only
		"signal_client_send_duration_seconds{endpoint=/v1/reactions/{number}}_count":    1,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func newStore(t *testing.T, shards int) *streams.Store {
	t.Helper()
	srv := redistest.MustStart(t, redistest.Options{})
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	keys, _ := streams.NewKeys("sc", "+15550000001")
	return streams.NewStore(c, keys, shards)
}

func TestDLQAndQuarantineMetrics(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	c := s.Client()
	for i, shard := range []int{0, 0, 2} {
		c.XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().DLQ(shard), ID: fmt.Sprintf("%d-0", 1700000000000+i*1000), Values: []any{"reason", "panic"}})
	}
	c.XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().Quarantine(), ID: "1700000005000-0", Values: []any{"reason", "malformed"}})

	reg := prometheus.NewRegistry()
	dm := RegisterDLQ(reg, dlq.New(s, dlq.DeadLetters))
	if got := samples(t, reg, "signal_client_dlq"); len(got) != 0 {
		t.Fatalf("series before Bind: %v", got)
	}
	dm.Bind(func() []int { return []int{0, 1} })
	leader := false
	tr := &dlq.Trimmer{Store: s, DLQMaxLen: 4} // one per shard: trims one from shard 0
	if err := tr.TrimOnce(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	RegisterQuarantine(reg, QuarantineSources{Queue: dlq.New(s, dlq.Quarantine), Leader: func() bool { return leader }, Trim: tr.Stats(),
		StreamTrimmed: func() uint64 { return 7 }})
	want := map[string]float64{
		"signal_client_dlq_depth{shard=0}":                                     1,
		"signal_client_dlq_depth{shard=1}":                                     0,
		"signal_client_dlq_oldest_entry_timestamp_seconds{shard=0}":            1700000001,
		"signal_client_trimmed_entries_total{cause=max_len,stream=dlq}":        1,
		"signal_client_trimmed_entries_total{cause=age,stream=dlq}":            0,
		"signal_client_trimmed_entries_total{cause=max_len,stream=quarantine}": 0,
		"signal_client_trimmed_entries_total{cause=age,stream=quarantine}":     0,
		"signal_client_trimmed_entries_total{cause=age,stream=shard}":          7,
	}
	got := samples(t, reg, "signal_client_")
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("standby (-want +got):\n%s", d)
	}
	leader = true
	want["signal_client_quarantine_depth"] = 1
	want["signal_client_quarantine_oldest_entry_timestamp_seconds"] = 1700000005
	if d := cmp.Diff(want, samples(t, reg, "signal_client_")); d != "" {
		t.Fatalf("leader (-want +got):\n%s", d)
	}
}

func TestHeartbeatMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	hb := RegisterHeartbeat(reg)
	owned := []int{1, 2}
	hb.Bind(func() []int { return owned })
	hb.Observe(1, 3*time.Second)
	hb.Observe(1, 10*time.Second) // an older heartbeat handled late does not move it back
	hb.Observe(3, 0)              // not owned: not exported, forgotten
	got := samples(t, reg, "signal_client_")
	v, ok := got["signal_client_shard_heartbeat_timestamp_seconds{shard=1}"]
	if len(got) != 1 || !ok {
		t.Fatalf("%v", got)
	}
	if age := float64(time.Now().UnixMilli())/1000 - v; age < 2.9 || age > 4 {
		t.Fatalf("heartbeat age %.2fs, want about 3s", age)
	}
	owned = []int{1, 2, 3}
	if got := samples(t, reg, "signal_client_"); len(got) != 1 {
		t.Fatalf("shard 3 came back with its old heartbeat: %v", got)
	}
}

// TestNamesPassPromlint registers every collector of every binary in one
// registry (as the all-in-one binary does), gives each series a value, and
// lints the result with client_golang's promlint plus our own rules: no
// label whose name suggests a person's identifier.
func TestNamesPassPromlint(t *testing.T) {
	s := newStore(t, 2)
	reg := NewRegistry("test")
	st := &ingest.Stats{}
	st.Received.Add(1)
	RegisterIngester(reg, IngesterSources{Stats: st, Connected: func() bool { return true }, Leader: func() bool { return true }})(time.Millisecond)
	wm := RegisterWorker(reg, WorkerSources{ID: "w", Store: s})
	wm.Observer.HandlerDone("ok", time.Millisecond)
	wm.Observer.EndToEnd(time.Millisecond)
	wm.Observer.Heartbeat(0, time.Millisecond)
	RegisterREST(reg).Observe(rest.Call{Endpoint: rest.EndpointSend, Status: 201, Outcome: rest.OutcomeOK})
	RegisterDLQ(reg, dlq.New(s, dlq.DeadLetters)).Bind(func() []int { return []int{0, 1} })
	RegisterQuarantine(reg, QuarantineSources{Queue: dlq.New(s, dlq.Quarantine), Trim: &dlq.TrimStats{}})
	hb := RegisterHeartbeat(reg)
	hb.Bind(func() []int { return []int{0} })
	hb.Observe(0, time.Millisecond)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"signal_client_send_requests_total", "signal_client_dlq_depth", "signal_client_quarantine_depth",
		"signal_client_shard_heartbeat_timestamp_seconds", "signal_client_trimmed_entries_total", "signal_client_build_info",
		"signal_client_frames_received_total", "signal_client_handler_duration_seconds", "go_goroutines", "process_cpu_seconds_total"} {
		if !names[n] {
			t.Errorf("%s not gathered", n)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if bad := personLabels(mfs); len(bad) > 0 {
		t.Errorf("labels that could carry a person's identifier: %v", bad)
	}
}

func personLabels(mfs []*dto.MetricFamily) []string {
	var bad []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				n := strings.ToLower(l.GetName())
				for _, w := range []string{"number", "phone", "uuid", "group", "user", "conversation", "recipient", "sender"} {
					if strings.Contains(n, w) {
						bad = append(bad, mf.GetName()+"{"+l.GetName()+"}")
					}
				}
			}
		}
	}
	return bad
}
