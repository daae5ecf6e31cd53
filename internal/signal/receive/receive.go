// Package receive holds the websocket of signal-cli-rest-api in json-rpc mode
// (GET /v1/receive/{number}) and hands every frame to a bounded channel.
//
// The shape follows from how the server behaves (see the protocol reference, §2.2, §2.3, §7):
//
//   - The server acknowledges messages upstream whether or not a websocket is attached, so every
//     disconnected second can lose messages. The Receiver reconnects at once with a fast first
//     retry and a short, jittered, capped exponential backoff.
//   - The server offers each message to a websocket without waiting: a client whose writer is busy
//     silently misses it. The read loop here therefore does nothing but copy the frame into a
//     bounded hand-off and never waits for the consumer. When the hand-off is full the frame is
//     dropped, counted and reported through OnDrop, never silently.
//   - The server pings every 54 s but never times a client out, so a half-open TCP connection
//     would hang forever. The Receiver sends its own pings and enforces a read deadline that every
//     frame, pong and server ping refreshes.
//
// Nothing here logs frame contents, the phone number or the receive URL (which contains it).
package receive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Defaults for Options.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultReadTimeout      = 120 * time.Second
	DefaultStablePeriod     = 30 * time.Second
	DefaultHandOff          = 1000 // QUEUE_SIZE of the Python client
	DefaultMaxFrameBytes    = 8 << 20
	DefaultAuthScheme       = "Bearer"
	// AuthSchemeNone as Options.AuthScheme sends the token bare, without a scheme word.
	AuthSchemeNone = "none"
	// ClientIDHeader carries Options.ClientID. signal-cli-rest-api ignores it; the local emulator
	// uses it to aim faults at one client.
	ClientIDHeader = "X-Signal-Client-Id"
)

// maxWriteWait bounds control-frame writes (pings, pongs, close), so a stalled socket cannot
// block the ping loop or shutdown.
const maxWriteWait = 10 * time.Second

// Options configures a Receiver. Zero values take the defaults above.
type Options struct {
	// ServiceURL is the signal-cli-rest-api address (SIGNAL_SERVICE_URL): http, https, ws or wss,
	// or a bare host:port (taken as ws). http maps to ws and https to wss; a base path is kept.
	ServiceURL string
	// Number is the account, in E.164 form (+4915112345678). It is path-escaped into the URL.
	Number string
	// PathTemplate overrides DefaultPathTemplate (SIGNAL_WS_PATH); {phone_number} is replaced by
	// the escaped number. A template starting with "/" is appended to the ServiceURL base path; one
	// without a leading "/" is taken from the host root (as the Python client does).
	PathTemplate string
	// Token, when set, is sent as "Authorization: <AuthScheme> <Token>" for a reverse proxy that
	// authenticates (SIGNAL_API_TOKEN). signal-cli-rest-api itself has no auth.
	Token string
	// AuthScheme defaults to DefaultAuthScheme; AuthSchemeNone sends the token bare.
	AuthScheme string
	// ClientID, when set, is sent in the ClientIDHeader header.
	ClientID string
	// HandshakeTimeout bounds the TCP, TLS and HTTP upgrade of one dial.
	HandshakeTimeout time.Duration
	// PingInterval is how often the Receiver pings the server. It must be shorter than ReadTimeout,
	// since the pongs are what keeps an idle but healthy connection inside the read deadline.
	PingInterval time.Duration
	// ReadTimeout is the read deadline, refreshed by every pong and server ping and by frames
	// (at most once per ReadTimeout/16, capped at 1 s, so it may end that much early). When it
	// expires the connection is presumed half-open and re-established.
	ReadTimeout time.Duration
	// Backoff is the reconnect policy.
	Backoff Backoff
	// StablePeriod: a connection that stayed up at least this long resets the backoff, so the
	// next retry is the fast first one again.
	StablePeriod time.Duration
	// HandOff is the capacity of the channel returned by Frames.
	HandOff int
	// MaxFrameBytes is the read limit. A larger frame cannot be skipped within the websocket
	// protocol: it is counted (Stats.OversizeFrames), lost, and the connection is re-established.
	MaxFrameBytes int64
	// Logger receives connection events; never frame contents. Defaults to zap.NewNop().
	Logger *zap.Logger
	// Dialer, when set, is used for the websocket dial (TLS settings, tests). It is copied and its
	// HandshakeTimeout replaced by Options.HandshakeTimeout.
	Dialer *websocket.Dialer
	// OnDrop, when set, is called from the read loop with every frame dropped because the hand-off
	// was full (after Stats.Dropped is incremented), so the caller can log or quarantine it. It must
	// return quickly: the read loop waits for it.
	OnDrop func(Frame)
	// OnStateChange, when set, is called with the new State after a connection is established,
	// after it is lost or closed, and after a failed dial. Calls come from the Run goroutine, one at
	// a time; the Receiver does not reconnect until the call returns.
	OnStateChange func(State)
}

