package emulator

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DeliveryMode chooses how injected frames reach websockets.
type DeliveryMode string

const (
	// DeliveryReliable (default) gives every socket every frame, in order, through its own
	// unbounded queue. Use it when a test must not lose events to the emulator itself.
	DeliveryReliable DeliveryMode = "reliable"
	// DeliveryBusyDrop is the real server's behaviour (reference §2.3 point 2): a frame
	// reaches a socket only if that socket's writer is idle; a frame offered while the
	// previous one is still being written is dropped and counted.
	DeliveryBusyDrop DeliveryMode = "busy-drop"
	// DeliveryGlobalStall is busy-drop plus the real server's process-wide write mutex: a
	// socket whose write stalls (see SocketFault.Stall) holds the mutex, so the writers of
	// all other sockets wait and their new frames are dropped.
	DeliveryGlobalStall DeliveryMode = "global-stall"
)

func (m DeliveryMode) valid() bool {
	return m == DeliveryReliable || m == DeliveryBusyDrop || m == DeliveryGlobalStall
}

// RESTFault is a fault rule for REST calls. Selectors narrow which calls it applies to;
// exactly one action is usually set. A rule fires at most once per call, at the stage of
// its action:
//   - Status: before the request is handled (like a failing proxy), answering Status with
//     Body (default {"error":"emulator: injected fault"}).
//   - Error, RateLimit: where signal-cli would fail, i.e. after validation and the account
//     check: 400 {"error":Error}, or the rate-limit answer of reference §4.1 (429 with
//     challenge_tokens on /v2/send in json-rpc mode, 400 text otherwise).
//   - Hang: after the call took effect (a send got its timestamp and is recorded), the
//     answer is held back until the rule is removed (then it is written), the client gives
//     up, or the emulator closes. This produces unknown outcomes.
//   - Latency alone: a delay before the request is handled. Combined with another action
//     the delay precedes that action.
type RESTFault struct {
	// Method matches the HTTP method; empty matches any.
	Method string
	// Route matches the route template, e.g. "/v2/send" or "/v1/reactions/{number}";
	// empty matches every REST route.
	Route string
	// Account matches the number in the path or the body.
	Account string
	// Recipient matches when the body's recipients/recipient contains it.
	Recipient string
	// Count limits the rule to the next Count matching calls; 0 means unlimited.
	Count int
	// Probability in (0,1) fires the rule on that fraction of matching calls; 0 means always.
	Probability float64

	Latency     time.Duration
	Status      int
	Body        string
	ContentType string
	Error       string
	RateLimit   bool
	// ChallengeTokens are the 429 challenge_tokens; nil omits the field, []string{""}
	// reproduces the empty-token case (#881).
	ChallengeTokens []string
	Hang            bool
}

type faultStage int

const (
	stagePre faultStage = iota
	stageBackend
	stageAnswer
)

func (f RESTFault) stage() faultStage {
	switch {
	case f.Status != 0:
		return stagePre
	case f.Error != "" || f.RateLimit:
		return stageBackend
	case f.Hang:
		return stageAnswer
	default:
		return stagePre
	}
}

// SocketSelector picks websockets; zero fields match every socket.
type SocketSelector struct {
	// ClientID matches the X-Signal-Client-Id header the socket connected with.
	ClientID string
	// Index matches the connection order (1 = first upgrade request of this emulator).
	Index int64
	// Account matches the path number.
	Account string
}

func (s SocketSelector) matches(k *socket) bool {
	if s.ClientID != "" && s.ClientID != k.clientID {
		return false
	}
	if s.Index != 0 && s.Index != k.id {
		return false
	}
	if s.Account != "" && s.Account != k.account {
		return false
	}
	return true
}

// SocketFault disturbs delivery to selected sockets (also to sockets that connect later
// and match). Counters are kept per socket and start when the fault is added.
type SocketFault struct {
	SocketSelector
	// DropProbability drops each offered frame with this probability.
	DropProbability float64
	// DropEvery drops every k-th offered frame (k, 2k, …).
	DropEvery int
	// DropNext drops the next N offered frames.
	DropNext int
	// Stall blocks the socket's writer before its next write until the fault is removed,
	// like a peer that stopped reading. In DeliveryGlobalStall it holds the global mutex.
	Stall bool
	// WriteDelay delays every write (a slow consumer).
	WriteDelay time.Duration
}

