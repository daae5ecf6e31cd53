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
	"sort"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 20000, "messages per scenario run")
	runs := flag.Int("runs", 3, "runs per scenario; medians are reported")
	convs := flag.Int("convs", 1000, "conversations the signal-client messages are spread over")
	batch := flag.Int("batch", 200, "frames per emulator inject call")
	shards := flag.Int("shards", 16, "WORKER_SHARD_COUNT")
	bin := flag.String("bin", "../bin", "directory with the built binaries")
	out := flag.String("out", "results", "directory for the results file (empty: do not write)")
	only := flag.String("scenarios", "raw,asynq,noop,echo,noop-paced,echo-paced", "comma-separated scenarios to run")
	queue := flag.Int("queue-size", 0, "ingester QUEUE_SIZE (0: max(n, 1000), so an unpaced burst is not dropped)")
	paced := flag.Int("paced-rate", 1000, "injection rate of the *-paced latency scenarios, frames/s")
	idle := flag.Duration("idle", 3*time.Second, "after each signal-client run, measure idle CPU this long (0: skip)")
	timeout := flag.Duration("timeout", 9*time.Minute, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	md, err := run(ctx, options{N: *n, Runs: *runs, Convs: *convs, Batch: *batch, Shards: *shards, Bin: *bin, Idle: *idle, PacedRate: *paced, Queue: *queue,
		Scenarios: strings.Split(*only, ",")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(md)
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench: results dir:", err)
			os.Exit(1)
		}
		path := filepath.Join(*out, time.Now().UTC().Format("20060102T150405Z")+".md")
		if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench: write results:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", path)
	}
}

type options struct {
	N, Runs, Convs, Batch, Shards int
	Bin                           string
	Idle                          time.Duration
	PacedRate                     int
	Queue                         int
	Scenarios                     []string
}

// run executes every scenario opts.Runs times and returns the markdown report.
func run(ctx context.Context, opts options) (string, error) {
	bin, err := filepath.Abs(opts.Bin)
	if err != nil {
		return "", fmt.Errorf("bench: bin dir: %w", err)
	}
	dir, err := os.MkdirTemp("", "signal-client-bench-*")
	if err != nil {
		return "", fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	rs, err := startRedis(dir)
	if err != nil {
		return "", err
	}
	defer rs.stop()

	all := map[string][]result{}
	var order []string
	for _, sc := range opts.Scenarios {
		sc = strings.TrimSpace(sc)
		for r := 0; r < opts.Runs; r++ {
			rdir := filepath.Join(dir, fmt.Sprintf("%s-%d", sc, r))
			if err := os.MkdirAll(rdir, 0o755); err != nil {
				return "", err
			}
			var res result
			switch sc {
			case "raw":
				res, err = runRaw(ctx, rs, opts.N)
			case "asynq":
				res, err = runAsynq(ctx, rs, opts.N)
			case "noop", "echo":
				res, err = runPipeline(ctx, rs, pipelineConfig{Bin: bin, Dir: rdir, N: opts.N, Convs: opts.Convs,
					Echo: sc == "echo", Batch: opts.Batch, Shards: opts.Shards, Idle: opts.Idle, Queue: opts.Queue})
			case "noop-paced", "echo-paced":
				// Latency at a steady opts.PacedRate: 5 s of traffic, 10 frames per call.
				res, err = runPipeline(ctx, rs, pipelineConfig{Bin: bin, Dir: rdir, N: min(opts.N, 5*opts.PacedRate), Convs: opts.Convs,
					Echo: sc == "echo-paced", Batch: 10, Shards: opts.Shards, Rate: opts.PacedRate, Queue: opts.Queue})
			default:
				return "", fmt.Errorf("bench: unknown scenario %q: use raw, asynq, noop, echo, noop-paced or echo-paced", sc)
			}
			if err != nil {
				return "", fmt.Errorf("bench: %s run %d: %w", sc, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "bench: %-22s run %d: %8.0f msgs/s  p50 %v  p99 %v\n", res.Scenario, r+1, res.Rate, res.P50, res.P99)
			if len(all[sc]) == 0 {
				order = append(order, sc)
			}
			all[sc] = append(all[sc], res)
		}
	}
	med := map[string]result{}
	for _, sc := range order {
		med[sc] = median(all[sc])
	}
	return report(opts, order, med), nil
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

func report(opts options, order []string, med map[string]result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## signal-client benchmark, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s, %s, %s/%s.  \n", runtime.NumCPU(), cpuModel(), redisVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "Runs: %d per scenario, medians of each figure; %d messages per run; signal-client: %d conversations, WORKER_SHARD_COUNT=%d, one ingester, one worker, RATE_LIMIT=0, frames injected unpaced in batches of %d.\n\n",
		opts.Runs, opts.N, opts.Convs, opts.Shards, opts.Batch)
	b.WriteString("| scenario | msgs/s | × raw | × asynq | p50 | p99 | max | CPU s (per process) | peak RSS MiB (per process) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	ratio := func(r float64, base string) string {
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
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Rate, ratio(cmp, "raw"), ratio(cmp, "asynq"),
			ms(r.P50), ms(r.P99), ms(r.Max), strings.Join(cpu, ", "), strings.Join(rss, ", "))
	}
	b.WriteString("\nLatency measured:\n\n")
	for _, sc := range order {
		fmt.Fprintf(&b, "- %s: %s\n", med[sc].Scenario, med[sc].LatencyOf)
	}
	b.WriteString("\nsignal-client injection and idle CPU:\n\n")
	for _, sc := range order {
		if med[sc].InjectRate > 0 {
			fmt.Fprintf(&b, "- %s: injection ran at %.0f frames/s (median)", med[sc].Scenario, med[sc].InjectRate)
			if med[sc].IdleCPU != "" {
				fmt.Fprintf(&b, "; idle CPU after the first run: %s", med[sc].IdleCPU)
			}
			b.WriteString(".\n")
		}
	}
	b.WriteString("\nThroughput is messages / (first send → last handled). The raw and asynq rows run inside the bench process, so their client and consumer CPU is the \"bench\" figure and their peak RSS is the bench process's high-water mark so far. signal-client rows start fresh emulator, ingester and worker processes per run. Latencies in the throughput runs include queueing behind the burst.\n")
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
