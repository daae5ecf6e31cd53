package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The growth matrix of issue 7: one axis varied at a time from the baseline
// (16 shards, 1 000 conversations, 1 worker).
var (
	matrixShards  = []int{16, 64, 256}
	matrixConvs   = []int{10, 1000, 100000}
	matrixWorkers = []int{1, 2}
	matrixBase    = cell{Shards: 16, Convs: 1000, Workers: 1}
)

// cell is one point of the matrix: the no-op burst of N messages.
type cell struct{ Shards, Convs, Workers, N int }

func (c cell) String() string {
	return fmt.Sprintf("shards=%d convs=%d workers=%d n=%d", c.Shards, c.Convs, c.Workers, c.N)
}

// cellResult is a cell's no-op burst (throughput, CPU, RSS, idle CPU) and its
// no-op run paced at the latency target's rate.
type cellResult struct {
	cell
	Burst result
	Paced result // zero when the paced run was skipped
}

// matrixAxis is one table of the matrix: cells that differ from the
// baseline in one setting.
type matrixAxis struct {
	Title, Column string
	Cells         []cell
	Label         func(cell) string
	Base          cell // the row the × baseline column divides by
}

// matrixAxes lays out the three axes for bursts of n messages. The
// conversation axis uses at least max(matrixConvs) messages in every cell, so
// that each of 100 000 conversations gets a message and the three cells
// differ only in the conversation count.
func matrixAxes(n int) []matrixAxis {
	base := matrixBase
	base.N = n
	convN := n
	for _, c := range matrixConvs {
		convN = max(convN, c)
	}
	shards := matrixAxis{Title: fmt.Sprintf("WORKER_SHARD_COUNT (%s conversations, %d worker)", thousands(base.Convs), base.Workers),
		Column: "shards", Base: base, Label: func(c cell) string { return fmt.Sprint(c.Shards) }}
	for _, s := range matrixShards {
		shards.Cells = append(shards.Cells, cell{s, base.Convs, base.Workers, n})
	}
	convBase := base
	convBase.N = convN
	convs := matrixAxis{Title: fmt.Sprintf("Conversations (%d shards, %d worker)", base.Shards, base.Workers),
		Column: "conversations", Base: convBase, Label: func(c cell) string { return thousands(c.Convs) }}
	for _, k := range matrixConvs {
		convs.Cells = append(convs.Cells, cell{base.Shards, k, base.Workers, convN})
	}
	workers := matrixAxis{Title: fmt.Sprintf("Workers (%d shards, %s conversations)", base.Shards, thousands(base.Convs)),
		Column: "workers", Base: base, Label: func(c cell) string { return fmt.Sprint(c.Workers) }}
	for _, w := range matrixWorkers {
		workers.Cells = append(workers.Cells, cell{base.Shards, base.Convs, w, n})
	}
	return []matrixAxis{shards, convs, workers}
}

// matrixCells lists every distinct cell of the axes, in order.
func matrixCells(axes []matrixAxis) []cell {
	var cells []cell
	seen := map[cell]bool{}
	for _, a := range axes {
		for _, c := range a.Cells {
			if !seen[c] {
				seen[c] = true
				cells = append(cells, c)
			}
		}
	}
	return cells
}