// Frame is one websocket message from the server.
type Frame struct {
	// Data is the frame payload, a fresh slice per frame that the consumer owns.
	Data []byte
	// Binary is set for binary frames. signal-cli-rest-api only sends text frames; binary ones
	// are forwarded anyway (and counted in Stats.BinaryFrames) because a frame that reached us is
	// better judged by the consumer than dropped here.
	Binary bool
	// ReceivedAt is when the read loop got the frame.
	ReceivedAt time.Time
	// ConnID identifies the connection that delivered the frame (1 for the first).
	ConnID uint64
	// Seq numbers every frame read by this Receiver from 1, dropped ones included, so a gap seen
	// by the consumer means frames were dropped at the hand-off.
	Seq uint64
}

// State is the connection state, for health checks and metrics.
type State struct {
	// Connected is true while a websocket is established.
	Connected bool
	// ConnectedSince is when the current connection was established; zero while disconnected.
	ConnectedSince time.Time
	// DisconnectedSince is when the receiver last lost its connection (or when Run started, if
	// it never connected); zero while connected.
	DisconnectedSince time.Time
	// Reconnects counts dial attempts after the first one, failed or not.
	Reconnects uint64
	// LastError is the last connection or dial error, with the URL, number and token removed. It
	// is kept after a successful reconnect; empty if there never was one.
	LastError string
	// ConnID identifies the current, or last, connection; 0 before the first.
	ConnID uint64
}

// Stats are cumulative counters.
type Stats struct {
	// FramesReceived counts frames read from the server (text and binary), dropped ones included.
	FramesReceived uint64
	// BinaryFrames counts the binary frames among FramesReceived.
	BinaryFrames uint64
	// Dropped counts frames lost because the hand-off was full.
	Dropped uint64
	// OversizeFrames counts frames over MaxFrameBytes; each one is lost and costs a reconnect.
	OversizeFrames uint64
	// Connections counts established websockets.
	Connections uint64
	// Reconnects counts dial attempts after the first one, failed or not.
	Reconnects uint64
	// DialFailures counts dials or handshakes that failed.
	DialFailures uint64
	// DisconnectedSeconds is the total time Run spent without a connected websocket, i.e. the
	// window in which the server may have discarded messages.
	DisconnectedSeconds float64
}

// Receiver keeps one websocket to the receive endpoint open and hands frames to Frames.
// Create it with New and run it once with Run.
type Receiver struct {
	opts       Options
	url        string
	header     http.Header
	dialer     *websocket.Dialer
	log        *zap.Logger
	red        redactor
	frames     chan Frame
	writeWait  time.Duration
	closeGrace time.Duration

	// Hooks, replaced by tests only.
	now   func() time.Time
	rand  func() float64
	sleep func(ctx context.Context, d time.Duration) error

	started atomic.Bool
	seq     atomic.Uint64

	framesReceived atomic.Uint64
	binaryFrames   atomic.Uint64
	dropped        atomic.Uint64
	oversize       atomic.Uint64
	connections    atomic.Uint64
	reconnects     atomic.Uint64
	dialFailures   atomic.Uint64

	mu              sync.Mutex
	state           State // Reconnects is filled from the counter on read
	running         bool
	disconnectedFor time.Duration // closed disconnected intervals while running
}

