package rest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangingServer accepts requests and never answers until the client gives up (or the test ends).
func hangingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv, &hits
}

// everyCall invokes one method per endpoint with valid arguments.
var everyCall = []struct {
	endpoint string
	method   string
	call     func(context.Context, *Client) error
}{
	{EndpointSend, "POST", func(ctx context.Context, c *Client) error {
		_, err := c.Send(ctx, SendRequest{Recipients: []string{"+15550000002"}, Message: "hi"})
		return err
	}},
	{EndpointReactions, "POST", func(ctx context.Context, c *Client) error {
		return c.React(ctx, Reaction{Recipient: "+15550000002", Reaction: "x", TargetAuthor: "+15550000002", Timestamp: 1})
	}},
	{EndpointReactions, "DELETE", func(ctx context.Context, c *Client) error {
		return c.RemoveReaction(ctx, Reaction{Recipient: "+15550000002", TargetAuthor: "+15550000002", Timestamp: 1})
	}},
	{EndpointReceipts, "POST", func(ctx context.Context, c *Client) error {
		return c.SendReceipt(ctx, Receipt{Recipient: "+15550000002", ReceiptType: ReceiptRead, Timestamp: 1})
	}},
	{EndpointRemoteDelete, "DELETE", func(ctx context.Context, c *Client) error {
		_, err := c.RemoteDelete(ctx, "+15550000002", 1)
		return err
	}},
	{EndpointRateLimitChallenge, "POST", func(ctx context.Context, c *Client) error {
		return c.RateLimitChallenge(ctx, "t", "signalcaptcha://c")
	}},
	{EndpointTyping, "PUT", func(ctx context.Context, c *Client) error { return c.TypingStart(ctx, "+15550000002") }},
	{EndpointTyping, "DELETE", func(ctx context.Context, c *Client) error { return c.TypingStop(ctx, "+15550000002") }},
	{EndpointGroups, "GET", func(ctx context.Context, c *Client) error { _, err := c.ListGroups(ctx, false); return err }},
	{EndpointGroup, "GET", func(ctx context.Context, c *Client) error { _, err := c.GetGroup(ctx, restGroupID); return err }},
	{EndpointAttachment, "GET", func(ctx context.Context, c *Client) error { _, err := c.GetAttachment(ctx, "a.png", 0); return err }},
	{EndpointAttachment, "DELETE", func(ctx context.Context, c *Client) error { return c.DeleteAttachment(ctx, "a.png") }},
	{EndpointAttachments, "GET", func(ctx context.Context, c *Client) error { _, err := c.ListAttachments(ctx); return err }},
	{EndpointAbout, "GET", func(ctx context.Context, c *Client) error { _, err := c.About(ctx); return err }},
	{EndpointHealth, "GET", func(ctx context.Context, c *Client) error { return c.Health(ctx) }},
	{EndpointAccounts, "GET", func(ctx context.Context, c *Client) error { _, err := c.Accounts(ctx); return err }},
}

// A timeout after the request went out is an unknown outcome exactly for the non-idempotent
// endpoints; for the others it is a plain timeout.
func TestTimeouts(t *testing.T) {
	srv, hits := hangingServer(t)
	for _, ec := range everyCall {
		t.Run(ec.method+" "+ec.endpoint, func(t *testing.T) {
			var obs observed
			c := newTestClient(t, srv.URL, func(o *Options) {
				o.Timeout, o.AttachmentTimeout, o.Observer = 50*time.Millisecond, 50*time.Millisecond, obs.observe
			})
			before := hits.Load()
			err := ec.call(context.Background(), c)
			if err == nil {
				t.Fatal("err = nil")
			}
			if hits.Load() != before+1 {
				t.Errorf("server hits = %d, want exactly one attempt", hits.Load()-before)
			}
			unknown := !IsIdempotent(ec.endpoint)
			if errors.Is(err, ErrUnknownOutcome) != unknown {
				t.Errorf("errors.Is(ErrUnknownOutcome) = %v, want %v; err: %v", !unknown, unknown, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err does not wrap context.DeadlineExceeded: %v", err)
			}
			prefix := "rest: " + ec.method + " " + ec.endpoint + ": "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("err %q lacks prefix %q", err, prefix)
			}
			if strings.Contains(err.Error(), "15550000001") {
				t.Errorf("err contains the phone number: %v", err)
			}
			wantOutcome := OutcomeTimeout
			if unknown {
				wantOutcome = OutcomeUnknownOutcome
			}
			calls := obs.get()
			if len(calls) != 1 || calls[0].Outcome != wantOutcome || calls[0].Status != 0 ||
				calls[0].Endpoint != ec.endpoint || calls[0].Method != ec.method {
				t.Errorf("observed %+v, want one %s %s call with outcome %q and status 0", calls, ec.method, ec.endpoint, wantOutcome)
			}
		})
	}
}

