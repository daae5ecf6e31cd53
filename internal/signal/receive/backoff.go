package receive

import (
	"math"
	"time"
)

// Jitter selects how a reconnect delay is randomised.
type Jitter int

const (
	// JitterEqual (the default) waits a uniformly random time in [d/2, d], where d is the
	// exponential delay. The lower bound keeps a refusing server from being hammered in a tight
	// loop; the upper bound keeps the worst-case wait at Backoff.Max, which matters because every
	// second without a socket loses messages upstream.
	JitterEqual Jitter = iota
	// JitterFull waits a uniformly random time in [0, d]: best spread for many clients, but
	// consecutive retries can be almost immediate.
	JitterFull
	// JitterNone waits exactly d. Useful in tests; in production several receivers would retry
	// in lockstep.
	JitterNone
)

// Defaults for Backoff. The first retry is fast because signal-cli-rest-api acknowledges messages
// upstream whether or not a websocket is attached: every second disconnected can lose messages.
const (
	DefaultBackoffInitial    = 100 * time.Millisecond
	DefaultBackoffMax        = 2 * time.Second
	DefaultBackoffMultiplier = 2.0
)

// Backoff is the reconnect policy: exponential growth from Initial by Multiplier, capped at Max,
// randomised by Jitter. Zero fields take the defaults above.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     Jitter
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max == 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBackoffMultiplier
	}
	return b
}

// Delay returns the wait before retry number attempt (0 for the first retry after a failure or
// after a stable connection ended), given r drawn uniformly from [0, 1). It is a pure function so
// that the policy can be checked without clocks. Zero fields take the defaults.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	b = b.withDefaults()
	if attempt < 0 {
		attempt = 0
	}
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	if r < 0 || math.IsNaN(r) {
		r = 0
	}
	if r > 1 {
		r = 1
	}
	switch b.Jitter {
	case JitterFull:
		d *= r
	case JitterNone:
	default:
		d = d/2 + d/2*r
	}
	return time.Duration(d)
}

// retryPolicy tracks consecutive failures. A connection counts as a failure unless it stayed up
// for the stable period: otherwise a server that accepts and immediately drops would be retried
// at the fast first-retry rate forever.
type retryPolicy struct {
	backoff Backoff
	stable  time.Duration
	attempt int
}

// afterConnection returns the delay before the next dial once a connection that lasted uptime
// has ended.
func (p *retryPolicy) afterConnection(uptime time.Duration, r float64) time.Duration {
	if uptime >= p.stable {
		p.attempt = 0
	}
	return p.next(r)
}

// afterDialFailure returns the delay before the next dial once a dial or handshake failed.
func (p *retryPolicy) afterDialFailure(r float64) time.Duration {
	return p.next(r)
}

func (p *retryPolicy) next(r float64) time.Duration {
	d := p.backoff.Delay(p.attempt, r)
	// Past 64 attempts the delay is long since capped; stop counting so the exponent stays finite.
	if p.attempt < 64 {
		p.attempt++
	}
	return d
}