// New validates opts and returns a Receiver. It does not connect; Run does.
func New(opts Options) (*Receiver, error) {
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.StablePeriod == 0 {
		opts.StablePeriod = DefaultStablePeriod
	}
	if opts.HandOff == 0 {
		opts.HandOff = DefaultHandOff
	}
	if opts.MaxFrameBytes == 0 {
		opts.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if opts.AuthScheme == "" {
		opts.AuthScheme = DefaultAuthScheme
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	opts.Backoff = opts.Backoff.withDefaults()
	if err := validate(opts); err != nil {
		return nil, err
	}
	u, err := buildURL(opts.ServiceURL, opts.Number, opts.PathTemplate)
	if err != nil {
		return nil, err
	}

	header := http.Header{}
	if opts.Token != "" {
		if strings.EqualFold(opts.AuthScheme, AuthSchemeNone) {
			header.Set("Authorization", opts.Token)
		} else {
			header.Set("Authorization", opts.AuthScheme+" "+opts.Token)
		}
	}
	if opts.ClientID != "" {
		header.Set(ClientIDHeader, opts.ClientID)
	}

	var dialer websocket.Dialer
	if opts.Dialer != nil {
		dialer = *opts.Dialer
	} else {
		dialer = websocket.Dialer{Proxy: http.ProxyFromEnvironment}
	}
	dialer.HandshakeTimeout = opts.HandshakeTimeout
	if dialer.ReadBufferSize == 0 {
		// gorilla's default (4 KiB) holds about nine frames: a burst cost one
		// read syscall per nine frames, 10 % of the ingester's CPU.
		dialer.ReadBufferSize = socketReadBuffer
	}

	red := newRedactor(u, opts.Number, opts.Token)
	return &Receiver{
		opts:   opts,
		url:    u,
		header: header,
		dialer: &dialer,
		// A template without the placeholder may hold the number itself, hence the redaction.
		log:        opts.Logger.With(zap.String("endpoint", red.redact(endpointLabel(opts.PathTemplate)))),
		red:        red,
		frames:     make(chan Frame, opts.HandOff),
		writeWait:  min(maxWriteWait, opts.ReadTimeout),
		closeGrace: time.Second,
		now:        time.Now,
		rand:       rand.Float64,
		sleep:      sleepCtx,
	}, nil
}

func validate(o Options) error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HandshakeTimeout", o.HandshakeTimeout},
		{"PingInterval", o.PingInterval},
		{"ReadTimeout", o.ReadTimeout},
		{"StablePeriod", o.StablePeriod},
		{"Backoff.Initial", o.Backoff.Initial},
		{"Backoff.Max", o.Backoff.Max},
	} {
		if d.v < 0 {
			return fmt.Errorf("receive: %s must not be negative (got %s)", d.name, d.v)
		}
	}
	if o.PingInterval >= o.ReadTimeout {
		return fmt.Errorf("receive: PingInterval (%s) must be shorter than ReadTimeout (%s), or an idle but healthy connection hits the read deadline before a pong can refresh it", o.PingInterval, o.ReadTimeout)
	}
	if o.Backoff.Max < o.Backoff.Initial {
		return fmt.Errorf("receive: Backoff.Max (%s) must not be below Backoff.Initial (%s)", o.Backoff.Max, o.Backoff.Initial)
	}
	if o.Backoff.Multiplier < 1 {
		return fmt.Errorf("receive: Backoff.Multiplier must be at least 1 (got %g)", o.Backoff.Multiplier)
	}
	if o.Backoff.Jitter < JitterEqual || o.Backoff.Jitter > JitterNone {
		return fmt.Errorf("receive: unknown Backoff.Jitter %d; use JitterEqual, JitterFull or JitterNone", o.Backoff.Jitter)
	}
	if o.HandOff < 0 {
		return fmt.Errorf("receive: HandOff must be positive (got %d); it is the hand-off queue capacity (QUEUE_SIZE)", o.HandOff)
	}
	if o.MaxFrameBytes < 0 {
		return fmt.Errorf("receive: MaxFrameBytes must be positive (got %d)", o.MaxFrameBytes)
	}
	if strings.ContainsAny(o.Token, "\r\n") || strings.ContainsAny(o.AuthScheme, "\r\n ") {
		return errors.New("receive: Token and AuthScheme must not contain line breaks, and AuthScheme no spaces; check SIGNAL_API_TOKEN")
	}
	if strings.ContainsAny(o.ClientID, "\r\n") {
		return errors.New("receive: ClientID must not contain line breaks")
	}
	return nil
}

// endpointLabel is the path template for logs: it names the endpoint without the number.
func endpointLabel(template string) string {
	if template == "" {
		return DefaultPathTemplate
	}
	return template
}

// Frames returns the hand-off channel. It is closed when Run returns, after the last frame.
func (r *Receiver) Frames() <-chan Frame { return r.frames }

