package main

import (
	"strings"
	"testing"
	"time"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 10: "10", 999: "999", 1000: "1 000", 100000: "100 000", 1234567: "1 234 567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBalanced(t *testing.T) {
	for _, c := range []struct {
		owned  []float64
		shards int
		want   bool
	}{
		{[]float64{8, 8}, 16, true},
		{[]float64{16}, 16, true},
		{[]float64{16, 0}, 16, false}, // the second has nothing yet
		{[]float64{9, 7}, 16, false},  // above the fair share of 8
		{[]float64{8, 7}, 16, false},  // one shard unowned
		{[]float64{128, 128}, 256, true},
		{[]float64{}, 16, false},
	} {
		if got := balanced(c.owned, c.shards); got != c.want {
			t.Errorf("balanced(%v, %d) = %v, want %v", c.owned, c.shards, got, c.want)
		}
	}
}

func TestMatrixCells(t *testing.T) {
	cells := matrixCells(matrixAxes(20000))
	want := []cell{
		{16, 1000, 1, 20000}, {64, 1000, 1, 20000}, {256, 1000, 1, 20000},
		{16, 10, 1, 100000}, {16, 1000, 1, 100000}, {16, 100000, 1, 100000},
		{16, 1000, 2, 20000},
	}
	if len(cells) != len(want) {
		t.Fatalf("got %v, want %v", cells, want)
	}
	for i := range want {
		if cells[i] != want[i] {
			t.Errorf("cell %d: got %v, want %v", i, cells[i], want[i])
		}
	}
}

func usageOf(name string, cpu time.Duration, rssMiB int64) procUsage {
	return procUsage{name, usage{CPU: cpu, PeakRSS: rssMiB << 20}}
}

func TestMatrixTables(t *testing.T) {
	ms := time.Millisecond
	paced := result{N: 5000, P50: 5 * ms, P99: 10 * ms}
	base := cellResult{cell: cell{16, 1000, 1, 20000},
		Burst: result{N: 20000, Rate: 15000, ShardsUsed: 16,
			Procs: []procUsage{usageOf("bench (injector)", 200*ms, 30), usageOf("emulator", 200*ms, 15), usageOf("ingester", 200*ms, 30),
				usageOf("worker", 700*ms, 58), usageOf("redis", 700*ms, 31)},
			Idle: []idleCPU{{"ingester", 0.2}, {"worker", 0}, {"redis", 0.4}}},
		Paced: paced}
	two := cellResult{cell: cell{16, 1000, 2, 20000},
		Burst: result{N: 20000, Rate: 18000, ShardsUsed: 16,
			Procs: []procUsage{usageOf("bench (injector)", 200*ms, 30), usageOf("emulator", 200*ms, 15), usageOf("ingester", 200*ms, 30),
				usageOf("worker-1", 400*ms, 30), usageOf("worker-2", 500*ms, 32), usageOf("redis", 900*ms, 31)},
			Idle: []idleCPU{{"ingester", 0}, {"worker-1", 0.2}, {"worker-2", 0.4}, {"redis", 0.6}}},
		Paced: paced}
	few := cellResult{cell: cell{16, 10, 1, 100000},
		Burst: result{N: 100000, Rate: 14000, ShardsUsed: 7, MaxLead: 1950 * ms,
			Procs: []procUsage{usageOf("worker", 3*time.Second, 60)}},
		Paced: result{N: 5000, P50: 5 * ms, P99: 10 * ms, MaxLead: 5 * ms}}
	md := matrixTables([]cellResult{base, two, few}, 20000, 1000, 1)

	for _, want := range []string{
		"#### WORKER_SHARD_COUNT (1 000 conversations, 1 worker)",
		"| shards | messages | msgs/s | × baseline | worker CPU s | CPU µs/msg (all processes) | worker peak RSS MiB | idle CPU % of a core (ingester / worker / redis) | shards with traffic | p50 @ 1000/s | p99 @ 1000/s |",
		// 2.0 s of CPU over 20 000 messages = 100 µs.
		"| 16 | 20 000 | 15000 | 1.00 | 0.70 | 100 | 58 | 0.2 / 0.0 / 0.4 | 16 of 16 | 5.0 ms | 10.0 ms |",
		"#### Workers (16 shards, 1 000 conversations)",
		"| 1 | 20 000 | 15000 | 1.00 | 0.70 | 100 | 58 | 0.2 / 0.0 / 0.4 | 16 of 16 | 5.0 ms | 10.0 ms |",
		// Worker CPU summed, RSS the larger; 2.4 s / 20 000 = 120 µs.
		"| 2 | 20 000 | 18000 | 1.20 | 0.90 | 120 | 32 | 0.0 / 0.2+0.4 / 0.6 | 16 of 16 | 5.0 ms | 10.0 ms |",
		"#### Conversations (16 shards, 1 worker)",
		// Its baseline (1 000 conversations at 100 000 messages) is missing: no ratio.
		"| 10 | 100 000 | 14000 | – | 3.00 | 30 | 60 | not measured | 7 of 16 | not meaningful (timestamps up to 5 ms ahead) | not meaningful (timestamps up to 5 ms ahead) |",
		// Staged bursts are always bumped per conversation; their latency is not shown, so no per-cell note.
		"A burst's frames are stamped with its release time",
		"one run per cell",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("matrix lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "1950 ms") {
		t.Errorf("matrix notes a burst's timestamp bump:\n%s", md)
	}
	// Cells not run leave no row.
	if strings.Contains(md, "| 64 |") || strings.Contains(md, "| 256 |") {
		t.Errorf("matrix has rows for cells not run:\n%s", md)
	}
}
