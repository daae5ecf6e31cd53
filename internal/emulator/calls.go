package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Call is one recorded REST call (admin calls under /_emulator/ are not recorded).
type Call struct {
	// ID numbers calls from 1 in arrival order.
	ID   int64     `json:"id"`
	Time time.Time `json:"time"`
	// Method and Path are the request's method and decoded path.
	Method string `json:"method"`
	Path   string `json:"path"`
	// Route is the matched route template, e.g. "/v1/reactions/{number}"; empty for
	// unknown routes.
	Route string `json:"route,omitempty"`
	Query string `json:"query,omitempty"`
	// Account is the number from the path, or from the body of /v1/send and /v2/send.
	Account string `json:"account,omitempty"`
	// ClientID is the X-Signal-Client-Id request header.
	ClientID string `json:"client_id,omitempty"`
	// Body is the request body decoded as JSON (nil when empty or not JSON); RawBody is
	// the body as received.
	Body    any    `json:"body,omitempty"`
	RawBody []byte `json:"-"`
	// Status is the status code answered; 0 while the call is pending or when it was
	// never answered (hang fault, client gave up, crash).
	Status int `json:"status"`
	// Timestamp is the message timestamp the emulator assigned (sends, remote deletes).
	Timestamp int64 `json:"timestamp,omitempty"`
	// Hung is true when a hang fault held the answer back.
	Hung bool `json:"hung,omitempty"`
	// Duration is the time until the answer was written.
	Duration time.Duration `json:"duration_ns"`

	// bodyDone: Body was decoded from RawBody (on the first read of the
	// call log, under its lock; see callLog.decodeLocked).
	bodyDone bool
}

// MarshalJSON adds the raw body as a string for the admin API.
func (c Call) MarshalJSON() ([]byte, error) {
	type plain Call
	return json.Marshal(struct {
		plain
		RawBody string `json:"raw_body,omitempty"`
	}{plain(c), string(c.RawBody)})
}

// CallFilter selects recorded calls; zero fields match everything.
type CallFilter struct {
	Method string
	// Route matches the route template exactly, e.g. "/v2/send".
	Route string
	// PathPrefix matches the beginning of the decoded path.
	PathPrefix string
	Account    string
	// SinceID keeps calls with ID > SinceID.
	SinceID int64
	// Since keeps calls received at or after Since.
	Since time.Time
	// Status keeps calls answered with this status.
	Status int
}

func (f CallFilter) match(c *Call) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, c.Method) {
		return false
	}
	if f.Route != "" && f.Route != c.Route {
		return false
	}
	if f.PathPrefix != "" && !strings.HasPrefix(c.Path, f.PathPrefix) {
		return false
	}
	if f.Account != "" && f.Account != c.Account {
		return false
	}
	if f.SinceID > 0 && c.ID <= f.SinceID {
		return false
	}
	if !f.Since.IsZero() && c.Time.Before(f.Since) {
		return false
	}
	if f.Status != 0 && f.Status != c.Status {
		return false
	}
	return true
}

type callLog struct {
	mu      sync.Mutex
	nextID  int64
	calls   []*Call
	max     int
	changed chan struct{}
	// watched: changed was handed out by list, so the next change must close
	// it; until then changes need no new channel (a busy log would otherwise
	// make one per recorded call and answer).
	watched bool
	// byRoute counts the recorded calls by routeKey, kept as calls are added and
	// forgotten so Stats need not walk the log (a bench polls it while sends pour in).
	byRoute map[string]int64
}

func newCallLog() *callLog {
	return &callLog{changed: make(chan struct{}), byRoute: map[string]int64{}}
}

// routeKey is a call's Stats.CallsByRoute key: "METHOD /route/template", or
// "METHOD unknown". Method and Route are set before a call is recorded.
func routeKey(c *Call) string {
	if c.Route == "" {
		return c.Method + " unknown"
	}
	return c.Method + " " + c.Route
}

func (l *callLog) add(c *Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	c.ID = l.nextID
	l.calls = append(l.calls, c)
	l.byRoute[routeKey(c)]++
	if l.max > 0 && len(l.calls) > l.max {
		// Forget the oldest tenth at once so trimming stays cheap.
		drop := min(len(l.calls)-l.max+l.max/10, len(l.calls))
		for _, old := range l.calls[:drop] {
			k := routeKey(old)
			if l.byRoute[k]--; l.byRoute[k] <= 0 {
				delete(l.byRoute, k)
			}
		}
		l.calls = slices.Delete(l.calls, 0, drop)
	}
	l.notifyLocked()
}

