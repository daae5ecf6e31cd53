package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
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
	Batch  int           // frames per admin call (stage uploads of an unpaced burst, inject calls of a paced run)
	Shards int           // WORKER_SHARD_COUNT
	Idle   time.Duration // measure idle CPU this long after the run (0: skip)
	// Rate is the pace in frames per second (0: unpaced). Unpaced runs stage
	// every frame in the emulator first and release them with one call, so the
	// burst reaches the ingester's socket as fast as the ingester reads it;
	// paced runs post Batch frames per call on schedule.
	Rate  int
	Queue int // ingester QUEUE_SIZE (0: max(N, 1000))
	// Workers is the number of worker processes (0 or 1: one). With several,
	// the bench waits until each holds its fair share of the shards.
	Workers int
	// Sample, when > 0, scrapes the workers' /metrics this often during the
	// run and returns the samples in result.Timeline.
	Sample time.Duration
	// Pprof, when > 0, runs the processes with DEBUG_PPROF=true and takes a
	// CPU profile of this length from the ingester and the first worker,
	// starting with the first injection (result.Profiles).
	Pprof time.Duration
	Env   []string // extra KEY=VALUE settings of the ingester and the workers
	// Warmup, for an unpaced run, is a burst of this many frames sent through
	// the same processes before the measured one (0: none): the processes
	// start fresh per run, and their first burst pays for growing their heaps
	// and Redis's, which a long-running deployment (and the raw and asynq
	// rows, which run inside the warm bench process) does not.
	Warmup int
}

func (c pipelineConfig) workers() int { return max(c.Workers, 1) }

func (c pipelineConfig) staged() bool { return c.Rate <= 0 }

func (c pipelineConfig) ingesterQueue() int {
	if c.Queue > 0 {
		return c.Queue
	}
	return max(c.N, 1000)
}

