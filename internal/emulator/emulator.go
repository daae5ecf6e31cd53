package emulator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Profiles select version-dependent wire details (reference §0).
const (
	// ProfileRelease emulates release 0.100: /v2/send answers 201 {"timestamp":"…"}.
	ProfileRelease = "0.100"
	// ProfileHead emulates master: /v2/send answers 201 [{"timestamp":"…"}] and group
	// entries carry "member".
	ProfileHead = "head"
)

// Modes select how messages are received (reference §1).
const (
	// ModeJSONRPC pushes events over the websocket GET /v1/receive/{number}.
	ModeJSONRPC = "json-rpc"
	// ModeNormal queues events until GET /v1/receive/{number} polls them.
	ModeNormal = "normal"
	// ModeNative behaves like ModeNormal but reports "native" in /v1/about.
	ModeNative = "native"
)

// DefaultAccount is the account the emulator serves when Config.Accounts is empty.
const DefaultAccount = "+15550000001"

// ClientIDHeader is the optional request header that names a websocket client so faults
// can target it. The real server ignores it.
const ClientIDHeader = "X-Signal-Client-Id"

// Config configures an Emulator. The zero value is usable.
type Config struct {
	// Accounts are the registered numbers (default [DefaultAccount]).
	Accounts []string
	// Profile is ProfileRelease (default) or ProfileHead.
	Profile string
	// Mode is ModeJSONRPC (default), ModeNormal or ModeNative.
	Mode string
	// Version is reported as /v1/about "version" (default "0.100").
	Version string
	// PingInterval is the websocket ping period (default 54s, like the real server).
	PingInterval time.Duration
	// Logger receives operational logs; it never gets message contents, numbers or ids.
	// Default zap.NewNop().
	Logger *zap.Logger
	// WebhookURL, when set (json-rpc mode only), receives every injected event as a
	// JSON-RPC notification, synchronously, after the websocket fan-out (reference §2.4).
	WebhookURL string
	// WebhookBlocksREST makes daemon-backed REST calls wait while a webhook call is pending,
	// like the real server (#758).
	WebhookBlocksREST bool
	// PollTimeoutUnit is the unit of the poll-mode "timeout" query parameter (default 1s).
	// Tests shrink it so an empty poll does not take a second.
	PollTimeoutUnit time.Duration
	// Seed seeds the random source used by probabilistic faults and generated ids.
	Seed uint64
	// MaxQueuedFrames bounds each socket's queue in reliable delivery; frames beyond it are
	// dropped and counted (default 1,000,000).
	MaxQueuedFrames int
	// MaxRecordedCalls bounds the call log for long runs; the oldest calls are forgotten
	// first (default 100,000).
	MaxRecordedCalls int
}

func (c Config) withDefaults() Config {
	if len(c.Accounts) == 0 {
		c.Accounts = []string{DefaultAccount}
	}
	c.Accounts = slices.Clone(c.Accounts)
	if c.Profile == "" {
		c.Profile = ProfileRelease
	}
	if c.Mode == "" {
		c.Mode = ModeJSONRPC
	}
	if c.Version == "" {
		c.Version = "0.100"
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 54 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.PollTimeoutUnit <= 0 {
		c.PollTimeoutUnit = time.Second
	}
	if c.MaxQueuedFrames <= 0 {
		c.MaxQueuedFrames = 1_000_000
	}
	if c.MaxRecordedCalls <= 0 {
		c.MaxRecordedCalls = 100_000
	}
	return c
}

func (c Config) validate() error {
	switch c.Profile {
	case ProfileRelease, ProfileHead:
	default:
		return fmt.Errorf("emulator: unknown profile %q: use %q or %q", c.Profile, ProfileRelease, ProfileHead)
	}
	switch c.Mode {
	case ModeJSONRPC, ModeNormal, ModeNative:
	default:
		return fmt.Errorf("emulator: unknown mode %q: use %q, %q or %q", c.Mode, ModeJSONRPC, ModeNormal, ModeNative)
	}
	if c.WebhookURL != "" && c.Mode != ModeJSONRPC {
		return errors.New("emulator: a webhook URL needs json-rpc mode, as in the real server: drop the webhook or use mode json-rpc")
	}
	return nil
}

// Emulator is a local stand-in for signal-cli-rest-api. Create it with New, start it with
// Start or Listen, stop it with Close. All methods are safe for concurrent use.
type Emulator struct {
	cfg    Config
	log    *zap.Logger
	faults *Faults
	hub    *hub
	calls  *callLog
	state  *state
	clock  *clock
	rt     *router

	rngMu sync.Mutex
	rng   *rand.Rand

	// reader serializes injections like the real server's single JSON-RPC reader
	// goroutine; it is a one-slot semaphore so waiters can give up on a context.
	reader chan struct{}
	// gmu is the process-wide websocket write mutex of the global-stall delivery mode.
	gmu sync.Mutex

	webhook *http.Client

	lnMu    sync.Mutex
	srv     *http.Server
	ln      *trackingListener
	addr    string
	started bool
	down    bool
	upCh    chan struct{} // closed while up; replaced on crash
	held    [][2][]byte   // account, frame pairs held during a crash
	// holdEvents keeps events injected while down for replay after the restart.
	holdEvents bool

	closing   chan struct{}
	closeOnce sync.Once
	// ctx is canceled by Close; it bounds outgoing webhook calls, which have no timeout.
	ctx     context.Context
	cancel  context.CancelFunc
	trackMu sync.Mutex
	closed  bool
	wg      sync.WaitGroup

	genMu sync.Mutex
	gen   *Generator

	stage stage

	st counters
}

type counters struct {
	eventsInjected, eventsDiscarded, eventsHeld, eventsQueued, eventsPolled atomic.Int64
	errorsInjected, unparseable                                             atomic.Int64
	framesOffered, framesAccepted, framesDelivered, framesDropped           atomic.Int64
	framesUnsent, webhookOK, webhookFailed, connections, crashes            atomic.Int64
}

// New returns an emulator for cfg; it does not listen until Start or Listen.
func New(cfg Config) *Emulator {
	cfg = cfg.withDefaults()
	e := &Emulator{
		cfg:     cfg,
		log:     cfg.Logger.Named("emulator"),
		hub:     newHub(),
		calls:   newCallLog(),
		clock:   &clock{},
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		reader:  make(chan struct{}, 1),
		webhook: &http.Client{}, // no timeout, like the real server; Close cancels pending calls
		closing: make(chan struct{}),
		upCh:    make(chan struct{}),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.calls.max = cfg.MaxRecordedCalls
	e.state = newState(cfg.Accounts, cfg.Mode)
	e.faults = newFaults(e)
	e.rt = e.newRouter()
	return e
}

// Start listens on a free loopback port and serves in the background.
func (e *Emulator) Start() error { return e.Listen("127.0.0.1:0") }

// Listen listens on addr (host:port) and serves in the background.
func (e *Emulator) Listen(addr string) error {
	if err := e.cfg.validate(); err != nil {
		return err
	}
	e.lnMu.Lock()
	defer e.lnMu.Unlock()
	if e.started {
		return errors.New("emulator: already started: create a new Emulator to listen again")
	}
	select {
	case <-e.closing:
		return errors.New("emulator: closed: create a new Emulator")
	default:
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen on %s: %w", addr, err)
	}
	e.started = true
	e.addr = l.Addr().String()
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(e.log.Named("http"))}
	e.serveLocked(l)
	close(e.upCh)
	e.log.Info("emulator listening", zap.String("addr", e.addr), zap.String("mode", e.cfg.Mode), zap.String("profile", e.cfg.Profile))
	return nil
}

func (e *Emulator) serveLocked(l net.Listener) {
	tl := newTrackingListener(l)
	e.ln = tl
	if !e.track() {
		_ = tl.Close()
		return
	}
	go func() {
		defer e.wg.Done()
		if err := e.srv.Serve(tl); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			e.log.Warn("emulator serve stopped", zap.Error(err))
		}
	}()
}