// CrashOptions configure a simulated crash of the REST process.
type CrashOptions struct {
	// Down is how long connections are refused (the port is closed, so clients get
	// "connection refused"). Default 1s.
	Down time.Duration
	// HoldEvents keeps events injected while down (they stay queued at the Signal server
	// in reality, reference §2.3 point 4) and injects them right after the restart;
	// otherwise they are discarded and counted.
	HoldEvents bool
	// ReplayDelay waits this long after the restart before injecting held events, giving
	// clients time to reconnect (the real daemon pulls them at once).
	ReplayDelay time.Duration
}

// Faults holds the runtime-switchable fault injection of one emulator.
type Faults struct {
	e    *Emulator
	mode atomic.Value // DeliveryMode

	mu      sync.Mutex
	nextID  int64
	rest    []*restRule
	sockets []*socketRule
	// nsockets mirrors len(sockets) so the per-frame paths skip the mutex when no socket
	// fault is installed (the common case in benchmarks).
	nsockets atomic.Int32
	// spent holds release channels of hang rules whose count ran out; ClearREST answers
	// the calls they still hold.
	spent []chan struct{}
}

type restRule struct {
	RESTFault
	id        string
	remaining int
	release   chan struct{}
}

type socketRule struct {
	SocketFault
	id      string
	release chan struct{}
	per     map[int64]*sockCounter
}

type sockCounter struct {
	offered, droppedNext int
}

func newFaults(e *Emulator) *Faults {
	f := &Faults{e: e}
	f.mode.Store(DeliveryReliable)
	return f
}

// SetDelivery switches the delivery mode for all sockets.
func (f *Faults) SetDelivery(m DeliveryMode) error {
	if !m.valid() {
		return fmt.Errorf("emulator: unknown delivery mode %q: use %q, %q or %q", m, DeliveryReliable, DeliveryBusyDrop, DeliveryGlobalStall)
	}
	f.mode.Store(m)
	return nil
}

// Delivery returns the current delivery mode.
func (f *Faults) Delivery() DeliveryMode { return f.mode.Load().(DeliveryMode) }

func (f *Faults) newIDLocked(prefix string) string {
	f.nextID++
	return prefix + strconv.FormatInt(f.nextID, 10)
}

// AddREST installs a REST fault rule and returns its id.
func (f *Faults) AddREST(r RESTFault) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	rr := &restRule{RESTFault: r, id: f.newIDLocked("rest-"), remaining: r.Count, release: make(chan struct{})}
	rr.ChallengeTokens = slices.Clone(r.ChallengeTokens)
	if rr.remaining <= 0 {
		rr.remaining = -1
	}
	f.rest = append(f.rest, rr)
	return rr.id
}

// RemoveREST removes a REST rule; hung calls held by it are answered. It reports whether
// the rule existed.
func (f *Faults) RemoveREST(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rest {
		if r.id == id {
			f.rest = slices.Delete(f.rest, i, i+1)
			close(r.release)
			return true
		}
	}
	return false
}

// ClearREST removes all REST rules and answers hung calls.
func (f *Faults) ClearREST() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rest {
		close(r.release)
	}
	for _, ch := range f.spent {
		close(ch)
	}
	f.rest, f.spent = nil, nil
}

// RESTRules returns the installed REST rules by id.
func (f *Faults) RESTRules() map[string]RESTFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]RESTFault, len(f.rest))
	for _, r := range f.rest {
		rf := r.RESTFault
		if r.remaining > 0 {
			rf.Count = r.remaining
		}
		out[r.id] = rf
	}
	return out
}

// FailNext makes the next n calls to route (any method) answer status with the default
// fault body; n 0 means every call. It returns the rule id.
func (f *Faults) FailNext(route string, status, n int) string {
	return f.AddREST(RESTFault{Route: route, Status: status, Count: n})
}

