package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/signal-client/signal-client/internal/emulator"
	"github.com/signal-client/signal-client/internal/redistest"
)

func TestMain(m *testing.M) {
	if _, err := Binaries(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// Env is one e2e environment: a private Redis and an emulator.
type Env struct {
	T     *testing.T
	Redis *redistest.Server
	Emu   *emulator.Emulator
	Dir   string
}

func newEnv(t *testing.T, redisOpts redistest.Options) *Env {
	t.Helper()
	rs := redistest.MustStart(t, redisOpts)
	emu := emulator.New(emulator.Config{})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return &Env{T: t, Redis: rs, Emu: emu, Dir: t.TempDir()}
}

// env returns the settings every process of the environment shares.
func (e *Env) env(extra map[string]string) map[string]string {
	m := map[string]string{
		"SIGNAL_PHONE_NUMBER": Account,
		"SIGNAL_SERVICE_URL":  e.Emu.URL(),
		"SIGNAL_API_URL":      e.Emu.URL(),
		"REDIS_URL":           e.Redis.URL(),
		"WORKER_SHARD_COUNT":  "16",
		"LOCK_TTL_SECONDS":    "2",
		"REPAIR_DELAY":        "300ms",
		"SHARD_LEASE_TTL":     "1500ms",
		"SHUTDOWN_TIMEOUT":    "5s",
		"LOG_FORMAT":          "json",
		// The bot runtime's sender: no rate limit for throughput tests, a
		// breaker that retries within the tests' patience.
		"RATE_LIMIT":                    "0",
		"CIRCUIT_BREAKER_RESET_TIMEOUT": "1s",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func (e *Env) start(binary, name string, extra map[string]string) *Proc {
	return StartProc(e.T, e.Dir, binary, name, e.env(extra))
}

func (e *Env) waitSockets(n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20_000_000_000)
	defer cancel()
	if err := e.Emu.WaitSockets(ctx, Account, n); err != nil {
		e.T.Fatalf("%d websockets did not connect: %v", n, err)
	}
}
