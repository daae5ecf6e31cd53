package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults applied by New when the matching Options field is zero.
const (
	// DefaultTimeout bounds a call without attachments (reference §7 item 6).
	DefaultTimeout = 30 * time.Second
	// DefaultAttachmentTimeout bounds sends carrying attachments and attachment downloads,
	// which can take long for large files (reference §7 item 11).
	DefaultAttachmentTimeout = 120 * time.Second
	// DefaultMaxInFlight is the default cap on concurrent calls. json-rpc mode has crashed
	// with six parallel sends (#555/#885), so the default stays below that.
	DefaultMaxInFlight = 4
	// DefaultAuthScheme prefixes Options.Token in the Authorization header.
	DefaultAuthScheme = "Bearer"
	// DefaultUserAgent is sent when Options.UserAgent is empty.
	DefaultUserAgent = "signal-client-go"
	// DefaultMaxAttachmentBytes is the download cap GetAttachment uses when given maxBytes <= 0.
	// Signal itself rejects attachments around 100 MB (reference §7 item 11).
	DefaultMaxAttachmentBytes int64 = 100 << 20
)

// maxErrorBody caps how much of an error response is read; error bodies are small JSON objects,
// anything bigger is not worth holding in memory.
const maxErrorBody = 64 << 10

// maxMessageLen caps a non-JSON error body quoted in APIError.Message.
const maxMessageLen = 512

// e164 accepts the bot account number. It is checked up front because a malformed number only
// fails later, on every call, with a less helpful upstream message.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// Options configures a Client. Only BaseURL and Number are required.
type Options struct {
	// BaseURL is the signal-cli-rest-api root, e.g. "http://signal-api:8080". A path prefix
	// (for a reverse proxy) is kept; query and fragment are refused. Only http and https work.
	BaseURL string
	// Number is the bot account in E.164 form ("+15551234567"); it is put into the paths.
	Number string
	// Token, when set, is sent on every call as "Authorization: <AuthScheme> <Token>". The
	// upstream server has no auth; this is for a reverse proxy in front of it (reference §5).
	Token string
	// AuthScheme overrides the scheme prefix. nil means DefaultAuthScheme ("Bearer"); a pointer
	// to "" sends the bare token. A pointer distinguishes "unset" from "empty", which the
	// API_AUTH_SCHEME setting of the Python original also distinguishes.
	AuthScheme *string
	// HTTPClient replaces the default client. Its Timeout should be zero or above
	// AttachmentTimeout, since the per-call deadlines are applied through the context. With the
	// default client redirects are not followed: a redirect means a wrong BaseURL.
	HTTPClient *http.Client
	// Timeout is the per-call deadline; zero means DefaultTimeout.
	Timeout time.Duration
	// AttachmentTimeout is the deadline for sends carrying attachments and for attachment
	// downloads; zero means DefaultAttachmentTimeout.
	AttachmentTimeout time.Duration
	// MaxInFlight caps concurrent calls from this client; further calls wait for a slot as long
	// as their context allows. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// UserAgent is sent as User-Agent; empty means DefaultUserAgent.
	UserAgent string
	// Observer, when set, is called synchronously after every call that was attempted (argument
	// errors found before any request are not reported). It must be fast and safe for concurrent
	// use.
	Observer func(Call)
}

// Outcome classifies how a call ended, for metrics. Values are fixed label-safe strings.
type Outcome string

// The possible outcomes of a call.
const (
	// OutcomeOK: the server answered 2xx and the response was used.
	OutcomeOK Outcome = "ok"
	// OutcomeAPIError: the server answered with a non-2xx status other than a rate limit.
	OutcomeAPIError Outcome = "api_error"
	// OutcomeRateLimited: the server reported a rate limit (*RateLimitError).
	OutcomeRateLimited Outcome = "rate_limited"
	// OutcomeTimeout: a call that is safe to repeat (or that never reached the server) ran
	// out of time.
	OutcomeTimeout Outcome = "timeout"
	// OutcomeUnknownOutcome: a non-idempotent call failed after the request may have reached
	// the server (ErrUnknownOutcome).
	OutcomeUnknownOutcome Outcome = "unknown_outcome"
	// OutcomeTransportError: the connection failed (refused, reset, DNS, ...) for a call that
	// is safe to repeat or that never reached the server.
	OutcomeTransportError Outcome = "transport_error"
	// OutcomeCanceled: the caller's context ended before an answer, either while waiting for an
	// in-flight slot (nothing was sent) or during an idempotent call.
	OutcomeCanceled Outcome = "canceled"
	// OutcomeBadResponse: an idempotent call got a 2xx answer it could not use (undecodable
	// body, attachment over the size cap).
	OutcomeBadResponse Outcome = "bad_response"
)

// Call describes one finished call, for Options.Observer. It never holds numbers or ids.
type Call struct {
	// Endpoint is the path template, e.g. "/v1/reactions/{number}" (one of the Endpoint*
	// constants).
	Endpoint string
	// Method is the HTTP method.
	Method string
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Outcome classifies the result.
	Outcome Outcome
	// Duration is the time from sending the request to the end of reading the response; it
	// does not include Wait.
	Duration time.Duration
	// Wait is the time spent waiting for an in-flight slot.
	Wait time.Duration
}

