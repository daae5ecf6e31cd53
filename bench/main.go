// Command bench measures signal-client end to end beside the raw Redis Streams
// ceiling and asynq, against one private redis-server on this machine, and
// prints a markdown table (also written to results/<timestamp>.md).
//
// It drives the built binaries (../bin) as processes, because this module
// cannot import the main module's internal packages. Run it with `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 20000, "messages per scenario run")
	runs := flag.Int("runs", 5, "runs per scenario, round-robin (and per matrix cell); medians are reported (-full: 1 unless given)")
	convs := flag.Int("convs", 1000, "conversations the signal-client messages are spread over")
	batch := flag.Int("batch", 5000, "frames per upload call of an unpaced burst, which is staged in the emulator before the clock starts and released with one call (paced runs post 10 frames per inject call)")
	shards := flag.Int("shards", 16, "WORKER_SHARD_COUNT")
	workers := flag.Int("workers", 1, "worker processes of the signal-client scenarios")
	bin := flag.String("bin", "../bin", "directory with the built binaries")
	out := flag.String("out", "results", "directory for the results file (empty: do not write)")
	only := flag.String("scenarios", "raw,asynq,noop,echo,noop-paced,echo-paced", "comma-separated scenarios to run (empty: none)")
	queue := flag.Int("queue-size", 0, "ingester QUEUE_SIZE (0: max(n, 1000), so an unpaced burst is not dropped); the worker keeps its default")
	paced := flag.Int("paced-rate", 1000, "injection rate of the *-paced latency scenarios and the matrix latency runs, frames/s")
	idle := flag.Duration("idle", 3*time.Second, "after each signal-client run, measure idle CPU this long (0: skip)")
	full := flag.Bool("full", false, "also run the growth matrix and draw the timeline chart (make bench-full)")
	matrixIdle := flag.Duration("matrix-idle", 5*time.Second, "idle CPU measurement after each matrix burst")
	timeline := flag.Duration("timeline", 0, "scrape the workers this often during the first no-op and echo run and draw <ts>-timeline.png (0: off; -full: 100ms unless given)")
	prof := flag.Bool("pprof", false, "take 5 s CPU profiles of the ingester and the worker during an extra no-op run (DEBUG_PPROF=true); see -pprof-scenario")
	profSc := flag.String("pprof-scenario", "noop", "scenario of the -pprof run: noop, or echo (then the emulator's CPU is profiled too, over its whole run, with --cpu-profile)")
	profN := flag.Int("pprof-n", 150000, "messages of the -pprof run (enough to keep traffic flowing for the 5 s profile)")
	env := flag.String("env", "", "comma-separated KEY=VALUE settings added to the environment of the ingester and worker processes (e.g. GOGC=200), for experiments; the report lists them")
	warmup := flag.Int("warmup", -1, "frames of a warm-up burst through the fresh signal-client processes before each measured unpaced run, not measured (-1: as many as -n; 0: none); the raw row gets one discarded warm-up run too")
	timeout := flag.Duration("timeout", 9*time.Minute, "give up after this long (-full: 40m unless given)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *full {
		if !set["runs"] {
			*runs = 1
		}
		if !set["timeline"] {
			*timeline = 100 * time.Millisecond
		}
		if !set["timeout"] {
			*timeout = 40 * time.Minute
		}
	}

	if *warmup < 0 {
		*warmup = *n
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	began := time.Now()
	stamp := began.UTC().Format("20060102T150405Z")
	var scenarios []string
	for _, sc := range strings.Split(*only, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			scenarios = append(scenarios, sc)
		}
	}
	if *profSc != "noop" && *profSc != "echo" {
		fmt.Fprintln(os.Stderr, "bench: -pprof-scenario must be noop or echo")
		os.Exit(2)
	}
	var extraEnv []string
	for _, kv := range strings.Split(*env, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		if !strings.Contains(kv, "=") {
			fmt.Fprintf(os.Stderr, "bench: -env %q: want KEY=VALUE\n", kv)
			os.Exit(2)
		}
		extraEnv = append(extraEnv, kv)
	}
	res, err := run(ctx, options{Env: extraEnv, N: *n, Runs: *runs, Convs: *convs, Batch: *batch, Shards: *shards, Workers: *workers, Bin: *bin, Idle: *idle,
		PacedRate: *paced, Queue: *queue, Scenarios: scenarios, Matrix: *full, MatrixIdle: *matrixIdle, Sample: *timeline,
		Pprof: *prof, PprofN: *profN, PprofEcho: *profSc == "echo", Stamp: stamp, Warmup: *warmup})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	md := res.MD + fmt.Sprintf("\nThe whole bench took %v.\n", time.Since(began).Round(time.Second))
	fmt.Print(md)
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench: results dir:", err)
			os.Exit(1)
		}
		files := append([]outFile{{".md", []byte(md)}}, res.Files...)
		for _, f := range files {
			path := filepath.Join(*out, stamp+f.Suffix)
			if err := os.WriteFile(path, f.Data, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "bench: write results:", err)
				os.Exit(1)
			}
			fmt.Fprintln(os.Stderr, "bench: wrote", path)
		}
	}
}

