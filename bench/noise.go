package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Machine noise: these are shared 2-CPU virtual machines, and how much the
// hypervisor takes away decides how far a figure can be trusted (the raw row
// moves by a third, a paced tail by a bucket or two). The report says both,
// so a reader need not measure them by hand.

// cpuTicks is the host's total and stolen CPU time so far (/proc/stat), in
// clock ticks; ok is false where there is no /proc/stat.
func cpuTicks() (total, steal uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return parseCPUStat(string(b))
}

// parseCPUStat reads the first ("cpu") line of /proc/stat: user nice system
// idle iowait irq softirq steal [guest guest_nice].
func parseCPUStat(stat string) (total, steal uint64, ok bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		// guest and guest_nice (fields 9, 10) are already inside user and nice.
		if i < 8 {
			total += n
		}
		if i == 7 {
			steal = n
		}
	}
	return total, steal, true
}

// stealShare is the share of CPU time stolen between two cpuTicks readings.
func stealShare(t0, s0, t1, s1 uint64) float64 {
	if t1 <= t0 {
		return 0
	}
	return float64(s1-s0) / float64(t1-t0)
}

// sleepJitter sleeps 1 ms again and again for d and returns how much later
// than asked the sleeper woke (p50, p99, max): on an idle machine, the floor
// under any latency figure of the paced scenarios.
func sleepJitter(d time.Duration) (p50, p99, worst time.Duration) {
	var over []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t := time.Now()
		time.Sleep(time.Millisecond)
		over = append(over, time.Since(t)-time.Millisecond)
	}
	if len(over) == 0 {
		return 0, 0, 0
	}
	sort.Slice(over, func(i, j int) bool { return over[i] < over[j] })
	q := func(p float64) time.Duration { return over[int(p*float64(len(over)-1))] }
	return q(0.5), q(0.99), over[len(over)-1]
}

// noise is what the report says about the machine.
type noise struct {
	Steal             float64 // share of CPU time stolen during the run; -1: unknown
	JitP50, JitP99    time.Duration
	JitMax            time.Duration
	JitterMeasuredFor time.Duration
}

func (n noise) String() string {
	var parts []string
	if n.Steal >= 0 {
		parts = append(parts, fmt.Sprintf("%.2f %% of the CPU time was stolen by the hypervisor during the run", 100*n.Steal))
	}
	if n.JitterMeasuredFor > 0 {
		parts = append(parts, fmt.Sprintf("a goroutine sleeping 1 ms overslept by p50 %v, p99 %v, max %v (%v, idle, before the run)",
			n.JitP50.Round(time.Microsecond), n.JitP99.Round(time.Microsecond), n.JitMax.Round(time.Microsecond), n.JitterMeasuredFor))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Machine noise: " + strings.Join(parts, "; ") + ".  \n"
}
