package deploytest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// addedByIssue6 are metric names the dashboard and the alerts use that the
// operate issue (#6) is adding to the binaries now. The metric-name check
// tolerates their absence, and only theirs; remove them from this list once
// they are exported.
var addedByIssue6 = map[string]bool{
	"signal_client_send_requests_total":          true,
	"signal_client_send_duration_seconds_bucket": true,
	"signal_client_dlq_depth":                    true,
}

// notFromBinaries are series Prometheus itself makes.
var notFromBinaries = map[string]bool{"up": true}

const liveAccount = "+15550000001"

// cluster is a private redis-server, the emulator, one ingester and one worker,
// all as processes of the built binaries.
type cluster struct {
	t        *testing.T
	dir      string
	redisURL string
	password string
	emuURL   string
	procs    map[string]*proc
}

type proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	log     string
	health  int
	metrics int
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (c *cluster) start(name, binary string, env map[string]string, args ...string) *proc {
	c.t.Helper()
	p := &proc{done: make(chan struct{}), log: filepath.Join(c.dir, name+".log"), health: freePort(c.t), metrics: freePort(c.t)}
	f, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir, "INSTANCE_ID=" + name,
		"HEALTH_ADDR=127.0.0.1", "METRICS_ADDR=127.0.0.1", "HEALTH_PORT=" + strconv.Itoa(p.health), "METRICS_PORT=" + strconv.Itoa(p.metrics)}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	c.t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	c.procs[name] = p
	return p
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("process did not exit within 15s of SIGTERM:\n%s", p.tail())
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// scrape returns the series names (labels stripped) of a process's /metrics.
func (p *proc) scrape(t *testing.T) map[string]bool {
	code, body := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.metrics))
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

func startCluster(t *testing.T) *cluster {
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not on PATH: install it (apt-get install redis-server); .ci/run does")
	}
	bin := binaries(t)
	c := &cluster{t: t, dir: t.TempDir(), procs: map[string]*proc{}, password: "deploy-test-password"}
	rp := freePort(t)
	c.start("redis", redisBin, nil, "--port", strconv.Itoa(rp), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", c.dir, "--requirepass", c.password)
	c.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", rp)
	eventually(t, 10*time.Second, "redis-server answers", func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", rp), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	ep := freePort(t)
	c.emuURL = fmt.Sprintf("http://127.0.0.1:%d", ep)
	emu := c.start("emulator", filepath.Join(bin, "signal-emulator"), nil, "--listen", fmt.Sprintf("127.0.0.1:%d", ep), "--accounts", liveAccount)
	eventually(t, 10*time.Second, "emulator answers", func() bool {
		code, _ := httpGet(c.emuURL + "/v1/about")
		return code == 200 || emu.cmd.ProcessState != nil
	})
	pwFile := filepath.Join(c.dir, "redis-password")
	if err := os.WriteFile(pwFile, []byte(c.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SIGNAL_PHONE_NUMBER": liveAccount, "SIGNAL_SERVICE_URL": c.emuURL, "REDIS_URL": c.redisURL,
		"REDIS_PASSWORD_FILE": pwFile, "WORKER_SHARD_COUNT": "4", "LOCK_TTL_SECONDS": "2", "HEARTBEAT_INTERVAL": "200ms",
		"SHARD_LEASE_TTL": "1500ms", "SHUTDOWN_TIMEOUT": "5s", "LOG_FORMAT": "json"}
	for _, name := range []string{"ingester", "worker"} {
		penv := env
		if name == "ingester" {
			// With the spool on, the ingester also exports its depth.
			penv = map[string]string{}
			for k, v := range env {
				penv[k] = v
			}
			penv["DURABLE_QUEUE_ENABLED"] = "true"
			penv["SPOOL_DIR"] = filepath.Join(c.dir, "spool")
		}
		p := c.start(name, filepath.Join(bin, name), penv)
		eventually(t, 30*time.Second, name+" ready", func() bool {
			code, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/ready", p.health))
			select {
			case <-p.done:
				t.Fatalf("%s exited:\n%s", name, p.tail())
			default:
			}
			return code == 200
		})
	}
	return c
}

// TestLiveMetricNames runs the binaries, sends a message through them, and
// checks that every metric the dashboards, alerts and KEDA query use is one the
// binaries export (names in addedByIssue6 excepted while they land).
func TestLiveMetricNames(t *testing.T) {
	uses := usedMetrics(t)
	c := startCluster(t)
	resp, err := http.Post(c.emuURL+"/_emulator/events", "application/json", strings.NewReader(`{"events":[{"text":"!ping"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, 20*time.Second, "a handler ran and heartbeats were handled", func() bool {
		n := c.procs["worker"].scrape(t)
		return n["signal_client_handler_duration_seconds_bucket"] && n["signal_client_heartbeat_latency_seconds_bucket"]
	})
	exported := map[string]bool{}
	for _, name := range []string{"ingester", "worker"} {
		for n := range c.procs[name].scrape(t) {
			exported[n] = true
		}
	}
	for _, name := range sortedUses(uses) {
		switch {
		case exported[name] || notFromBinaries[name]:
			if addedByIssue6[name] {
				t.Logf("%s is exported now: remove it from addedByIssue6", name)
			}
		case addedByIssue6[name]:
			t.Logf("%s not exported yet (added by issue 6); used by %v", name, uses[name])
		default:
			t.Errorf("%s is used by %v but no binary exports it", name, uses[name])
		}
	}
	for name := range addedByIssue6 {
		if _, ok := uses[name]; !ok {
			t.Errorf("addedByIssue6 lists %s, which nothing uses", name)
		}
	}
}

// TestSelftestScript runs the chart's helm-test script against a live
// pipeline: it passes while an ingester and a worker run, and fails naming the
// stage when the worker is gone.
func TestSelftestScript(t *testing.T) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("redis-cli not on PATH (Debian's redis-tools, installed with redis-server)")
	}
	c := startCluster(t)
	pwFile := filepath.Join(c.dir, "redis-password")
	run := func(timeout string) (string, error) {
		cmd := exec.Command("sh", filepath.Join(chartDir, "files", "selftest.sh"))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + c.redisURL, "REDIS_PASSWORD_FILE=" + pwFile,
			"SIGNAL_PHONE_NUMBER=" + liveAccount, "WORKER_SHARD_COUNT=4", "REDIS_KEY_PREFIX=sc", "SELFTEST_TIMEOUT=" + timeout}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	out, err := run("30")
	if err != nil || out != "selftest: ok: a heartbeat was appended, handled and acknowledged in all 4 shards" {
		t.Fatalf("selftest with a running pipeline: %v\n%s", err, out)
	}
	c.procs["worker"].stop(t)
	out, err = run("3")
	if err == nil || !strings.HasPrefix(out, "selftest: FAIL after 3s: 4 of 4 shards not through the pipeline (shards: 0 1 2 3); shard 0: appended but not delivered") {
		t.Fatalf("selftest without a worker: %v\n%s", err, out)
	}
	c.procs["ingester"].stop(t)
	out, err = run("2")
	if err == nil || !strings.Contains(out, "shard 0: nothing appended since the test started (is an ingester leader running?)") {
		t.Fatalf("selftest without an ingester: %v\n%s", err, out)
	}
}
