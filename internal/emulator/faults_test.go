package emulator

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestRESTFaultStatusCountAndProbability(t *testing.T) {
	e := start(t, Config{Seed: 7})
	id := e.Faults().FailNext("/v1/health", 503, 2)
	for i := 0; i < 2; i++ {
		r := do(t, http.MethodGet, e.URL()+"/v1/health", "")
		r.expect(t, 503, defaultFaultBody)
		if r.header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
		}
	}
	do(t, http.MethodGet, e.URL()+"/v1/health", "").expect(t, 204, "")
	if e.Faults().RemoveREST(id) {
		t.Fatal("spent rule still installed")
	}
	// Route and method selectors; custom body.
	e.Faults().AddREST(RESTFault{Method: http.MethodPost, Route: "/v2/send", Status: 502, Body: "<html>bad gateway</html>"})
	do(t, http.MethodGet, e.URL()+"/v1/about", "").expect(t, 200, `{"versions":["v1","v2"],"build":2,"mode":"json-rpc","version":"0.100","capabilities":{"v2/send":["quotes","mentions"]}}`)
	r := do(t, http.MethodPost, e.URL()+"/v2/send", `{}`)
	r.expect(t, 502, "<html>bad gateway</html>")
	if r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
	}
	if c := e.Calls(CallFilter{Route: "/v2/send"}); len(c) != 1 || c[0].Status != 502 {
		t.Fatalf("recorded: %+v", c)
	}
	e.Faults().ClearREST()
	// Probability: with a fixed seed the outcome is reproducible and roughly p.
	e.Faults().AddREST(RESTFault{Route: "/v1/accounts", Status: 500, Probability: 0.3})
	failed := 0
	for i := 0; i < 200; i++ {
		if do(t, http.MethodGet, e.URL()+"/v1/accounts", "").status == 500 {
			failed++
		}
	}
	if failed < 30 || failed > 90 {
		t.Fatalf("%d/200 failures with p=0.3", failed)
	}
}

func TestRESTFaultLatencyAndBackendErrorByRecipient(t *testing.T) {
	e := start(t, Config{})
	id := e.Faults().SetLatency("/v1/about", 150*time.Millisecond)
	begin := time.Now()
	do(t, http.MethodGet, e.URL()+"/v1/about", "")
	if d := time.Since(begin); d < 150*time.Millisecond {
		t.Fatalf("answered after %v despite 150ms latency", d)
	}
	if !e.Faults().RemoveREST(id) {
		t.Fatal("latency rule missing")
	}
	e.Faults().AddREST(RESTFault{Route: "/v2/send", Recipient: "+15550000009", Error: "The user +15550000009 is not registered."})
	do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+15550000009"]}`).expect(t, 400, errBody("The user +15550000009 is not registered."))
	if r := do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+15550000008"]}`); r.status != 201 {
		t.Fatalf("other recipient: %d", r.status)
	}
	// Backend errors come after validation and the account check.
	do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"+1","recipients":["+15550000009"]}`).expect(t, 400, errBody(ErrTextUnknownAccount))
	e.Faults().AddREST(RESTFault{Route: "/v2/send", Account: bot, Error: ErrTextUntrustedRelease, Count: 1})
	do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+15550000008"]}`).expect(t, 400, errBody(ErrTextUntrustedRelease))
}

