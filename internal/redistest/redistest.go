// Package redistest starts private redis-server processes for tests.
//
// Every test package that needs Redis starts its own server on a free loopback
// port with Start (usually from TestMain, or per test when a test needs to kill
// and restart the server) and stops it when done. No test ever touches a Redis
// it did not start: the shared instance a developer machine may run on 6379 is
// never used.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoBinary is returned when redis-server is not on PATH (or REDIS_SERVER_BIN).
var ErrNoBinary = errors.New("redistest: redis-server not found on PATH; install it (apt-get install redis-server) or set REDIS_SERVER_BIN")

// Options configure a test server.
type Options struct {
	// AOF turns on appendonly with appendfsync always, so that a killed and
	// restarted server keeps every acknowledged write.
	AOF bool
	// Dir holds the server's data files; a fresh temporary directory when empty.
	// Reuse the same Dir (and Port) to restart a server with its data.
	Dir string
	// Port to listen on; a free loopback port when 0.
	Port int
	// Password sets requirepass when not empty.
	Password string
	// MaxMemoryPolicy sets maxmemory-policy when not empty (e.g. "allkeys-lru"
	// to test preflight refusals).
	MaxMemoryPolicy string
	// Args are extra "--name value" arguments passed verbatim.
	Args []string
}

// Server is one running redis-server child process.
type Server struct {
	opts    Options
	Addr    string // host:port on 127.0.0.1
	Port    int
	Dir     string
	cmd     *exec.Cmd
	mu      sync.Mutex
	done    chan struct{}
	ownsDir bool
}

// Binary returns the path of redis-server or ErrNoBinary.
func Binary() (string, error) {
	if p := os.Getenv("REDIS_SERVER_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNoBinary
	}
	return p, nil
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start launches a server and waits until it answers PING.
func Start(opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, Port: opts.Port, Dir: opts.Dir}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "redistest-*")
		if err != nil {
			return nil, fmt.Errorf("redistest: temp dir: %w", err)
		}
		s.Dir, s.ownsDir = d, true
		s.opts.Dir = d
	}
	if s.Port == 0 {
		if s.Port, err = FreePort(); err != nil {
			return nil, err
		}
		s.opts.Port = s.Port
	}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	if err := s.start(bin); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) args() []string {
	a := []string{
		"--port", strconv.Itoa(s.Port),
		"--bind", "127.0.0.1",
		"--dir", s.Dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
	}
	if s.opts.AOF {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	if s.opts.MaxMemoryPolicy != "" {
		a = append(a, "--maxmemory-policy", s.opts.MaxMemoryPolicy)
	}
	return append(a, s.opts.Args...)
}

func (s *Server) start(bin string) error {
	cmd := exec.Command(bin, s.args()...)
	// Own process group: the server dies with the test binary's group kill,
	// and never receives a terminal's signals meant for the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		err := c.Ping(context.Background()).Err()
		_ = c.Close()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redistest: redis-server exited at start: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redistest: redis-server on %s did not answer PING within 10s: %v; log: %s", s.Addr, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	f, err := os.Open(filepath.Join(s.Dir, "redis.log"))
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 10 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}

// URL is a redis:// URL for the server (with the password, if any).
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.opts.Password, s.Addr)
	}
	return "redis://" + s.Addr + "/0"
}

// Client returns a new go-redis client for the server; the caller closes it.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password})
}

// Kill stops the server with SIGKILL (as a crash would) and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port and directory; with AOF on,
// every write acknowledged before Kill is still there.
func (s *Server) Restart() error {
	s.Kill()
	bin, err := Binary()
	if err != nil {
		return err
	}
	return s.start(bin)
}

// Close kills the server and removes its temporary directory.
func (s *Server) Close() {
	s.Kill()
	if s.ownsDir {
		_ = os.RemoveAll(s.Dir)
	}
}

// TB is the part of testing.TB that MustStart needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// MustStart starts a server for one test and registers its cleanup; a missing
// binary fails the test with a message saying how to install it.
func MustStart(t TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// M is the part of testing.M that Main needs.
type M interface{ Run() int }

// Main is a test package's TestMain body: it starts one private server for
// the package, stores it in *srv, runs the tests, stops the server and exits
// with the tests' code (1 with the reason when the server cannot start).
func Main(m M, srv **Server) {
	s, err := Start(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

// CPUMeter measures, for a benchmark, the CPU time the server and this
// process spend per message between StartCPU and Report: the split says
// which side is the limit.
type CPUMeter struct {
	s           *Server
	redis, self float64
}

// Bench is the part of testing.B that CPUMeter needs.
type Bench interface {
	Fatalf(format string, args ...any)
	ReportMetric(n float64, unit string)
}

// StartCPU starts a CPUMeter.
func (s *Server) StartCPU(b Bench) CPUMeter {
	r, err := s.CPUSeconds(context.Background())
	if err != nil {
		b.Fatalf("%v", err)
	}
	return CPUMeter{s: s, redis: r, self: processCPU()}
}

// Report reports the CPU since StartCPU per message of n as redis-µs/msg
// and go-µs/msg.
func (m CPUMeter) Report(b Bench, n int) {
	r, err := m.s.CPUSeconds(context.Background())
	if err != nil {
		b.Fatalf("%v", err)
	}
	b.ReportMetric((r-m.redis)*1e6/float64(n), "redis-µs/msg")
	b.ReportMetric((processCPU()-m.self)*1e6/float64(n), "go-µs/msg")
}

func processCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// CPUSeconds is the server's own CPU time so far (user + system, from INFO
// cpu), so a benchmark can report how much of its cost is Redis's.
func (s *Server) CPUSeconds(ctx context.Context) (float64, error) {
	c := s.Client()
	defer c.Close()
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redistest: info cpu: %w", err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_user" && k != "used_cpu_sys") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("redistest: info cpu %s=%q: %w", k, v, err)
		}
		total += f
	}
	return total, nil
}
