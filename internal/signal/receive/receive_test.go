package receive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const (
	testNumber = "+4912345678"
	testToken  = "tok-0123456789"
)

// wsServer is a minimal stand-in for signal-cli-rest-api's receive endpoint. It can be stopped
// abruptly (listener and every socket closed without a close frame) and started again on the same
// address, to look like a container restart.
type wsServer struct {
	t       *testing.T
	addr    string
	handler func(s *wsServer, c *websocket.Conn, n int)

	mu         sync.Mutex
	srv        *http.Server
	conns      map[*websocket.Conn]bool
	reqs       []*http.Request
	n          int
	closeCodes []int
	stopped    chan struct{}
	wg         sync.WaitGroup
}

// newWSServer starts a server on a free loopback port (or on addr, if given, when start is true).
func newWSServer(t *testing.T, addr string, start bool, handler func(s *wsServer, c *websocket.Conn, n int)) *wsServer {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s := &wsServer{t: t, addr: addr, handler: handler, conns: map[*websocket.Conn]bool{}}
	if start {
		s.start()
	}
	t.Cleanup(s.stop)
	return s
}

func (s *wsServer) start() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Recorded before the upgrade: the client counts as connected once the
		// handshake's reply reaches it, which can be before this handler runs
		// on after Upgrade returns.
		s.mu.Lock()
		s.reqs = append(s.reqs, req.Clone(context.Background()))
		s.mu.Unlock()
		c, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.n++
		n := s.n
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		s.handler(s, c, n)
		c.NetConn().Close()
	})}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.srv = srv
	s.stopped = make(chan struct{})
	s.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the listener and every websocket without a close frame, and waits for handlers.
func (s *wsServer) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	if srv != nil {
		close(s.stopped)
		for c := range s.conns {
			c.NetConn().Close()
		}
		clear(s.conns)
	}
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	s.wg.Wait()
}

func (s *wsServer) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

func (s *wsServer) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

func (s *wsServer) codes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.closeCodes...)
}

// hold reads (answering pings, like the real server's reader) until the connection ends, and
// records the code of a close frame from the client.
func (s *wsServer) hold(c *websocket.Conn) {
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
				s.mu.Lock()
				s.closeCodes = append(s.closeCodes, ce.Code)
				s.mu.Unlock()
			}
			return
		}
	}
}

