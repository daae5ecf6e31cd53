package emulator

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func numbered(account, prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = frameFor(account, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// expectFrames reads want from c in order, byte for byte.
func expectFrames(t *testing.T, c *wsClient, want [][]byte) {
	t.Helper()
	for i, w := range want {
		if got := c.next(t); !bytes.Equal(got, w) {
			t.Fatalf("frame %d: got %.80s…, want %.80s…", i, got, w)
		}
	}
}

func TestStageAndRelease(t *testing.T) {
	for _, tc := range []struct {
		name string
		// sockets are the accounts of the websockets to open, in order.
		sockets []string
		// stageAccount is passed to Stage ("" reads it from the frame).
		stageAccount string
		frames       int
		wait         bool
		// want per socket: whether it receives the burst.
		receives      []bool
		wantAccepted  int64
		wantUnreached int
	}{
		{name: "one socket", sockets: []string{bot}, stageAccount: bot, frames: 5, receives: []bool{true}, wantAccepted: 5},
		{name: "every socket of the account, none of another", sockets: []string{bot, otherAcct, bot}, stageAccount: bot, frames: 600,
			receives: []bool{true, false, true}, wantAccepted: 1200},
		{name: "account read from the frames", sockets: []string{otherAcct, bot}, frames: 300, receives: []bool{false, true}, wantAccepted: 300},
		{name: "no socket: discarded", stageAccount: bot, frames: 7, wantUnreached: 7},
		{name: "wait until written", sockets: []string{bot}, stageAccount: bot, frames: 5000, wait: true, receives: []bool{true}, wantAccepted: 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, Config{Accounts: []string{bot, otherAcct}})
			var clients []*wsClient
			for _, a := range tc.sockets {
				clients = append(clients, dial(t, e, a, nil))
			}
			if err := e.WaitSockets(ctxT(t), "", len(tc.sockets)); err != nil {
				t.Fatal(err)
			}
			burst := numbered(bot, "b", tc.frames)
			if n := e.Stage(tc.stageAccount, burst...); n != tc.frames || e.Staged() != tc.frames {
				t.Fatalf("Stage = %d, Staged = %d, want %d", n, e.Staged(), tc.frames)
			}
			for _, c := range clients {
				c.none(t, 20*time.Millisecond)
			}
			if st := e.Stats(); st.EventsInjected != 0 || st.FramesOffered != 0 {
				t.Fatalf("staging injected: %+v", st)
			}
			res, err := e.ReleaseStaged(ctxT(t), tc.wait)
			if err != nil {
				t.Fatal(err)
			}
			if res.Released != tc.frames || res.Accepted != tc.wantAccepted || res.Unreached != tc.wantUnreached || res.Written != tc.wait {
				t.Fatalf("release = %+v", res)
			}
			if tc.wait {
				if st := e.Stats(); st.FramesDelivered != tc.wantAccepted {
					t.Fatalf("after a waiting release %d of %d frames written", st.FramesDelivered, tc.wantAccepted)
				}
			}
			if e.Staged() != 0 {
				t.Fatalf("stage not empty after release: %d", e.Staged())
			}
			for i, c := range clients {
				if tc.receives[i] {
					expectFrames(t, c, burst)
				}
				c.none(t, 20*time.Millisecond)
			}
			st := e.Stats()
			if st.EventsInjected != int64(tc.frames) || st.EventsDiscarded != int64(tc.wantUnreached) {
				t.Fatalf("stats injected=%d discarded=%d", st.EventsInjected, st.EventsDiscarded)
			}
			// Released frames are gone: a socket that connects later gets nothing.
			late := dial(t, e, bot, nil)
			if err := e.WaitSockets(ctxT(t), "", len(tc.sockets)+1); err != nil {
				t.Fatal(err)
			}
			late.none(t, 20*time.Millisecond)
		})
	}
}

// TestReleaseKeepsInjectionOrder interleaves staged bursts with single injections and
// frames of sizes needing each websocket length encoding.
func TestReleaseKeepsInjectionOrder(t *testing.T) {
	e := start(t, Config{})
	c := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for _, size := range []int{0, 125, 126, 65535, 65536, 200000} {
		want = append(want, []byte(strings.Repeat("x", size)))
	}
	want = append(want, numbered(bot, "a", 3000)...)
	e.Stage(bot, want...)
	before := frameFor(bot, "before")
	e.Inject(bot, before)
	if _, err := e.ReleaseStaged(ctxT(t), false); err != nil {
		t.Fatal(err)
	}
	after := frameFor(bot, "after")
	e.Inject(bot, after)
	expectFrames(t, c, append(append([][]byte{before}, want...), after))
	waitFor(t, "all written", func() bool { return e.Stats().FramesDelivered == int64(len(want)+2) })
}

