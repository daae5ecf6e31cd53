package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// account is the emulator's default bot account.
const account = "+15550000001"

// pipelineConfig describes one signal-client run.
type pipelineConfig struct {
	Bin    string        // directory with the built binaries
	Dir    string        // scratch directory for logs
	N      int           // messages
	Convs  int           // conversations the messages are spread over
	Echo   bool          // "!echo" commands answered through REST instead of plain texts
	Batch  int           // frames per admin inject call
	Shards int           // WORKER_SHARD_COUNT
	Idle   time.Duration // measure idle CPU this long after the run (0: skip)
	Rate   int           // frames per second to inject at (0: unpaced)
	Queue  int           // ingester QUEUE_SIZE (0: max(N, 1000))
}

func (c pipelineConfig) queueSize() int {
	if c.Queue > 0 {
		return c.Queue
	}
	return max(c.N, 1000)
}

// runPipeline starts the emulator, one ingester and one worker against rs,
// injects cfg.N frames as fast as the emulator admin API takes them, and waits
// until the worker handled (or, for echo, the emulator received a reply to)
// every one.
func runPipeline(ctx context.Context, rs *redisServer, cfg pipelineConfig) (result, error) {
	if err := rs.flush(ctx); err != nil {
		return result{}, fmt.Errorf("bench: pipeline: flush: %w", err)
	}
	emuPort, err := freePort()
	if err != nil {
		return result{}, err
	}
	emuURL := "http://127.0.0.1:" + strconv.Itoa(emuPort)
	emu, err := startProc(cfg.Dir, "emulator", filepath.Join(cfg.Bin, "signal-emulator"), nil,
		"--listen", "127.0.0.1:"+strconv.Itoa(emuPort), "--log-level", "warn")
	if err != nil {
		return result{}, err
	}
	defer emu.stop()
	if err := waitFor(ctx, 10*time.Second, func() bool { return httpGetOK(emuURL + "/_emulator/stats") }); err != nil {
		return result{}, fmt.Errorf("bench: emulator not up: %w; log:\n%s", err, emu.tail(20))
	}

	common := []string{"SIGNAL_PHONE_NUMBER=" + account, "SIGNAL_SERVICE_URL=" + emuURL, "SIGNAL_API_URL=" + emuURL,
		"REDIS_URL=redis://" + rs.addr, "WORKER_SHARD_COUNT=" + strconv.Itoa(cfg.Shards), "LOG_LEVEL=warn", "LOG_FORMAT=json",
		"HEALTH_ADDR=127.0.0.1", "METRICS_ADDR=127.0.0.1", "RATE_LIMIT=0",
		// The injection is one unpaced burst; the default queue (1000) drops
		// frames under it by design (frames_dropped_total{reason="queue_full"}).
		"QUEUE_SIZE=" + strconv.Itoa(cfg.queueSize())}
	start := func(binary, name string) (*proc, int, error) {
		hp, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		mp, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		env := append(append([]string(nil), common...), "HEALTH_PORT="+strconv.Itoa(hp), "METRICS_PORT="+strconv.Itoa(mp), "INSTANCE_ID="+name)
		p, err := startProc(cfg.Dir, name, filepath.Join(cfg.Bin, binary), env)
		if err != nil {
			return nil, 0, err
		}
		ready := "http://127.0.0.1:" + strconv.Itoa(hp) + "/ready"
		if err := waitFor(ctx, 20*time.Second, func() bool { return !p.exited() && httpGetOK(ready) }); err != nil {
			p.stop()
			return nil, 0, fmt.Errorf("bench: %s not ready: %w; log:\n%s", name, err, p.tail(20))
		}
		return p, mp, nil
	}
	ing, ingMetrics, err := start("ingester", "ingester")
	if err != nil {
		return result{}, err
	}
	defer ing.stop()
	wrk, wrkMetrics, err := start("worker", "worker")
	if err != nil {
		return result{}, err
	}
	defer wrk.stop()
	if err := waitFor(ctx, 20*time.Second, func() bool {
		var st emuStats
		return getJSON(emuURL+"/_emulator/stats", &st) == nil && st.SocketsOpen >= 1
	}); err != nil {
		return result{}, fmt.Errorf("bench: ingester websocket did not connect: %w; log:\n%s", err, ing.tail(20))
	}
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(wrkMetrics) + "/metrics"
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr})
	defer rdb.Close()
	var streamKeys []string
	if err := waitFor(ctx, 20*time.Second, func() bool {
		streamKeys, _ = rdb.Keys(ctx, "*:in").Result()
		return len(streamKeys) >= cfg.Shards
	}); err != nil {
		return result{}, fmt.Errorf("bench: worker created %d of %d shard streams: %w", len(streamKeys), cfg.Shards, err)
	}

	procs := []*proc{emu, ing, wrk, rs.proc}
	before := make([]usage, len(procs))
	for i, p := range procs {
		before[i] = mustUsage(p.pid())
	}
	self0 := selfUsage()
	t0 := time.Now()
	injErr := make(chan error, 1)
	injected := make(chan time.Duration, 1)
	go func() {
		err := inject(ctx, emuURL, cfg)
		injected <- time.Since(t0)
		injErr <- err
	}()

	done := func() (bool, error) {
		if cfg.Echo {
			var st emuStats
			if err := getJSON(emuURL+"/_emulator/stats", &st); err != nil {
				return false, err
			}
			return st.CallsByRoute["POST /v2/send"] >= int64(cfg.N), nil
		}
		// Scraping the worker is not free (its /metrics reads every shard's
		// length and lag from Redis), so poll the groups in Redis instead and
		// scrape only once they look drained.
		if drained, err := groupsDrained(ctx, rdb, streamKeys); err != nil || !drained {
			return false, err
		}
		m, err := scrape(metricsURL)
		if err != nil {
			return false, err
		}
		return m["signal_client_messages_handled_total"] >= float64(cfg.N), nil
	}
	for {
		ok, err := done()
		if err == nil && ok {
			break
		}
		select {
		case err := <-injErr:
			if err != nil {
				return result{}, err
			}
			injErr = nil
		case <-ctx.Done():
			m, _ := scrape(metricsURL)
			totals := strings.Fields(counters(metricsURL))
			return result{}, fmt.Errorf("bench: pipeline: handled %v of %d: %w; worker counters: %s; ingester counters: %s; streams: %s",
				m["signal_client_messages_handled_total"], cfg.N, ctx.Err(), strings.Join(totals, " "),
				counters("http://127.0.0.1:"+strconv.Itoa(ingMetrics)+"/metrics"), diagnose(rs))
		case <-time.After(10 * time.Millisecond):
		}
	}
	elapsed := time.Since(t0)
	names := []string{"emulator", "ingester", "worker", "redis"}
	res := result{Scenario: "signal-client no-op", N: cfg.N, Elapsed: elapsed, Rate: float64(cfg.N) / elapsed.Seconds()}
	// Injection is done by now (every frame was handled); its own rate bounds
	// the pipeline's.
	res.InjectRate = float64(cfg.N) / (<-injected).Seconds()
	res.Procs = append(res.Procs, procUsage{"bench (injector)", delta(self0, selfUsage())})
	for i, p := range procs {
		res.Procs = append(res.Procs, procUsage{names[i], delta(before[i], mustUsage(p.pid()))})
	}
	m, err := scrape(metricsURL)
	if err != nil {
		return result{}, fmt.Errorf("bench: pipeline: final scrape: %w", err)
	}
	// Idle CPU: the same processes with no traffic, for cfg.Idle.
	if cfg.Idle > 0 {
		i0 := []usage{mustUsage(ing.pid()), mustUsage(wrk.pid())}
		time.Sleep(cfg.Idle)
		i1 := []usage{mustUsage(ing.pid()), mustUsage(wrk.pid())}
		res.IdleCPU = fmt.Sprintf("ingester %.1f%%, worker %.1f%% of a core over %v idle",
			100*(i1[0].CPU-i0[0].CPU).Seconds()/cfg.Idle.Seconds(), 100*(i1[1].CPU-i0[1].CPU).Seconds()/cfg.Idle.Seconds(), cfg.Idle)
	}
	hp50, hp99, hmax := histogramPcts(m, "signal_client_e2e_latency_seconds")
	res.P50, res.P99, res.Max = hp50, hp99, hmax
	res.LatencyOf = "emit → handler start (histogram bucket bound, ms timestamps)"
	if cfg.Rate > 0 {
		res.Scenario += fmt.Sprintf(" @ %d/s", cfg.Rate)
	}
	if cfg.Echo {
		res.Scenario = strings.Replace(res.Scenario, "no-op", "echo", 1)
		lat, err := replyLatencies(emuURL)
		if err != nil {
			return result{}, err
		}
		if len(lat) < cfg.N {
			return result{}, fmt.Errorf("bench: echo: %d replies with a timestamp, want %d", len(lat), cfg.N)
		}
		res.P50, res.P99, res.Max = lat.pct(0.5), lat.pct(0.99), lat.pct(1)
		res.LatencyOf = fmt.Sprintf("emit → reply received at the emulator (handler start p50 ≤%v p99 ≤%v)", hp50, hp99)
	}
	return res, nil
}