// track registers one owned goroutine; it reports false once Close has begun.
func (e *Emulator) track() bool {
	e.trackMu.Lock()
	defer e.trackMu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	return true
}

// Addr returns the listening address (host:port), empty before Start.
func (e *Emulator) Addr() string {
	e.lnMu.Lock()
	defer e.lnMu.Unlock()
	return e.addr
}

// URL returns the base URL, e.g. http://127.0.0.1:41234.
func (e *Emulator) URL() string { return "http://" + e.Addr() }

// WebsocketURL returns the receive URL for account, e.g. ws://127.0.0.1:41234/v1/receive/+1555….
func (e *Emulator) WebsocketURL(account string) string {
	return "ws://" + e.Addr() + "/v1/receive/" + account
}

// Config returns the effective configuration (defaults applied).
func (e *Emulator) Config() Config {
	c := e.cfg
	c.Accounts = slices.Clone(c.Accounts)
	return c
}

// Faults returns the fault-injection switches.
func (e *Emulator) Faults() *Faults { return e.faults }

// Close stops the generator, drops every connection, and waits for all goroutines.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		close(e.closing)
		e.cancel()
		e.StopGenerator()
		e.faults.releaseAll()
		e.lnMu.Lock()
		srv, ln := e.srv, e.ln
		e.lnMu.Unlock()
		if srv != nil {
			_ = srv.Close()
		}
		if ln != nil {
			ln.closeAll()
		}
		e.hub.closeAll()
		e.trackMu.Lock()
		e.closed = true
		e.trackMu.Unlock()
		e.wg.Wait()
		e.log.Info("emulator closed")
	})
	return nil
}

// Up reports whether the emulator is serving (started, not closed, not in a simulated
// crash).
func (e *Emulator) Up() bool {
	select {
	case <-e.closing:
		return false
	default:
	}
	e.lnMu.Lock()
	defer e.lnMu.Unlock()
	return e.started && !e.down
}

// WaitUp blocks until the emulator serves (after Start or after a simulated crash ends).
func (e *Emulator) WaitUp(ctx context.Context) error {
	e.lnMu.Lock()
	ch := e.upCh
	e.lnMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("emulator: wait up: %w", ctx.Err())
	case <-e.closing:
		return errors.New("emulator: closed while waiting to be up")
	}
}

func (e *Emulator) float64() float64 {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	return e.rng.Float64()
}

func (e *Emulator) randBytes(n int) []byte {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(e.rng.UintN(256))
	}
	return b
}

// AccountUUID returns the ACI the emulator uses for one of its accounts (derived from the
// number, stable across runs), e.g. as the targetAuthorUuid of reactions to the bot.
func AccountUUID(account string) string {
	h := sha256.Sum256([]byte("signal-emulator-account:" + account))
	return formatUUID(h[:16])
}

func formatUUID(b []byte) string {
	b = slices.Clone(b[:16])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[v>>4], hex[v&0x0f])
	}
	return string(out)
}

// clock hands out unique, strictly increasing millisecond timestamps close to wall time,
// like the message ids signal-cli assigns.
type clock struct {
	mu   sync.Mutex
	last int64
}

func (c *clock) next() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now().UnixMilli()
	if now <= c.last {
		now = c.last + 1
	}
	c.last = now
	return now
}

// NextTimestamp returns a fresh unique timestamp from the clock that also numbers the
// messages the emulator sends, for building fixtures by hand.
func (e *Emulator) NextTimestamp() int64 { return e.clock.next() }
