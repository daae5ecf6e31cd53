package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binDir is where `make test` puts the binaries (SIGNAL_CLIENT_BIN), else ../bin.
func binDir() string {
	if d := os.Getenv("SIGNAL_CLIENT_BIN"); d != "" {
		return d
	}
	return "../bin"
}

// needPipeline skips a test that drives the built binaries when they or
// redis-server are missing.
func needPipeline(t *testing.T) {
	t.Helper()
	for _, b := range []string{"ingester", "worker", "signal-emulator"} {
		if _, err := os.Stat(filepath.Join(binDir(), b)); err != nil {
			t.Skipf("%s not built (%v): run `make build` first, or `make test`, which builds bin/", b, err)
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH: install it to run the benchmark harness")
	}
}

// TestShortRun is the short form of `make bench`: every scenario once with a
// few thousand messages, asserting only that every message was handled (or,
// for echo, answered), so the harness cannot rot. It asserts no speed.
func TestShortRun(t *testing.T) {
	needPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	out, err := run(ctx, options{N: 2000, Runs: 1, Convs: 200, Batch: 200, Shards: 16, Bin: binDir(), PacedRate: 1000,
		Scenarios: []string{"raw", "asynq", "noop", "echo"}, Warmup: 500})
	if err != nil {
		t.Fatal(err)
	}
	md := out.MD
	for _, row := range []string{"| raw |", "| asynq |", "| signal-client no-op |", "| signal-client echo |", "Warm-up: each unpaced signal-client run follows a burst of 500 frames"} {
		if !strings.Contains(md, row) {
			t.Errorf("report has no %q row:\n%s", row, md)
		}
	}
}

// TestShortRunTwoWorkers drives the -workers and -timeline paths: two worker
// processes (handled counters and histograms summed over their /metrics) and
// the chart of the scrapes.
func TestShortRunTwoWorkers(t *testing.T) {
	needPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	out, err := run(ctx, options{N: 2000, Runs: 1, Convs: 200, Batch: 200, Shards: 16, Workers: 2, Bin: binDir(),
		Sample: 100 * time.Millisecond, Stamp: "test", Scenarios: []string{"noop"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| signal-client no-op |", "worker-1 ", "worker-2 ", "2 workers", "![throughput and latency over time](test-timeline.png)"} {
		if !strings.Contains(out.MD, want) {
			t.Errorf("report lacks %q:\n%s", want, out.MD)
		}
	}
	if len(out.Files) != 1 || out.Files[0].Suffix != "-timeline.png" || len(out.Files[0].Data) < 1000 {
		t.Errorf("files: want one timeline PNG, got %d file(s)", len(out.Files))
	}
}

func TestHistogramPcts(t *testing.T) {
	m := map[string]float64{
		`x_bucket{le="0.001"}`: 10,
		`x_bucket{le="0.005"}`: 50,
		`x_bucket{le="0.1"}`:   99,
		`x_bucket{le="1"}`:     100,
		`x_bucket{le="+Inf"}`:  100,
	}
	p50, p99, max := histogramPcts(m, "x")
	if p50 != 5*time.Millisecond || p99 != 100*time.Millisecond || max != time.Second {
		t.Fatalf("got p50 %v p99 %v max %v, want 5ms 100ms 1s", p50, p99, max)
	}
}

func TestLatencyPct(t *testing.T) {
	var l latencies
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := l.pct(c.p); got != c.want {
			t.Errorf("pct(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}
