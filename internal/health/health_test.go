package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: body %q: %v", path, rec.Body.String(), err)
	}
	return rec.Code, body
}

func TestReadyStates(t *testing.T) {
	cases := []struct {
		name    string
		checks  map[string]Result
		code    int
		failing []any
	}{
		{"all ok", map[string]Result{"redis": {OK: true}, "websocket": {OK: true}}, 200, nil},
		{"redis down", map[string]Result{"redis": {OK: false, Message: "dial tcp: refused"}, "websocket": {OK: true}}, 503, []any{"redis"}},
		{"both down", map[string]Result{"redis": {OK: false}, "websocket": {OK: false}}, 503, []any{"redis", "websocket"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New()
			for _, n := range []string{"redis", "websocket"} {
				r := c.checks[n]
				s.AddCheck(n, func(context.Context) Result { return r })
			}
			s.AddInfo(func() map[string]any { return map[string]any{"role": "leader"} })
			code, body := get(t, s.Handler(), "/ready")
			if code != c.code {
				t.Fatalf("code %d, want %d (%v)", code, c.code, body)
			}
			if body["role"] != "leader" {
				t.Errorf("info missing: %v", body)
			}
			if c.failing != nil {
				got, _ := body["failing"].([]any)
				if len(got) != len(c.failing) || got[0] != c.failing[0] {
					t.Errorf("failing %v, want %v", got, c.failing)
				}
			}
			checks, _ := body["checks"].([]any)
			if len(checks) != 2 {
				t.Errorf("checks %v", checks)
			}
		})
	}
}

func TestSlowCheckTimesOut(t *testing.T) {
	s := New()
	s.Timeout = 50 * time.Millisecond
	s.AddCheck("slow", func(ctx context.Context) Result { time.Sleep(time.Second); return Result{OK: true} })
	code, body := get(t, s.Handler(), "/ready")
	if code != 503 || body["error"] != "not ready: slow" {
		t.Fatalf("%d %v", code, body)
	}
}

func TestLive(t *testing.T) {
	s := New()
	if code, _ := get(t, s.Handler(), "/live"); code != 200 {
		t.Fatal(code)
	}
	s.SetLive(func() error { return errors.New("loop stalled for 30s") })
	code, body := get(t, s.Handler(), "/live")
	if code != 503 || body["error"] != "loop stalled for 30s" {
		t.Fatalf("%d %v", code, body)
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, errc, err := Serve(ctx, "127.0.0.1:0", New().Handler())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/live")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, _, err := Serve(context.Background(), addr.String()+"x", nil); err == nil {
		t.Fatal("bad address accepted")
	}
}
