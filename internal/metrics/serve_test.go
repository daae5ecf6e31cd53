package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandlerPprof: the profiler is mounted only when DEBUG_PPROF asks for it;
// /metrics is served either way.
func TestHandlerPprof(t *testing.T) {
	reg := NewRegistry("test")
	cases := []struct {
		pprof bool
		path  string
		code  int
		body  string // a substring the answer must contain ("" = not checked)
	}{
		{false, "/metrics", 200, "signal_client_build_info"},
		{false, "/debug/pprof/", 404, ""},
		{false, "/debug/pprof/cmdline", 404, ""},
		{true, "/metrics", 200, "signal_client_build_info"},
		{true, "/debug/pprof/", 200, "goroutine"},
		{true, "/debug/pprof/cmdline", 200, ""},
		{true, "/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{true, "/debug/pprof/symbol", 200, "num_symbols"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		Handler(reg, c.pprof).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Code != c.code {
			t.Errorf("pprof=%v GET %s: status %d, want %d", c.pprof, c.path, rec.Code, c.code)
			continue
		}
		if c.body != "" && !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("pprof=%v GET %s: body lacks %q", c.pprof, c.path, c.body)
		}
	}
}