// runPipeline starts the emulator, one ingester and cfg.workers() workers
// against rs, injects cfg.N frames as fast as the emulator admin API takes them
// (or at cfg.Rate), and waits until the workers handled (or, for echo, the
// emulator received a reply to) every one.
func runPipeline(ctx context.Context, rs *redisServer, cfg pipelineConfig) (result, error) {
	if err := rs.flush(ctx); err != nil {
		return result{}, fmt.Errorf("bench: pipeline: flush: %w", err)
	}
	emuPort, err := freePort()
	if err != nil {
		return result{}, err
	}
	emuURL := "http://127.0.0.1:" + strconv.Itoa(emuPort)
	emuArgs := []string{"--listen", "127.0.0.1:" + strconv.Itoa(emuPort), "--log-level", "warn"}
	emuProf := ""
	if cfg.Pprof > 0 && cfg.Echo {
		// The emulator has no pprof endpoint: it profiles its whole life and
		// writes the file when it stops.
		emuProf = filepath.Join(cfg.Dir, "emulator.cpu.pprof")
		emuArgs = append(emuArgs, "--cpu-profile", emuProf)
	}
	emu, err := startProc(cfg.Dir, "emulator", filepath.Join(cfg.Bin, "signal-emulator"), nil, emuArgs...)
	if err != nil {
		return result{}, err
	}
	defer emu.stop()
	if err := waitFor(ctx, 10*time.Second, func() bool { return httpGetOK(emuURL + "/_emulator/stats") }); err != nil {
		return result{}, fmt.Errorf("bench: emulator not up: %w; log:\n%s", err, emu.tail(20))
	}

	common := []string{"SIGNAL_PHONE_NUMBER=" + account, "SIGNAL_SERVICE_URL=" + emuURL, "SIGNAL_API_URL=" + emuURL,
		"REDIS_URL=redis://" + rs.addr, "WORKER_SHARD_COUNT=" + strconv.Itoa(cfg.Shards), "LOG_LEVEL=warn", "LOG_FORMAT=json",
		"HEALTH_ADDR=127.0.0.1", "METRICS_ADDR=127.0.0.1", "RATE_LIMIT=0"}
	if cfg.Pprof > 0 {
		common = append(common, "DEBUG_PPROF=true")
	}
	common = append(common, cfg.Env...)
	// The worker runs with its default QUEUE_SIZE (its read-ahead, 1000), the
	// setting whose throughput and RSS issue 7 asks about. The ingester gets
	// room for the whole burst: with its default hand-off (1000) it drops most
	// of a burst that arrives faster than it appends
	// (websocket_handoff_dropped_total).
	ingEnv := []string{"QUEUE_SIZE=" + strconv.Itoa(cfg.ingesterQueue())}
	start := func(binary, name string, extra ...string) (*proc, int, error) {
		hp, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		mp, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		env := append(append(append([]string(nil), common...), extra...), "HEALTH_PORT="+strconv.Itoa(hp), "METRICS_PORT="+strconv.Itoa(mp), "INSTANCE_ID="+name)
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
	ing, ingMetrics, err := start("ingester", "ingester", ingEnv...)
	if err != nil {
		return result{}, err
	}
	defer ing.stop()
	var wrks []*proc
	var metricsURLs []string
	for i := 0; i < cfg.workers(); i++ {
		name := "worker"
		if cfg.workers() > 1 {
			name = fmt.Sprintf("worker-%d", i+1)
		}
		wrk, wrkMetrics, err := start("worker", name)
		if err != nil {
			return result{}, err
		}
		defer wrk.stop()
		wrks = append(wrks, wrk)
		metricsURLs = append(metricsURLs, "http://127.0.0.1:"+strconv.Itoa(wrkMetrics)+"/metrics")
	}
	if err := waitFor(ctx, 20*time.Second, func() bool {
		var st emuStats
		return getJSON(emuURL+"/_emulator/stats", &st) == nil && st.SocketsOpen >= 1
	}); err != nil {
		return result{}, fmt.Errorf("bench: ingester websocket did not connect: %w; log:\n%s", err, ing.tail(20))
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr})
	defer rdb.Close()
	var streamKeys []string
	if err := waitFor(ctx, 20*time.Second, func() bool {
		streamKeys, _ = rdb.Keys(ctx, "*:in").Result()
		return len(streamKeys) >= cfg.Shards
	}); err != nil {
		return result{}, fmt.Errorf("bench: worker created %d of %d shard streams: %w", len(streamKeys), cfg.Shards, err)
	}
	{
		// Each worker must hold its fair share before the clock starts, or the
		// run measures the rebalancing instead of W workers (or, with one, the
		// first leases: a worker is ready before it holds any, and the first
		// frames of a paced run would wait for them).
		var owned []float64
		if err := waitFor(ctx, 60*time.Second, func() bool {
			owned, _ = shardsOwned(metricsURLs)
			return balanced(owned, cfg.Shards)
		}); err != nil {
			return result{}, fmt.Errorf("bench: %d workers did not share the %d shards (owned %v): %w", cfg.workers(), cfg.Shards, owned, err)
		}
	}

	// An unpaced burst is uploaded before the clock starts and released at
	// the time its frames are stamped with.
	var staged injectStats
	warm := 0
	var warmScrape map[string]float64
	if cfg.staged() && cfg.Warmup > 0 {
		if warmScrape, err = warmUp(ctx, emuURL, rdb, streamKeys, metricsURLs, cfg); err != nil {
			return result{}, err
		}
		warm = cfg.Warmup
	}
	if cfg.staged() {
		if staged, err = stage(ctx, emuURL, cfg); err != nil {
			return result{}, err
		}
		select {
		case <-time.After(time.Until(staged.Release)):
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}

	procs := append([]*proc{emu, ing}, wrks...)
	procs = append(procs, rs.proc)
	before := make([]usage, len(procs))
	for i, p := range procs {
		before[i] = mustUsage(p.pid())
	}
	self0 := selfUsage()
	t0 := time.Now()
	staged.Late = max(t0.Sub(staged.Release), 0)
	var smp *sampler
	if cfg.Sample > 0 {
		smp = startSampler(ctx, metricsURLs, t0, cfg.Sample)
	}
	var profs chan profileResult
	if cfg.Pprof > 0 {
		profs = make(chan profileResult, 2)
		for _, target := range []struct{ name, url string }{
			{"ingester", "http://127.0.0.1:" + strconv.Itoa(ingMetrics)},
			{wrks[0].name, strings.TrimSuffix(metricsURLs[0], "/metrics")},
		} {
			go func() { profs <- takeProfile(ctx, target.name, target.url, cfg.Pprof) }()
		}
	}
	injErr := make(chan error, 1)
	injected := make(chan injectStats, 1)
	go func() {
		var st injectStats
		var err error
		if cfg.staged() {
			st = staged
			err = release(ctx, emuURL, cfg)
		} else {
			st, err = inject(ctx, emuURL, cfg)
		}
		st.Took = time.Since(t0)
		injected <- st
		injErr <- err
	}()

	done := func() (bool, error) {
		if cfg.Echo {
			var st emuStats
			if err := getJSON(emuURL+"/_emulator/stats", &st); err != nil {
				return false, err
			}
			return st.CallsByRoute["POST /v2/send"] >= int64(cfg.N+warm), nil
		}
		// Scraping the worker is not free (its /metrics reads every shard's
		// length and lag from Redis), so poll the groups in Redis instead and
		// scrape only once they look drained.
		if drained, err := groupsDrained(ctx, rdb, streamKeys); err != nil || !drained {
			return false, err
		}
		m, err := scrapeAll(metricsURLs)
		if err != nil {
			return false, err
		}
		return m["signal_client_messages_handled_total"] >= float64(cfg.N+warm), nil
	}
	for {
		// Not before the injection finished: polling the groups and scraping
		// the worker every 10 ms while a paced run trickles in (its groups
		// look drained between frames) cost the worker more CPU than the
		// messages did and delayed them.
		if injErr == nil {
			ok, err := done()
			if err == nil && ok {
				break
			}
		}
		select {
		case err := <-injErr:
			if err != nil {
				return result{}, err
			}
			injErr = nil
			// Every frame has reached the ingester's socket: one the ingester
			// dropped would keep the run waiting until the timeout.
			if d := droppedFrames("http://127.0.0.1:" + strconv.Itoa(ingMetrics) + "/metrics"); d > 0 {
				return result{}, fmt.Errorf("bench: pipeline: the ingester dropped %v frames (QUEUE_SIZE=%d; raise -queue-size?): %s", d, cfg.ingesterQueue(),
					counters("http://127.0.0.1:"+strconv.Itoa(ingMetrics)+"/metrics"))
			}
		case <-ctx.Done():
			m, _ := scrapeAll(metricsURLs)
			var totals []string
			for _, u := range metricsURLs {
				totals = append(totals, counters(u))
			}
			return result{}, fmt.Errorf("bench: pipeline: handled %v of %d: %w; worker counters: %s; ingester counters: %s; streams: %s",
				m["signal_client_messages_handled_total"], cfg.N, ctx.Err(), strings.Join(totals, " | "),
				counters("http://127.0.0.1:"+strconv.Itoa(ingMetrics)+"/metrics"), diagnose(rs))
		case <-time.After(10 * time.Millisecond):
		}
	}
	elapsed := time.Since(t0)
	res := result{Scenario: "signal-client no-op", N: cfg.N, Elapsed: elapsed, Rate: float64(cfg.N) / elapsed.Seconds()}
	if smp != nil {
		res.Timeline = smp.stop(metricsURLs, t0)
	}
	// Injection is done by now (every frame was handled); its own rate bounds
	// the pipeline's.
	ist := <-injected
	res.InjectRate = float64(cfg.N) / ist.Took.Seconds()
	res.InjectOf = "injection ran at"
	if cfg.staged() {
		res.InjectOf = "the emulator emitted the released burst at"
	}
	res.MaxLead = ist.MaxLead
	res.Procs = append(res.Procs, procUsage{"bench (injector)", delta(self0, selfUsage())})
	for i, p := range procs {
		res.Procs = append(res.Procs, procUsage{p.name, delta(before[i], mustUsage(p.pid()))})
	}
	m, err := scrapeAll(metricsURLs)
	if err != nil {
		return result{}, fmt.Errorf("bench: pipeline: final scrape: %w", err)
	}
	m = subtractScrape(m, warmScrape, "signal_client_e2e_latency_seconds") // the warm-up's observations are not the run's
	if res.ShardsUsed, err = shardsWithTraffic(ctx, rdb, streamKeys); err != nil {
		return result{}, fmt.Errorf("bench: pipeline: stream lengths: %w", err)
	}
	if profs != nil {
		// The profiles end cfg.Pprof after the first injection, whether or not
		// the traffic lasted that long.
		for range 2 {
			p := <-profs
			if p.Err != nil {
				return result{}, fmt.Errorf("bench: pprof of %s: %w", p.Name, p.Err)
			}
			res.Profiles = append(res.Profiles, p)
		}
		sort.Slice(res.Profiles, func(i, j int) bool { return res.Profiles[i].Name < res.Profiles[j].Name })
	}
	// Idle CPU: the same processes with no traffic, for cfg.Idle.
	if cfg.Idle > 0 {
		idle := append([]*proc{ing}, wrks...)
		idle = append(idle, rs.proc)
		i0 := make([]usage, len(idle))
		for i, p := range idle {
			i0[i] = mustUsage(p.pid())
		}
		time.Sleep(cfg.Idle)
		var parts []string
		for i, p := range idle {
			pct := 100 * (mustUsage(p.pid()).CPU - i0[i].CPU).Seconds() / cfg.Idle.Seconds()
			res.Idle = append(res.Idle, idleCPU{p.name, pct})
			parts = append(parts, fmt.Sprintf("%s %.1f%%", p.name, pct))
		}
		res.IdleCPU = fmt.Sprintf("%s of a core over %v idle", strings.Join(parts, ", "), cfg.Idle)
	}
	hp50, hp99, hmax := histogramPcts(m, "signal_client_e2e_latency_seconds")
	res.P50, res.P99, res.Max = hp50, hp99, hmax
	res.LatencyOf = "emit → handler start (histogram bucket bound, ms timestamps)"
	from := "emit"
	if cfg.staged() {
		// Envelope timestamps are the release time (bumped per conversation),
		// not each frame's emission: the figure includes the wait behind the
		// whole burst, in the emulator's socket queue too.
		from = "release"
		res.LatencyOf = fmt.Sprintf("release → handler start (histogram bucket bound, ms timestamps; every frame is stamped with the release time, +1 ms per earlier frame of its conversation to keep them unique, so the figures include queueing behind the whole burst but read low by up to %d ms for a frame emitted before its stamp%s%s)",
			ist.MaxLead.Milliseconds(), leadText(ist.MaxLead, elapsed), lateText(ist.Late))
	}
	if cfg.Rate > 0 {
		res.Scenario += fmt.Sprintf(" @ %d/s", cfg.Rate)
	}
	if cfg.Echo {
		res.Scenario = strings.Replace(res.Scenario, "no-op", "echo", 1)
		var since time.Time
		if warm > 0 {
			since = staged.Release // the warm-up's replies carry its earlier release time
		}
		lat, err := replyLatencies(emuURL, since)
		if err != nil {
			return result{}, err
		}
		if len(lat) < cfg.N {
			return result{}, fmt.Errorf("bench: echo: %d replies with a timestamp, want %d", len(lat), cfg.N)
		}
		res.P50, res.P99, res.Max = lat.pct(0.5), lat.pct(0.99), lat.pct(1)
		res.LatencyOf = fmt.Sprintf("%s → reply received at the emulator (handler start p50 ≤%v p99 ≤%v)", from, hp50, hp99)
		if cfg.staged() {
			res.LatencyOf += fmt.Sprintf("; the release time is in each text, so this includes queueing behind the whole burst%s", lateText(ist.Late))
		}
	}
	if emuProf != "" {
		// The emulator writes its profile when it stops (after the reads above).
		emu.stop()
		b, err := os.ReadFile(emuProf)
		if err == nil && len(b) == 0 {
			err = fmt.Errorf("empty profile %s", emuProf)
		}
		res.Profiles = append(res.Profiles, profileResult{Name: "emulator", Data: b, Err: err})
		sort.Slice(res.Profiles, func(i, j int) bool { return res.Profiles[i].Name < res.Profiles[j].Name })
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

// injectStats describes one injection.
type injectStats struct {
	// Took is first call → last answer (set by the caller); for a staged
	// burst, release → the emulator answering that the ingester's socket
	// took every frame.
	Took time.Duration
	// MaxLead is how far ahead of the wall clock an envelope timestamp was
	// bumped at most (0 or 1 ms when every conversation gets at most about one
	// frame per millisecond); for a staged burst, how far ahead of the release
	// time (an upper bound: a frame is emitted after every earlier one). The
	// e2e histogram measures from the envelope timestamp, so a lead beyond a
	// millisecond makes it read low.
	MaxLead time.Duration
	// Release is the time a staged burst is stamped with and due to be
	// released at; Late is how much later it was released (the latency then
	// reads high by that much).
	Release time.Time
	Late    time.Duration
}

// leadText flags a staged burst whose timestamp bump is comparable to the
// run: most frames then reach the handler before their stamp's time.
func leadText(lead, elapsed time.Duration) string {
	if 2*lead < elapsed {
		return ""
	}
	return fmt.Sprintf(", which is not small against the %v run: these figures are not meaningful", elapsed.Round(time.Millisecond))
}

// lateText notes a release that came noticeably after the stamped time; a
// few ms (the timer and the CPU snapshot) vanish in the histogram buckets.
func lateText(late time.Duration) string {
	if late < 10*time.Millisecond {
		return ""
	}
	return fmt.Sprintf("; the release came %v after the stamped time, which the figure includes", late.Round(time.Millisecond))
}

// stageBudget is the time allowed per frame to build and upload a staged
// burst; the release is planned that far ahead (plus stageSlack).
const (
	stageBudget = 30 * time.Microsecond
	stageSlack  = 300 * time.Millisecond
)

// warmUp sends a burst of cfg.Warmup frames through the pipeline and waits
// until it is handled (no-op: every shard drained and the handled counters
// reach it; echo: that many replies), then returns the workers' metrics so
// that the run's figures can leave the warm-up out.
func warmUp(ctx context.Context, emuURL string, rdb *redis.Client, streamKeys, metricsURLs []string, cfg pipelineConfig) (map[string]float64, error) {
	w := cfg
	w.N = cfg.Warmup
	st, err := stage(ctx, emuURL, w)
	if err != nil {
		return nil, fmt.Errorf("bench: warm-up: %w", err)
	}
	select {
	case <-time.After(time.Until(st.Release)):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := release(ctx, emuURL, w); err != nil {
		return nil, fmt.Errorf("bench: warm-up: %w", err)
	}
	var m map[string]float64
	// A minute, or a millisecond per frame for a large warm-up of echo
	// (about 4 000 replies/s on 2 cores).
	err = waitFor(ctx, max(time.Minute, time.Duration(w.N)*time.Millisecond), func() bool {
		if cfg.Echo {
			var es emuStats
			return getJSON(emuURL+"/_emulator/stats", &es) == nil && es.CallsByRoute["POST /v2/send"] >= int64(w.N)
		}
		if drained, err := groupsDrained(ctx, rdb, streamKeys); err != nil || !drained {
			return false
		}
		m, err = scrapeAll(metricsURLs)
		return err == nil && m["signal_client_messages_handled_total"] >= float64(w.N)
	})
	if err != nil {
		return nil, fmt.Errorf("bench: warm-up burst of %d frames not handled: %w", w.N, err)
	}
	if cfg.Echo {
		// The wait was on the replies: the metrics are taken now.
		if m, err = scrapeAll(metricsURLs); err != nil {
			return nil, fmt.Errorf("bench: warm-up: %w", err)
		}
	}
	return m, nil
}

// subtractScrape returns m with before's values taken off the series named
// prefix… (a counter's or a histogram's count since before; gauges must not
// go through it); nil before returns m.
func subtractScrape(m, before map[string]float64, prefix string) map[string]float64 {
	if before == nil {
		return m
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			v -= before[k]
		}
		out[k] = v
	}
	return out
}

// stage uploads cfg.N frames round-robin over cfg.Convs conversations to the
// emulator's stage without injecting them. They are stamped with the planned
// release time (st.Release), bumped by 1 ms per earlier frame of the same
// conversation to stay unique (the ingester deduplicates on them); the text
// carries the release time in ns for the echo latency.
func stage(ctx context.Context, emuURL string, cfg pipelineConfig) (injectStats, error) {
	var st injectStats
	c := &http.Client{Timeout: 60 * time.Second}
	if err := post(ctx, c, http.MethodDelete, emuURL+"/_emulator/stage", nil, nil); err != nil {
		return st, fmt.Errorf("bench: stage: %w", err)
	}
	st.Release = time.Now().Add(stageSlack + time.Duration(cfg.N)*stageBudget)
	base := st.Release.UnixMilli()
	seq := make([]int, cfg.Convs)
	chunk := max(cfg.Batch, 1)
	frames := make([][]byte, 0, chunk)
	total := 0
	for i := 0; i < cfg.N; {
		frames = frames[:0]
		for ; i < cfg.N && len(frames) < chunk; i++ {
			conv := i % cfg.Convs
			ts := base + int64(seq[conv])
			st.MaxLead = max(st.MaxLead, time.Duration(ts-base)*time.Millisecond)
			text := fmt.Sprintf("hello c%d m%d t%d", conv, seq[conv], st.Release.UnixNano())
			if cfg.Echo {
				text = "!echo " + text
			}
			seq[conv]++
			frames = append(frames, frame(conv, seq[conv], ts, text))
		}
		var out struct {
			Total int `json:"total"`
		}
		if err := post(ctx, c, http.MethodPost, emuURL+"/_emulator/stage", injectBody(frames), &out); err != nil {
			return st, fmt.Errorf("bench: stage: %w", err)
		}
		total = out.Total
	}
	if total != cfg.N {
		return st, fmt.Errorf("bench: stage: the emulator holds %d frames, want %d", total, cfg.N)
	}
	return st, nil
}

// release injects the staged burst with one call that answers once the
// emulator wrote every frame to the ingester's socket.
func release(ctx context.Context, emuURL string, cfg pipelineConfig) error {
	c := &http.Client{Timeout: 10 * time.Minute}
	var out struct {
		Released  int   `json:"released"`
		Accepted  int64 `json:"accepted"`
		Unreached int   `json:"unreached"`
		Written   bool  `json:"written"`
	}
	if err := post(ctx, c, http.MethodPost, emuURL+"/_emulator/stage/release", []byte(`{"wait":true}`), &out); err != nil {
		return fmt.Errorf("bench: release: %w", err)
	}
	if out.Released != cfg.N || out.Accepted != int64(cfg.N) || out.Unreached != 0 || !out.Written {
		return fmt.Errorf("bench: release: %+v, want all %d frames accepted by one socket and written (is exactly one ingester connected?)", out, cfg.N)
	}
	return nil
}

// injectBody is the JSON of an inject or stage call for frames, which are
// JSON already.
func injectBody(frames [][]byte) []byte {
	n := 64
	for _, f := range frames {
		n += len(f) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"account":"`+account+`","frames":[`...)
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	return append(b, "]}"...)
}

// post sends body (JSON, may be nil) and decodes a 2xx answer into out (may be nil).
func post(ctx context.Context, c *http.Client, method, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("%s %s: status %d: %s", method, url, resp.StatusCode, strings.TrimSpace(b.String()))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// droppedFrames sums the ingester's drop counters at a metrics endpoint:
// frames_dropped_total over its reasons and websocket_handoff_dropped_total.
func droppedFrames(url string) float64 {
	m, err := scrape(url)
	if err != nil {
		return 0
	}
	d := 0.0
	for k, v := range m {
		name := strings.SplitN(k, "{", 2)[0]
		if name == "signal_client_frames_dropped_total" || name == "signal_client_websocket_handoff_dropped_total" {
			d += v
		}
	}
	return d
}

// inject posts cfg.N frames round-robin over cfg.Convs conversations,
// cfg.Batch per admin call, at cfg.Rate. Envelope timestamps are the wall clock in ms,
// bumped per conversation to stay unique (the ingester deduplicates on them).
func inject(ctx context.Context, emuURL string, cfg pipelineConfig) (injectStats, error) {
	var st injectStats
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
					return st, ctx.Err()
				}
			}
		}
		frames := make([][]byte, 0, cfg.Batch)
		for ; i < cfg.N && len(frames) < cfg.Batch; i++ {
			conv := i % cfg.Convs
			now := time.Now()
			ts := now.UnixMilli()
			if ts <= last[conv] {
				ts = last[conv] + 1
				st.MaxLead = max(st.MaxLead, time.Duration(ts-now.UnixMilli())*time.Millisecond)
			}
			last[conv] = ts
			text := fmt.Sprintf("hello c%d m%d t%d", conv, seq[conv], now.UnixNano())
			if cfg.Echo {
				text = "!echo " + text
			}
			seq[conv]++
			frames = append(frames, frame(conv, seq[conv], ts, text))
		}
		var out struct {
			Delivered []int `json:"delivered"`
		}
		if err := post(ctx, c, http.MethodPost, emuURL+"/_emulator/inject", injectBody(frames), &out); err != nil {
			return st, fmt.Errorf("bench: inject: %w", err)
		}
		for _, d := range out.Delivered {
			if d != 1 {
				return st, fmt.Errorf("bench: inject: a frame reached %d sockets, want 1 (is exactly one ingester connected?)", d)
			}
		}
	}
	return st, nil
}

var tRe = regexp.MustCompile(`t(\d+)`)

// replyLatencies reads the recorded /v2/send calls and returns, per reply
// to a frame injected at since or later, the time from injection (in the
// echoed text) to the emulator receiving it.
func replyLatencies(emuURL string, since time.Time) (latencies, error) {
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
		if !since.IsZero() && ns < since.UnixNano() {
			continue
		}
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
	bs := buckets(m, name)
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

// scrapeAll scrapes every url and sums each series over them (the workers
// of a run: counters and histogram buckets add up).
func scrapeAll(urls []string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, u := range urls {
		m, err := scrape(u)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] += v
		}
	}
	return out, nil
}

// shardsOwned returns signal_client_shards_owned of every worker.
func shardsOwned(urls []string) ([]float64, error) {
	var out []float64
	for _, u := range urls {
		m, err := scrape(u)
		if err != nil {
			return out, err
		}
		out = append(out, m["signal_client_shards_owned"])
	}
	return out, nil
}

// balanced reports whether the workers together own all shards and each holds
// at most its fair share ceil(shards / workers) (ARCHITECTURE §6.1).
func balanced(owned []float64, shards int) bool {
	if len(owned) == 0 {
		return false
	}
	fair := float64((shards + len(owned) - 1) / len(owned))
	sum := 0.0
	for _, o := range owned {
		if o > fair || o == 0 {
			return false
		}
		sum += o
	}
	return sum == float64(shards)
}

// shardsWithTraffic counts the shard streams holding more than heartbeats,
// i.e. the shards the conversations of the run hashed to. Heartbeats come
// every HEARTBEAT_INTERVAL (5 s), so the first 50 entries of a shard that got
// traffic hold a message.
func shardsWithTraffic(ctx context.Context, rdb *redis.Client, keys []string) (int, error) {
	p := rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = p.XRangeN(ctx, k, "-", "+", 50)
	}
	if _, err := p.Exec(ctx); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cmds {
		for _, e := range c.Val() {
			// The routing metadata field "m" is "version|kind|..." (internal/streams).
			if m, _ := e.Values["m"].(string); m != "" && !strings.Contains(m, "|heartbeat|") {
				n++
				break
			}
		}
	}
	return n, nil
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