// Connected reports whether a websocket is established right now.
func (r *Receiver) Connected() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.Connected
}

// State returns a snapshot of the connection state.
func (r *Receiver) State() State {
	r.mu.Lock()
	s := r.state
	r.mu.Unlock()
	s.Reconnects = r.reconnects.Load()
	return s
}

// Stats returns a snapshot of the counters.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	down := r.disconnectedFor
	if r.running && !r.state.Connected {
		down += r.now().Sub(r.state.DisconnectedSince)
	}
	r.mu.Unlock()
	return Stats{
		FramesReceived:      r.framesReceived.Load(),
		BinaryFrames:        r.binaryFrames.Load(),
		Dropped:             r.dropped.Load(),
		OversizeFrames:      r.oversize.Load(),
		Connections:         r.connections.Load(),
		Reconnects:          r.reconnects.Load(),
		DialFailures:        r.dialFailures.Load(),
		DisconnectedSeconds: down.Seconds(),
	}
}

// Run connects, reads and reconnects until ctx is cancelled, then closes the websocket with a
// close frame, closes Frames and returns nil. All goroutines it starts have ended when it
// returns. Run may be called only once per Receiver.
func (r *Receiver) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("receive: Run called twice; create a new Receiver for each run")
	}
	defer close(r.frames)
	r.markRunning(true)
	defer r.markRunning(false)

	policy := retryPolicy{backoff: r.opts.Backoff, stable: r.opts.StablePeriod}
	failures := 0 // consecutive dial failures, to log the first loudly and the rest quietly
	for {
		var delay time.Duration
		conn, err := r.dial(ctx)
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return nil
		}
		if err != nil {
			failures++
			r.dialFailures.Add(1)
			msg := r.red.redact(err.Error())
			r.setLastError(msg)
			delay = policy.afterDialFailure(r.rand())
			if failures == 1 {
				r.log.Warn("receive: dial failed; retrying", zap.String("error", msg), zap.Duration("delay", delay))
			} else {
				r.log.Debug("receive: dial failed again", zap.String("error", msg), zap.Int("failures", failures), zap.Duration("delay", delay))
			}
		} else {
			id := r.markConnected()
			r.log.Info("receive: connected", zap.Uint64("conn_id", id), zap.Int("failed_dials_before", failures))
			failures = 0
			start := r.now()
			err := r.serve(ctx, conn, id)
			uptime := r.now().Sub(start)
			if ctx.Err() != nil {
				r.markDisconnected("")
				r.log.Info("receive: closed", zap.Uint64("conn_id", id))
				return nil
			}
			msg := r.red.redact(err.Error())
			r.markDisconnected(msg)
			delay = policy.afterConnection(uptime, r.rand())
			r.log.Warn("receive: connection lost; reconnecting", zap.Uint64("conn_id", id),
				zap.String("error", msg), zap.Duration("uptime", uptime), zap.Duration("delay", delay))
		}
		if err := r.sleep(ctx, delay); err != nil {
			return nil
		}
		r.reconnects.Add(1)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Receiver) dial(ctx context.Context) (*websocket.Conn, error) {
	// gorilla/websocket applies the context to the TCP connect and TLS only; the HTTP upgrade
	// after them honours nothing but HandshakeTimeout, so a server that accepts and never
	// answers would hold up shutdown for that long. Until the dial returns, cancelling ctx
	// closes the sockets it opened.
	var (
		mu        sync.Mutex
		sockets   []net.Conn
		cancelled bool
	)
	register := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if cancelled {
			c.Close()
			return false
		}
		sockets = append(sockets, c)
		return true
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		mu.Lock()
		defer mu.Unlock()
		cancelled = true
		for _, c := range sockets {
			c.Close()
		}
	})
	conn, resp, err := r.trackingDialer(register).DialContext(ctx, r.url, r.header.Clone())
	if !stop() {
		<-fired // no goroutine of ours outlives the dial
	}
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			return nil, handshakeError(resp.StatusCode)
		}
		return nil, fmt.Errorf("receive: dial: %w", err)
	}
	return conn, nil
}