func send(t *testing.T, c *websocket.Conn, frames ...string) {
	for _, f := range frames {
		if err := c.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Errorf("server write: %v", err)
			return
		}
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"envelope":{"n":"%s-%02d"},"account":"%s"}`, prefix, i, testNumber)
	}
	return out
}

func testOptions(addr string) Options {
	return Options{
		ServiceURL: "http://" + addr,
		Number:     testNumber,
		// Long ping interval: a client write racing the server's abrupt close would make the
		// kernel reset the connection and discard frames the client has not read yet, which is
		// not what these tests are about.
		PingInterval: 10 * time.Second,
		ReadTimeout:  20 * time.Second,
		Backoff:      Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond},
	}
}

type running struct {
	r      *Receiver
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func start(t *testing.T, opts Options) *running {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return run(t, r)
}

func run(t *testing.T, r *Receiver) *running {
	ctx, cancel := context.WithCancel(context.Background())
	rn := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rn.done <- r.Run(ctx) }()
	t.Cleanup(func() { rn.stop(t) })
	return rn
}

// stop cancels Run and waits for it; later calls do nothing.
func (rn *running) stop(t *testing.T) {
	t.Helper()
	rn.once.Do(func() {
		rn.cancel()
		select {
		case err := <-rn.done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Run did not return within 5s of cancel")
		}
	})
}

func recv(t *testing.T, r *Receiver, n int) []Frame {
	t.Helper()
	var out []Frame
	timeout := time.After(5 * time.Second)
	for len(out) < n {
		select {
		case f, ok := <-r.Frames():
			if !ok {
				t.Fatalf("Frames closed after %d of %d frames", len(out), n)
			}
			out = append(out, f)
		case <-timeout:
			t.Fatalf("got %d of %d frames within 5s (stats %+v)", len(out), n, r.Stats())
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkFrames asserts data, connection and sequence of received frames.
func checkFrames(t *testing.T, got []Frame, want []string, connID, firstSeq uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i, f := range got {
		if string(f.Data) != want[i] || f.ConnID != connID || f.Seq != firstSeq+uint64(i) || f.Binary || f.ReceivedAt.IsZero() {
			t.Fatalf("frame %d = {Data:%s ConnID:%d Seq:%d Binary:%v ReceivedAt:%v}, want {Data:%s ConnID:%d Seq:%d}",
				i, f.Data, f.ConnID, f.Seq, f.Binary, f.ReceivedAt, want[i], connID, firstSeq+uint64(i))
		}
	}
}

// checkNoGoroutineLeak waits for the goroutine count to come back to base.
func checkNoGoroutineLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("goroutines: %d, want at most %d", runtime.NumGoroutine(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkNoSecretsInLogs(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		for _, secret := range []string{"4912345678", testToken} {
			if strings.Contains(line, secret) {
				t.Errorf("log entry leaks %q: %s", secret, line)
			}
		}
	}
}

func TestNewValidation(t *testing.T) {
	base := testOptions("127.0.0.1:1")
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"negative read timeout", func(o *Options) { o.ReadTimeout = -1 }, "receive: ReadTimeout must not be negative (got -1ns)"},
		{"ping not shorter than read timeout", func(o *Options) { o.PingInterval = time.Minute; o.ReadTimeout = time.Minute },
			"receive: PingInterval (1m0s) must be shorter than ReadTimeout (1m0s), or an idle but healthy connection hits the read deadline before a pong can refresh it"},
		{"default ping vs short read timeout", func(o *Options) { o.PingInterval = 0; o.ReadTimeout = 5 * time.Second },
			"receive: PingInterval (30s) must be shorter than ReadTimeout (5s), or an idle but healthy connection hits the read deadline before a pong can refresh it"},
		{"max below initial", func(o *Options) { o.Backoff = Backoff{Initial: time.Second, Max: time.Millisecond} },
			"receive: Backoff.Max (1ms) must not be below Backoff.Initial (1s)"},
		{"multiplier below one", func(o *Options) { o.Backoff.Multiplier = 0.5 }, "receive: Backoff.Multiplier must be at least 1 (got 0.5)"},
		{"unknown jitter", func(o *Options) { o.Backoff.Jitter = 7 }, "receive: unknown Backoff.Jitter 7; use JitterEqual, JitterFull or JitterNone"},
		{"negative hand-off", func(o *Options) { o.HandOff = -1 }, "receive: HandOff must be positive (got -1); it is the hand-off queue capacity (QUEUE_SIZE)"},
		{"negative frame limit", func(o *Options) { o.MaxFrameBytes = -1 }, "receive: MaxFrameBytes must be positive (got -1)"},
		{"token with newline", func(o *Options) { o.Token = "a\r\nX-Evil: 1" }, "receive: Token and AuthScheme must not contain line breaks, and AuthScheme no spaces; check SIGNAL_API_TOKEN"},
		{"bad scheme", func(o *Options) { o.ServiceURL = "redis://h" }, `receive: unsupported scheme "redis" in ServiceURL; use http, https, ws or wss`},
		{"bad number", func(o *Options) { o.Number = "0049123" }, "receive: Number is not an E.164 phone number; expected + followed by 2 to 15 digits, e.g. +4915112345678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			_, err := New(o)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("New error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := New(base); err != nil {
		t.Fatalf("valid options rejected: %v", err)
	}
}

func TestFramesDeliveredInOrder(t *testing.T) {
	want := names("m", 100)
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		send(t, c, want...)
		s.hold(c)
	})
	rn := start(t, testOptions(srv.addr))
	checkFrames(t, recv(t, rn.r, 100), want, 1, 1)
	st := rn.r.Stats()
	if st.FramesReceived != 100 || st.Dropped != 0 || st.Connections != 1 || st.Reconnects != 0 {
		t.Fatalf("stats = %+v", st)
	}
	s := rn.r.State()
	if !s.Connected || !rn.r.Connected() || s.ConnID != 1 || s.ConnectedSince.IsZero() || !s.DisconnectedSince.IsZero() || s.LastError != "" {
		t.Fatalf("state = %+v", s)
	}
}

func TestHeaders(t *testing.T) {
	tests := []struct {
		name, token, scheme, clientID string
		wantAuth, wantClientID        string
	}{
		{name: "no token no client id"},
		{name: "default bearer", token: testToken, wantAuth: "Bearer " + testToken},
		{name: "custom scheme", token: testToken, scheme: "Token", wantAuth: "Token " + testToken},
		{name: "bare token", token: testToken, scheme: "none", wantAuth: testToken},
		{name: "client id", clientID: "ingester-7", wantClientID: "ingester-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) { s.hold(c) })
			o := testOptions(srv.addr)
			o.Token, o.AuthScheme, o.ClientID = tt.token, tt.scheme, tt.clientID
			rn := start(t, o)
			waitFor(t, "connection", rn.r.Connected)
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			h := reqs[0].Header
			if got := h.Get("Authorization"); got != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tt.wantAuth)
			}
			if _, ok := h["Authorization"]; ok != (tt.wantAuth != "") {
				t.Errorf("Authorization header present = %v", ok)
			}
			if got := h.Get("X-Signal-Client-Id"); got != tt.wantClientID {
				t.Errorf("X-Signal-Client-Id = %q, want %q", got, tt.wantClientID)
			}
		})
	}
}

func TestRequestPath(t *testing.T) {
	tests := []struct {
		name, basePath, template string
		wantURI                  string
	}{
		{name: "default", wantURI: "/v1/receive/+4912345678"},
		{name: "base path", basePath: "/signal/", wantURI: "/signal/v1/receive/+4912345678"},
		{name: "custom template", basePath: "/signal", template: "/ws/{phone_number}/stream", wantURI: "/signal/ws/+4912345678/stream"},
		{name: "number hard-coded in template", template: "/v1/receive/" + testNumber, wantURI: "/v1/receive/+4912345678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) { s.hold(c) })
			o := testOptions(srv.addr)
			o.ServiceURL += tt.basePath
			o.PathTemplate = tt.template
			core, logs := observer.New(zapcore.DebugLevel)
			o.Logger = zap.New(core)
			rn := start(t, o)
			waitFor(t, "connection", rn.r.Connected)
			req := srv.requests()[0]
			if req.RequestURI != tt.wantURI || req.URL.Path != tt.wantURI {
				t.Fatalf("RequestURI %q, Path %q; want %q", req.RequestURI, req.URL.Path, tt.wantURI)
			}
			if logs.FilterMessage("receive: connected").Len() != 1 {
				t.Fatalf("want one 'connected' log entry, got %v", logs.All())
			}
			checkNoSecretsInLogs(t, logs)
		})
	}
}

// The server drops the TCP connection without a close frame (container restart, #885); the
// receiver reconnects and nothing the server wrote before the drop is lost.
func TestReconnectAfterAbruptDrop(t *testing.T) {
	first, second := names("a", 10), names("b", 10)
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		if n == 1 {
			send(t, c, first...)
			return // the wrapper closes the socket without a close frame
		}
		send(t, c, second...)
		s.hold(c)
	})
	core, logs := observer.New(zapcore.DebugLevel)
	o := testOptions(srv.addr)
	o.Token = testToken
	o.Logger = zap.New(core)
	rn := start(t, o)

	got := recv(t, rn.r, 20)
	checkFrames(t, got[:10], first, 1, 1)
	checkFrames(t, got[10:], second, 2, 11)
	s := rn.r.State()
	wantErr := "receive: connection dropped without a close frame (server restart or network failure): websocket: close 1006 (abnormal closure): unexpected EOF"
	if !s.Connected || s.ConnID != 2 || s.Reconnects != 1 || s.LastError != wantErr {
		t.Fatalf("state = %+v, want connected, ConnID 2, 1 reconnect, LastError %q", s, wantErr)
	}
	if st := rn.r.Stats(); st.FramesReceived != 20 || st.Connections != 2 || st.DialFailures != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if logs.FilterMessage("receive: connection lost; reconnecting").Len() != 1 {
		t.Errorf("want one 'connection lost' log entry, got %v", logs.All())
	}
	checkNoSecretsInLogs(t, logs)
}

// The server goes away and refuses connections for a while, then comes back on the same port.
func TestReconnectAfterRefusedConnections(t *testing.T) {
	first, second := names("a", 10), names("b", 10)
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		if n == 1 {
			send(t, c, first...)
		} else {
			send(t, c, second...)
		}
		s.hold(c)
	})
	var (
		mu     sync.Mutex
		states []State
	)
	o := testOptions(srv.addr)
	o.OnStateChange = func(s State) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}
	rn := start(t, o)
	checkFrames(t, recv(t, rn.r, 10), first, 1, 1)

	srv.stop()
	waitFor(t, "three refused dials", func() bool { return rn.r.Stats().DialFailures >= 3 })
	s := rn.r.State()
	if s.Connected || s.DisconnectedSince.IsZero() || !strings.HasPrefix(s.LastError, "receive: dial: ") ||
		!strings.Contains(s.LastError, "connection refused") || strings.Contains(s.LastError, "4912345678") {
		t.Fatalf("state while refused = %+v", s)
	}

	srv.start()
	checkFrames(t, recv(t, rn.r, 10), second, 2, 11)
	st := rn.r.Stats()
	if st.FramesReceived != 20 || st.Connections != 2 || st.Reconnects != st.DialFailures+1 || st.DisconnectedSeconds <= 0 {
		t.Fatalf("stats = %+v", st)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(states) < 5 {
		t.Fatalf("got %d state changes, want at least 5: %+v", len(states), states)
	}
	if s := states[0]; !s.Connected || s.ConnID != 1 {
		t.Errorf("first state = %+v, want connected ConnID 1", s)
	}
	if s := states[1]; s.Connected || !strings.HasPrefix(s.LastError, "receive: connection dropped without a close frame") {
		t.Errorf("second state = %+v, want disconnected after a drop", s)
	}
	for _, s := range states[2 : len(states)-1] {
		if s.Connected || !strings.HasPrefix(s.LastError, "receive: dial: ") {
			t.Errorf("state while refused = %+v", s)
		}
	}
	if s := states[len(states)-1]; !s.Connected || s.ConnID != 2 {
		t.Errorf("last state = %+v, want connected ConnID 2", s)
	}
}

// The delays Run waits, recorded through the sleep hook: exponential while failing, capped,
// reset after a connection that stayed up for StablePeriod, and a short-lived connection counts as
// a failure.
func TestRunBackoffSequence(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused until the server starts
	srv := newWSServer(t, addr, false, func(s *wsServer, c *websocket.Conn, n int) {
		if n == 1 {
			select { // stays up longer than StablePeriod, then drops
			case <-time.After(600 * time.Millisecond):
			case <-s.done():
			}
		}
	})

	o := testOptions(addr)
	o.Backoff = Backoff{Initial: 10 * ms, Max: 40 * ms, Multiplier: 2, Jitter: JitterNone}
	o.StablePeriod = 300 * ms
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var delays []time.Duration
	r.sleep = func(ctx context.Context, d time.Duration) error {
		delays = append(delays, d)
		switch len(delays) {
		case 4:
			srv.start()
		case 6:
			cancel()
			return ctx.Err()
		}
		return nil
	}
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 40 * ms, 10 * ms, 20 * ms}
	if diff := cmp.Diff(want, delays); diff != "" {
		t.Fatalf("delays (-want +got):\n%s", diff)
	}
	if st := r.Stats(); st.DialFailures != 4 || st.Connections != 2 || st.Reconnects != 5 {
		t.Fatalf("stats = %+v, want 4 dial failures, 2 connections, 5 reconnects", st)
	}
}

// The server neither sends nor answers pings: the read deadline declares the connection dead.
func TestReadDeadlineReconnects(t *testing.T) {
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		<-s.done() // never reads, so never answers pings
	})
	var (
		mu      sync.Mutex
		changes []State
	)
	o := testOptions(srv.addr)
	o.PingInterval = 100 * ms
	o.ReadTimeout = 300 * ms
	o.OnStateChange = func(s State) {
		mu.Lock()
		changes = append(changes, s)
		mu.Unlock()
	}
	rn := start(t, o)
	waitFor(t, "second connection", func() bool { return rn.r.Stats().Connections >= 2 })

	mu.Lock()
	defer mu.Unlock()
	up, down := changes[0], changes[1]
	if !up.Connected || down.Connected {
		t.Fatalf("state changes = %+v", changes)
	}
	if !strings.HasPrefix(down.LastError, "receive: nothing received for 300ms (no frame, ping or pong); connection presumed dead: ") {
		t.Fatalf("LastError = %q", down.LastError)
	}
	if d := down.DisconnectedSince.Sub(up.ConnectedSince); d < o.ReadTimeout {
		t.Fatalf("connection declared dead after %v, before the %v read timeout", d, o.ReadTimeout)
	}
}

// An idle connection stays up past ReadTimeout as long as something refreshes the deadline.
func TestReadDeadlineRefreshed(t *testing.T) {
	tests := []struct {
		name    string
		handler func(s *wsServer, c *websocket.Conn, n int)
	}{
		{"pongs to client pings", func(s *wsServer, c *websocket.Conn, n int) { s.hold(c) }},
		{"server pings, client pings unanswered", func(s *wsServer, c *websocket.Conn, n int) {
			tick := time.NewTicker(50 * ms)
			defer tick.Stop()
			for {
				select {
				case <-s.done():
					return
				case <-tick.C:
					if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
						return
					}
				}
			}
		}},
		{"frames, client pings unanswered", func(s *wsServer, c *websocket.Conn, n int) {
			tick := time.NewTicker(50 * ms)
			defer tick.Stop()
			for {
				select {
				case <-s.done():
					return
				case <-tick.C:
					if c.WriteMessage(websocket.TextMessage, []byte("{}")) != nil {
						return
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newWSServer(t, "", true, tt.handler)
			o := testOptions(srv.addr)
			o.PingInterval = 50 * ms
			o.ReadTimeout = 400 * ms
			r, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			r.closeGrace = 50 * ms // two of these servers never answer the close frame
			rn := run(t, r)
			waitFor(t, "connection", rn.r.Connected)
			time.Sleep(3 * o.ReadTimeout)
			if s := rn.r.State(); !s.Connected || s.ConnID != 1 || s.LastError != "" {
				t.Fatalf("state after 3 read timeouts = %+v, want still on connection 1", s)
			}
		})
	}
}

// A consumer that never drains: everything past the capacity is dropped, counted and reported,
// and the read loop keeps reading.
func TestHandOffFullDropsAndCounts(t *testing.T) {
	const capacity, sent = 5, 50
	frames := names("m", sent)
	more := make(chan struct{})
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		send(t, c, frames...)
		select {
		case <-more:
			send(t, c, "late-1", "late-2", "late-3")
		case <-s.done():
			return
		}
		s.hold(c)
	})
	var (
		mu      sync.Mutex
		dropped []Frame
	)
	core, logs := observer.New(zapcore.WarnLevel)
	o := testOptions(srv.addr)
	o.HandOff = capacity
	o.Logger = zap.New(core)
	o.OnDrop = func(f Frame) {
		mu.Lock()
		dropped = append(dropped, f)
		mu.Unlock()
	}
	rn := start(t, o)
	waitFor(t, "all frames read", func() bool { return rn.r.Stats().FramesReceived == sent })

	if st := rn.r.Stats(); st.Dropped != sent-capacity {
		t.Fatalf("Dropped = %d, want %d", st.Dropped, sent-capacity)
	}
	mu.Lock()
	if len(dropped) != sent-capacity {
		t.Fatalf("OnDrop called %d times, want %d", len(dropped), sent-capacity)
	}
	for i, f := range dropped {
		if f.Seq != uint64(capacity+i+1) || string(f.Data) != frames[capacity+i] {
			t.Fatalf("dropped frame %d: Seq %d Data %s", i, f.Seq, f.Data)
		}
	}
	mu.Unlock()
	if n := logs.FilterMessage("receive: hand-off full, frame dropped; the consumer is not keeping up").Len(); n != 1 {
		t.Errorf("drop warnings = %d, want 1 (first drop only)", n)
	}
	checkFrames(t, recv(t, rn.r, capacity), frames[:capacity], 1, 1)

	close(more) // the read loop is still alive and delivers once there is room
	checkFrames(t, recv(t, rn.r, 3), []string{"late-1", "late-2", "late-3"}, 1, sent+1)
}

func TestOversizeFrame(t *testing.T) {
	const limit = 64
	exact := strings.Repeat("x", limit)
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		if n == 1 {
			send(t, c, "small-1", exact, strings.Repeat("y", limit+1))
		} else {
			send(t, c, "small-2")
		}
		s.hold(c)
	})
	o := testOptions(srv.addr)
	o.MaxFrameBytes = limit
	rn := start(t, o)
	got := recv(t, rn.r, 3)
	checkFrames(t, got[:2], []string{"small-1", exact}, 1, 1)
	checkFrames(t, got[2:], []string{"small-2"}, 2, 3)

	st := rn.r.Stats()
	if st.OversizeFrames != 1 || st.FramesReceived != 3 || st.Connections != 2 {
		t.Fatalf("stats = %+v", st)
	}
	want := "receive: frame larger than MaxFrameBytes (64 bytes) lost; reconnecting (raise MaxFrameBytes if this repeats): websocket: read limit exceeded"
	if s := rn.r.State(); s.LastError != want {
		t.Fatalf("LastError = %q, want %q", s.LastError, want)
	}
}

func TestBinaryFramesForwarded(t *testing.T) {
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		_ = c.WriteMessage(websocket.BinaryMessage, []byte("bin"))
		send(t, c, "txt")
		s.hold(c)
	})
	rn := start(t, testOptions(srv.addr))
	got := recv(t, rn.r, 2)
	if string(got[0].Data) != "bin" || !got[0].Binary || got[0].Seq != 1 {
		t.Fatalf("frame 0 = %+v", got[0])
	}
	checkFrames(t, got[1:], []string{"txt"}, 1, 2)
	if st := rn.r.Stats(); st.BinaryFrames != 1 || st.FramesReceived != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestHandshakeErrors(t *testing.T) {
	tests := []struct {
		status  int
		wantErr string
	}{
		{200, "receive: handshake answered HTTP 200 OK instead of switching to websocket; the server is probably in MODE=normal or native, where this endpoint polls and consumes messages: run signal-cli-rest-api with MODE=json-rpc"},
		{400, "receive: handshake rejected with HTTP 400 Bad Request; check that the server runs with MODE=json-rpc and that any proxy forwards the Upgrade and Connection headers"},
		{401, "receive: handshake rejected with HTTP 401 Unauthorized; check SIGNAL_API_TOKEN and the auth scheme the reverse proxy expects"},
		{404, "receive: handshake rejected with HTTP 404 Not Found; check SIGNAL_SERVICE_URL and SIGNAL_WS_PATH (PathTemplate)"},
		{502, "receive: handshake rejected with HTTP 502 Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `{"error":"no such account %s"}`, testNumber)
			}))
			defer hs.Close()
			core, logs := observer.New(zapcore.DebugLevel)
			o := testOptions(strings.TrimPrefix(hs.URL, "http://"))
			o.Token = testToken
			o.Logger = zap.New(core)
			rn := start(t, o)
			waitFor(t, "two failed dials", func() bool { return rn.r.Stats().DialFailures >= 2 })
			rn.stop(t)
			if s := rn.r.State(); s.LastError != tt.wantErr || s.Connected {
				t.Fatalf("state = %+v, want LastError %q", s, tt.wantErr)
			}
			if n := logs.FilterMessage("receive: dial failed; retrying").Len(); n != 1 {
				t.Errorf("warn-level dial failure logs = %d, want 1 (later failures at debug)", n)
			}
			checkNoSecretsInLogs(t, logs)
		})
	}
}

// Cancel while connected: a close frame (1000) goes to the server, Frames is closed, Run returns
// nil and every goroutine ends.
func TestCancelClosesGracefully(t *testing.T) {
	base := runtime.NumGoroutine()
	srv := newWSServer(t, "", true, func(s *wsServer, c *websocket.Conn, n int) {
		send(t, c, "one")
		s.hold(c)
	})
	o := testOptions(srv.addr)
	o.PingInterval = 20 * ms // the ping loop is running when the cancel comes
	o.ReadTimeout = time.Second
	rn := start(t, o)
	recv(t, rn.r, 1)
	rn.stop(t)

	waitFor(t, "server to see the close frame", func() bool { return len(srv.codes()) == 1 })
	if got := srv.codes(); got[0] != websocket.CloseNormalClosure {
		t.Fatalf("close code = %v, want 1000", got)
	}
	if _, ok := <-rn.r.Frames(); ok {
		t.Fatalf("Frames not closed after Run returned")
	}
	if s := rn.r.State(); s.Connected || s.LastError != "" || s.DisconnectedSince.IsZero() {
		t.Fatalf("state after close = %+v", s)
	}
	srv.stop()
	checkNoGoroutineLeak(t, base)
}

func TestCancelWhileNotConnected(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (addr string, ready func(*Receiver) bool)
	}{
		{"during backoff", func(t *testing.T) (string, func(*Receiver) bool) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			return addr, func(r *Receiver) bool { return r.Stats().DialFailures == 1 }
		}},
		{"during a handshake that never answers", func(t *testing.T) (string, func(*Receiver) bool) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
			}()
			t.Cleanup(func() {
				ln.Close()
				select {
				case c := <-accepted:
					c.Close()
				default:
				}
			})
			return ln.Addr().String(), func(*Receiver) bool { return len(accepted) == 1 }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			addr, ready := tt.setup(t)
			o := testOptions(addr)
			o.Backoff = Backoff{Initial: time.Minute, Max: time.Minute}
			o.HandshakeTimeout = time.Minute
			rn := start(t, o)
			waitFor(t, "the receiver to be waiting", func() bool { return ready(rn.r) })
			rn.stop(t) // fails the test if Run waits out the minute
			if st := rn.r.Stats(); st.Connections != 0 {
				t.Fatalf("stats = %+v", st)
			}
			checkNoGoroutineLeak(t, base+1) // +1: the accept goroutine of the second case may still hold
		})
	}
}

func TestRunTwice(t *testing.T) {
	r, err := New(testOptions("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatalf("first Run = %v, want nil", err)
	}
	want := "receive: Run called twice; create a new Receiver for each run"
	if err := r.Run(context.Background()); err == nil || err.Error() != want {
		t.Fatalf("second Run = %v, want %q", err, want)
	}
}

// Disconnected time accumulates only while Run is active and no socket is up.
func TestDisconnectedAccounting(t *testing.T) {
	r, err := New(testOptions("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	r.now = func() time.Time { return now }
	step := func(d time.Duration) { now = now.Add(d) }
	check := func(what string, wantDown time.Duration, want State) {
		t.Helper()
		if got := r.Stats().DisconnectedSeconds; got != wantDown.Seconds() {
			t.Errorf("%s: DisconnectedSeconds = %v, want %v", what, got, wantDown.Seconds())
		}
		if diff := cmp.Diff(want, r.State()); diff != "" {
			t.Errorf("%s: state (-want +got):\n%s", what, diff)
		}
	}

	step(time.Hour) // before Run: not counted
	check("before run", 0, State{})
	r.markRunning(true)
	step(2 * time.Second)
	check("dialing", 2*time.Second, State{DisconnectedSince: t0.Add(time.Hour)})
	r.markConnected()
	step(10 * time.Second)
	check("connected", 2*time.Second, State{Connected: true, ConnectedSince: t0.Add(time.Hour + 2*time.Second), ConnID: 1})
	r.markDisconnected("boom")
	step(3 * time.Second)
	check("down again", 5*time.Second, State{DisconnectedSince: t0.Add(time.Hour + 12*time.Second), LastError: "boom", ConnID: 1})
	r.markRunning(false)
	step(time.Hour) // after Run: not counted
	check("after run", 5*time.Second, State{DisconnectedSince: t0.Add(time.Hour + 12*time.Second), LastError: "boom", ConnID: 1})
}