// Stats is a snapshot of the client's concurrency state.
type Stats struct {
	// InFlight is the number of calls holding a slot now.
	InFlight int
	// Waiting is the number of calls waiting for a slot now.
	Waiting int
	// SlotWaits counts, since New, the calls that found every slot taken and had to wait.
	SlotWaits uint64
}

// Client calls signal-cli-rest-api for one bot account. It is safe for concurrent use.
type Client struct {
	base        string // scheme://host[/prefix], no trailing slash
	number      string // path-escaped bot number
	rawNumber   string
	auth        string // full Authorization header value, "" for none
	userAgent   string
	hc          *http.Client
	traceable   bool // hc's transport reports connection use through httptrace
	timeout     time.Duration
	attTimeout  time.Duration
	maxInFlight int
	observer    func(Call)

	slots     chan struct{}
	inFlight  atomic.Int64
	waiting   atomic.Int64
	slotWaits atomic.Uint64
	ownsHTTP  bool
}

// New checks opts and returns a Client. It does not contact the server; call Health or About
// for that.
func New(opts Options) (*Client, error) {
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if !e164.MatchString(opts.Number) {
		return nil, errors.New(`rest: invalid Number: it must be the bot account in E.164 form with a leading "+", like +15551234567`)
	}
	if opts.Timeout < 0 || opts.AttachmentTimeout < 0 {
		return nil, errors.New("rest: Timeout and AttachmentTimeout must not be negative; use 0 for the defaults")
	}
	if opts.MaxInFlight < 0 {
		return nil, errors.New("rest: MaxInFlight must not be negative; use 0 for the default of 4")
	}
	scheme := DefaultAuthScheme
	if opts.AuthScheme != nil {
		scheme = strings.TrimSpace(*opts.AuthScheme)
	}
	if hasControl(opts.Token) || hasControl(scheme) || hasControl(opts.UserAgent) {
		return nil, errors.New("rest: Token, AuthScheme and UserAgent must not contain control characters such as newlines; check how the token is loaded")
	}
	c := &Client{
		base:        base,
		number:      url.PathEscape(opts.Number),
		rawNumber:   opts.Number,
		userAgent:   opts.UserAgent,
		hc:          opts.HTTPClient,
		timeout:     opts.Timeout,
		attTimeout:  opts.AttachmentTimeout,
		maxInFlight: opts.MaxInFlight,
		observer:    opts.Observer,
	}
	if opts.Token != "" {
		if scheme == "" {
			c.auth = opts.Token
		} else {
			c.auth = scheme + " " + opts.Token
		}
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.attTimeout == 0 {
		c.attTimeout = DefaultAttachmentTimeout
	}
	if c.maxInFlight == 0 {
		c.maxInFlight = DefaultMaxInFlight
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = c.maxInFlight
		c.hc = &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
		c.ownsHTTP = true
	}
	switch c.hc.Transport.(type) {
	case nil, *http.Transport:
		c.traceable = true
	}
	c.slots = make(chan struct{}, c.maxInFlight)
	return c, nil
}

func parseBaseURL(raw string) (string, error) {
	if strings.TrimSpace(raw) == "" {
		return "", errors.New("rest: BaseURL is empty; set it to the signal-cli-rest-api address, like http://signal-api:8080")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("rest: BaseURL is not a valid URL; use a form like http://signal-api:8080: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("rest: BaseURL scheme %q is not supported; use http:// or https:// (the websocket URL is configured separately)", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("rest: BaseURL has no host; use a form like http://signal-api:8080")
	}
	if u.User != nil {
		return "", errors.New("rest: BaseURL must not carry user info; use Options.Token for a reverse proxy's credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", errors.New("rest: BaseURL must not have a query or fragment; give only scheme, host and an optional path prefix")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u.String(), nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// Stats returns the current concurrency counters.
func (c *Client) Stats() Stats {
	return Stats{
		InFlight:  int(c.inFlight.Load()),
		Waiting:   int(c.waiting.Load()),
		SlotWaits: c.slotWaits.Load(),
	}
}

// Close releases idle connections of the default HTTP client. A client given through
// Options.HTTPClient is left alone, since the caller owns it. Calls after Close still work;
// they open new connections.
func (c *Client) Close() error {
	if c.ownsHTTP {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// request is one call to make.
type request struct {
	method   string
	endpoint string     // template, for errors and the observer
	path     string     // escaped concrete path
	query    url.Values // may be nil
	body     any        // JSON-encoded when non-nil
	long     bool       // use the attachment timeout
	raw      bool       // the 2xx body is not JSON (attachment bytes)
	// handle consumes a 2xx response. Its errors count as unusable responses.
	handle func(*http.Response) error
}

// do runs r: wait for a slot, send, classify. It reports to the observer exactly once for every
// request that got past argument checks.
func (c *Client) do(ctx context.Context, r request) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("rest: %s %s: encode request: %w", r.method, r.endpoint, err)
		}
	}

	waitStart := time.Now()
	if err := c.acquire(ctx); err != nil {
		c.observe(Call{Endpoint: r.endpoint, Method: r.method, Outcome: OutcomeCanceled, Wait: time.Since(waitStart)})
		return fmt.Errorf("rest: %s %s: gave up waiting for a free request slot (%d in flight, raise MaxInFlight if this is common); nothing was sent: %w",
			r.method, r.endpoint, c.maxInFlight, err)
	}
	defer c.release()
	wait := time.Since(waitStart)

	timeout := c.timeout
	if r.long {
		timeout = c.attTimeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var gotConn atomic.Bool
	callCtx = httptrace.WithClientTrace(callCtx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})

	target := c.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(callCtx, r.method, target, rd)
	if err != nil {
		// Only a malformed URL gets here; New validated the base, so this is a programming error.
		return fmt.Errorf("rest: %s %s: build request: %w", r.method, r.endpoint, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.raw {
		req.Header.Set("Accept", "*/*")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", c.userAgent)
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}

	start := time.Now()
	call := Call{Endpoint: r.endpoint, Method: r.method, Wait: wait}
	finish := func(out Outcome, err error) error {
		call.Outcome = out
		call.Duration = time.Since(start)
		c.observe(call)
		return err
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		// Without a connection nothing reached the server. Only trust that when the transport
		// reports connection use, or when the error itself is a dial failure.
		mayHaveSent := !isDialError(err) && (!c.traceable || gotConn.Load())
		out, e := c.failure(r, callCtx, err, mayHaveSent, start)
		return finish(out, e)
	}
	call.Status = resp.StatusCode
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := c.statusError(r, resp)
		if errors.Is(e, ErrRateLimited) {
			return finish(OutcomeRateLimited, e)
		}
		return finish(OutcomeAPIError, e)
	}

	if r.handle != nil {
		if err := r.handle(resp); err != nil {
			if callCtx.Err() != nil {
				out, e := c.failure(r, callCtx, err, true, start)
				return finish(out, e)
			}
			if !IsIdempotent(r.endpoint) {
				return finish(OutcomeUnknownOutcome, fmt.Errorf("rest: %s %s: %w: the server answered %d but the response is unusable: %w",
					r.method, r.endpoint, ErrUnknownOutcome, resp.StatusCode, err))
			}
			return finish(OutcomeBadResponse, fmt.Errorf("rest: %s %s: unusable %d response: %w", r.method, r.endpoint, resp.StatusCode, err))
		}
	}
	// Drain a little so the connection can be reused; a bigger leftover is cheaper to drop.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return finish(OutcomeOK, nil)
}

// failure classifies an error that left the call without a usable answer.
func (c *Client) failure(r request, callCtx context.Context, err error, mayHaveSent bool, start time.Time) (Outcome, error) {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error quotes the full URL, which contains the phone number.
		cause = ue.Err
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	timedOut := errors.Is(callCtx.Err(), context.DeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded) || isNetTimeout(cause)
	canceled := !timedOut && (errors.Is(callCtx.Err(), context.Canceled) || errors.Is(cause, context.Canceled))
	if timedOut {
		cause = fmt.Errorf("no complete response after %s: %w", elapsed, cause)
		if !errors.Is(cause, context.DeadlineExceeded) {
			cause = fmt.Errorf("%w (%w)", cause, context.DeadlineExceeded)
		}
	}

	if mayHaveSent && !IsIdempotent(r.endpoint) {
		return OutcomeUnknownOutcome, fmt.Errorf("rest: %s %s: %w: %w", r.method, r.endpoint, ErrUnknownOutcome, cause)
	}
	switch {
	case timedOut:
		return OutcomeTimeout, fmt.Errorf("rest: %s %s: signal-cli-rest-api did not answer in time, it may be overloaded or hung: %w", r.method, r.endpoint, cause)
	case canceled:
		return OutcomeCanceled, fmt.Errorf("rest: %s %s: canceled: %w", r.method, r.endpoint, cause)
	default:
		return OutcomeTransportError, fmt.Errorf("rest: %s %s: cannot reach signal-cli-rest-api, check BaseURL and that the server is up: %w", r.method, r.endpoint, cause)
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Client) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.slots <- struct{}{}:
		c.inFlight.Add(1)
		return nil
	default:
	}
	c.slotWaits.Add(1)
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case c.slots <- struct{}{}:
		c.inFlight.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) release() {
	c.inFlight.Add(-1)
	<-c.slots
}

func (c *Client) observe(call Call) {
	if c.observer != nil {
		c.observer(call)
	}
}

// decodeJSON returns a handler that decodes a 2xx JSON body into v.
func decodeJSON(v any) func(*http.Response) error {
	return func(resp *http.Response) error {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return fmt.Errorf("decode response body: %w", err)
		}
		return nil
	}
}