type options struct {
	N, Runs, Convs, Batch, Shards int
	Workers                       int // worker processes of the signal-client scenarios (0: 1)
	Bin                           string
	Idle                          time.Duration
	PacedRate                     int
	Queue                         int
	Scenarios                     []string
	Matrix                        bool          // run the growth matrix
	MatrixIdle                    time.Duration // idle CPU measurement after each matrix burst
	Sample                        time.Duration // timeline scrape interval of the first no-op and echo run (0: no chart)
	Pprof                         bool          // CPU profiles during an extra no-op (or echo) run
	PprofN                        int           // messages of that run
	PprofEcho                     bool          // the profile run is an echo run (the emulator is profiled too)
	Stamp                         string        // results file name stem; the markdown links <Stamp>-timeline.png
	Env                           []string      // extra KEY=VALUE settings of the signal-client processes
	Warmup                        int           // frames of the warm-up burst before each unpaced signal-client run (0: none)
}

// output is the report and the files that go next to it (results/<stamp><Suffix>).
type output struct {
	MD    string
	Files []outFile
}

type outFile struct {
	Suffix string
	Data   []byte
}

// run executes every scenario opts.Runs times, then the optional profile run
// and growth matrix, and returns the markdown report and its companion files.
func run(ctx context.Context, opts options) (output, error) {
	var o output
	bin, err := filepath.Abs(opts.Bin)
	if err != nil {
		return o, fmt.Errorf("bench: bin dir: %w", err)
	}
	dir, err := os.MkdirTemp("", "signal-client-bench-*")
	if err != nil {
		return o, fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	rs, err := startRedis(dir)
	if err != nil {
		return o, err
	}
	defer rs.stop()

	if opts.Warmup > 0 && slices.ContainsFunc(opts.Scenarios, func(sc string) bool { return strings.TrimSpace(sc) == "raw" }) {
		// The raw row runs in this process: its first run would pay for
		// growing the process's heap and Redis's, as a fresh signal-client
		// process would without its warm-up.
		if _, err := runRaw(ctx, rs, opts.Warmup); err != nil {
			return o, fmt.Errorf("bench: raw warm-up: %w", err)
		}
	}
	var nz noise
	nz.JitterMeasuredFor = 2 * time.Second
	nz.JitP50, nz.JitP99, nz.JitMax = sleepJitter(nz.JitterMeasuredFor)
	t0, s0, stealOK := cpuTicks()
	all := map[string][]result{}
	var order []string
	var series []timelineSeries
	// Round-robin (raw, no-op, ..., raw, no-op, ...), not every run of one
	// scenario in a row: on a shared machine the load drifts within minutes,
	// and a ratio is only fair between runs made side by side.
	for r := 0; r < opts.Runs; r++ {
		for _, sc := range opts.Scenarios {
			sc = strings.TrimSpace(sc)
			rdir := filepath.Join(dir, fmt.Sprintf("%s-%d", sc, r))
			if err := os.MkdirAll(rdir, 0o755); err != nil {
				return o, err
			}
			var res result
			// The timeline scrapes the first run of no-op and echo only, so the
			// other runs stay unperturbed by the scrapes.
			sample := time.Duration(0)
			if r == 0 {
				sample = opts.Sample
			}
			switch sc {
			case "raw":
				res, err = runRaw(ctx, rs, opts.N)
			case "asynq":
				res, err = runAsynq(ctx, rs, opts.N)
			case "noop", "echo":
				res, err = runPipeline(ctx, rs, pipelineConfig{Env: opts.Env, Bin: bin, Dir: rdir, N: opts.N, Convs: opts.Convs, Workers: opts.Workers,
					Echo: sc == "echo", Batch: opts.Batch, Shards: opts.Shards, Idle: opts.Idle, Queue: opts.Queue, Sample: sample, Warmup: opts.Warmup})
			case "noop-paced", "echo-paced":
				// Latency at a steady opts.PacedRate: 5 s of traffic, 10 frames per call.
				res, err = runPipeline(ctx, rs, pipelineConfig{Env: opts.Env, Bin: bin, Dir: rdir, N: min(opts.N, 5*opts.PacedRate), Convs: opts.Convs,
					Workers: opts.Workers, Echo: sc == "echo-paced", Batch: 10, Shards: opts.Shards, Rate: opts.PacedRate, Queue: opts.Queue})
			default:
				return o, fmt.Errorf("bench: unknown scenario %q: use raw, asynq, noop, echo, noop-paced or echo-paced", sc)
			}
			if err != nil {
				return o, fmt.Errorf("bench: %s run %d: %w", sc, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "bench: %-22s run %d: %8.0f msgs/s  p50 %v  p99 %v\n", res.Scenario, r+1, res.Rate, res.P50, res.P99)
			if len(all[sc]) == 0 {
				order = append(order, sc)
			}
			all[sc] = append(all[sc], res)
			if len(res.Timeline) > 1 {
				series = append(series, timelineSeries{Name: res.Scenario, Points: intervals(res.Timeline, timelineQuantiles)})
			}
		}
	}
	med := map[string]result{}
	for _, sc := range order {
		med[sc] = median(all[sc])
	}
	nz.Steal = -1
	if t1, s1, ok := cpuTicks(); ok && stealOK {
		nz.Steal = stealShare(t0, s0, t1, s1)
	}
	var b strings.Builder
	b.WriteString(report(opts, order, med, roundRatios(all), nz))
	if len(series) > 0 {
		png, err := renderTimeline(series, opts.Sample.String())
		if err != nil {
			return o, err
		}
		name := opts.Stamp + "-timeline.png"
		o.Files = append(o.Files, outFile{"-timeline.png", png})
		fmt.Fprintf(&b, "\n### Throughput and latency over time\n\n![throughput and latency over time](%s)\n\n", name)
		b.WriteString(timelineSummary(series, opts.Sample))
	}
	if opts.Pprof {
		rdir := filepath.Join(dir, "pprof")
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return o, err
		}
		const secs = 5 * time.Second
		res, err := runPipeline(ctx, rs, pipelineConfig{Env: opts.Env, Bin: bin, Dir: rdir, N: opts.PprofN, Convs: opts.Convs, Workers: opts.Workers,
			Batch: opts.Batch, Shards: opts.Shards, Queue: opts.Queue, Pprof: secs, Echo: opts.PprofEcho})
		if err != nil {
			return o, fmt.Errorf("bench: pprof run: %w", err)
		}
		what := "no-op"
		if opts.PprofEcho {
			what = "echo"
		}
		fmt.Fprintf(os.Stderr, "bench: pprof run (%s): %8.0f msgs/s over %v\n", what, res.Rate, res.Elapsed.Round(time.Millisecond))
		fmt.Fprintf(&b, "\n### CPU profiles (signal-client %s, DEBUG_PPROF=true)\n\n", what)
		fmt.Fprintf(&b, "%d messages injected unpaced; %v CPU profiles of the ingester and the worker from the first injection; the traffic lasted %v (%.0f msgs/s)",
			res.N, secs, res.Elapsed.Round(time.Millisecond), res.Rate)
		if res.Elapsed < secs {
			b.WriteString(", so the end of the profiles is idle: raise -pprof-n")
		}
		if opts.PprofEcho {
			b.WriteString("; the emulator's profile covers its whole life (start, staging, the run, the final reads of its call log)")
		}
		b.WriteString(". Open with `go tool pprof -http=: <file>`.\n")
		for _, p := range res.Profiles {
			if p.Err != nil {
				fmt.Fprintf(&b, "\n%s: no profile: %v\n", p.Name, p.Err)
				continue
			}
			suffix := "-" + p.Name + ".cpu.pprof"
			o.Files = append(o.Files, outFile{suffix, p.Data})
			fmt.Fprintf(&b, "\n`%s%s`", opts.Stamp, suffix)
			tmp := filepath.Join(rdir, p.Name+".pprof")
			if err := os.WriteFile(tmp, p.Data, 0o644); err == nil {
				if top := pprofTop(tmp, 15); top != "" {
					fmt.Fprintf(&b, " (`go tool pprof -top`, first lines):\n\n```\n%s\n```\n", top)
					continue
				}
			}
			b.WriteString("\n")
		}
	}
	if opts.Matrix {
		cells, err := runMatrix(ctx, rs, bin, dir, opts)
		if err != nil {
			return o, err
		}
		b.WriteString("\n")
		b.WriteString(matrixTables(cells, opts.N, opts.PacedRate, opts.Runs))
	}
	o.MD = b.String()
	return o, nil
}

// median takes each figure's median over the runs independently.
func median(rs []result) result {
	m := rs[0]
	durs := func(f func(result) time.Duration) time.Duration {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	rates := make([]float64, len(rs))
	for i, r := range rs {
		rates[i] = r.Rate
	}
	sort.Float64s(rates)
	m.Rate = rates[len(rates)/2]
	for i, r := range rs {
		rates[i] = r.InjectRate
	}
	sort.Float64s(rates)
	m.InjectRate = rates[len(rates)/2]
	m.Elapsed = durs(func(r result) time.Duration { return r.Elapsed })
	m.P50 = durs(func(r result) time.Duration { return r.P50 })
	m.P99 = durs(func(r result) time.Duration { return r.P99 })
	m.Max = durs(func(r result) time.Duration { return r.Max })
	m.Procs = append([]procUsage(nil), rs[0].Procs...)
	for i := range m.Procs {
		m.Procs[i].CPU = durs(func(r result) time.Duration { return r.Procs[i].CPU })
		m.Procs[i].PeakRSS = int64(durs(func(r result) time.Duration { return time.Duration(r.Procs[i].PeakRSS) }))
	}
	return m
}

// roundRatios returns, per scenario and per baseline (raw, asynq), the ratio
// of the scenario's rate to the baseline's in each round of the run (runs
// made side by side); paced runs, whose rate is the pace, have none.
func roundRatios(all map[string][]result) map[string]map[string][]float64 {
	out := map[string]map[string][]float64{}
	for sc, rs := range all {
		for _, base := range []string{"raw", "asynq"} {
			bs, ok := all[base]
			if !ok {
				continue
			}
			for r := range min(len(rs), len(bs)) {
				if strings.Contains(rs[r].Scenario, " @ ") || rs[r].Rate <= 0 || bs[r].Rate <= 0 {
					continue
				}
				if out[sc] == nil {
					out[sc] = map[string][]float64{}
				}
				out[sc][base] = append(out[sc][base], rs[r].Rate/bs[r].Rate)
			}
		}
	}
	return out
}

// medianOf is the median of xs (the mean of the middle two for an even count).
func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func report(opts options, order []string, med map[string]result, ratios map[string]map[string][]float64, nz noise) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## signal-client benchmark, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s, %s, %s/%s.  \n", runtime.NumCPU(), cpuModel(), redisVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	b.WriteString(nz.String())
	wrk := "one worker"
	if opts.Workers > 1 {
		wrk = fmt.Sprintf("%d workers", opts.Workers)
	}
	queue := "max(messages, 1000)"
	if opts.Queue > 0 {
		queue = fmt.Sprint(opts.Queue)
	}
	fmt.Fprintf(&b, "Runs: %d per scenario, round-robin over the scenarios; medians of each figure, and the ratios are the medians of each round's ratio; %d messages per run; signal-client: %d conversations, WORKER_SHARD_COUNT=%d, one ingester (QUEUE_SIZE=%s), %s (default QUEUE_SIZE), RATE_LIMIT=0; unpaced bursts are staged in the emulator before the clock starts and released with one call.\n\n",
		opts.Runs, opts.N, opts.Convs, opts.Shards, queue, wrk)
	if opts.Warmup > 0 {
		fmt.Fprintf(&b, "Warm-up: each unpaced signal-client run follows a burst of %d frames through the same fresh processes, not measured (a long-running deployment has grown its heaps); the raw row gets one discarded run of %d messages before the first round. The paced runs have none.\n\n", opts.Warmup, opts.Warmup)
	}
	if len(opts.Env) > 0 {
		fmt.Fprintf(&b, "Extra environment of the signal-client processes (-env): `%s`.\n\n", strings.Join(opts.Env, " "))
	}
	if len(order) == 0 {
		return b.String()
	}
	b.WriteString("| scenario | msgs/s | × raw | × asynq | p50 | p99 | max | CPU s (per process) | peak RSS MiB (per process) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	ratio := func(sc string, r float64, base string) string {
		if rs := ratios[sc][base]; len(rs) > 0 && r > 0 {
			return fmt.Sprintf("%.2f", medianOf(rs))
		}
		if x, ok := med[base]; ok && x.Rate > 0 && r > 0 {
			return fmt.Sprintf("%.2f", r/x.Rate)
		}
		return "–"
	}
	for _, sc := range order {
		r := med[sc]
		var cpu, rss []string
		for _, p := range r.Procs {
			cpu = append(cpu, fmt.Sprintf("%s %.2f", p.Name, p.CPU.Seconds()))
			rss = append(rss, fmt.Sprintf("%s %.0f", p.Name, float64(p.PeakRSS)/(1<<20)))
		}
		cmp := r.Rate
		if strings.Contains(r.Scenario, " @ ") {
			cmp = 0 // a paced run's rate is the pace, not a capacity: no ratio
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Rate, ratio(sc, cmp, "raw"), ratio(sc, cmp, "asynq"),
			ms(r.P50), ms(r.P99), ms(r.Max), strings.Join(cpu, ", "), strings.Join(rss, ", "))
	}
	var per []string
	for _, sc := range order {
		rs := ratios[sc]["raw"]
		if sc == "raw" || len(rs) < 2 {
			continue
		}
		xs := make([]string, len(rs))
		for i, x := range rs {
			xs[i] = fmt.Sprintf("%.2f", x)
		}
		per = append(per, fmt.Sprintf("%s %s", med[sc].Scenario, strings.Join(xs, " ")))
	}
	if len(per) > 0 {
		fmt.Fprintf(&b, "\n× raw in each round (the column is their median): %s.\n", strings.Join(per, "; "))
	}
	b.WriteString("\nLatency measured:\n\n")
	for _, sc := range order {
		fmt.Fprintf(&b, "- %s: %s\n", med[sc].Scenario, med[sc].LatencyOf)
	}
	b.WriteString("\nsignal-client injection and idle CPU:\n\n")
	for _, sc := range order {
		if med[sc].InjectRate > 0 {
			fmt.Fprintf(&b, "- %s: %s %.0f frames/s (median)", med[sc].Scenario, med[sc].InjectOf, med[sc].InjectRate)
			if med[sc].IdleCPU != "" {
				fmt.Fprintf(&b, "; idle CPU after the first run: %s", med[sc].IdleCPU)
			}
			b.WriteString(".\n")
		}
	}
	b.WriteString("\nThroughput is messages / (first send → last handled); for the unpaced signal-client rows the first send is the release of the staged burst, and the emitted rate is release → the emulator having written every frame to the ingester's socket, i.e. as fast as the ingester read them. The raw and asynq rows run inside the bench process, so their client and consumer CPU is the \"bench\" figure and their peak RSS is the bench process's high-water mark so far. signal-client rows start fresh emulator, ingester and worker processes per run; the emulator's peak RSS includes the staged burst. Latencies in the throughput runs include queueing behind the burst.\n")
	return b.String()
}

func ms(d time.Duration) string {
	if d == time.Duration(1<<63-1) {
		return "> 60 s"
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.IndexByte(line, ':'); i >= 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown CPU"
}

func redisVersion() string {
	out, err := exec.Command("redis-server", "--version").Output()
	if err != nil {
		return "redis-server version unknown"
	}
	f := strings.Fields(string(out))
	for _, x := range f {
		if strings.HasPrefix(x, "v=") {
			return "Redis " + strings.TrimPrefix(x, "v=")
		}
	}
	return strings.TrimSpace(string(out))
}
