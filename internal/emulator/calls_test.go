package emulator

import (
	"testing"
	"time"
)

func TestMaxInWindowAndInFlight(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int, dur int) Call {
		return Call{Time: t0.Add(time.Duration(ms) * time.Millisecond), Duration: time.Duration(dur) * time.Millisecond}
	}
	calls := []Call{at(0, 100), at(50, 100), at(100, 10), at(900, 10), at(950, 10), at(1000, 10)}
	if got := MaxInWindow(calls, time.Second); got != 5 {
		t.Errorf("MaxInWindow 1s = %d, want 5 ([0,1000) holds 5; [50,1050) holds 5)", got)
	}
	if got := MaxInWindow(calls, 100*time.Millisecond); got != 2 {
		t.Errorf("MaxInWindow 100ms = %d, want 2 (every 100 ms window holds at most two arrivals)", got)
	}
	if got := MaxInFlight(calls); got != 2 {
		t.Errorf("MaxInFlight = %d, want 2 (0–100 overlaps 50–150; 100 starts as 0–100 ends)", got)
	}
	if MaxInWindow(nil, time.Second) != 0 || MaxInFlight(nil) != 0 {
		t.Error("empty input")
	}
}