func TestRESTFaultHangProducesUnknownOutcome(t *testing.T) {
	e := start(t, Config{})
	e.Faults().HangSends(1)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := client.Post(e.URL()+"/v2/send", "application/json", strings.NewReader(`{"number":"`+bot+`","recipients":["+15550000002"],"message":"maybe"}`))
	if err == nil {
		t.Fatal("hung send answered")
	}
	calls, err := e.WaitCalls(ctxT(t), 1, CallFilter{Route: "/v2/send"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hung call finished after the client left", func() bool {
		c := e.Calls(CallFilter{Route: "/v2/send"})[0]
		return c.Duration > 0
	})
	c := e.Calls(CallFilter{Route: "/v2/send"})[0]
	if !c.Hung || c.Status != 0 || c.Timestamp == 0 || calls[0].ID != c.ID {
		t.Fatalf("hung call = %+v: want Hung, no status, a timestamp (the send took effect)", c)
	}
	if r := do(t, http.MethodPost, e.URL()+"/v2/send", `{"number":"`+bot+`","recipients":["+15550000002"]}`); r.status != 201 {
		t.Fatalf("next send: %d", r.status)
	}
	// Removing an unlimited hang rule answers the calls it holds.
	id := e.Faults().AddREST(RESTFault{Route: "/v1/typing-indicator/{number}", Hang: true})
	done := make(chan response, 1)
	go func() { done <- do(t, http.MethodPut, e.URL()+"/v1/typing-indicator/"+bot, `{"recipient":"+2"}`) }()
	waitFor(t, "typing call held", func() bool {
		cs := e.Calls(CallFilter{Route: "/v1/typing-indicator/{number}"})
		return len(cs) == 1 && cs[0].Hung
	})
	select {
	case <-done:
		t.Fatal("held call answered")
	case <-time.After(50 * time.Millisecond):
	}
	e.Faults().RemoveREST(id)
	(<-done).expect(t, 204, "")
}

func TestSocketFaultsTargetOneSocket(t *testing.T) {
	e := start(t, Config{Seed: 3})
	f := e.Faults()
	f.AddSocket(SocketFault{SocketSelector: SocketSelector{ClientID: "a"}, DropNext: 2})
	f.AddSocket(SocketFault{SocketSelector: SocketSelector{Index: 2}, DropEvery: 2})
	a := dial(t, e, bot, http.Header{ClientIDHeader: {"a"}})
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	b := dial(t, e, bot, nil) // index 2
	if err := e.WaitSockets(ctxT(t), bot, 2); err != nil {
		t.Fatal(err)
	}
	c := dial(t, e, bot, http.Header{ClientIDHeader: {"c"}})
	if err := e.WaitSockets(ctxT(t), bot, 3); err != nil {
		t.Fatal(err)
	}
	pid := f.AddSocket(SocketFault{SocketSelector: SocketSelector{ClientID: "c"}, DropProbability: 1})
	for i := 1; i <= 6; i++ {
		e.Inject(bot, frameFor(bot, "f"+string(rune('0'+i))))
	}
	expect := func(cl *wsClient, want ...string) {
		t.Helper()
		for _, w := range want {
			if got := string(cl.next(t)); !strings.Contains(got, `"`+w+`"`) {
				t.Fatalf("got %s, want %s", got, w)
			}
		}
		cl.none(t, 50*time.Millisecond)
	}
	expect(a, "f3", "f4", "f5", "f6")
	expect(b, "f1", "f3", "f5")
	expect(c)
	if s := sock(t, e, 3); s.Dropped != 6 || s.Offered != 6 {
		t.Fatalf("socket c stats %+v", s)
	}
	// Switched off at runtime.
	f.RemoveSocket(pid)
	e.Inject(bot, frameFor(bot, "f7"))
	expect(c, "f7")
	if st := e.Stats(); st.FramesDropped != 2+3+6 {
		t.Fatalf("FramesDropped = %d", st.FramesDropped)
	}
}

func TestStallInReliableModeOnlyDelaysThatSocket(t *testing.T) {
	e := start(t, Config{})
	id := e.Faults().AddSocket(SocketFault{SocketSelector: SocketSelector{ClientID: "stuck"}, Stall: true})
	stuck := dial(t, e, bot, http.Header{ClientIDHeader: {"stuck"}})
	ok := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 2); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if n := e.Inject(bot, frameFor(bot, "s"+string(rune('0'+i)))); n != 2 {
			t.Fatalf("accepted by %d", n)
		}
	}
	for i := 0; i < 5; i++ {
		ok.next(t)
	}
	stuck.none(t, 50*time.Millisecond)
	if s := sock(t, e, 1); s.Pending < 4 || s.Delivered != 0 {
		t.Fatalf("stalled socket %+v", s)
	}
	e.Faults().RemoveSocket(id)
	for i := 0; i < 5; i++ {
		if got := string(stuck.next(t)); !strings.Contains(got, `"s`+string(rune('0'+i))+`"`) {
			t.Fatalf("after stall: %s", got)
		}
	}
}

