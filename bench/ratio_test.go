package main

import (
	"reflect"
	"testing"
)

func TestRoundRatios(t *testing.T) {
	all := map[string][]result{
		"raw":        {{Scenario: "raw", Rate: 100}, {Scenario: "raw", Rate: 200}, {Scenario: "raw", Rate: 50}},
		"asynq":      {{Scenario: "asynq", Rate: 10}, {Scenario: "asynq", Rate: 20}, {Scenario: "asynq", Rate: 5}},
		"noop":       {{Scenario: "signal-client no-op", Rate: 40}, {Scenario: "signal-client no-op", Rate: 120}, {Scenario: "signal-client no-op", Rate: 30}},
		"noop-paced": {{Scenario: "signal-client no-op @ 1000/s", Rate: 1000}},
	}
	got := roundRatios(all)
	// Each round against its own raw run: 0.4, 0.6, 0.6 (the median of the
	// rates would say 40/100 = 0.4).
	if want := []float64{0.4, 0.6, 0.6}; !reflect.DeepEqual(got["noop"]["raw"], want) {
		t.Errorf("noop/raw = %v, want %v", got["noop"]["raw"], want)
	}
	if want := []float64{4, 6, 6}; !reflect.DeepEqual(got["noop"]["asynq"], want) {
		t.Errorf("noop/asynq = %v, want %v", got["noop"]["asynq"], want)
	}
	if _, ok := got["noop-paced"]; ok {
		t.Errorf("a paced run has a ratio: %v", got["noop-paced"])
	}
	if m := medianOf(got["noop"]["raw"]); m != 0.6 {
		t.Errorf("median %v, want 0.6", m)
	}
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{4, 1}, 2.5}, {[]float64{5, 1, 3}, 3}} {
		if got := medianOf(tc.in); got != tc.want {
			t.Errorf("medianOf(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSubtractScrape(t *testing.T) {
	const h = "signal_client_e2e_latency_seconds"
	m := map[string]float64{h + `_bucket{le="0.005"}`: 30, h + "_count": 40, "signal_client_shards_owned": 16}
	before := map[string]float64{h + `_bucket{le="0.005"}`: 10, h + "_count": 15, "signal_client_shards_owned": 16}
	got := subtractScrape(m, before, h)
	want := map[string]float64{h + `_bucket{le="0.005"}`: 20, h + "_count": 25, "signal_client_shards_owned": 16}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v (only the histogram's series are deltas)", got, want)
	}
	if got := subtractScrape(m, nil, h); !reflect.DeepEqual(got, m) {
		t.Errorf("nil before: got %v, want m unchanged", got)
	}
}
