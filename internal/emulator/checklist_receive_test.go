package emulator

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Tests in this file are named after the items of the reference's §8 checklist,
// "Transport and receive (json-rpc profile)" and "Receive (normal profile)".

func TestChecklistReceiveWithoutUpgradeIs400(t *testing.T) {
	e := start(t, Config{})
	r := do(t, http.MethodGet, e.URL()+"/v1/receive/"+bot, "")
	r.expect(t, http.StatusBadRequest, "Bad Request\n"+`{"error":"websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header"}`)
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type = %q, want gorilla's text/plain", ct)
	}
}

func TestChecklistUpgradeAnyOriginQueryParamsIgnored(t *testing.T) {
	e := start(t, Config{})
	hdr := http.Header{"Origin": {"https://evil.example.org"}}
	// Invalid values that poll mode would reject are not even validated here.
	c := dialURL(t, e.WebsocketURL(bot)+"?timeout=abc&ignore_attachments=maybe&max_messages=x", hdr, true)
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	e.Inject(bot, frameFor(bot, "x"))
	if got := string(c.next(t)); got != string(frameFor(bot, "x")) {
		t.Fatalf("frame = %s", got)
	}
	// %2B in the path is decoded to "+".
	c2 := dialURL(t, strings.Replace(e.WebsocketURL(bot), "+", "%2B", 1), nil, true)
	if err := e.WaitSockets(ctxT(t), bot, 2); err != nil {
		t.Fatal(err)
	}
	e.Inject(bot, frameFor(bot, "y"))
	c2.next(t)
}

func TestChecklistEachEventGoesToEverySocketOfTheAccountOnly(t *testing.T) {
	e := start(t, Config{Accounts: []string{bot, otherAcct}})
	a1 := dial(t, e, bot, nil)
	a2 := dial(t, e, bot, nil)
	other := dial(t, e, otherAcct, nil)
	noPlus := dialURL(t, "ws://"+e.Addr()+"/v1/receive/15550000001", nil, true)
	longer := dial(t, e, bot+"0", nil)
	if err := e.WaitSockets(ctxT(t), "", 5); err != nil {
		t.Fatal(err)
	}
	f := frameFor(bot, "hello")
	if n := e.Inject(bot, f); n != 2 {
		t.Fatalf("Inject accepted by %d sockets, want 2", n)
	}
	for _, c := range []*wsClient{a1, a2} {
		got := c.next(t)
		if string(got) != string(f) {
			t.Fatalf("frame is not the wrapper verbatim:\n got %s\nwant %s", got, f)
		}
	}
	for _, c := range []*wsClient{other, noPlus, longer} {
		c.none(t, 100*time.Millisecond)
	}
	// Exactly one text frame per event: the next frame is the next event.
	e.Inject(bot, frameFor(bot, "second"))
	if got := string(a1.next(t)); !strings.Contains(got, `"second"`) {
		t.Fatalf("second frame = %s", got)
	}
	// InjectParams reads the account from the frame, like the real filter.
	if n := e.InjectParams(frameFor(otherAcct, "p")); n != 1 {
		t.Fatalf("InjectParams accepted by %d, want 1", n)
	}
	other.next(t)
	if n := e.InjectParams([]byte("not json")); n != 0 || e.Stats().Unparseable != 1 {
		t.Fatalf("unparseable frame: n=%d stats=%d", n, e.Stats().Unparseable)
	}
}

func TestChecklistEventsWithoutSocketAreDiscardedNoReplay(t *testing.T) {
	e := start(t, Config{})
	if n := e.Inject(bot, frameFor(bot, "lost")); n != 0 {
		t.Fatalf("accepted by %d sockets with none open", n)
	}
	if s := e.Stats(); s.EventsDiscarded != 1 {
		t.Fatalf("EventsDiscarded = %d, want 1", s.EventsDiscarded)
	}
	c := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	e.Inject(bot, frameFor(bot, "live"))
	if got := string(c.next(t)); !strings.Contains(got, `"live"`) {
		t.Fatalf("first frame after connect = %s, want the live event (no replay)", got)
	}
	c.none(t, 50*time.Millisecond)
}

func TestChecklistBusyDropAndGlobalStall(t *testing.T) {
	t.Run("busy drop", func(t *testing.T) {
		e := start(t, Config{})
		if err := e.Faults().SetDelivery(DeliveryBusyDrop); err != nil {
			t.Fatal(err)
		}
		e.Faults().AddSocket(SocketFault{SocketSelector: SocketSelector{ClientID: "slow"}, WriteDelay: 400 * time.Millisecond})
		slow := dial(t, e, bot, http.Header{ClientIDHeader: {"slow"}})
		fast := dial(t, e, bot, http.Header{ClientIDHeader: {"fast"}})
		if err := e.WaitSockets(ctxT(t), bot, 2); err != nil {
			t.Fatal(err)
		}
		if n := e.Inject(bot, frameFor(bot, "a")); n != 2 {
			t.Fatalf("first frame accepted by %d, want 2 (both writers idle)", n)
		}
		waitFor(t, "fast socket flushed frame a", func() bool { return sock(t, e, 2).Delivered == 1 })
		// The slow socket's previous frame is not flushed yet: the new one is dropped there.
		if n := e.Inject(bot, frameFor(bot, "b")); n != 1 {
			t.Fatalf("second frame accepted by %d, want 1", n)
		}
		if s := sock(t, e, 1); s.Dropped != 1 || s.ClientID != "slow" {
			t.Fatalf("slow socket stats = %+v, want 1 dropped", s)
		}
		for _, want := range []string{`"a"`, `"b"`} {
			if got := string(fast.next(t)); !strings.Contains(got, want) {
				t.Fatalf("fast got %s, want %s", got, want)
			}
		}
		if got := string(slow.next(t)); !strings.Contains(got, `"a"`) {
			t.Fatalf("slow got %s", got)
		}
		slow.none(t, 100*time.Millisecond)
		waitFor(t, "3 deliveries counted", func() bool { return e.Stats().FramesDelivered == 3 })
		if st := e.Stats(); st.FramesDropped != 1 {
			t.Fatalf("total dropped=%d, want 1", st.FramesDropped)
		}
	})
	t.Run("global stall", func(t *testing.T) {
		e := start(t, Config{Accounts: []string{bot, otherAcct}})
		if err := e.Faults().SetDelivery(DeliveryGlobalStall); err != nil {
			t.Fatal(err)
		}
		stallID := e.Faults().AddSocket(SocketFault{SocketSelector: SocketSelector{ClientID: "stuck"}, Stall: true})
		stuck := dial(t, e, bot, http.Header{ClientIDHeader: {"stuck"}})
		healthy := dial(t, e, otherAcct, http.Header{ClientIDHeader: {"healthy"}})
		if err := e.WaitSockets(ctxT(t), "", 2); err != nil {
			t.Fatal(err)
		}
		e.Inject(bot, frameFor(bot, "stuck-1"))
		waitFor(t, "stalled writer holding the global mutex", func() bool {
			if e.gmu.TryLock() {
				e.gmu.Unlock()
				return false
			}
			return true
		})
		if n := e.Inject(otherAcct, frameFor(otherAcct, "h-1")); n != 1 {
			t.Fatalf("h-1 accepted by %d, want 1 (writer idle, then blocked on the mutex)", n)
		}
		if n := e.Inject(otherAcct, frameFor(otherAcct, "h-2")); n != 0 {
			t.Fatalf("h-2 accepted by %d, want 0: the healthy socket's writer waits for the stalled one", n)
		}
		if s := sock(t, e, 2); s.Dropped != 1 {
			t.Fatalf("healthy socket dropped %d, want 1", s.Dropped)
		}
		healthy.none(t, 100*time.Millisecond)
		e.Faults().RemoveSocket(stallID)
		if got := string(stuck.next(t)); !strings.Contains(got, "stuck-1") {
			t.Fatalf("stuck got %s", got)
		}
		if got := string(healthy.next(t)); !strings.Contains(got, "h-1") {
			t.Fatalf("healthy got %s", got)
		}
		healthy.none(t, 100*time.Millisecond)
	})
	t.Run("reliable default keeps every frame", func(t *testing.T) {
		e := start(t, Config{})
		e.Faults().AddSocket(SocketFault{SocketSelector: SocketSelector{Index: 1}, WriteDelay: 5 * time.Millisecond})
		c := dial(t, e, bot, nil)
		if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 30; i++ {
			if n := e.Inject(bot, frameFor(bot, "m"+strconv.Itoa(i))); n != 1 {
				t.Fatalf("frame %d not accepted", i)
			}
		}
		for i := 0; i < 30; i++ {
			if got := string(c.next(t)); !strings.Contains(got, `"m`+strconv.Itoa(i)+`"`) {
				t.Fatalf("frame %d out of order: %s", i, got)
			}
		}
	})
}

func TestChecklistPingsPongsReadLimitAndNoIdleClose(t *testing.T) {
	t.Run("server pings every interval", func(t *testing.T) {
		e := start(t, Config{PingInterval: 15 * time.Millisecond})
		c := dial(t, e, bot, nil)
		waitFor(t, "3 pings", func() bool { return c.pings.Load() >= 3 })
		waitFor(t, "pongs counted", func() bool { return sock(t, e, 1).PongsReceived >= 1 })
		if s := sock(t, e, 1); s.PingsSent < 3 {
			t.Fatalf("PingsSent = %d", s.PingsSent)
		}
	})
	t.Run("answers client pings", func(t *testing.T) {
		e := start(t, Config{})
		c := dial(t, e, bot, nil)
		if err := c.conn.WriteControl(websocket.PingMessage, []byte("are-you-there"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-c.pongs:
			if p != "are-you-there" {
				t.Fatalf("pong payload %q", p)
			}
		case <-time.After(waitLong):
			t.Fatal("no pong")
		}
		waitFor(t, "client ping counted", func() bool { return sock(t, e, 1).ClientPings == 1 })
	})
	t.Run("client frame over 512 bytes closes the socket", func(t *testing.T) {
		e := start(t, Config{})
		c := dial(t, e, bot, nil)
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 512))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "512-byte frame read and discarded", func() bool { return sock(t, e, 1).ClientFrames == 1 })
		if e.OpenSockets(bot) != 1 {
			t.Fatal("a 512-byte frame closed the socket")
		}
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 513))); err != nil {
			t.Fatal(err)
		}
		err := c.waitErr(t)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("read error = %v, want close 1009", err)
		}
		waitFor(t, "socket gone", func() bool { return e.OpenSockets(bot) == 0 })
	})
	t.Run("never closes idle sockets", func(t *testing.T) {
		e := start(t, Config{PingInterval: 10 * time.Millisecond})
		// This client never answers pings and never sends anything.
		c := dialURL(t, e.WebsocketURL(bot), nil, false)
		if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "10 unanswered pings", func() bool { return c.pings.Load() >= 10 })
		if e.OpenSockets(bot) != 1 || sock(t, e, 1).PongsReceived != 0 {
			t.Fatal("idle socket was closed or pongs were counted")
		}
		e.Inject(bot, frameFor(bot, "still-here"))
		c.next(t)
	})
}

func TestChecklistErrorNotificationGoesToAllSockets(t *testing.T) {
	e := start(t, Config{Accounts: []string{bot, otherAcct}})
	a := dial(t, e, bot, nil)
	b := dial(t, e, otherAcct, nil)
	x := dial(t, e, "+19999999999", nil)
	if err := e.WaitSockets(ctxT(t), "", 3); err != nil {
		t.Fatal(err)
	}
	if n := e.InjectError("daemon <crashed>"); n != 3 {
		t.Fatalf("error frame accepted by %d, want 3", n)
	}
	for _, c := range []*wsClient{a, b, x} {
		if got := string(c.next(t)); got != `{"error":"daemon \u003ccrashed\u003e"}` {
			t.Fatalf("error frame = %s", got)
		}
	}
}

func TestChecklistWebhook(t *testing.T) {
	type hit struct {
		body, ct string
	}
	hits := make(chan hit, 10)
	release := make(chan struct{})
	var status atomic.Int32
	status.Store(200)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- hit{string(b), r.Header.Get("Content-Type")}
		<-release
		w.WriteHeader(int(status.Load()))
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	e := start(t, Config{WebhookURL: "http://" + l.Addr().String() + "/hook", WebhookBlocksREST: true})
	c := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	f := frameFor(bot, "hooked")
	injected := make(chan int)
	go func() { injected <- e.Inject(bot, f) }()
	h := <-hits
	if h.body != `{"jsonrpc":"2.0","method":"receive","params":`+string(f)+"}\n" || h.ct != "application/json" {
		t.Fatalf("webhook got %q (%s)", h.body, h.ct)
	}
	// The websocket fan-out happened before the webhook call.
	c.next(t)
	// Synchronous: Inject waits for the webhook, and REST calls block meanwhile (#758).
	select {
	case <-injected:
		t.Fatal("Inject returned while the webhook call was pending")
	case <-time.After(50 * time.Millisecond):
	}
	client := &http.Client{Timeout: 150 * time.Millisecond}
	if _, err := client.Get(e.URL() + "/v1/groups/" + bot); err == nil {
		t.Fatal("REST call answered while the webhook call was pending")
	}
	release <- struct{}{}
	if n := <-injected; n != 1 {
		t.Fatalf("Inject = %d", n)
	}
	do(t, http.MethodGet, e.URL()+"/v1/groups/"+bot, "").expect(t, 200, "[]")

	// Non-2xx: the event is dropped, not retried.
	status.Store(500)
	go func() { injected <- e.Inject(bot, frameFor(bot, "dropped")) }()
	<-hits
	release <- struct{}{}
	<-injected
	if s := e.Stats(); s.WebhookDelivered != 1 || s.WebhookFailed != 1 {
		t.Fatalf("webhook stats ok=%d failed=%d", s.WebhookDelivered, s.WebhookFailed)
	}
	select {
	case h := <-hits:
		t.Fatalf("webhook retried: %s", h.body)
	case <-time.After(50 * time.Millisecond):
	}
	if err := New(Config{Mode: ModeNormal, WebhookURL: "http://x"}).Start(); err == nil {
		t.Fatal("webhook accepted outside json-rpc mode")
	}

	// Without the blocking flag, REST calls are answered while a webhook call is pending.
	status.Store(200)
	e2 := start(t, Config{WebhookURL: "http://" + l.Addr().String() + "/hook"})
	go func() { injected <- e2.Inject(bot, f) }()
	<-hits
	do(t, http.MethodGet, e2.URL()+"/v1/groups/"+bot, "").expect(t, 200, "[]")
	release <- struct{}{}
	if n := <-injected; n != 0 {
		t.Fatalf("Inject without sockets = %d", n)
	}
}

func TestChecklistCrashSimulation(t *testing.T) {
	e := start(t, Config{})
	c := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.Faults().Crash(CrashOptions{Down: 400 * time.Millisecond, HoldEvents: true, ReplayDelay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	err := c.waitErr(t)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("read error = %v, want abnormal closure (no close frame)", err)
	}
	if e.Up() {
		t.Fatal("Up() during crash")
	}
	if _, _, err := websocket.DefaultDialer.Dial(e.WebsocketURL(bot), nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial during crash: %v, want connection refused", err)
	}
	if _, err := http.Get(e.URL() + "/v1/health"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("REST during crash: %v, want connection refused", err)
	}
	if n := e.Inject(bot, frameFor(bot, "held")); n != 0 {
		t.Fatalf("inject while down accepted by %d", n)
	}
	if err := e.WaitUp(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	do(t, http.MethodGet, e.URL()+"/v1/health", "").expect(t, 204, "")
	c2 := dial(t, e, bot, nil)
	if got := string(c2.next(t)); !strings.Contains(got, `"held"`) {
		t.Fatalf("held event after restart = %s", got)
	}
	if s := e.Stats(); s.Crashes != 1 || s.EventsHeld != 1 {
		t.Fatalf("stats crashes=%d held=%d", s.Crashes, s.EventsHeld)
	}
	// Without HoldEvents, events while down are discarded.
	if err := e.Faults().Crash(CrashOptions{Down: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before := e.Stats().EventsDiscarded
	e.Inject(bot, frameFor(bot, "gone"))
	if got := e.Stats().EventsDiscarded; got != before+1 {
		t.Fatalf("EventsDiscarded %d -> %d", before, got)
	}
	if err := e.WaitUp(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestChecklistPollReturnsArrayOnce(t *testing.T) {
	e := start(t, Config{Mode: ModeNormal, PollTimeoutUnit: 10 * time.Millisecond})
	r := do(t, http.MethodGet, e.URL()+"/v1/receive/"+bot, "")
	r.expect(t, 200, "[]")
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
	f1, f2, f3 := frameFor(bot, "one"), frameFor(bot, "two"), frameFor(bot, "three")
	for _, f := range [][]byte{f1, f2, f3} {
		if n := e.Inject(bot, f); n != 0 {
			t.Fatalf("poll mode Inject = %d", n)
		}
	}
	e.Inject(otherAcct, frameFor(otherAcct, "unknown account"))
	do(t, http.MethodGet, e.URL()+"/v1/receive/"+bot+"?max_messages=2", "").expect(t, 200, "["+string(f1)+","+string(f2)+"]")
	do(t, http.MethodGet, e.URL()+"/v1/receive/%2B15550000001", "").expect(t, 200, "["+string(f3)+"]")
	do(t, http.MethodGet, e.URL()+"/v1/receive/"+bot+"?timeout=0", "").expect(t, 200, "[]")
	// A poll waits for the first event up to the timeout.
	go func() {
		time.Sleep(30 * time.Millisecond)
		e.Inject(bot, f1)
	}()
	do(t, http.MethodGet, e.URL()+"/v1/receive/"+bot+"?timeout=300", "").expect(t, 200, "["+string(f1)+"]")
	do(t, http.MethodGet, e.URL()+"/v1/receive/"+otherAcct, "").expect(t, 400, `{"error":"User +15550000077 is not registered."}`)
	do(t, http.MethodGet, e.URL()+"/v1/about", "").expect(t, 200, `{"versions":["v1","v2"],"build":2,"mode":"normal","version":"0.100","capabilities":{"v2/send":["quotes","mentions"]}}`)
}

func TestChecklistPollParamValidation(t *testing.T) {
	e := start(t, Config{Mode: ModeNormal, PollTimeoutUnit: time.Millisecond})
	tests := []struct {
		query, want string
	}{
		{"timeout=abc", "Couldn't process request - timeout needs to be numeric!"},
		{"timeout=", "Couldn't process request - timeout needs to be numeric!"},
		{"timeout=99999999999", "Couldn't process request - timeout needs to be numeric!"},
		{"max_messages=1.5", "Couldn't process request - max_messages needs to be numeric!"},
		{"timeout=x&max_messages=y", "Couldn't process request - timeout needs to be numeric!"},
		{"ignore_attachments=yes", "Couldn't process request - ignore_attachments parameter needs to be either 'true' or 'false'"},
		{"ignore_stories=1", "Couldn't process request - ignore_stories parameter needs to be either 'true' or 'false'"},
		{"ignore_avatars=TRUE", "Couldn't process request - ignore_avatars parameter needs to be either 'true' or 'false'"},
		{"ignore_stickers=", "Couldn't process request - ignore_stickers parameter needs to be either 'true' or 'false'"},
		{"send_read_receipts=no", "Couldn't process request - send_read_receipts parameter needs to be either 'true' or 'false'"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			do(t, http.MethodGet, e.URL()+"/v1/receive/"+bot+"?"+tt.query, "").expect(t, 400, `{"error":"`+tt.want+`"}`)
		})
	}
	do(t, http.MethodGet, e.URL()+"/v1/receive/"+bot+"?timeout=0&max_messages=-3&ignore_attachments=true&ignore_stories=false&ignore_avatars=true&ignore_stickers=false&send_read_receipts=true&timeout=-1", "").expect(t, 200, "[]")
}