// runMatrix runs every cell opts.Runs times (no-op burst, then no-op paced at
// opts.PacedRate for 5 s) and returns the medians.
func runMatrix(ctx context.Context, rs *redisServer, bin, dir string, opts options) ([]cellResult, error) {
	var out []cellResult
	for _, c := range matrixCells(matrixAxes(opts.N)) {
		var bursts, paced []result
		for r := 0; r < opts.Runs; r++ {
			base := pipelineConfig{Env: opts.Env, Bin: bin, N: c.N, Convs: c.Convs, Batch: opts.Batch,
				Shards: c.Shards, Workers: c.Workers, Idle: opts.MatrixIdle, Queue: opts.Queue}
			base.Dir = filepath.Join(dir, fmt.Sprintf("matrix-s%d-c%d-w%d-n%d-%d", c.Shards, c.Convs, c.Workers, c.N, r))
			if err := os.MkdirAll(base.Dir, 0o755); err != nil {
				return nil, err
			}
			res, err := runPipeline(ctx, rs, base)
			if err != nil {
				return nil, fmt.Errorf("bench: matrix %v burst run %d: %w", c, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "bench: matrix %-43s burst run %d: %8.0f msgs/s\n", c, r+1, res.Rate)
			bursts = append(bursts, res)
			if opts.PacedRate <= 0 {
				continue
			}
			p := base
			p.N, p.Rate, p.Batch, p.Idle = min(opts.N, 5*opts.PacedRate), opts.PacedRate, 10, 0
			p.Dir += "-paced"
			if err := os.MkdirAll(p.Dir, 0o755); err != nil {
				return nil, err
			}
			res, err = runPipeline(ctx, rs, p)
			if err != nil {
				return nil, fmt.Errorf("bench: matrix %v paced run %d: %w", c, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "bench: matrix %-43s paced run %d: p50 %v  p99 %v\n", c, r+1, res.P50, res.P99)
			paced = append(paced, res)
		}
		cr := cellResult{cell: c, Burst: median(bursts)}
		if len(paced) > 0 {
			cr.Paced = median(paced)
		}
		out = append(out, cr)
	}
	return out, nil
}

// workerUsage sums the CPU and takes the largest peak RSS of the worker
// processes of a result ("worker" or "worker-N").
func workerUsage(r result) (cpu time.Duration, rss int64) {
	for _, p := range r.Procs {
		if p.Name == "worker" || strings.HasPrefix(p.Name, "worker-") {
			cpu += p.CPU
			rss = max(rss, p.PeakRSS)
		}
	}
	return cpu, rss
}

// cpuPerMsg is the CPU of every process (bench injector included) per message.
func cpuPerMsg(r result) time.Duration {
	if r.N == 0 {
		return 0
	}
	var all time.Duration
	for _, p := range r.Procs {
		all += p.CPU
	}
	return all / time.Duration(r.N)
}

// idleText renders the idle CPU of a cell: ingester / workers (+ between
// several) / redis, in % of a core.
func idleText(r result) string {
	if len(r.Idle) == 0 {
		return "not measured"
	}
	var ing, redis string
	var wrk []string
	for _, i := range r.Idle {
		v := fmt.Sprintf("%.1f", i.Pct)
		switch {
		case i.Name == "ingester":
			ing = v
		case i.Name == "redis":
			redis = v
		default:
			wrk = append(wrk, v)
		}
	}
	return fmt.Sprintf("%s / %s / %s", ing, strings.Join(wrk, "+"), redis)
}

// leadLimit is the envelope timestamp lead beyond which the e2e histogram
// (emit → handler start, measured from the envelope timestamp) reads low.
const leadLimit = time.Millisecond

// pacedLatency renders a cell's p50 or p99 at the paced rate, or says why
// there is none.
func pacedLatency(c cellResult, d time.Duration) string {
	switch {
	case c.Paced.N == 0:
		return "–"
	case c.Paced.MaxLead > leadLimit:
		return fmt.Sprintf("not meaningful (timestamps up to %d ms ahead)", c.Paced.MaxLead.Milliseconds())
	}
	return ms(d)
}

// matrixTables renders the matrix as one markdown table per axis (n: the
// burst size of the shard and worker axes); a cell shared by two axes is the
// same run in both.
func matrixTables(cells []cellResult, n, pacedRate, runs int) string {
	by := map[cell]cellResult{}
	for _, c := range cells {
		by[c.cell] = c
	}
	var b strings.Builder
	runsText := "one run"
	if runs > 1 {
		runsText = fmt.Sprintf("%d runs, medians", runs)
	}
	fmt.Fprintf(&b, "### Growth matrix\n\n")
	fmt.Fprintf(&b, "Per cell a no-op burst (messages as listed, staged in the emulator and released with one call), then a no-op run paced at %d msgs/s for 5 s for the latency columns; %s per cell. One setting varies at a time from the baseline (%d shards, %s conversations, %d worker); a row shared by two tables is the same run.\n\n",
		pacedRate, runsText, matrixBase.Shards, thousands(matrixBase.Convs), matrixBase.Workers)
	for _, a := range matrixAxes(n) {
		var rows []cellResult
		for _, k := range a.Cells {
			if c, ok := by[k]; ok {
				rows = append(rows, c)
			}
		}
		if len(rows) == 0 {
			continue
		}
		base, hasBase := by[a.Base]
		fmt.Fprintf(&b, "#### %s\n\n", a.Title)
		fmt.Fprintf(&b, "| %s | messages | msgs/s | × baseline | worker CPU s | CPU µs/msg (all processes) | worker peak RSS MiB | idle CPU %% of a core (ingester / worker / redis) | shards with traffic | p50 @ %d/s | p99 @ %d/s |\n", a.Column, pacedRate, pacedRate)
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n")
		for _, c := range rows {
			cpu, rss := workerUsage(c.Burst)
			ratio := "–"
			if hasBase && base.Burst.Rate > 0 {
				ratio = fmt.Sprintf("%.2f", c.Burst.Rate/base.Burst.Rate)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %.2f | %.0f | %.0f | %s | %d of %d | %s | %s |\n", a.Label(c.cell), thousands(c.Burst.N), c.Burst.Rate, ratio,
				cpu.Seconds(), float64(cpuPerMsg(c.Burst))/float64(time.Microsecond), float64(rss)/(1<<20), idleText(c.Burst),
				c.Burst.ShardsUsed, c.Shards, pacedLatency(c, c.Paced.P50), pacedLatency(c, c.Paced.P99))
		}
		b.WriteString("\n")
	}
	b.WriteString("Throughput is messages / (first injection → every shard group at lag 0 and pending 0 and the handled counters summed over the workers reaching the messages). Worker CPU is summed over the workers, their peak RSS is the largest; the workers run with their default QUEUE_SIZE (1000) and the ingester with max(messages, 1000), so its memory, not theirs, grows with the burst. Idle CPU: the stated time right after the burst with no traffic (a `+` separates workers). Shards with traffic: shard streams the run's conversations hashed to. The latency columns are the e2e histogram (emit → handler start; bucket upper bounds; millisecond envelope timestamps) of the paced run; they read \"not meaningful\" when the bench had to bump envelope timestamps more than 1 ms ahead of the clock (more than one frame per conversation and millisecond). A burst's frames are stamped with its release time, bumped 1 ms per earlier frame of the conversation to stay unique; the burst's own latency is not shown.\n")
	return b.String()
}

// thousands writes 100000 as "100 000".
func thousands(n int) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}