func TestDropSocketsAbruptly(t *testing.T) {
	e := start(t, Config{})
	victim := dial(t, e, bot, http.Header{ClientIDHeader: {"victim"}})
	survivor := dial(t, e, bot, http.Header{ClientIDHeader: {"survivor"}})
	if err := e.WaitSockets(ctxT(t), bot, 2); err != nil {
		t.Fatal(err)
	}
	if n := e.Faults().DropSockets(SocketSelector{ClientID: "victim"}); n != 1 {
		t.Fatalf("dropped %d", n)
	}
	var ce *websocket.CloseError
	if err := victim.waitErr(t); !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("victim error %v, want abnormal closure", err)
	}
	e.Inject(bot, frameFor(bot, "after"))
	survivor.next(t)
	st := e.Stats()
	if st.SocketsOpen != 1 || len(st.Sockets) != 2 || st.Sockets[0].Open || !st.Sockets[1].Open {
		t.Fatalf("stats %+v", st)
	}
}

func TestFaultsClearAndDeliveryValidation(t *testing.T) {
	e := start(t, Config{})
	f := e.Faults()
	if err := f.SetDelivery("sometimes"); err == nil {
		t.Fatal("unknown delivery mode accepted")
	}
	if err := f.SetDelivery(DeliveryGlobalStall); err != nil {
		t.Fatal(err)
	}
	f.FailNext("", 500, 0)
	f.AddSocket(SocketFault{DropNext: 1})
	if len(f.RESTRules()) != 1 || len(f.SocketRules()) != 1 {
		t.Fatal("rules not listed")
	}
	do(t, http.MethodGet, e.URL()+"/v1/accounts", "").expect(t, 500, defaultFaultBody)
	f.Clear()
	if f.Delivery() != DeliveryReliable || len(f.RESTRules()) != 0 || len(f.SocketRules()) != 0 {
		t.Fatal("Clear left state behind")
	}
	do(t, http.MethodGet, e.URL()+"/v1/accounts", "").expect(t, 200, `["+15550000001"]`)
	// Crash needs a running emulator.
	if err := New(Config{}).Faults().Crash(CrashOptions{}); err == nil {
		t.Fatal("crash of a never started emulator accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := e.WaitSockets(ctx, bot, 1); err == nil {
		t.Fatal("WaitSockets without sockets returned nil")
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	e := New(Config{PingInterval: 10 * time.Millisecond, Mode: ModeJSONRPC})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	if err := e.Faults().SetDelivery(DeliveryGlobalStall); err != nil {
		t.Fatal(err)
	}
	e.Faults().AddSocket(SocketFault{SocketSelector: SocketSelector{ClientID: "stuck"}, Stall: true})
	e.Faults().HangSends(0)
	stuck := dial(t, e, bot, http.Header{ClientIDHeader: {"stuck"}})
	other := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 2); err != nil {
		t.Fatal(err)
	}
	e.Inject(bot, frameFor(bot, "x"))
	e.Inject(bot, frameFor(bot, "y"))
	hung := make(chan error, 1)
	go func() {
		_, err := http.Post(e.URL()+"/v2/send", "application/json", strings.NewReader(`{"number":"`+bot+`","recipients":["+2"]}`))
		hung <- err
	}()
	if _, err := e.WaitCalls(ctxT(t), 1, CallFilter{Route: "/v2/send"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.StartGenerator(GeneratorConfig{Rate: 5, Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		_ = e.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitLong):
		t.Fatal("Close did not return with a stalled socket, a hung call and a running generator")
	}
	if err := <-hung; err == nil {
		t.Fatal("hung call got an answer instead of a cut connection")
	}
	stuck.waitErr(t)
	other.waitErr(t)
	if e.Up() || e.Generator().Status().Running {
		t.Fatal("still up after Close")
	}
	if err := e.Start(); err == nil {
		t.Fatal("restart of a closed emulator accepted")
	}
}