// trackingDialer returns a copy of the dialer that hands every socket it opens to register and
// gives up when register refuses it.
func (r *Receiver) trackingDialer(register func(net.Conn) bool) *websocket.Dialer {
	d := *r.dialer
	track := func(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if !register(c) {
				return nil, context.Canceled
			}
			return c, nil
		}
	}
	switch {
	case d.NetDialContext != nil:
		d.NetDialContext = track(d.NetDialContext)
	case d.NetDial != nil:
		nd := d.NetDial
		d.NetDial = nil
		d.NetDialContext = track(func(_ context.Context, network, addr string) (net.Conn, error) { return nd(network, addr) })
	default:
		var nd net.Dialer
		d.NetDialContext = track(nd.DialContext)
	}
	if d.NetDialTLSContext != nil {
		d.NetDialTLSContext = track(d.NetDialTLSContext)
	}
	return &d
}

// handshakeError says what a refused upgrade most likely means for this server.
func handshakeError(status int) error {
	text := fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	switch status {
	case http.StatusOK:
		return fmt.Errorf("receive: handshake answered %s instead of switching to websocket; the server is probably in MODE=normal or native, where this endpoint polls and consumes messages: run signal-cli-rest-api with MODE=json-rpc", text)
	case http.StatusBadRequest:
		return fmt.Errorf("receive: handshake rejected with %s; check that the server runs with MODE=json-rpc and that any proxy forwards the Upgrade and Connection headers", text)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("receive: handshake rejected with %s; check SIGNAL_API_TOKEN and the auth scheme the reverse proxy expects", text)
	case http.StatusNotFound:
		return fmt.Errorf("receive: handshake rejected with %s; check SIGNAL_SERVICE_URL and SIGNAL_WS_PATH (PathTemplate)", text)
	default:
		return fmt.Errorf("receive: handshake rejected with %s", text)
	}
}

// serve runs one connection until it fails or ctx is cancelled. Its reader and pinger have
// ended when it returns, and the connection is closed.
func (r *Receiver) serve(ctx context.Context, conn *websocket.Conn, id uint64) error {
	conn.SetReadLimit(r.opts.MaxFrameBytes)
	r.refreshDeadline(conn)
	conn.SetPongHandler(func(string) error {
		r.refreshDeadline(conn)
		return nil
	})
	conn.SetPingHandler(func(data string) error {
		r.refreshDeadline(conn)
		// Same as gorilla's default handler: a failed pong is not an error of its own, the next
		// read reports the broken connection.
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(r.writeWait))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})

	readErr := make(chan error, 1)
	go func() { readErr <- r.readLoop(conn, id) }()

	pingCtx, stopPing := context.WithCancel(context.Background())
	pingErr := make(chan error, 1)
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		if err := r.pingLoop(pingCtx, conn); err != nil {
			pingErr <- err
			conn.Close() // wakes the reader, which would otherwise wait for the read deadline
		}
	}()

	var err error
	select {
	case err = <-readErr:
		if errors.Is(err, net.ErrClosed) {
			select {
			case err = <-pingErr:
			default:
			}
		}
	case <-ctx.Done():
		r.closeGracefully(conn, readErr)
	}
	stopPing()
	<-pingDone
	conn.Close()
	return err
}

// closeGracefully sends a close frame and lets the reader run until the server's close frame
// arrives (or closeGrace passes), so frames already in flight still reach the hand-off.
func (r *Receiver) closeGracefully(conn *websocket.Conn, readErr <-chan error) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(r.writeWait)); err == nil {
		t := time.NewTimer(r.closeGrace)
		defer t.Stop()
		select {
		case <-readErr:
			return
		case <-t.C:
		}
	}
	conn.Close()
	<-readErr
}

func (r *Receiver) refreshDeadline(conn *websocket.Conn) {
	// Deadlines are wall-clock, so this uses time.Now and not the test clock.
	_ = conn.SetReadDeadline(time.Now().Add(r.opts.ReadTimeout))
}

func (r *Receiver) pingLoop(ctx context.Context, conn *websocket.Conn) error {
	t := time.NewTicker(r.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(r.writeWait))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil // closing already; the reader ends the connection
			}
			if err != nil {
				return fmt.Errorf("receive: ping: %w", err)
			}
		}
	}
}

// socketReadBuffer is the websocket connection's read buffer (per socket).
const socketReadBuffer = 64 << 10

// keepReadBuffer is the largest read buffer kept between frames.
const keepReadBuffer = 64 << 10

