package sender

import (
	"sync"
	"time"
)

// State is a circuit breaker state.
type State string

// Breaker states.
const (
	Closed   State = "closed"    // calls flow
	Open     State = "open"      // calls fail at once with ErrBreakerOpen
	HalfOpen State = "half_open" // one trial call decides
)

// BreakerConfig holds the CIRCUIT_BREAKER_* settings.
type BreakerConfig struct {
	// FailureThreshold consecutive failures open the breaker (default 5).
	FailureThreshold int
	// ResetTimeout is how long it stays open before one trial call (default 30s).
	ResetTimeout time.Duration
	// FailureRate opens the breaker when at least this share of the last
	// MinRequests calls failed (default 0.5; 0 or above 1 turns the ratio off).
	FailureRate float64
	// MinRequests is the window the ratio is computed over (default 10).
	MinRequests int
}

func (c *BreakerConfig) defaults() {
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = 5
	}
	if c.ResetTimeout <= 0 {
		c.ResetTimeout = 30 * time.Second
	}
	if c.FailureRate == 0 {
		c.FailureRate = 0.5
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 10
	}
}

// verdict is how a finished call counts for the breaker.
type verdict int

const (
	// success: the server answered (2xx, and 4xx too: a validation error
	// says the server is up, so it never trips the breaker).
	success verdict = iota
	// failure: 5xx, transport errors, timeouts, unknown outcomes.
	failure
	// neutral: says nothing about the server (the caller gave up before
	// the call was made or answered).
	neutral
)

// breaker guards one endpoint template in one process. Counting is windowed
// by calls: the last MinRequests outcomes, so an old burst of failures does
// not stay on the books forever (the Python original never forgot them).
// Half-open admits exactly one trial call; the others fail fast until it
// ends (the original admitted any number).
type breaker struct {
	mu          sync.Mutex
	cfg         BreakerConfig
	state       State
	consecutive int
	ring        []bool // true = failure
	next, count int
	openedAt    time.Time
	trial       bool
	now         func() time.Time
	onChange    func(from, to State)
}

func newBreaker(cfg BreakerConfig, now func() time.Time, onChange func(from, to State)) *breaker {
	cfg.defaults()
	return &breaker{cfg: cfg, state: Closed, ring: make([]bool, cfg.MinRequests), now: now, onChange: onChange}
}

// allow asks to make a call. trial is true for the half-open trial call,
// which must be reported with done(true, …). When refused, wait says how
// long until a trial may be made, or, while a trial is in flight, a quarter
// of the reset timeout (when the trial succeeds, waiting callers come back
// soon without hammering the endpoint).
func (b *breaker) allow() (ok, trial bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return true, false, 0
	case Open:
		elapsed := b.now().Sub(b.openedAt)
		if elapsed < b.cfg.ResetTimeout {
			return false, false, b.cfg.ResetTimeout - elapsed
		}
		b.setLocked(HalfOpen)
		fallthrough
	default: // HalfOpen
		if b.trial {
			return false, false, max(b.cfg.ResetTimeout/4, 10*time.Millisecond)
		}
		b.trial = true
		return true, true, 0
	}
}

// done reports a call's verdict.
func (b *breaker) done(trial bool, v verdict) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if trial {
		b.trial = false
		switch v {
		case success:
			b.resetLocked()
			b.setLocked(Closed)
		case failure:
			b.openedAt = b.now()
			b.setLocked(Open)
		}
		// neutral: the trial said nothing; the next caller tries again.
		return
	}
	if b.state != Closed || v == neutral {
		return // a call admitted before the trip, or one that says nothing
	}
	failed := v == failure
	b.ring[b.next] = failed
	b.next = (b.next + 1) % len(b.ring)
	if b.count < len(b.ring) {
		b.count++
	}
	if failed {
		b.consecutive++
	} else {
		b.consecutive = 0
	}
	trip := b.consecutive >= b.cfg.FailureThreshold
	if !trip && b.count >= b.cfg.MinRequests && b.cfg.FailureRate > 0 && b.cfg.FailureRate <= 1 {
		n := 0
		for i := 0; i < b.count; i++ {
			if b.ring[i] {
				n++
			}
		}
		trip = float64(n)/float64(b.count) >= b.cfg.FailureRate
	}
	if trip {
		b.openedAt = b.now()
		b.resetLocked()
		b.setLocked(Open)
	}
}

func (b *breaker) resetLocked() {
	b.consecutive, b.next, b.count = 0, 0, 0
	clear(b.ring)
}

func (b *breaker) setLocked(s State) {
	if s == b.state {
		return
	}
	from := b.state
	b.state = s
	if b.onChange != nil {
		b.onChange(from, s)
	}
}

func (b *breaker) current() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// openFor is how long the breaker stays open (0 unless open).
func (b *breaker) openFor() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != Open {
		return 0
	}
	return max(b.cfg.ResetTimeout-b.now().Sub(b.openedAt), 0)
}
