// Package health serves the probe endpoints every binary exposes on
// HEALTH_PORT: /live (the process loop runs), /ready (true readiness, a JSON
// body listing each check; 503 naming the failing ones) and any extra
// read-only endpoints a binary adds (e.g. /dlq). Unlike the Python original,
// /ready is only 200 when every check passes (seed §5.1, §9 item 14).
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Result is one readiness check's answer.
type Result struct {
	OK      bool           `json:"ok"`
	Message string         `json:"message,omitempty"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// Check answers one readiness question; it must return within ctx.
type Check func(ctx context.Context) Result

type namedCheck struct {
	name string
	fn   Check
}

// Server is the health HTTP server.
type Server struct {
	mu     sync.RWMutex
	checks []namedCheck
	live   func() error
	info   []func() map[string]any
	mux    *http.ServeMux
	// Timeout bounds all checks of one /ready request (default 2s).
	Timeout time.Duration
}

// New returns a server with no checks (ready) and a live loop.
func New() *Server {
	s := &Server{mux: http.NewServeMux(), Timeout: 2 * time.Second}
	s.mux.HandleFunc("/live", s.serveLive)
	s.mux.HandleFunc("/ready", s.serveReady)
	return s
}

// AddCheck registers a readiness check; checks run in registration order.
func (s *Server) AddCheck(name string, fn Check) {
	s.mu.Lock()
	s.checks = append(s.checks, namedCheck{name, fn})
	s.mu.Unlock()
}

// SetLive sets the liveness function: nil error = alive.
func (s *Server) SetLive(fn func() error) {
	s.mu.Lock()
	s.live = fn
	s.mu.Unlock()
}

// AddInfo adds fields (role, shards owned, …) to the /ready body.
func (s *Server) AddInfo(fn func() map[string]any) {
	s.mu.Lock()
	s.info = append(s.info, fn)
	s.mu.Unlock()
}

// Handle adds an extra endpoint (e.g. /dlq).
func (s *Server) Handle(path string, h http.Handler) { s.mux.Handle(path, h) }

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	live := s.live
	s.mu.RUnlock()
	if live != nil {
		if err := live(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "dead", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "alive"})
}

// Report runs every check and returns the /ready body and status code.
func (s *Server) Report(ctx context.Context) (int, map[string]any) {
	s.mu.RLock()
	checks := append([]namedCheck(nil), s.checks...)
	info := append([]func() map[string]any(nil), s.info...)
	s.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan Result, 1)
			go func() { done <- c.fn(ctx) }()
			select {
			case r := <-done:
				results[i] = r
			case <-ctx.Done():
				results[i] = Result{OK: false, Message: "check did not answer within " + s.Timeout.String()}
			}
		}()
	}
	wg.Wait()
	var failing []string
	list := make([]map[string]any, len(checks))
	for i, c := range checks {
		r := results[i]
		m := map[string]any{"name": c.name, "ok": r.OK}
		if r.Message != "" {
			m["message"] = r.Message
		}
		if len(r.Detail) > 0 {
			m["detail"] = r.Detail
		}
		list[i] = m
		if !r.OK {
			failing = append(failing, c.name)
		}
	}
	body := map[string]any{"checks": list}
	for _, fn := range info {
		for k, v := range fn() {
			body[k] = v
		}
	}
	if len(failing) > 0 {
		sort.Strings(failing)
		body["status"] = "not ready"
		body["failing"] = failing
		body["error"] = "not ready: " + strings.Join(failing, ", ")
		return http.StatusServiceUnavailable, body
	}
	body["status"] = "ready"
	return http.StatusOK, body
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	code, body := s.Report(r.Context())
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve listens on addr and serves h until ctx ends (then shuts down within
// 2s). It returns the listen error at once (e.g. port in use).
func Serve(ctx context.Context, addr string, h http.Handler) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), errc, nil
}