// RateLimitSend makes the next n sends (0 = all) fail with the rate-limit error carrying
// tokens. It returns the rule id.
func (f *Faults) RateLimitSend(tokens []string, n int) string {
	return f.AddREST(RESTFault{Route: "/v2/send", RateLimit: true, ChallengeTokens: tokens, Count: n})
}

// SetLatency delays every call to route by d. It returns the rule id.
func (f *Faults) SetLatency(route string, d time.Duration) string {
	return f.AddREST(RESTFault{Route: route, Latency: d})
}

// HangSends accepts the next n sends (0 = all) but never answers them. It returns the rule id.
func (f *Faults) HangSends(n int) string {
	return f.AddREST(RESTFault{Route: "/v2/send", Hang: true, Count: n})
}

type matchInput struct {
	method, route, account string
	// recipients lists the body's recipients; called only for a rule that
	// filters on them (most calls match no such rule, and need no decode).
	recipients func() []string
}

func (in matchInput) recipientList() []string {
	if in.recipients == nil {
		return nil
	}
	return in.recipients()
}

// fire returns a snapshot of the first rule of stage st that matches and wins its
// probability roll, consuming one of its counts.
func (f *Faults) fire(st faultStage, in matchInput) (RESTFault, chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rest {
		if r.stage() != st {
			continue
		}
		if r.Method != "" && r.Method != in.method {
			continue
		}
		if r.Route != "" && r.Route != in.route {
			continue
		}
		if r.Account != "" && r.Account != in.account {
			continue
		}
		if r.Recipient != "" && !slices.Contains(in.recipientList(), r.Recipient) {
			continue
		}
		if r.Probability > 0 && r.Probability < 1 && f.e.float64() >= r.Probability {
			continue
		}
		snap := r.RESTFault
		rel := r.release
		if r.remaining > 0 {
			r.remaining--
			if r.remaining == 0 {
				f.rest = slices.Delete(f.rest, i, i+1)
				if r.Hang {
					// Calls held by a spent hang rule stay unanswered until ClearREST
					// or Close, like the real hang.
					f.spent = append(f.spent, r.release)
				} else {
					close(r.release)
				}
			}
		}
		return snap, rel, true
	}
	return RESTFault{}, nil, false
}

// AddSocket installs a socket fault and returns its id.
func (f *Faults) AddSocket(s SocketFault) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &socketRule{SocketFault: s, id: f.newIDLocked("socket-"), release: make(chan struct{}), per: map[int64]*sockCounter{}}
	f.sockets = append(f.sockets, r)
	f.nsockets.Store(int32(len(f.sockets)))
	return r.id
}

// RemoveSocket removes a socket fault (a stalled writer resumes). It reports whether the
// fault existed.
func (f *Faults) RemoveSocket(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.sockets {
		if r.id == id {
			f.sockets = slices.Delete(f.sockets, i, i+1)
			f.nsockets.Store(int32(len(f.sockets)))
			close(r.release)
			return true
		}
	}
	return false
}

// ClearSockets removes all socket faults.
func (f *Faults) ClearSockets() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.sockets {
		close(r.release)
	}
	f.sockets = nil
	f.nsockets.Store(0)
}

// SocketRules returns the installed socket faults by id.
func (f *Faults) SocketRules() map[string]SocketFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]SocketFault, len(f.sockets))
	for _, r := range f.sockets {
		out[r.id] = r.SocketFault
	}
	return out
}

// Clear removes every REST and socket fault and restores reliable delivery. A crash in
// progress still ends on its own schedule.
func (f *Faults) Clear() {
	f.ClearREST()
	f.ClearSockets()
	f.mode.Store(DeliveryReliable)
}

func (f *Faults) releaseAll() { f.Clear() }

// hasSocketFaults reports whether any socket fault is installed.
func (f *Faults) hasSocketFaults() bool { return f.nsockets.Load() > 0 }

// shouldDrop applies drop faults to one frame offered to k.
func (f *Faults) shouldDrop(k *socket) bool {
	if !f.hasSocketFaults() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	drop := false
	for _, r := range f.sockets {
		if !r.matches(k) {
			continue
		}
		if r.DropNext == 0 && r.DropEvery == 0 && r.DropProbability == 0 {
			continue
		}
		c := r.per[k.id]
		if c == nil {
			c = &sockCounter{}
			r.per[k.id] = c
		}
		c.offered++
		if r.DropNext > 0 && c.droppedNext < r.DropNext {
			c.droppedNext++
			drop = true
		}
		if r.DropEvery > 0 && c.offered%r.DropEvery == 0 {
			drop = true
		}
		if r.DropProbability > 0 && f.e.float64() < r.DropProbability {
			drop = true
		}
	}
	return drop
}

// stall returns the release channel of a stall fault matching k, or nil.
func (f *Faults) stall(k *socket) chan struct{} {
	if !f.hasSocketFaults() {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.sockets {
		if r.Stall && r.matches(k) {
			return r.release
		}
	}
	return nil
}

func (f *Faults) writeDelay(k *socket) time.Duration {
	if !f.hasSocketFaults() {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var d time.Duration
	for _, r := range f.sockets {
		if r.WriteDelay > d && r.matches(k) {
			d = r.WriteDelay
		}
	}
	return d
}

// DropSockets abruptly closes the open sockets matching sel (no close frame, like a lost
// connection) and returns how many it closed.
func (f *Faults) DropSockets(sel SocketSelector) int {
	n := 0
	for _, k := range f.e.hub.openSockets() {
		if sel.matches(k) {
			k.close()
			n++
		}
	}
	return n
}

// Crash simulates the REST process dying: every connection (websockets, keep-alive HTTP,
// in-flight requests) is cut without a close frame and the port refuses connections for
// o.Down; then the emulator listens again on the same address.
func (f *Faults) Crash(o CrashOptions) error {
	e := f.e
	if o.Down <= 0 {
		o.Down = time.Second
	}
	e.lnMu.Lock()
	if !e.started || e.down {
		e.lnMu.Unlock()
		return errors.New("emulator: crash: not serving (not started, closed or already down)")
	}
	select {
	case <-e.closing:
		e.lnMu.Unlock()
		return errors.New("emulator: crash: emulator is closed")
	default:
	}
	e.down = true
	e.holdEvents = o.HoldEvents
	e.held = nil
	e.upCh = make(chan struct{})
	ln := e.ln
	e.ln = nil
	e.lnMu.Unlock()

	e.st.crashes.Add(1)
	if ln != nil {
		ln.closeAll()
	}
	e.hub.closeAll()
	e.log.Info("emulator crash simulated", zap.Duration("down", o.Down))

	if !e.track() {
		return nil
	}
	go func() {
		defer e.wg.Done()
		t := time.NewTimer(o.Down)
		defer t.Stop()
		select {
		case <-t.C:
		case <-e.closing:
			return
		}
		e.restart(o.ReplayDelay)
	}()
	return nil
}

func (e *Emulator) restart(replayDelay time.Duration) {
	var l net.Listener
	var err error
	for attempt := 0; attempt < 250; attempt++ {
		l, err = net.Listen("tcp", e.addr)
		if err == nil {
			break
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-e.closing:
			return
		}
	}
	if err != nil {
		e.log.Error("emulator restart failed: the port was taken while down; create a new emulator", zap.Error(err))
		return
	}
	e.lnMu.Lock()
	select {
	case <-e.closing:
		e.lnMu.Unlock()
		_ = l.Close()
		return
	default:
	}
	e.serveLocked(l)
	e.down = false
	held := e.held
	e.held = nil
	close(e.upCh)
	e.lnMu.Unlock()
	e.log.Info("emulator restarted after simulated crash", zap.Int("held_events", len(held)))
	if len(held) == 0 {
		return
	}
	if replayDelay > 0 {
		select {
		case <-time.After(replayDelay):
		case <-e.closing:
			return
		}
	}
	for _, h := range held {
		e.Inject(string(h[0]), h[1])
	}
}
