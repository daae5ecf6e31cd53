package rest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const testNumber = "+15550000001"

// recorded is what the fake server saw of one request.
type recorded struct {
	Method      string
	URI         string // RequestURI: the path exactly as sent, with the query
	ContentType string
	Accept      string
	Auth        string
	UserAgent   string
	Body        string
}

// reply is a canned response.
type reply struct {
	status int
	ctype  string
	body   string
}

// recorder is a fake signal-cli-rest-api that records requests and answers with one reply.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	srv  *httptest.Server
}

func newRecorder(t *testing.T, rp reply) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{
			Method:      r.Method,
			URI:         r.RequestURI,
			ContentType: r.Header.Get("Content-Type"),
			Accept:      r.Header.Get("Accept"),
			Auth:        r.Header.Get("Authorization"),
			UserAgent:   r.Header.Get("User-Agent"),
			Body:        string(b),
		})
		rec.mu.Unlock()
		if rp.ctype != "" {
			w.Header().Set("Content-Type", rp.ctype)
		}
		w.WriteHeader(rp.status)
		_, _ = io.WriteString(w, rp.body)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// observed collects Observer calls.
type observed struct {
	mu    sync.Mutex
	calls []Call
}

func (o *observed) observe(c Call) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, c)
}

func (o *observed) get() []Call {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Call(nil), o.calls...)
}

// newTestClient builds a client for baseURL; mod may adjust the options.
func newTestClient(t *testing.T, baseURL string, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{BaseURL: baseURL, Number: testNumber, Token: "tok", UserAgent: "test-agent"}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds; it fails the test after a generous bound so a broken
// invariant shows up as a failure, not a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }
