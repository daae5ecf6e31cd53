package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bsm/redislock"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/emulator/events"
	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/sender"
	"github.com/signal-client/signal-client/internal/signal/rest"
	"github.com/signal-client/signal-client/internal/streams"
	"github.com/signal-client/signal-client/internal/worker"
)

// These tests run Contexts against the emulator through the real sender and
// check every REST request as the emulator recorded it.

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

const account = emulator.DefaultAccount

var entrySeq atomic.Int64

var (
	alice  = events.Contact{Number: "+15550000002", UUID: "3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", Name: "Alice", Device: 1}
	hidden = events.Contact{UUID: "c0ffee00-1234-4abc-9def-00000000beef", Name: "Hidden", Device: 1}
	bob    = events.Contact{Number: "+15550000003", UUID: "7d0e9c14-2b6a-4f3e-8c1d-0a9b8c7d6e5f", Device: 1}
)

type emuFixture struct {
	emu   *emulator.Emulator
	be    *runtimeBackend
	snd   *sender.Sender
	store *streams.Store
	group emulator.Group
}

func newEmuFixture(t *testing.T) *emuFixture {
	t.Helper()
	emu := emulator.New(emulator.Config{})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	g, err := emu.AddGroup(account, emulator.Group{Name: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	keys, err := streams.NewKeys(strings.ReplaceAll(t.Name(), "/", "-")+fmt.Sprint(time.Now().UnixNano()), account)
	if err != nil {
		t.Fatal(err)
	}
	store := streams.NewStore(c, keys, 4)
	if err := streams.LoadScripts(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	rc, err := rest.New(rest.Options{BaseURL: emu.URL(), Number: account, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	snd := sender.New(sender.Config{Instance: "t", MaxConcurrency: 4, RateLimit: 1000, RatePeriod: time.Second}, rc, store, sender.Observer{}, nil)
	return &emuFixture{emu: emu, snd: snd, store: store, group: g,
		be: &runtimeBackend{snd: snd, locks: redislock.New(c), keys: keys}}
}

// memState is a StateStore in memory.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memState) Read(_ context.Context, f string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[f]
	return v, ok, nil
}

func (s *memState) Write(op StateOp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	switch op.Op {
	case "set":
		s.m[op.Field] = op.Value
	case "del":
		delete(s.m, op.Field)
	}
}

// run dispatches frame to r through the fixture's backend, as a new entry
// each time (a repeated id would replay the recorded calls).
func (f *emuFixture) run(t *testing.T, r *Router, frame []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := fmt.Sprintf("%d-0", entrySeq.Add(1))
	return r.Dispatch(ctx, Update{Raw: frame, ID: id, OriginalID: id, Shard: 1, Attempt: 1,
		Self: Self{Number: account}, Backend: f.be, State: &memState{}, TypingInterval: 50 * time.Millisecond})
}

// body returns a recorded call's body as canonical JSON.
func body(t *testing.T, c emulator.Call) string {
	t.Helper()
	b, err := json.Marshal(c.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func canon(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad expected JSON %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func meta(from events.Contact, ts int64) events.Meta {
	return events.Meta{Account: account, From: from, Timestamp: ts}
}

func TestRepliesAtTheEmulator(t *testing.T) {
	f := newEmuFixture(t)
	r := New()
	r.Command("!hi", func(c *Context) error { _, err := c.Reply("hello 👋"); return err })
	grp := &events.Group{ID: f.group.ID, Name: "ops"}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"number", events.DataMessage(meta(alice, 1001), events.Message{Text: "!hi"}),
			`{"number":"+15550000001","recipients":["+15550000002"],"message":"hello 👋","text_mode":"normal","quote_timestamp":1001,"quote_author":"+15550000002","quote_message":"!hi"}`},
		{"hidden number", events.DataMessage(meta(hidden, 1002), events.Message{Text: "!hi"}),
			`{"number":"+15550000001","recipients":["c0ffee00-1234-4abc-9def-00000000beef"],"message":"hello 👋","text_mode":"normal","quote_timestamp":1002,"quote_author":"c0ffee00-1234-4abc-9def-00000000beef","quote_message":"!hi"}`},
		{"group, hidden sender, bot mentioned, another mention after an emoji", events.DataMessage(meta(hidden, 1003), events.Message{Text: "\uFFFC !hi 🎉 \uFFFC", Group: grp,
			Mentions: []events.Mention{{Who: events.Contact{Number: account}, Start: 0, Length: 1}, {Who: bob, Start: 9, Length: 1}}}),
			`{"number":"+15550000001","recipients":["` + f.group.RESTID() + `"],"message":"hello 👋","text_mode":"normal","quote_timestamp":1003,"quote_author":"c0ffee00-1234-4abc-9def-00000000beef","quote_message":"\uFFFC !hi 🎉 \uFFFC","quote_mentions":[{"start":0,"length":1,"author":"+15550000001"},{"start":9,"length":1,"author":"+15550000003"}]}`},
	} {
		f.emu.ResetCalls()
		if err := f.run(t, r, tc.frame); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		calls := f.emu.Calls(emulator.CallFilter{Route: rest.EndpointSend})
		if len(calls) != 1 || calls[0].Status != 201 {
			t.Fatalf("%s: %d sends %+v", tc.name, len(calls), calls)
		}
		if got, want := body(t, calls[0]), canon(t, tc.want); got != want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
}

func TestEveryCallAtTheEmulator(t *testing.T) {
	f := newEmuFixture(t)
	if _, err := f.emu.AddAttachment("att-1", []byte("file content")); err != nil {
		t.Fatal(err)
	}
	var got struct {
		sent, edit, del Sent
		dl              Download
	}
	r := New()
	r.Command("!all", func(c *Context) error {
		stop := c.Typing()
		m := Compose().Text("😀 hi ").Mention(c.Sender().Recipient()).Text(" **bold**")
		var err error
		if got.sent, err = c.Send(m.String(), WithMentions(m.Mentions()...), Styled(), Attach([]byte("PNG!"), "image/png", "a.png")); err != nil {
			return err
		}
		if got.edit, err = c.Edit(got.sent.Timestamp, "edited"); err != nil {
			return err
		}
		if _, err = c.React("👍"); err != nil {
			return err
		}
		if _, err = c.Unreact("👍"); err != nil {
			return err
		}
		if _, err = c.MarkRead(); err != nil {
			return err
		}
		if got.del, err = c.Delete(got.sent.Timestamp); err != nil {
			return err
		}
		time.Sleep(150 * time.Millisecond) // typing repeats every 50ms
		stop()
		if got.dl, err = c.Download(Attachment{ID: "att-1"}, 1024); err != nil {
			return err
		}
		_, err = c.SendTo(bob.Number, "to bob")
		return err
	})
	grp := &events.Group{ID: f.group.ID}
	if err := f.run(t, r, events.DataMessage(meta(alice, 2000), events.Message{Text: "!all", Group: grp})); err != nil {
		t.Fatal(err)
	}
	gid := f.group.RESTID()
	calls := f.emu.Calls()
	var seq []string
	for _, c := range calls {
		seq = append(seq, c.Method+" "+c.Route)
	}
	// Typing repeats are interleaved with the other calls; check them apart.
	var typing, other []emulator.Call
	for _, c := range calls {
		if c.Route == rest.EndpointTyping {
			typing = append(typing, c)
		} else {
			other = append(other, c)
		}
	}
	wantOther := []struct{ method, route, body string }{
		{"POST", rest.EndpointSend, `{"number":"+15550000001","recipients":["` + gid + `"],"message":"😀 hi \uFFFC **bold**","text_mode":"styled",
			"mentions":[{"start":6,"length":1,"author":"+15550000002"}],"base64_attachments":["data:image/png;filename=a.png;base64,UE5HIQ=="]}`},
		{"POST", rest.EndpointSend, fmt.Sprintf(`{"number":"+15550000001","recipients":["%s"],"message":"edited","text_mode":"normal","edit_timestamp":%d}`, gid, got.sent.Timestamp)},
		{"POST", rest.EndpointReactions, `{"recipient":"` + gid + `","reaction":"👍","target_author":"+15550000002","timestamp":2000}`},
		{"DELETE", rest.EndpointReactions, `{"recipient":"` + gid + `","reaction":"👍","target_author":"+15550000002","timestamp":2000}`},
		{"POST", rest.EndpointReceipts, `{"recipient":"+15550000002","receipt_type":"read","timestamp":2000}`},
		{"DELETE", rest.EndpointRemoteDelete, fmt.Sprintf(`{"recipient":"%s","timestamp":%d}`, gid, got.sent.Timestamp)},
		{"GET", "/v1/attachments/{attachment}", ``},
		{"DELETE", "/v1/attachments/{attachment}", ``},
		{"POST", rest.EndpointSend, `{"number":"+15550000001","recipients":["+15550000003"],"message":"to bob","text_mode":"normal"}`},
	}
	if len(other) != len(wantOther) {
		t.Fatalf("calls %v", seq)
	}
	for i, w := range wantOther {
		c := other[i]
		if c.Method != w.method || c.Route != w.route || c.Status >= 300 {
			t.Fatalf("call %d: %s %s → %d, want %s %s (all: %v)", i, c.Method, c.Route, c.Status, w.method, w.route, seq)
		}
		if w.body != "" {
			if g, want := body(t, c), canon(t, w.body); g != want {
				t.Errorf("call %d %s %s:\n got %s\nwant %s", i, c.Method, c.Route, g, want)
			}
		}
	}
	puts := 0
	for _, c := range typing {
		if c.Method == "PUT" {
			puts++
		}
	}
	if puts < 2 || typing[0].Method != "PUT" || typing[len(typing)-1].Method != "DELETE" || len(typing) != puts+1 {
		t.Fatalf("typing calls: %d, first %s, last %s", len(typing), typing[0].Method, typing[len(typing)-1].Method)
	}
	for _, c := range typing {
		if g := body(t, c); g != `{"recipient":"`+gid+`"}` {
			t.Fatalf("typing body %s", g)
		}
	}
	if got.edit.Timestamp == 0 || got.del.Timestamp == 0 || string(got.dl.Data) != "file content" {
		t.Fatalf("results %+v", got)
	}
	if _, ok := f.emu.Attachment("att-1"); ok {
		t.Fatal("attachment not deleted upstream after the download")
	}
}

func TestRuntimeMarksInfrastructure(t *testing.T) {
	f := newEmuFixture(t)
	rt := &Runtime{snd: f.snd}
	r := New()
	r.Command("!x", func(c *Context) error { _, err := c.Send("x"); return err })
	frame := events.DataMessage(meta(alice, 3000), events.Message{Text: "!x"})
	for _, tc := range []struct {
		name  string
		fault emulator.RESTFault
		infra bool
		pause time.Duration
	}{
		{"503", emulator.RESTFault{Route: rest.EndpointSend, Status: 503, Count: 1}, true, 0},
		{"400", emulator.RESTFault{Route: rest.EndpointSend, Error: "Failed to send message", Count: 1}, false, 0},
	} {
		f.emu.Faults().AddREST(tc.fault)
		err := rt.classify(f.run(t, r, frame))
		var inf worker.InfrastructureError
		if errors.As(err, &inf) != tc.infra {
			t.Fatalf("%s: %v infra=%v", tc.name, err, !tc.infra)
		}
		if tc.infra && inf.PauseFor() != tc.pause {
			t.Fatalf("%s: pause %v", tc.name, inf.PauseFor())
		}
	}
	if err := rt.classify(fmt.Errorf("x: %w", ErrLockNotObtained)); !isInfra(err) {
		t.Fatal("lock not obtained must be infrastructure")
	}
	if err := rt.classify(ErrPass); err != nil {
		t.Fatal("ErrPass at the top is not an error")
	}
}

func isInfra(err error) bool {
	var inf worker.InfrastructureError
	return errors.As(err, &inf)
}

func TestLockAcrossHandlersOnRedis(t *testing.T) {
	f := newEmuFixture(t)
	inside := make(chan struct{})
	release := make(chan struct{})
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	r := New()
	r.Command("!hold", func(c *Context) error {
		unlock, err := c.Lock("shared", 300*time.Millisecond)
		if err != nil {
			return err
		}
		defer unlock()
		note("a-in")
		close(inside)
		<-release // longer than the TTL: the refresher must keep it
		note("a-out")
		return nil
	})
	r.Command("!wait", func(c *Context) error {
		unlock, err := c.Lock("shared", time.Second)
		if err != nil {
			return err
		}
		note("b-in")
		unlock()
		return nil
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.run(t, r, events.DataMessage(meta(alice, 4000), events.Message{Text: "!hold"})); err != nil {
			t.Error(err)
		}
	}()
	<-inside
	go func() { time.Sleep(700 * time.Millisecond); close(release) }()
	if err := f.run(t, r, events.DataMessage(meta(bob, 4001), events.Message{Text: "!wait"})); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if strings.Join(order, " ") != "a-in a-out b-in" {
		t.Fatalf("order %v: the lock did not exclude (or was not refreshed past its TTL)", order)
	}
	// A lock held until the deadline is ErrLockNotObtained.
	l, err := redislock.New(srv.Client()).Obtain(context.Background(), f.be.keys.UserLock("busy"), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	r2 := New()
	r2.Command("!busy", func(c *Context) error { _, err := c.Lock("busy", 0); return err })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = r2.Dispatch(ctx, Update{Raw: events.DataMessage(meta(alice, 4002), events.Message{Text: "!busy"}), Backend: f.be, State: &memState{}})
	if !errors.Is(err, ErrLockNotObtained) {
		t.Fatalf("%v, want ErrLockNotObtained", err)
	}
}