// readLoop reads until the connection fails. It never waits on the consumer.
func (r *Receiver) readLoop(conn *websocket.Conn, id uint64) error {
	// Each frame is read into one reused buffer and copied out at its exact
	// size: one allocation per frame, where ReadMessage (io.ReadAll) grows a
	// slice from 512 bytes, about 16% of the ingester's CPU at full load.
	var buf bytes.Buffer
	var refreshed time.Time // when this loop last moved the deadline
	slack := min(r.opts.ReadTimeout/16, time.Second)
	for {
		typ, rd, err := conn.NextReader()
		if err != nil {
			return r.readError(err)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			return r.readError(err)
		}
		data := bytes.Clone(buf.Bytes()) // the frame's own bytes: consumers keep them
		if buf.Cap() > keepReadBuffer {
			buf = bytes.Buffer{} // do not hold on to the memory of one huge frame
		}
		// Moving the deadline is a runtime timer update; during a burst once
		// per frame it was 3% of the ingester's CPU. The deadline is at most
		// slack short of ReadTimeout after the last frame.
		if now := time.Now(); now.Sub(refreshed) >= slack {
			_ = conn.SetReadDeadline(now.Add(r.opts.ReadTimeout))
			refreshed = now
		}
		r.framesReceived.Add(1)
		if typ == websocket.BinaryMessage {
			r.binaryFrames.Add(1)
		}
		f := Frame{Data: data, Binary: typ == websocket.BinaryMessage, ReceivedAt: r.now(), ConnID: id, Seq: r.seq.Add(1)}
		select {
		case r.frames <- f:
		default:
			n := r.dropped.Add(1)
			if r.opts.OnDrop != nil {
				r.opts.OnDrop(f)
			}
			// Logged for the first drop and then every 1000th, so a stalled consumer cannot turn
			// the log into a second flood; the exact count is in Stats.Dropped.
			if n == 1 || n%1000 == 0 {
				r.log.Warn("receive: hand-off full, frame dropped; the consumer is not keeping up",
					zap.Uint64("dropped_total", n), zap.Int("capacity", cap(r.frames)), zap.Uint64("conn_id", id))
			}
		}
	}
}

func (r *Receiver) readError(err error) error {
	var ne net.Error
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		n := r.oversize.Add(1)
		r.log.Warn("receive: frame over MaxFrameBytes lost; reconnecting",
			zap.Int64("max_frame_bytes", r.opts.MaxFrameBytes), zap.Uint64("oversize_total", n))
		return fmt.Errorf("receive: frame larger than MaxFrameBytes (%d bytes) lost; reconnecting (raise MaxFrameBytes if this repeats): %w", r.opts.MaxFrameBytes, err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("receive: nothing received for %s (no frame, ping or pong); connection presumed dead: %w", r.opts.ReadTimeout, err)
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return fmt.Errorf("receive: connection dropped without a close frame (server restart or network failure): %w", err)
	case errors.As(err, &ce):
		return fmt.Errorf("receive: server closed the connection: %w", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("receive: connection dropped mid-frame: %w", err)
	default:
		return fmt.Errorf("receive: read: %w", err)
	}
}

func (r *Receiver) markRunning(running bool) {
	r.mu.Lock()
	now := r.now()
	if running {
		r.state.DisconnectedSince = now
	} else if !r.state.Connected {
		r.disconnectedFor += now.Sub(r.state.DisconnectedSince)
	}
	r.running = running
	r.mu.Unlock()
}

func (r *Receiver) markConnected() uint64 {
	id := r.connections.Add(1)
	r.mu.Lock()
	now := r.now()
	if r.running && !r.state.Connected {
		r.disconnectedFor += now.Sub(r.state.DisconnectedSince)
	}
	r.state.Connected = true
	r.state.ConnectedSince = now
	r.state.DisconnectedSince = time.Time{}
	r.state.ConnID = id
	r.mu.Unlock()
	r.notify()
	return id
}

// markDisconnected records the loss of the connection; errText is empty for a requested close.
func (r *Receiver) markDisconnected(errText string) {
	r.mu.Lock()
	r.state.Connected = false
	r.state.ConnectedSince = time.Time{}
	r.state.DisconnectedSince = r.now()
	if errText != "" {
		r.state.LastError = errText
	}
	r.mu.Unlock()
	r.notify()
}

func (r *Receiver) setLastError(errText string) {
	r.mu.Lock()
	r.state.LastError = errText
	r.mu.Unlock()
	r.notify()
}

func (r *Receiver) notify() {
	if r.opts.OnStateChange != nil {
		r.opts.OnStateChange(r.State())
	}
}
