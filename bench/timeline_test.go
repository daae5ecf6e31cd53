package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
)

func hist(counts ...float64) []bucket {
	les := []float64{0.001, 0.005, 0.01, math.Inf(1)}
	bs := make([]bucket, len(counts))
	for i, c := range counts {
		bs[i] = bucket{les[i], c}
	}
	return bs
}

func TestIntervals(t *testing.T) {
	ms := time.Millisecond
	samples := []sample{
		{T: 0, Handled: 0, E2E: hist(0, 0, 0, 0)},
		{T: 100 * ms, Handled: 100, E2E: hist(50, 100, 100, 100)},
		{T: 300 * ms, Handled: 300, E2E: hist(50, 100, 300, 300)},
		{T: 400 * ms, Handled: 300, E2E: hist(50, 100, 300, 300)}, // nothing handled
		{T: 400 * ms, Handled: 300, E2E: hist(50, 100, 300, 300)}, // zero-length: skipped
		{T: 500 * ms, Handled: 310, E2E: hist(50, 100, 300, 310)}, // all above the last finite bound
	}
	want := []struct {
		t        time.Duration
		rate     float64
		p50, p99 float64 // NaN: no observation
	}{
		// 50 of 100 in (0, 1 ms], 50 in (1, 5 ms]: p50 at the top of the first
		// bucket, p99 at 49/50 of the second.
		{100 * ms, 1000, 0.001, 0.001 + 0.004*49/50},
		// 200 in (5, 10 ms] over 200 ms.
		{300 * ms, 1000, 0.0075, 0.005 + 0.005*198/200},
		{400 * ms, 0, math.NaN(), math.NaN()},
		// +Inf bucket: the highest finite bound, as histogram_quantile.
		{500 * ms, 100, 0.01, 0.01},
	}
	got := intervals(samples, []float64{0.5, 0.99})
	if len(got) != len(want) {
		t.Fatalf("got %d intervals, want %d: %+v", len(got), len(want), got)
	}
	same := func(a, b float64) bool {
		return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-9
	}
	for i, w := range want {
		g := got[i]
		if g.T != w.t || !same(g.Rate, w.rate) || !same(g.Quantiles[0], w.p50) || !same(g.Quantiles[1], w.p99) {
			t.Errorf("interval %d: got T=%v rate=%v p50=%v p99=%v, want T=%v rate=%v p50=%v p99=%v",
				i, g.T, g.Rate, g.Quantiles[0], g.Quantiles[1], w.t, w.rate, w.p50, w.p99)
		}
	}
}

func TestQuantile(t *testing.T) {
	for _, c := range []struct {
		name string
		bs   []bucket
		q    float64
		want float64
	}{
		{"empty", nil, 0.5, math.NaN()},
		{"no observations", hist(0, 0, 0, 0), 0.5, math.NaN()},
		{"first bucket from 0", hist(10, 10, 10, 10), 0.5, 0.0005},
		{"skips empty buckets", hist(0, 0, 4, 4), 0.25, 0.005 + 0.005/4},
		{"max is the top of the last used bucket", hist(1, 2, 2, 2), 1, 0.005},
	} {
		got := quantile(c.bs, c.q)
		if !(math.IsNaN(got) && math.IsNaN(c.want)) && math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: quantile(%v) = %v, want %v", c.name, c.q, got, c.want)
		}
	}
}

func TestBuckets(t *testing.T) {
	m := map[string]float64{
		`x_bucket{le="0.005"}`: 7,
		`x_bucket{le="+Inf"}`:  9,
		`x_bucket{le="0.001"}`: 3,
		`x_count`:              9,
		`y_bucket{le="1"}`:     1,
	}
	got := buckets(m, "x")
	want := []bucket{{0.001, 3}, {0.005, 7}, {math.Inf(1), 9}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestRenderTimeline(t *testing.T) {
	pts := intervals([]sample{
		{T: 0, E2E: hist(0, 0, 0, 0)},
		{T: 100 * time.Millisecond, Handled: 100, E2E: hist(50, 100, 100, 100)},
		{T: 200 * time.Millisecond, Handled: 150, E2E: hist(50, 100, 100, 100)},
	}, timelineQuantiles)
	png, err := renderTimeline([]timelineSeries{{Name: "a", Points: pts}}, "100ms")
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("not a PNG: %d bytes starting %q", len(png), png[:min(8, len(png))])
	}
}

func TestTicks(t *testing.T) {
	labels := func(ts []plot.Tick) []string {
		var out []string
		for _, t := range ts {
			if t.Label != "" {
				out = append(out, t.Label)
			}
		}
		return out
	}
	for _, c := range []struct {
		name   string
		got    []string
		expect string
	}{
		{"linear 0–25 000", labels(linearTicks{}.Ticks(0, 25000)), "0,5 000,10 000,15 000,20 000,25 000"},
		{"linear 0–2000", labels(linearTicks{}.Ticks(0, 2000)), "0,500,1 000,1 500,2 000"},
		{"decades 0.1–100 000", labels(decadeTicks{}.Ticks(0.1, 100000)), "0.1,1,10,100,1 000,10 000,100 000"},
	} {
		if got := strings.Join(c.got, ","); got != c.expect {
			t.Errorf("%s: labels %s, want %s", c.name, got, c.expect)
		}
	}
	for v, want := range map[float64]float64{0: 1, 0.7: 1, 3: 5, 13000: 20000, 25000: 50000, 50000: 50000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}
