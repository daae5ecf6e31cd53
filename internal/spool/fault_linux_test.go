//go:build linux

package spool

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// limitFileSize makes writes past max bytes of any file fail with EFBIG
// (RLIMIT_FSIZE, with SIGXFSZ ignored), like a disk that fills up mid-write.
func limitFileSize(t *testing.T, max uint64) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	lim := old
	lim.Cur = max
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot set RLIMIT_FSIZE: %v", err)
	}
	done := false
	restore = func() {
		if !done {
			done = true
			syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
			signal.Reset(syscall.SIGXFSZ)
		}
	}
	t.Cleanup(restore)
	return restore
}

// A failed write drops the unflushed batch, cuts the partial bytes off the
// file and is reported by Flush; the spool stays usable and readable.
func TestWriteFailureDropsTheBatch(t *testing.T) {
	for _, tt := range []struct {
		name       string
		recLen     int
		recs       int
		failAppend int // index of the Append that fails (-1: Flush fails)
	}{
		{"flush fails", 300, 5, -1},
		{"append fails when its buffer is written", 64 << 10, 20, 15},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			appendRange(t, s, 0, 3)
			before := s.Stats().DiskBytes
			path := filepath.Join(dir, segName(1))
			restore := limitFileSize(t, uint64(before)+100)

			var appendErr error
			for i := 0; i < tt.recs; i++ {
				rec := make([]byte, tt.recLen)
				rec[0] = byte(i)
				err := s.Append(rec)
				if i == tt.failAppend {
					appendErr = err
					break
				}
				if err != nil {
					t.Fatalf("Append %d: %v", i, err)
				}
			}
			flushErr := s.Flush()
			restore()

			lost := tt.recs
			if tt.failAppend >= 0 {
				lost = tt.failAppend + 1
			}
			want := fmt.Sprintf("spool: write %s: write %s: file too large; the last %d records appended are not stored",
				segName(1), path, lost)
			if tt.failAppend >= 0 && (appendErr == nil || appendErr.Error() != want) {
				t.Fatalf("failing Append: %v\nwant %s", appendErr, want)
			}
			if flushErr == nil || flushErr.Error() != want || !errors.Is(flushErr, syscall.EFBIG) {
				t.Fatalf("Flush: %v\nwant %s", flushErr, want)
			}
			if fi, _ := os.Stat(path); fi.Size() != before {
				t.Fatalf("file is %d bytes, want the partial write cut back to %d", fi.Size(), before)
			}
			if st := s.Stats(); st.Depth != 3 || st.Bytes != before {
				t.Fatalf("after the failure Depth %d Bytes %d, want 3 and %d", st.Depth, st.Bytes, before)
			}
			if err := s.Flush(); err != nil {
				t.Fatalf("the error is reported twice: %v", err)
			}
			appendRange(t, s, 3, 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, Options{})
			if got := readNums(t, s); !slices.Equal(got, seq(0, 5)) || s.Stats().TornRecords != 0 {
				t.Fatalf("after reopen: %v, torn %d; want 0..4 and no torn record", got, s.Stats().TornRecords)
			}
		})
	}
}
