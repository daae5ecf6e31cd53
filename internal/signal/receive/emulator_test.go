package receive_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/signal"
	"github.com/signal-client/signal-client/internal/signal/receive"
)

// Against the emulator: the receiver survives dropped sockets and refused
// connections (a crashed signal-cli-rest-api), and loses no frame that was
// sent while it was connected.
func TestReceiverAgainstEmulatorDropsAndCrash(t *testing.T) {
	emu := emulator.New(emulator.Config{})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	r, err := receive.New(receive.Options{ServiceURL: emu.URL(), Number: emulator.DefaultAccount, ClientID: "rx",
		Backoff: receive.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}, HandOff: 10000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var lastConn uint64
	// wait until a new connection is up on both ends.
	wait := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := r.State()
			if st.Connected && st.ConnID > lastConn && emu.OpenSockets(emulator.DefaultAccount) == 1 {
				lastConn = st.ConnID
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new connection: state %+v, emulator sockets %d", st, emu.OpenSockets(emulator.DefaultAccount))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var sent []int64
	inject := func(n int) {
		for i := 0; i < n; i++ {
			ts := emu.NextTimestamp()
			frame := []byte(fmt.Sprintf(`{"envelope":{"source":"+15550000002","sourceNumber":"+15550000002","sourceUuid":"3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11","sourceName":"Alice","sourceDevice":1,"timestamp":%d,"serverReceivedTimestamp":%d,"serverDeliveredTimestamp":%d,"dataMessage":{"timestamp":%d,"message":"msg %d","expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"%s"}`, ts, ts, ts, ts, i, emulator.DefaultAccount))
			if emu.Inject(emulator.DefaultAccount, frame) == 1 {
				sent = append(sent, ts)
			}
		}
	}
	// flushed waits until the emulator wrote every accepted frame: a frame
	// still queued when a connection dies was never sent.
	flushed := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for st := emu.Stats(); st.FramesDelivered < st.FramesAccepted; st = emu.Stats() {
			if time.Now().After(deadline) {
				t.Fatalf("emulator did not write its frames: %+v", st)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	wait()
	inject(50)
	flushed()
	if n := emu.Faults().DropSockets(emulator.SocketSelector{}); n != 1 {
		t.Fatalf("dropped %d sockets", n)
	}
	wait()
	inject(50)
	flushed()
	if err := emu.Faults().Crash(emulator.CrashOptions{Down: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	wait()
	inject(50)

	got := map[int64]bool{}
	deadline := time.After(10 * time.Second)
	for len(got) < len(sent) {
		select {
		case f := <-r.Frames():
			fr, err := signal.Decode(f.Data)
			if err != nil {
				t.Fatal(err)
			}
			got[int64(fr.Envelope.Timestamp)] = true
		case <-deadline:
			seg := [3]int{}
			for i, ts := range sent {
				if got[ts] {
					seg[i*3/len(sent)]++
				}
			}
			t.Fatalf("received %d of %d frames sent while connected (per phase %v); stats %+v, emulator %+v", len(got), len(sent), seg, r.Stats(), emu.Stats())
		}
	}
	for _, ts := range sent {
		if !got[ts] {
			t.Fatalf("frame %d lost", ts)
		}
	}
	if st := r.Stats(); st.Reconnects < 2 {
		t.Fatalf("reconnects %d, want ≥ 2 (drop and crash)", st.Reconnects)
	}
	t.Logf("%d frames sent while connected, all received across a socket drop and a crash; %d reconnects", len(sent), r.Stats().Reconnects)
}