type emuStats struct {
	SocketsOpen  int              `json:"sockets_open"`
	CallsByRoute map[string]int64 `json:"calls_by_route"`
}

// frame is a 1:1 text in the shape signal-cli sends (reference §3.8 (a)),
// about 400 bytes; the text carries the injection time in ns.
func frame(conv, seq int, ts int64, text string) []byte {
	num := fmt.Sprintf("+1555%07d", conv)
	uuid := fmt.Sprintf("3f1c7a52-8e0b-4d1e-9a52-%012d", conv)
	return []byte(fmt.Sprintf(`{"envelope":{"source":"%s","sourceNumber":"%s","sourceUuid":"%s","sourceName":"U","sourceDevice":1,"timestamp":%d,"serverReceivedTimestamp":%d,"serverDeliveredTimestamp":%d,"dataMessage":{"timestamp":%d,"message":%q,"expiresInSeconds":0,"isExpirationUpdate":false,"viewOnce":false}},"account":"%s"}`,
		num, num, uuid, ts, ts, ts, ts, text, account))
}

// inject posts cfg.N frames round-robin over cfg.Convs conversations,
// cfg.Batch per admin call. Envelope timestamps are the wall clock in ms,
// bumped per conversation to stay unique (the ingester deduplicates on them).
func inject(ctx context.Context, emuURL string, cfg pipelineConfig) error {
	last := make([]int64, cfg.Convs)
	seq := make([]int, cfg.Convs)
	c := &http.Client{Timeout: 30 * time.Second}
	begin := time.Now()
	for i := 0; i < cfg.N; {
		if cfg.Rate > 0 {
			// Paced: frame i is due at i/Rate after the start.
			if wait := time.Until(begin.Add(time.Duration(i) * time.Second / time.Duration(cfg.Rate))); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		frames := make([]json.RawMessage, 0, cfg.Batch)
		for ; i < cfg.N && len(frames) < cfg.Batch; i++ {
			conv := i % cfg.Convs
			now := time.Now()
			ts := now.UnixMilli()
			if ts <= last[conv] {
				ts = last[conv] + 1
			}
			last[conv] = ts
			text := fmt.Sprintf("hello c%d m%d t%d", conv, seq[conv], now.UnixNano())
			if cfg.Echo {
				text = "!echo " + text
			}
			seq[conv]++
			frames = append(frames, frame(conv, seq[conv], ts, text))
		}
		body, _ := json.Marshal(map[string]any{"account": account, "frames": frames})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, emuURL+"/_emulator/inject", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("bench: inject: %w", err)
		}
		var out struct {
			Delivered []int `json:"delivered"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("bench: inject: status %d: %v", resp.StatusCode, err)
		}
		for _, d := range out.Delivered {
			if d != 1 {
				return fmt.Errorf("bench: inject: a frame reached %d sockets, want 1 (is exactly one ingester connected?)", d)
			}
		}
	}
	return nil
}

var tRe = regexp.MustCompile(`t(\d+)`)

// replyLatencies reads the recorded /v2/send calls and returns, per reply,
// the time from injection (in the echoed text) to the emulator receiving it.
func replyLatencies(emuURL string) (latencies, error) {
	var calls []struct {
		Time time.Time `json:"time"`
		Body struct {
			Message string `json:"message"`
		} `json:"body"`
	}
	if err := getJSON(emuURL+"/_emulator/calls?route=/v2/send", &calls); err != nil {
		return nil, fmt.Errorf("bench: echo: read calls: %w", err)
	}
	lat := make(latencies, 0, len(calls))
	for _, c := range calls {
		m := tRe.FindStringSubmatch(c.Body.Message)
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseInt(m[1], 10, 64)
		lat = append(lat, c.Time.Sub(time.Unix(0, ns)))
	}
	return lat, nil
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// scrape returns the samples of a Prometheus text endpoint by series (labels included).
func scrape(url string) (map[string]float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b := new(bytes.Buffer)
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(b.String(), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

// histogramPcts returns the upper bounds of the buckets holding the 50th and
// 99th percentile and the maximum; +Inf is reported as a huge duration.
func histogramPcts(m map[string]float64, name string) (p50, p99, max time.Duration) {
	type bucket struct {
		le    float64
		count float64
	}
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le := strings.TrimSuffix(strings.TrimPrefix(k, prefix), `"}`)
		f, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			f, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, bucket{f, v})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 {
		return 0, 0, 0
	}
	total := bs[len(bs)-1].count
	at := func(q float64) time.Duration {
		for _, b := range bs {
			if b.count >= q*total {
				if math.IsInf(b.le, 1) {
					return time.Duration(math.MaxInt64)
				}
				return time.Duration(b.le * float64(time.Second))
			}
		}
		return 0
	}
	return at(0.5), at(0.99), at(1)
}

func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// counters lists the non-zero signal_client_*_total series of an endpoint,
// for failure reports.
func counters(url string) string {
	m, err := scrape(url)
	if err != nil {
		return err.Error()
	}
	var out []string
	for k, v := range m {
		if strings.HasPrefix(k, "signal_client_") && strings.HasSuffix(strings.SplitN(k, "{", 2)[0], "_total") && v != 0 {
			out = append(out, fmt.Sprintf("%s=%v", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// diagnose describes every shard stream (length, per group pending, lag and
// last delivered id) when a run stalls.
func diagnose(rs *redisServer) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: rs.addr})
	defer c.Close()
	keys, err := c.Keys(ctx, "*:in").Result()
	if err != nil {
		return err.Error()
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		n, _ := c.XLen(ctx, k).Result()
		gs, _ := c.XInfoGroups(ctx, k).Result()
		for _, g := range gs {
			if g.Pending != 0 || g.Lag != 0 {
				out = append(out, fmt.Sprintf("%s len=%d group=%s pending=%d lag=%d last=%s", k, n, g.Name, g.Pending, g.Lag, g.LastDeliveredID))
			}
		}
	}
	return strings.Join(out, "; ")
}

// groupsDrained reports whether every consumer group of every shard stream
// has read everything (lag 0) and acknowledged it (pending 0).
func groupsDrained(ctx context.Context, rdb *redis.Client, keys []string) (bool, error) {
	p := rdb.Pipeline()
	cmds := make([]*redis.XInfoGroupsCmd, len(keys))
	for i, k := range keys {
		cmds[i] = p.XInfoGroups(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil {
		return false, err
	}
	for _, c := range cmds {
		gs, _ := c.Result()
		if len(gs) == 0 {
			return false, nil
		}
		for _, g := range gs {
			if g.Pending != 0 || g.Lag != 0 {
				return false, nil
			}
		}
	}
	return true, nil
}
