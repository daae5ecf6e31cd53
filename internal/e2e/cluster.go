// Package e2e runs signal-client as it runs in production, for tests and
// benchmarks: the built binaries as separate processes (so kill -9 is a real
// crash), a private redis-server and the signal-cli-rest-api emulator. The
// binaries come from SIGNAL_CLIENT_BIN (set by `make test`) or are built once
// into a temporary directory.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/redistest"
)

// Account is the bot account every e2e run uses (the emulator's default).
const Account = "+15550000001"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries returns the directory holding the built binaries.
func Binaries() (string, error) {
	buildOnce.Do(func() {
		if d := os.Getenv("SIGNAL_CLIENT_BIN"); d != "" {
			binDir = d
			return
		}
		dir, err := os.MkdirTemp("", "signal-client-bin-*")
		if err != nil {
			buildErr = err
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("e2e: go build ./cmd/...: %v\n%s", err, out)
			return
		}
		binDir = dir
	})
	return binDir, buildErr
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("e2e: go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Proc is one running binary.
type Proc struct {
	Name        string
	cmd         *exec.Cmd
	done        chan struct{}
	exit        error
	LogPath     string
	HealthPort  int
	MetricsPort int
}

// StartProc runs binary name with env (on top of a minimal environment) and
// extra args; its output goes to a log file in dir.
func StartProc(t testing.TB, dir, binary, name string, env map[string]string, args ...string) *Proc {
	t.Helper()
	bin, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	hp, _ := redistest.FreePort()
	mp, _ := redistest.FreePort()
	p := &Proc{Name: name, LogPath: filepath.Join(dir, name+".log"), HealthPort: hp, MetricsPort: mp, done: make(chan struct{})}
	f, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, binary), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"HEALTH_PORT=" + strconv.Itoa(hp), "METRICS_PORT=" + strconv.Itoa(mp), "HEALTH_ADDR=127.0.0.1", "METRICS_ADDR=127.0.0.1",
		"INSTANCE_ID=" + name, "LOG_LEVEL=info"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	p.cmd = cmd
	go func() { p.exit = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { p.Kill9() })
	return p
}

// Kill9 crashes the process (SIGKILL) and waits for it.
func (p *Proc) Kill9() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// Term sends SIGTERM and waits up to d for a clean exit; it returns the exit error.
func (p *Proc) Term(d time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exit
	case <-time.After(d):
		p.Kill9()
		return fmt.Errorf("%s did not exit within %v of SIGTERM", p.Name, d)
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Ready fetches /ready; ok is true for a 200.
func (p *Proc) Ready() (bool, map[string]any) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(p.HealthPort) + "/ready")
	if err != nil {
		return false, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode == 200, body
}

// WaitReady waits until /ready answers 200.
func (p *Proc) WaitReady(t testing.TB, d time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, body := p.Ready()
		if ok {
			return body
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v (last /ready %v); log:\n%s", p.Name, d, body, p.Tail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Metrics scrapes /metrics and returns the sample lines by series name
// (labels included in the key).
func (p *Proc) Metrics() (map[string]float64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(p.MetricsPort) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// Tail returns the last n lines of the process log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Eventually polls cond every 20ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: "+format, append([]any{d}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ctx is a context for the test's Redis calls.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