func TestReleaseHonoursFaultsAndCrash(t *testing.T) {
	t.Run("busy drop: a burst reaches an idle writer once", func(t *testing.T) {
		e := start(t, Config{})
		if err := e.Faults().SetDelivery(DeliveryBusyDrop); err != nil {
			t.Fatal(err)
		}
		e.Faults().AddSocket(SocketFault{WriteDelay: 200 * time.Millisecond})
		c := dial(t, e, bot, nil)
		if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
			t.Fatal(err)
		}
		burst := numbered(bot, "d", 50)
		e.Stage(bot, burst...)
		res, err := e.ReleaseStaged(ctxT(t), true)
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 1 || res.Unreached != 49 {
			t.Fatalf("release = %+v, want only the first frame accepted", res)
		}
		expectFrames(t, c, burst[:1])
		c.none(t, 50*time.Millisecond)
		if s := sock(t, e, 1); s.Dropped != 49 || s.Delivered != 1 {
			t.Fatalf("socket %+v", s)
		}
	})
	t.Run("drop faults apply per frame", func(t *testing.T) {
		e := start(t, Config{})
		e.Faults().AddSocket(SocketFault{DropEvery: 3})
		c := dial(t, e, bot, nil)
		if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
			t.Fatal(err)
		}
		burst := numbered(bot, "e", 9)
		e.Stage(bot, burst...)
		if res, _ := e.ReleaseStaged(ctxT(t), true); res.Accepted != 6 {
			t.Fatalf("release = %+v", res)
		}
		expectFrames(t, c, [][]byte{burst[0], burst[1], burst[3], burst[4], burst[6], burst[7]})
	})
	t.Run("stall holds the burst until removed", func(t *testing.T) {
		e := start(t, Config{})
		id := e.Faults().AddSocket(SocketFault{Stall: true})
		c := dial(t, e, bot, nil)
		if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
			t.Fatal(err)
		}
		burst := numbered(bot, "s", 20)
		e.Stage(bot, burst...)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if res, err := e.ReleaseStaged(ctx, true); err == nil || res.Accepted != 20 || res.Written {
			t.Fatalf("release into a stalled socket = %+v, %v; want accepted, not written", res, err)
		}
		c.none(t, 20*time.Millisecond)
		if s := sock(t, e, 1); s.Pending != 20 {
			t.Fatalf("pending %d", s.Pending)
		}
		e.Faults().RemoveSocket(id)
		expectFrames(t, c, burst)
	})
	t.Run("crash holds a released burst", func(t *testing.T) {
		e := start(t, Config{})
		e.Stage(bot, numbered(bot, "h", 300)...)
		if err := e.Faults().Crash(CrashOptions{Down: 200 * time.Millisecond, HoldEvents: true, ReplayDelay: 200 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		res, err := e.ReleaseStaged(ctxT(t), false)
		if err != nil || res.Unreached != 300 {
			t.Fatalf("release while down = %+v, %v", res, err)
		}
		if err := e.WaitUp(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		c := dial(t, e, bot, nil)
		expectFrames(t, c, numbered(bot, "h", 300))
		if s := e.Stats(); s.EventsHeld != 300 {
			t.Fatalf("held %d", s.EventsHeld)
		}
	})
	t.Run("normal mode queues for polling", func(t *testing.T) {
		e := start(t, Config{Mode: ModeNormal})
		e.Stage(bot, numbered(bot, "p", 4)...)
		if res, _ := e.ReleaseStaged(ctxT(t), true); res.Unreached != 4 || !res.Written {
			t.Fatalf("release = %+v", res)
		}
		if n := e.QueuedEvents(bot); n != 4 {
			t.Fatalf("queued %d", n)
		}
	})
}

func TestAdminStage(t *testing.T) {
	e := start(t, Config{})
	c := dial(t, e, bot, nil)
	if err := e.WaitSockets(ctxT(t), bot, 1); err != nil {
		t.Fatal(err)
	}
	u := e.URL() + "/_emulator/"
	f1, f2 := frameFor(bot, "one"), frameFor(bot, "two")
	do(t, http.MethodPost, u+"stage", `{"account":"`+bot+`","frames":[`+string(f1)+`,`+string(f2)+`]}`).expect(t, 200, `{"staged":2,"total":2}`)
	do(t, http.MethodPost, u+"stage", `{"raw_frames":["not json"]}`).expect(t, 200, `{"staged":1,"total":3}`)
	do(t, http.MethodGet, u+"stage", "").expect(t, 200, `{"total":3}`)
	c.none(t, 20*time.Millisecond)
	var res ReleaseResult
	r := do(t, http.MethodPost, u+"stage/release", `{"wait":true}`)
	decodeJSON(t, r, &res)
	if r.status != 200 || res.Released != 3 || res.Accepted != 2 || res.Unreached != 1 || !res.Written || res.TookMS <= 0 {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	expectFrames(t, c, [][]byte{f1, f2})
	if st := e.Stats(); st.Unparseable != 1 {
		t.Fatalf("unparseable %d", st.Unparseable)
	}
	// An empty release and an empty body are fine; DELETE discards.
	r = do(t, http.MethodPost, u+"stage/release", "")
	decodeJSON(t, r, &res)
	if r.status != 200 || res.Released != 0 {
		t.Fatalf("empty release: %d %s", r.status, r.body)
	}
	do(t, http.MethodPost, u+"stage", `{"account":"`+bot+`","frame":`+string(f1)+`}`).expect(t, 200, `{"staged":1,"total":1}`)
	do(t, http.MethodDelete, u+"stage", "").expect(t, 200, `{"discarded":1}`)
	do(t, http.MethodPost, u+"stage/release", "")
	c.none(t, 20*time.Millisecond)
	if r := do(t, http.MethodPost, u+"stage/release", `{"wait":"yes"}`); r.status != 400 {
		t.Fatalf("bad body: %d %s", r.status, r.body)
	}
}

// BenchmarkReleaseStaged measures how fast a released burst of ~400-byte frames reaches
// one draining websocket client.
func BenchmarkReleaseStaged(b *testing.B) {
	e := New(Config{PingInterval: time.Hour})
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	conn, _, err := websocket.DefaultDialer.Dial(e.WebsocketURL(bot), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	go func() {
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	if err := e.WaitSockets(context.Background(), bot, 1); err != nil {
		b.Fatal(err)
	}
	const burst = 10000
	frames := numbered(bot, "bench", burst)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e.Stage(bot, frames...)
		b.StartTimer()
		if _, err := e.ReleaseStaged(context.Background(), true); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*burst)/b.Elapsed().Seconds(), "frames/s")
}
