package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/e2e"
)

// The demo itself is a test: every step must be answered as expected, checked
// against the emulator's recorded calls.
func TestDemo(t *testing.T) {
	bin, err := e2e.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Bin: bin, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	Summary(&out, res, time.Second)
	t.Log("\n" + out.String())
	if !res.OK() {
		t.Fatalf("demo failed: %v", res.Failures)
	}
	for _, want := range []string{"← bot: pong", "← bot [Ops]: deploy done", "Bob (hidden number)    ← bot: hi, I am hidden",
		"← bot: Commands: …", "← bot: thanks for the 👍", "← bot: hello, fixed (edited)", "Carol                  ← bot [Ops]: 3",
		"replayed 1 entry", "(delivered after the replay)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
}