func TestUnknownOutcomeText(t *testing.T) {
	srv, _ := hangingServer(t)
	c := newTestClient(t, srv.URL, func(o *Options) { o.Timeout = 20 * time.Millisecond })
	_, err := c.Send(context.Background(), SendRequest{Recipients: []string{"+15550000002"}, Message: "hi"})
	const prefix = "rest: POST /v2/send: outcome unknown: the request may have reached signal-cli-rest-api and taken effect, so it was not retried; check whether it did before repeating it: no complete response after "
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("err = %v, want prefix %q", err, prefix)
	}
}

// Attachments get the long timeout: with a short Timeout and a long AttachmentTimeout a slow
// attachment send succeeds while a slow text send times out.
func TestAttachmentTimeoutApplies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(201)
		_, _ = io.WriteString(w, `{"timestamp":"1"}`)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.Timeout, o.AttachmentTimeout = 20*time.Millisecond, time.Minute
	})
	ctx := context.Background()
	if _, err := c.Send(ctx, SendRequest{Recipients: []string{"+15550000002"}, Base64Attachments: []string{AttachmentData("text/plain", "", []byte("x"))}}); err != nil {
		t.Errorf("attachment send: %v", err)
	}
	if _, err := c.Send(ctx, SendRequest{Recipients: []string{"+15550000002"}, Message: "x"}); !errors.Is(err, ErrUnknownOutcome) {
		t.Errorf("text send err = %v, want ErrUnknownOutcome", err)
	}
}

// The caller's cancellation during a send is an unknown outcome too; during a read it is a
// plain cancellation.
func TestCallerCancelDuringCall(t *testing.T) {
	srv, hits := hangingServer(t)
	tests := []struct {
		name    string
		call    func(context.Context, *Client) error
		unknown bool
		outcome Outcome
	}{
		{"send", everyCall[0].call, true, OutcomeUnknownOutcome},
		{"about", func(ctx context.Context, c *Client) error { _, err := c.About(ctx); return err }, false, OutcomeCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs observed
			c := newTestClient(t, srv.URL, func(o *Options) { o.Observer = obs.observe })
			ctx, cancel := context.WithCancel(context.Background())
			before := hits.Load()
			errc := make(chan error, 1)
			go func() { errc <- tt.call(ctx, c) }()
			waitFor(t, "the request to reach the server", func() bool { return hits.Load() > before })
			cancel()
			err := <-errc
			if errors.Is(err, ErrUnknownOutcome) != tt.unknown || !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v; want unknown=%v and wrapping context.Canceled", err, tt.unknown)
			}
			if calls := obs.get(); len(calls) != 1 || calls[0].Outcome != tt.outcome {
				t.Errorf("observed %+v, want outcome %q", calls, tt.outcome)
			}
		})
	}
}

