package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// bucket is one cumulative histogram bucket: count of observations ≤ le.
type bucket struct {
	le    float64 // upper bound in the histogram's unit (seconds); +Inf for the last
	count float64
}

// buckets returns the cumulative buckets of histogram name in a scrape,
// sorted by bound.
func buckets(m map[string]float64, name string) []bucket {
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le := strings.TrimSuffix(strings.TrimPrefix(k, prefix), `"}`)
		f, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			f, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, bucket{f, v})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	return bs
}

// sample is one scrape of the workers during a run (summed over workers).
type sample struct {
	T       time.Duration // since the first injection
	Handled float64       // signal_client_messages_handled_total
	E2E     []bucket      // signal_client_e2e_latency_seconds, cumulative
}

// point is one interval of a timeline: the rate of messages handled and the
// latency quantiles of the messages whose handler started in it.
type point struct {
	T    time.Duration // end of the interval
	Rate float64       // messages handled per second in the interval
	// Quantiles, one per requested q, in seconds; NaN when nothing was
	// observed in the interval.
	Quantiles []float64
}

// intervals turns consecutive samples into per-interval rates and latency
// quantiles from the histogram deltas. Samples must be in time order and carry
// the same buckets; an interval of zero length is skipped.
func intervals(s []sample, qs []float64) []point {
	var out []point
	for i := 1; i < len(s); i++ {
		dt := (s[i].T - s[i-1].T).Seconds()
		if dt <= 0 {
			continue
		}
		p := point{T: s[i].T, Rate: (s[i].Handled - s[i-1].Handled) / dt}
		d := deltaBuckets(s[i-1].E2E, s[i].E2E)
		for _, q := range qs {
			p.Quantiles = append(p.Quantiles, quantile(d, q))
		}
		out = append(out, p)
	}
	return out
}

// deltaBuckets is cur − prev per bucket (matched by bound; a bound missing in
// prev counts as 0).
func deltaBuckets(prev, cur []bucket) []bucket {
	old := make(map[float64]float64, len(prev))
	for _, b := range prev {
		old[b.le] = b.count
	}
	out := make([]bucket, len(cur))
	for i, b := range cur {
		out[i] = bucket{b.le, b.count - old[b.le]}
	}
	return out
}

// quantile estimates the q-quantile of cumulative buckets the way Prometheus'
// histogram_quantile does: linear interpolation inside the bucket that holds
// it, from 0 for the first bucket; a quantile in the +Inf bucket is the highest
// finite bound. NaN when the buckets hold no observation.
func quantile(bs []bucket, q float64) float64 {
	if len(bs) == 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, b := range bs {
		if b.count >= rank && b.count > below {
			if math.IsInf(b.le, 1) {
				if i == 0 {
					return math.NaN()
				}
				return bs[i-1].le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below)
		}
		lower, below = b.le, b.count
	}
	return lower
}

// sampler scrapes the workers every interval until stopped.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	stopc   chan struct{}
	done    chan struct{}
}

// startSampler takes a first sample at once (T = 0 is t0) and then one every
// every interval, summing the scrapes of urls.
func startSampler(ctx context.Context, urls []string, t0 time.Time, every time.Duration) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	s.take(urls, t0)
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.stopc:
				return
			case <-t.C:
				s.take(urls, t0)
			}
		}
	}()
	return s
}

func (s *sampler) take(urls []string, t0 time.Time) {
	m, err := scrapeAll(urls)
	if err != nil {
		return
	}
	smp := sample{T: time.Since(t0), Handled: m["signal_client_messages_handled_total"], E2E: buckets(m, "signal_client_e2e_latency_seconds")}
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
}

// stop ends the sampling, takes a last sample and returns them all.
func (s *sampler) stop(urls []string, t0 time.Time) []sample {
	close(s.stopc)
	<-s.done
	s.take(urls, t0)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// timelineSummary tabulates each series of the chart: its intervals, the
// median and peak throughput per interval, and the highest p50 and p99.
func timelineSummary(series []timelineSeries, every time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Workers scraped every %v during the first run of each scenario (the other runs are not scraped). Per interval: messages handled / interval, and p50 / p99 of emit → handler start from the e2e histogram's bucket deltas, interpolated within the bucket as Prometheus' `histogram_quantile` does.\n\n", every)
	b.WriteString("| scenario | intervals | median msgs/s per interval | peak msgs/s | highest p50 | highest p99 |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, s := range series {
		var rates []float64
		hi := make([]float64, len(timelineQuantiles))
		for _, p := range s.Points {
			rates = append(rates, p.Rate)
			for i, q := range p.Quantiles {
				if !math.IsNaN(q) {
					hi[i] = math.Max(hi[i], q)
				}
			}
		}
		sort.Float64s(rates)
		med, peak := 0.0, 0.0
		if len(rates) > 0 {
			med, peak = rates[len(rates)/2], rates[len(rates)-1]
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.1f ms | %.1f ms |\n", s.Name, len(s.Points), med, peak, hi[0]*1000, hi[1]*1000)
	}
	return b.String()
}
