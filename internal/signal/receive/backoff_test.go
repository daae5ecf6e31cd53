package receive

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const ms = time.Millisecond

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		r       float64
		want    time.Duration
	}{
		{"defaults equal jitter first retry low", Backoff{}, 0, 0, 50 * ms},
		{"defaults equal jitter first retry high", Backoff{}, 0, 1, 100 * ms},
		{"defaults second retry mid", Backoff{}, 1, 0.5, 150 * ms},
		{"defaults capped low", Backoff{}, 10, 0, time.Second},
		{"defaults capped high", Backoff{}, 10, 1, 2 * time.Second},
		{"huge attempt stays capped", Backoff{}, 5000, 1, 2 * time.Second},
		{"negative attempt is the first", Backoff{}, -3, 1, 100 * ms},
		{"full jitter zero", Backoff{Jitter: JitterFull}, 0, 0, 0},
		{"full jitter half", Backoff{Jitter: JitterFull}, 2, 0.5, 200 * ms},
		{"full jitter capped", Backoff{Jitter: JitterFull}, 9, 1, 2 * time.Second},
		{"no jitter", Backoff{Jitter: JitterNone}, 3, 0.7, 800 * ms},
		{"no jitter capped", Backoff{Jitter: JitterNone}, 5, 0, 2 * time.Second},
		{"multiplier 3", Backoff{Initial: 10 * ms, Max: time.Second, Multiplier: 3, Jitter: JitterNone}, 2, 0, 90 * ms},
		{"r out of range clamps", Backoff{Jitter: JitterFull}, 0, 7, 100 * ms},
		{"negative r clamps", Backoff{Jitter: JitterFull}, 0, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.attempt, tt.r); got != tt.want {
				t.Fatalf("Delay(%d, %v) = %v, want %v", tt.attempt, tt.r, got, tt.want)
			}
		})
	}
}

// Properties over a sweep of random values: first retry within (0, Initial], every delay at most
// Max, equal jitter never below half the exponential delay.
func TestBackoffDelayBounds(t *testing.T) {
	b := Backoff{}.withDefaults()
	for i := 0; i <= 100; i++ {
		r := float64(i) / 100
		if d := b.Delay(0, r); d < b.Initial/2 || d > b.Initial {
			t.Fatalf("first retry with r=%v: %v, want within [%v, %v]", r, d, b.Initial/2, b.Initial)
		}
		for attempt := 0; attempt < 20; attempt++ {
			d := b.Delay(attempt, r)
			if d > b.Max {
				t.Fatalf("attempt %d r=%v: %v above Max %v", attempt, r, d, b.Max)
			}
			if attempt > 0 && d < b.Delay(attempt-1, r) {
				t.Fatalf("attempt %d r=%v: %v shorter than the previous attempt", attempt, r, d)
			}
		}
	}
}

func TestRetryPolicy(t *testing.T) {
	type step struct {
		dialFailed bool
		uptime     time.Duration
	}
	p := retryPolicy{
		backoff: Backoff{Initial: 100 * ms, Max: 2 * time.Second, Multiplier: 2, Jitter: JitterNone},
		stable:  30 * time.Second,
	}
	steps := []step{
		{dialFailed: true}, {dialFailed: true}, {dialFailed: true},
		{uptime: time.Second},      // short-lived: still failing, keeps growing
		{dialFailed: true},         // 1.6 s
		{dialFailed: true},         // capped
		{uptime: 30 * time.Second}, // stable: reset
		{dialFailed: true},
		{uptime: 29 * time.Second}, // just short of stable
		{uptime: time.Hour},
	}
	var got []time.Duration
	for _, s := range steps {
		if s.dialFailed {
			got = append(got, p.afterDialFailure(0.5))
		} else {
			got = append(got, p.afterConnection(s.uptime, 0.5))
		}
	}
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 100 * ms, 200 * ms, 400 * ms, 100 * ms}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("delays (-want +got):\n%s", diff)
	}
}