// A refused connection never reached the server, so even a send is not an unknown outcome.
func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	for _, ec := range []int{0, 13} { // send, about
		var obs observed
		c := newTestClient(t, "http://"+addr, func(o *Options) { o.Observer = obs.observe })
		err := everyCall[ec].call(context.Background(), c)
		if err == nil || errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("%s: err = %v, want a transport error that is not ErrUnknownOutcome", everyCall[ec].endpoint, err)
		}
		want := "rest: " + everyCall[ec].method + " " + everyCall[ec].endpoint + ": cannot reach signal-cli-rest-api, check BaseURL and that the server is up: dial tcp "
		if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "15550000001") {
			t.Errorf("err = %q, want prefix %q and no phone number", err, want)
		}
		if calls := obs.get(); len(calls) != 1 || calls[0].Outcome != OutcomeTransportError {
			t.Errorf("observed %+v, want outcome %q", calls, OutcomeTransportError)
		}
	}
}

// A connection dropped after the request was read: unknown for a send, transport error for a
// read.
func TestConnectionDroppedAfterRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		idx     int
		outcome Outcome
	}{
		{0, OutcomeUnknownOutcome},  // send
		{4, OutcomeUnknownOutcome},  // remote delete
		{13, OutcomeTransportError}, // about
	}
	for _, tt := range tests {
		ec := everyCall[tt.idx]
		var obs observed
		c := newTestClient(t, srv.URL, func(o *Options) { o.Observer = obs.observe })
		err := ec.call(context.Background(), c)
		if err == nil || errors.Is(err, ErrUnknownOutcome) != (tt.outcome == OutcomeUnknownOutcome) {
			t.Errorf("%s %s: err = %v, want outcome %q", ec.method, ec.endpoint, err, tt.outcome)
		}
		if calls := obs.get(); len(calls) != 1 || calls[0].Outcome != tt.outcome {
			t.Errorf("%s %s: observed %+v, want outcome %q", ec.method, ec.endpoint, calls, tt.outcome)
		}
	}
}

// An unusable 2xx answer: a send did happen, so it must not be retried (unknown outcome); a read
// is a bad response.
func TestUnusableSuccessBody(t *testing.T) {
	tests := []struct {
		name    string
		reply   reply
		idx     int
		unknown bool
		outcome Outcome
		want    string
	}{
		{"send empty array", reply{201, "application/json", "[]"}, 0, true, OutcomeUnknownOutcome,
			"rest: POST /v2/send: outcome unknown: the request may have reached signal-cli-rest-api and taken effect, so it was not retried; check whether it did before repeating it: the server answered 201 but the response is unusable: empty response array, expected one element with a timestamp"},
		{"remote delete no timestamp", reply{201, "application/json", "{}"}, 4, true, OutcomeUnknownOutcome,
			"rest: DELETE /v1/remote-delete/{number}: outcome unknown: the request may have reached signal-cli-rest-api and taken effect, so it was not retried; check whether it did before repeating it: the server answered 201 but the response is unusable: response has no timestamp"},
		{"about not json", reply{200, "text/plain", "hello"}, 13, false, OutcomeBadResponse,
			"rest: GET /v1/about: unusable 200 response: decode response body: invalid character 'h' looking for beginning of value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.reply)
			var obs observed
			c := newTestClient(t, rec.srv.URL, func(o *Options) { o.Observer = obs.observe })
			err := everyCall[tt.idx].call(context.Background(), c)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
			if errors.Is(err, ErrUnknownOutcome) != tt.unknown {
				t.Errorf("errors.Is(ErrUnknownOutcome) = %v, want %v", !tt.unknown, tt.unknown)
			}
			if calls := obs.get(); len(calls) != 1 || calls[0].Outcome != tt.outcome || calls[0].Status != tt.reply.status {
				t.Errorf("observed %+v, want outcome %q", calls, tt.outcome)
			}
		})
	}
}