func (l *callLog) update(c *Call, fn func(*Call)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(c)
	l.notifyLocked()
}

func (l *callLog) notifyLocked() {
	if !l.watched {
		return
	}
	l.watched = false
	close(l.changed)
	l.changed = make(chan struct{})
}

// decodeLocked fills c.Body from c.RawBody once. Recording a call does not
// decode its body (the handlers decode it into their own types); readers of
// the log get it decoded, and the decoded value is then shared.
func (l *callLog) decodeLocked(c *Call) {
	if !c.bodyDone {
		c.bodyDone = true
		c.Body = decodeBody(c.RawBody)
	}
}

func (l *callLog) list(filters []CallFilter) ([]Call, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Call
	for _, c := range l.calls {
		ok := true
		for _, f := range filters {
			if !f.match(c) {
				ok = false
				break
			}
		}
		if ok {
			l.decodeLocked(c)
			cp := *c
			cp.RawBody = slices.Clone(c.RawBody)
			out = append(out, cp)
		}
	}
	l.watched = true
	return out, l.changed
}

// Calls returns the recorded REST calls matching all filters (all calls without filters),
// oldest first. Body values are shared decoded JSON; treat them as read-only.
func (e *Emulator) Calls(filters ...CallFilter) []Call {
	out, _ := e.calls.list(filters)
	return out
}

// WaitCalls blocks until at least n recorded calls match all filters, then returns them.
// A call counts once it is recorded, before it is answered.
func (e *Emulator) WaitCalls(ctx context.Context, n int, filters ...CallFilter) ([]Call, error) {
	for {
		out, changed := e.calls.list(filters)
		if len(out) >= n {
			return out, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return out, fmt.Errorf("emulator: wait for %d calls, have %d: %w", n, len(out), ctx.Err())
		}
	}
}

// ResetCalls forgets the recorded calls (ids keep increasing).
func (e *Emulator) ResetCalls() {
	e.calls.mu.Lock()
	defer e.calls.mu.Unlock()
	e.calls.calls = nil
	clear(e.calls.byRoute)
	e.calls.notifyLocked()
}

// sendTimestamps returns the timestamps of successful sends from account to recipient
// (a number, UUID or REST group id), oldest first.
func (e *Emulator) sendTimestamps(account, recipient string) []int64 {
	e.calls.mu.Lock()
	defer e.calls.mu.Unlock()
	var out []int64
	for _, c := range e.calls.calls {
		if c.Timestamp == 0 || c.Account != account || c.Status != 201 {
			continue
		}
		if c.Route != "/v2/send" {
			continue
		}
		e.calls.decodeLocked(c)
		m, ok := c.Body.(map[string]any)
		if !ok {
			continue
		}
		match := m["recipient"] == recipient
		if rs, ok := m["recipients"].([]any); ok {
			for _, r := range rs {
				if r == recipient {
					match = true
				}
			}
		}
		if match {
			out = append(out, c.Timestamp)
		}
	}
	return out
}

// MaxInWindow is the most calls whose arrival falls in any window [t, t+w):
// what a rate limit of so many calls per w must never exceed (plus its burst).
func MaxInWindow(calls []Call, w time.Duration) int {
	ts := make([]time.Time, len(calls))
	for i, c := range calls {
		ts[i] = c.Time
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Sub(ts[i]) < w {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// MaxInFlight is the most calls in flight at once at the emulator, from each
// call's arrival time and its duration until the answer was written; a call
// answered at the instant another arrives does not overlap it.
func MaxInFlight(calls []Call) int {
	type ev struct {
		t time.Time
		d int
	}
	evs := make([]ev, 0, 2*len(calls))
	for _, c := range calls {
		evs = append(evs, ev{c.Time, 1}, ev{c.Time.Add(c.Duration), -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t.Equal(evs[j].t) {
			return evs[i].d < evs[j].d
		}
		return evs[i].t.Before(evs[j].t)
	})
	cur, best := 0, 0
	for _, e := range evs {
		cur += e.d
		best = max(best, cur)
	}
	return best
}
