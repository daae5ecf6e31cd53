package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"not ready","error":"not ready: redis"}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string
	}{
		{"ready on HEALTH_PORT", nil, map[string]string{"HEALTH_PORT": port}, 0, ""},
		{"not ready", []string{srv.URL + "/other"}, nil, 1, "answered 503: {\"status\":\"not ready\",\"error\":\"not ready: redis\"}\n"},
		{"nothing listening", nil, map[string]string{"HEALTH_PORT": closed}, 1, "http://127.0.0.1:" + closed + "/ready unreachable"},
		{"bad port", nil, map[string]string{"HEALTH_PORT": "http"}, 2, "healthcheck: HEALTH_PORT=\"http\": expected a port number from 1 to 65535\n"},
		{"two arguments", []string{"a", "b"}, nil, 2, "usage: healthcheck [URL]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			code := run(tc.args, func(k string) string { return tc.env[k] }, &out)
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("code %d output %q, want %d containing %q", code, out.String(), tc.wantCode, tc.wantOut)
			}
		})
	}
}

func TestDefaultTarget(t *testing.T) {
	got, err := target(nil, func(string) string { return "" })
	if err != nil || got != "http://127.0.0.1:8082/ready" {
		t.Fatalf("%q %v", got, err)
	}
}
