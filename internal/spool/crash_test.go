package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash and lock tests re-run this test binary as a helper process
// selected by these variables; TestMain dispatches before any test runs.
const (
	helperEnv    = "SPOOL_TEST_HELPER"
	helperDirEnv = "SPOOL_TEST_DIR"
)

// crashSpread makes records of 11 bytes to ~6 KiB so that, with 16 KiB
// segments, the helper rotates often and a kill can land anywhere.
const crashSpread = 6000

var crashOpts = Options{SegmentBytes: 16 << 10}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperDirEnv)))
	}
	os.Exit(m.Run())
}

// runHelper is the child process. It reports progress on stdout, one line per
// event, written before (for "committing") or after (for "flushed",
// "committed") the operation it names.
func runHelper(mode, dir string) int {
	s, err := Open(dir, crashOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: open:", err)
		return 2
	}
	fmt.Println("open")
	switch mode {
	case "lock":
		io.Copy(io.Discard, os.Stdin) // hold the lock until the parent closes stdin (or kills us)
		s.Close()
		return 0
	case "append-commit":
		go helperCommitLoop(s)
	case "append":
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
		return 2
	}
	for i := 0; ; i++ {
		if err := s.Append(payload(i, crashSpread)); err != nil {
			fmt.Fprintln(os.Stderr, "helper: append:", err)
			return 2
		}
		if err := s.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, "helper: flush:", err)
			return 2
		}
		fmt.Printf("flushed %d\n", i)
	}
}

// helperCommitLoop replays like the ingester: read a few records, commit the
// last one, repeat, while the main loop keeps appending.
func helperCommitLoop(s *Spool) {
	r, err := s.NewReader()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: reader:", err)
		os.Exit(2)
	}
	next := 0
	for {
		var last Position
		n := -1
		for k := rand.IntN(20); k >= 0; k-- {
			rec, pos, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper: next:", err)
				os.Exit(2)
			}
			n, _ = strconv.Atoi(string(rec[:10]))
			if n != next || string(rec) != string(payload(n, crashSpread)) {
				fmt.Fprintf(os.Stderr, "helper: read record %d, want %d\n", n, next)
				os.Exit(2)
			}
			next++
			last = pos
		}
		if n < 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		fmt.Printf("committing %d\n", n)
		if err := s.Commit(last); err != nil {
			fmt.Fprintln(os.Stderr, "helper: commit:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", n)
	}
}

// helper is a running child process and the lines it printed.
type helper struct {
	cmd    *exec.Cmd
	lines  chan string
	stdin  io.WriteCloser
	stderr *strings.Builder
}

func startHelper(t *testing.T, mode, dir string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, lines: make(chan string, 1024), stdin: stdin, stderr: new(strings.Builder)}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	select {
	case l := <-h.lines:
		if l != "open" {
			t.Fatalf("helper said %q first; stderr: %s", l, h.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("helper did not open the spool within 20s")
	}
	return h
}

// killAfter lets the helper run for d, SIGKILLs it, and returns every line it
// printed (including those still in the pipe).
func (h *helper) killAfter(t *testing.T, d time.Duration) []string {
	t.Helper()
	var lines []string
	deadline := time.After(d)
loop:
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper exited early: %v; stderr: %s", h.cmd.Wait(), h.stderr)
			}
			lines = append(lines, l)
		case <-deadline:
			break loop
		}
	}
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for l := range h.lines {
		lines = append(lines, l)
	}
	err := h.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die of SIGKILL: %v; stderr: %s", err, h.stderr)
	}
	return lines
}

// lastReported returns the highest N of "<verb> N" lines, or -1.
func lastReported(t *testing.T, lines []string, verb string) int {
	t.Helper()
	last := -1
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, verb+" "); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("bad helper line %q", l)
			}
			last = max(last, n)
		}
	}
	return last
}

// TestCrashKill9 SIGKILLs a process that appends and flushes in a loop, at a
// random moment, and checks what survives: records 0..k in order, no gap, no
// corruption error, k ≥ the last record the child reported flushed.
func TestCrashKill9(t *testing.T) {
	for run := 0; run < 5; run++ {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			dir := t.TempDir()
			h := startHelper(t, "append", dir)
			lines := h.killAfter(t, time.Duration(30+rand.IntN(250))*time.Millisecond)
			flushed := lastReported(t, lines, "flushed")

			s, err := Open(dir, crashOpts)
			if err != nil {
				t.Fatalf("Open after kill -9: %v", err)
			}
			defer s.Close()
			got := readCrashNums(t, s)
			if !slices.Equal(got, seq(0, len(got))) {
				t.Fatalf("records after the crash are not 0..k in order: %v", got)
			}
			if k := len(got) - 1; k < flushed {
				t.Fatalf("last record %d, but the child reported %d flushed", k, flushed)
			}
			t.Logf("flushed %d, recovered 0..%d, torn %d, segments %d",
				flushed, len(got)-1, s.Stats().TornRecords, s.Stats().Segments)
		})
	}
}

// TestCrashKill9WhileCommitting adds a replayer that commits as it reads:
// after the kill, the surviving records are a..k with no gap, every record
// before a was committed (a-1 ≤ last "committing"), no committed record came
// back (a-1 ≥ last "committed"), and k ≥ last "flushed".
func TestCrashKill9WhileCommitting(t *testing.T) {
	for run := 0; run < 3; run++ {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			dir := t.TempDir()
			h := startHelper(t, "append-commit", dir)
			lines := h.killAfter(t, time.Duration(50+rand.IntN(250))*time.Millisecond)
			flushed := lastReported(t, lines, "flushed")
			committing := lastReported(t, lines, "committing")
			committed := lastReported(t, lines, "committed")

			s, err := Open(dir, crashOpts)
			if err != nil {
				t.Fatalf("Open after kill -9: %v", err)
			}
			defer s.Close()
			got := readCrashNums(t, s)
			if len(got) == 0 {
				if flushed > committing {
					t.Fatalf("nothing left, but %d was flushed and only %d committed", flushed, committing)
				}
				return
			}
			a, k := got[0], got[len(got)-1]
			if !slices.Equal(got, seq(a, k+1)) {
				t.Fatalf("records after the crash are not consecutive: %v", got)
			}
			if a-1 < committed || a-1 > committing {
				t.Fatalf("first surviving record %d; want committed %d < it ≤ committing %d + 1", a, committed, committing)
			}
			if k < flushed {
				t.Fatalf("last record %d, but the child reported %d flushed", k, flushed)
			}
			t.Logf("flushed %d, committed %d..%d, recovered %d..%d, segments %d",
				flushed, committed, committing, a, k, s.Stats().Segments)
		})
	}
}

func readCrashNums(t *testing.T, s *Spool) []int {
	t.Helper()
	r, err := s.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []int
	for {
		rec, _, err := r.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("Next after %d records: %v", len(got), err)
		}
		got = append(got, recordNum(t, rec, crashSpread))
	}
}

// TestLockedByAnotherProcess checks the flock across processes, and that a
// kill -9 of the owner leaves no stale lock.
func TestLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	h := startHelper(t, "lock", dir)
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open while another process holds the spool: %v, want ErrLocked naming %s", err, dir)
	}
	h.killAfter(t, 0)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the owner was killed: %v", err)
	}
	s.Close()
}