func TestMaxInFlight(t *testing.T) {
	tests := []struct {
		name     string
		cap      int
		callers  int
		wantCap  int
		parallel func(context.Context, *Client) error
	}{
		{"cap 3 with sends", 3, 10, 3, everyCall[0].call},
		{"default cap with reads", 0, 9, DefaultMaxInFlight, everyCall[13].call},
		{"cap 1", 1, 4, 1, everyCall[14].call},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cur, maxSeen, arrived atomic.Int64
			gate := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := cur.Add(1)
				defer cur.Add(-1)
				for {
					m := maxSeen.Load()
					if n <= m || maxSeen.CompareAndSwap(m, n) {
						break
					}
				}
				arrived.Add(1)
				<-gate
				switch r.URL.Path {
				case "/v2/send":
					w.WriteHeader(201)
					_, _ = io.WriteString(w, `{"timestamp":"1"}`)
				case "/v1/about":
					_, _ = io.WriteString(w, `{"mode":"json-rpc"}`)
				default:
					w.WriteHeader(204)
				}
			}))
			t.Cleanup(srv.Close)
			var openGate sync.Once
			release := func() { openGate.Do(func() { close(gate) }) }
			t.Cleanup(release) // runs before srv.Close, so a failed test does not hang
			c := newTestClient(t, srv.URL, func(o *Options) { o.MaxInFlight = tt.cap })

			var wg sync.WaitGroup
			errs := make(chan error, tt.callers)
			for range tt.callers {
				wg.Go(func() { errs <- tt.parallel(context.Background(), c) })
			}
			waiting := tt.callers - tt.wantCap
			waitFor(t, "the cap to fill and the rest to wait", func() bool {
				s := c.Stats()
				return arrived.Load() == int64(tt.wantCap) && s.InFlight == tt.wantCap && s.Waiting == waiting
			})
			if s := c.Stats(); s.SlotWaits != uint64(waiting) {
				t.Errorf("SlotWaits = %d, want %d", s.SlotWaits, waiting)
			}
			release()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("call: %v", err)
				}
			}
			if got := maxSeen.Load(); got != int64(tt.wantCap) {
				t.Errorf("max concurrent requests at the server = %d, want %d", got, tt.wantCap)
			}
			if got := arrived.Load(); got != int64(tt.callers) {
				t.Errorf("requests = %d, want %d", got, tt.callers)
			}
			if s := c.Stats(); s.InFlight != 0 || s.Waiting != 0 {
				t.Errorf("stats after the calls = %+v, want nothing in flight or waiting", s)
			}
		})
	}
}

// A call waiting for a slot gives up with its context and sends nothing, so even a send is not
// an unknown outcome.
func TestCancelWhileWaitingForSlot(t *testing.T) {
	tests := []struct {
		name    string
		cancel  func(context.CancelFunc)
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"canceled", func(c context.CancelFunc) { c() },
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
		{"deadline", func(context.CancelFunc) {},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 30*time.Millisecond)
			}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := hangingServer(t)
			var obs observed
			c := newTestClient(t, srv.URL, func(o *Options) { o.MaxInFlight = 1; o.Observer = obs.observe })

			holdCtx, release := context.WithCancel(context.Background())
			held := make(chan error, 1)
			go func() { held <- c.Health(holdCtx) }()
			waitFor(t, "the slot to be taken", func() bool { return hits.Load() == 1 })

			ctx, cancel := tt.ctx()
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := c.Send(ctx, SendRequest{Recipients: []string{"+15550000002"}, Message: "hi"})
				errc <- err
			}()
			// SlotWaits, unlike Waiting, stays set if the deadline already fired.
			waitFor(t, "the send to wait", func() bool { return c.Stats().SlotWaits == 1 })
			tt.cancel(cancel)
			err := <-errc
			want := "rest: POST /v2/send: gave up waiting for a free request slot (1 in flight, raise MaxInFlight if this is common); nothing was sent: " + tt.wantErr.Error()
			if err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant %s", err, want)
			}
			if !errors.Is(err, tt.wantErr) || errors.Is(err, ErrUnknownOutcome) {
				t.Errorf("err = %v: want it to wrap %v and not ErrUnknownOutcome", err, tt.wantErr)
			}
			if hits.Load() != 1 {
				t.Errorf("server hits = %d, want 1 (the waiting send must not be sent)", hits.Load())
			}
			if s := c.Stats(); s.Waiting != 0 || s.InFlight != 1 || s.SlotWaits != 1 {
				t.Errorf("stats = %+v, want 0 waiting, 1 in flight, 1 slot wait", s)
			}
			release()
			<-held
			calls := obs.get()
			if len(calls) != 2 || calls[0].Endpoint != EndpointSend || calls[0].Outcome != OutcomeCanceled || calls[0].Status != 0 {
				t.Errorf("observed %+v, want first a canceled send", calls)
			}
		})
	}
}

