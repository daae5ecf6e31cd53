package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseCPUStat(t *testing.T) {
	for _, tc := range []struct {
		name         string
		stat         string
		total, steal uint64
		ok           bool
	}{
		{"with guest fields", "cpu  100 0 50 800 10 0 5 35 7 0\ncpu0 1 2 3\n", 1000, 35, true},
		{"without guest fields", "cpu 1 2 3 4 5 6 7 8\n", 36, 8, true},
		{"too short", "cpu 1 2 3\n", 0, 0, false},
		{"not the cpu line", "intr 1 2 3 4 5 6 7 8 9\n", 0, 0, false},
		{"not a number", "cpu 1 2 3 4 5 6 7 x\n", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, steal, ok := parseCPUStat(tc.stat)
			if total != tc.total || steal != tc.steal || ok != tc.ok {
				t.Fatalf("got %d %d %v, want %d %d %v", total, steal, ok, tc.total, tc.steal, tc.ok)
			}
		})
	}
	if got := stealShare(1000, 35, 2000, 85); got != 0.05 {
		t.Fatalf("steal share %v, want 0.05", got)
	}
}

func TestNoiseLine(t *testing.T) {
	n := noise{Steal: 0.0123, JitP50: 150 * time.Microsecond, JitP99: 2500 * time.Microsecond, JitMax: 9 * time.Millisecond, JitterMeasuredFor: 2 * time.Second}
	got := n.String()
	for _, want := range []string{"1.23 % of the CPU time was stolen", "p50 150µs, p99 2.5ms, max 9ms (2s, idle"} {
		if !strings.Contains(got, want) {
			t.Fatalf("%q lacks %q", got, want)
		}
	}
	if (noise{Steal: -1}).String() != "" {
		t.Fatal("nothing known should print nothing")
	}
	if p50, p99, max := sleepJitter(50 * time.Millisecond); p50 < 0 || p99 < p50 || max < p99 {
		t.Fatalf("jitter quantiles out of order: %v %v %v", p50, p99, max)
	}
}