// countingTransport counts the response bytes the client actually read.
type countingTransport struct {
	read atomic.Int64
}

func (ct *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &ct.read}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func TestAttachmentSizeCap(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name     string
		size     int
		chunked  bool // no Content-Length, so the cap must hold while reading
		tooLarge bool
	}{
		{"exactly the limit", limit, false, false},
		{"exactly the limit chunked", limit, true, false},
		{"one byte over", limit + 1, false, true},
		{"one byte over chunked", limit + 1, true, true},
		{"far over chunked", 4 << 20, true, true},
		{"far over with length", 4 << 20, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("a"), tt.size)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				if tt.chunked {
					// Write in pieces and flush so no Content-Length is computed.
					for off := 0; off < len(payload); off += 512 {
						end := min(off+512, len(payload))
						if _, err := w.Write(payload[off:end]); err != nil {
							return
						}
						w.(http.Flusher).Flush()
					}
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
				_, _ = w.Write(payload)
			}))
			t.Cleanup(srv.Close)
			ct := &countingTransport{}
			var obs observed
			c := newTestClient(t, srv.URL, func(o *Options) {
				o.HTTPClient = &http.Client{Transport: ct}
				o.Observer = obs.observe
			})
			att, err := c.GetAttachment(context.Background(), "a.bin", limit)
			if tt.tooLarge {
				want := "rest: GET /v1/attachments/{id}: unusable 200 response: attachment exceeds the size limit of 1000 bytes; raise the limit or skip this attachment"
				if err == nil || err.Error() != want || !errors.Is(err, ErrAttachmentTooLarge) {
					t.Fatalf("err = %v, want %q", err, want)
				}
				if calls := obs.get(); len(calls) != 1 || calls[0].Outcome != OutcomeBadResponse {
					t.Errorf("observed %+v, want outcome %q", calls, OutcomeBadResponse)
				}
			} else {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !bytes.Equal(att.Data, payload) || att.ContentType != "application/octet-stream" {
					t.Errorf("got %d bytes of %q, want %d bytes", len(att.Data), att.ContentType, len(payload))
				}
			}
			if got := ct.read.Load(); got > limit+1 {
				t.Errorf("client read %d body bytes, want at most %d", got, limit+1)
			}
		})
	}
}

// Observer endpoints are templates: no call ever reports a phone number or id.
func TestObserverEndpointsAreTemplates(t *testing.T) {
	rec := newRecorder(t, reply{204, "", ""})
	var obs observed
	c := newTestClient(t, rec.srv.URL, func(o *Options) { o.Observer = obs.observe })
	for _, ec := range everyCall {
		_ = ec.call(context.Background(), c) // 204 bodies fail to decode for some; only the labels matter here
	}
	calls := obs.get()
	if len(calls) != len(everyCall) {
		t.Fatalf("observer calls = %d, want %d", len(calls), len(everyCall))
	}
	for i, call := range calls {
		if call.Endpoint != everyCall[i].endpoint || call.Method != everyCall[i].method {
			t.Errorf("call %d: observed %s %s, want %s %s", i, call.Method, call.Endpoint, everyCall[i].method, everyCall[i].endpoint)
		}
		if strings.ContainsAny(call.Endpoint, "+.") || strings.Contains(call.Endpoint, "5550000") {
			t.Errorf("call %d: endpoint %q contains a number or id", i, call.Endpoint)
		}
		if call.Status != 204 {
			t.Errorf("call %d: status %d, want 204", i, call.Status)
		}
	}
}
