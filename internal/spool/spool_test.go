package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// payload is record i: its number in the first 10 bytes and a deterministic
// filler whose length varies with i, so records straddle segment ends.
func payload(i, spread int) []byte {
	n := 11 + (i*7919)%spread
	b := make([]byte, n)
	copy(b, fmt.Sprintf("%010d:", i))
	for j := 11; j < n; j++ {
		b[j] = byte('a' + (i+j)%26)
	}
	return b
}

const spread = 600

// recordNum returns the number of a record written by payload and checks the
// whole record is intact.
func recordNum(t testing.TB, rec []byte, spread int) int {
	t.Helper()
	if len(rec) < 11 {
		t.Fatalf("record too short: %q", rec)
	}
	n, err := strconv.Atoi(string(rec[:10]))
	if err != nil {
		t.Fatalf("record without a number: %q", rec[:10])
	}
	if want := payload(n, spread); string(want) != string(rec) {
		t.Fatalf("record %d: content differs from what was appended", n)
	}
	return n
}

func openT(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendRange(t testing.TB, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(payload(i, spread)); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// readNums reads every durable record with a fresh Reader, without committing.
func readNums(t testing.TB, s *Spool) []int {
	t.Helper()
	r, err := s.NewReader()
	if err != nil {
		t.Fatalf("NewReader: %v", err)
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
		got = append(got, recordNum(t, rec, spread))
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func recBytes(from, to int) int64 {
	var b int64
	for i := from; i < to; i++ {
		b += int64(headerSize + len(payload(i, spread)))
	}
	return b
}

var segRE = regexp.MustCompile(`^seg-\d{20}\.log$`)

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if segRE.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendRange(t, s, 0, 100)
	if got := s.Depth(); got != 100 {
		t.Fatalf("Depth = %d, want 100", got)
	}
	if got, want := s.Bytes(), recBytes(0, 100); got != want {
		t.Fatalf("Bytes = %d, want %d", got, want)
	}
	var got []int
	if err := s.Replay(context.Background(), func(rec []byte) error {
		got = append(got, recordNum(t, rec, spread))
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if !slices.Equal(got, seq(0, 100)) {
		t.Fatalf("replayed %v, want 0..99 in order", got)
	}
	want := Stats{Appended: 100, Replayed: 100, Committed: 100, Segments: 1, DiskBytes: recBytes(0, 100)}
	if st := s.Stats(); st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
	calls := 0
	if err := s.Replay(context.Background(), func([]byte) error { calls++; return nil }); err != nil || calls != 0 {
		t.Fatalf("second Replay: %d calls, err %v; want 0 calls, nil", calls, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if names := segFiles(t, dir); !slices.Equal(names, []string{"seg-00000000000000000001.log"}) {
		t.Fatalf("segment files %v", names)
	}
	s = openT(t, dir, Options{})
	if got := readNums(t, s); len(got) != 0 {
		t.Fatalf("after reopen the committed records came back: %v", got)
	}
	if d := s.Depth(); d != 0 {
		t.Fatalf("Depth after reopen = %d, want 0", d)
	}
}

func TestOnlyFlushedRecordsAreVisible(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	appendRange(t, s, 0, 3)
	for i := 3; i < 5; i++ {
		if err := s.Append(payload(i, spread)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []int
	next := func() error {
		for {
			rec, _, err := r.Next()
			if err != nil {
				return err
			}
			got = append(got, recordNum(t, rec, spread))
		}
	}
	if err := next(); err != io.EOF {
		t.Fatalf("Next: %v, want io.EOF", err)
	}
	if !slices.Equal(got, seq(0, 3)) || s.Depth() != 5 {
		t.Fatalf("before Flush read %v with Depth %d; want 0..2 and 5", got, s.Depth())
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := next(); err != io.EOF {
		t.Fatalf("Next: %v, want io.EOF", err)
	}
	if !slices.Equal(got, seq(0, 5)) {
		t.Fatalf("after Flush read %v, want 0..4", got)
	}
}

func TestSyncEveryAppend(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Sync: SyncEveryAppend})
	if err := s.Append(payload(0, spread)); err != nil {
		t.Fatal(err)
	}
	if got := readNums(t, s); !slices.Equal(got, []int{0}) {
		t.Fatalf("read %v without Flush, want [0]", got)
	}
}

func TestManySegments(t *testing.T) {
	dir := t.TempDir()
	const segBytes, n = 2048, 600
	s := openT(t, dir, Options{SegmentBytes: segBytes, noSync: true})
	appendRange(t, s, 0, n)
	names := segFiles(t, dir)
	if len(names) < 20 || s.Stats().Segments != len(names) {
		t.Fatalf("%d segment files, Stats.Segments %d; want ≥ 20 and equal", len(names), s.Stats().Segments)
	}
	for i, name := range names {
		if want := segName(uint64(i + 1)); name != want {
			t.Fatalf("segment %d is %s, want %s", i, name, want)
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > segBytes || fi.Size() == 0 {
			t.Fatalf("%s has %d bytes, want 1..%d", name, fi.Size(), segBytes)
		}
	}
	if got := readNums(t, s); !slices.Equal(got, seq(0, n)) {
		t.Fatalf("read %d records out of order or incomplete", len(got))
	}

	// Commit the first half through a Reader.
	r, err := s.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	var pos Position
	for i := 0; i < n/2; i++ {
		if _, pos, err = r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	if err := s.Commit(pos); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	left := segFiles(t, dir)
	if left[0] != segName(pos.Segment()) && left[0] != segName(pos.Segment()+1) {
		t.Fatalf("oldest segment after commit at %v is %s", pos, left[0])
	}
	if len(left) >= len(names) {
		t.Fatalf("no segment deleted by the commit (%d before, %d after)", len(names), len(left))
	}
	if d, b := s.Depth(), s.Bytes(); d != n/2 || b != recBytes(n/2, n) {
		t.Fatalf("Depth %d Bytes %d, want %d and %d", d, b, n/2, recBytes(n/2, n))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{SegmentBytes: segBytes})
	if st := s.Stats(); st.Recovered != n/2 || st.Depth != n/2 {
		t.Fatalf("after reopen Recovered %d Depth %d, want %d", st.Recovered, st.Depth, n/2)
	}
	appendRange(t, s, n, n+10)
	if got := readNums(t, s); !slices.Equal(got, seq(n/2, n+10)) {
		t.Fatalf("after reopen read %v, want %d..%d", got, n/2, n+9)
	}
}

func TestCheckpointSurvivesReopenAndUncommittedRepeat(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024})
	appendRange(t, s, 0, 20)
	r, err := s.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	var commitAt Position
	for i := 0; i < 15; i++ { // read 15, commit only 8: 8..14 were replayed but not committed
		_, pos, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if i == 7 {
			commitAt = pos
		}
	}
	r.Close()
	if err := s.Commit(commitAt); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cp, ok, err := readCheckpoint(dir)
	if err != nil || !ok {
		t.Fatalf("readCheckpoint: %v %v", ok, err)
	}
	if cp.seg != commitAt.Segment() || cp.off != commitAt.Offset() {
		if !(cp.off == 0 && cp.seg == commitAt.Segment()+1) {
			t.Fatalf("checkpoint %+v, committed %v", cp, commitAt)
		}
	}
	s = openT(t, dir, Options{SegmentBytes: 1024})
	if got := readNums(t, s); !slices.Equal(got, seq(8, 20)) {
		t.Fatalf("after reopen read %v, want 8..19", got)
	}
}

func TestReplayConcurrentWithAppends(t *testing.T) {
	const n = 3000
	s := openT(t, t.TempDir(), Options{SegmentBytes: 4096, ReplayCommitEvery: 16, noSync: true})
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if err := s.Append(payload(i, spread)); err != nil {
				errc <- err
				return
			}
			if i%7 == 6 || i == n-1 {
				if err := s.Flush(); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	wg.Add(1)
	go func() { // readers of the gauges run alongside, for the race detector
		defer wg.Done()
		for s.Stats().Committed < n {
			_ = s.Bytes() + int64(s.Depth())
			runtime.Gosched()
		}
	}()
	var got []int
	for len(got) < n {
		select {
		case err := <-errc:
			t.Fatalf("appender: %v", err)
		default:
		}
		if err := s.Replay(context.Background(), func(rec []byte) error {
			got = append(got, recordNum(t, rec, spread))
			return nil
		}); err != nil {
			t.Fatalf("Replay: %v", err)
		}
	}
	wg.Wait()
	if !slices.Equal(got, seq(0, n)) {
		t.Fatalf("replayed %d records, not 0..%d in order", len(got), n-1)
	}
	st := s.Stats()
	if st.Depth != 0 || st.Bytes != 0 || st.Committed != n || st.Replayed != n || st.Segments > 2 {
		t.Fatalf("after draining: %+v; want Depth 0, Bytes 0, Committed/Replayed %d, ≤ 2 segments", st, n)
	}
}

func TestReplayErrorCommitsOnlyBeforeTheFailedRecord(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ReplayCommitEvery: 3})
	appendRange(t, s, 0, 20)
	errRedis := errors.New("redis down")
	var got []int
	err := s.Replay(context.Background(), func(rec []byte) error {
		n := recordNum(t, rec, spread)
		if n == 7 {
			return errRedis
		}
		got = append(got, n)
		return nil
	})
	if !errors.Is(err, errRedis) || err.Error() != "spool: replay: redis down" {
		t.Fatalf("Replay error %q, want %q wrapping the callback's error", err, "spool: replay: redis down")
	}
	if st := s.Stats(); st.Committed != 7 || st.Depth != 13 || !slices.Equal(got, seq(0, 7)) {
		t.Fatalf("after failure: delivered %v, Committed %d, Depth %d; want 0..6, 7, 13", got, st.Committed, st.Depth)
	}
	got = nil
	if err := s.Replay(context.Background(), func(rec []byte) error {
		got = append(got, recordNum(t, rec, spread))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, seq(7, 20)) {
		t.Fatalf("retry delivered %v, want 7..19", got)
	}
}

func TestReplayContextCanceled(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	appendRange(t, s, 0, 10)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := s.Replay(ctx, func([]byte) error {
		if calls++; calls == 4 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay: %v, want context.Canceled", err)
	}
	if st := s.Stats(); calls != 4 || st.Committed != 4 || st.Depth != 6 {
		t.Fatalf("calls %d Committed %d Depth %d, want 4, 4, 6", calls, st.Committed, st.Depth)
	}
}

func TestErrFull(t *testing.T) {
	rec := []byte("0123456789")
	s := openT(t, t.TempDir(), Options{MaxBytes: 3 * (headerSize + 10)})
	for i := 0; i < 3; i++ {
		if err := s.Append(rec); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := s.Append(rec); err != ErrFull {
		t.Fatalf("4th Append: %v, want ErrFull", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Full != 1 || st.Bytes != 54 || st.Depth != 3 {
		t.Fatalf("Stats %+v, want Full 1, Bytes 54, Depth 3", st)
	}
	if err := s.Replay(context.Background(), func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(rec); err != nil {
		t.Fatalf("Append after draining: %v", err)
	}
}

func TestRecordLimits(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1 << 20})
	if err := s.Append(nil); err != ErrEmptyRecord {
		t.Fatalf("Append(empty): %v, want ErrEmptyRecord", err)
	}
	big := make([]byte, MaxRecordBytes+1)
	err := s.Append(big)
	want := "spool: record too large: 16777217 bytes, the limit is 16777216; the record was not stored"
	if !errors.Is(err, ErrTooLarge) || err.Error() != want {
		t.Fatalf("Append(16 MiB + 1): %q, want %q", err, want)
	}
	maxRec := big[:MaxRecordBytes]
	maxRec[0], maxRec[len(maxRec)-1] = 'x', 'y'
	if err := s.Append([]byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(maxRec); err != nil {
		t.Fatalf("Append(16 MiB): %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Segments != 2 || st.Depth != 2 {
		t.Fatalf("Stats %+v, want the 16 MiB record alone in a second segment", st)
	}
	var sizes []int
	if err := s.Replay(context.Background(), func(rec []byte) error {
		sizes = append(sizes, len(rec))
		if len(rec) == MaxRecordBytes && (rec[0] != 'x' || rec[len(rec)-1] != 'y') {
			t.Error("16 MiB record content changed")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{5, MaxRecordBytes}) {
		t.Fatalf("replayed sizes %v", sizes)
	}
}

func TestLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	_, err := Open(dir, Options{})
	want := "spool: " + dir + ": spool directory is locked: another process has it open; " +
		"give each ingester its own directory (SPOOL_DIR/<instance id>) or stop the other process"
	if !errors.Is(err, ErrLocked) || err.Error() != want {
		t.Fatalf("second Open: %q, want %q", err, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestClosed(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	appendRange(t, s, 0, 2)
	r, err := s.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, pos, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Append": s.Append([]byte("x")),
		"Flush":  s.Flush(),
		"Commit": s.Commit(pos),
	} {
		if err != ErrClosed {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, err := s.NewReader(); err != ErrClosed {
		t.Errorf("NewReader after Close: %v", err)
	}
	if _, _, err := r.Next(); err != ErrClosed {
		t.Errorf("Reader.Next after Close: %v", err)
	}
}

func TestCommitPositionFromAnotherSpool(t *testing.T) {
	a := openT(t, t.TempDir(), Options{})
	b := openT(t, t.TempDir(), Options{})
	appendRange(t, a, 0, 1)
	r, _ := a.NewReader()
	defer r.Close()
	_, pos, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pos); err == nil || err.Error() != "spool: commit: the position comes from another spool" {
		t.Fatalf("Commit of a foreign position: %v", err)
	}
	if err := b.Commit(Position{}); err != nil {
		t.Fatalf("Commit(zero Position): %v", err)
	}
}

// A Reader that runs across commits keeps going when the segment it is in is
// deleted behind it.
func TestReaderAcrossCommitsAndDeletes(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1024, noSync: true})
	appendRange(t, s, 0, 200)
	r, err := s.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []int
	for {
		rec, pos, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next after %d: %v", len(got), err)
		}
		got = append(got, recordNum(t, rec, spread))
		if err := s.Commit(pos); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, seq(0, 200)) || s.Depth() != 0 || s.Stats().Segments != 1 {
		t.Fatalf("read %d records, Depth %d, %d segments", len(got), s.Depth(), s.Stats().Segments)
	}
}

func TestCheckpointEncoding(t *testing.T) {
	cp := checkpoint{seg: 12, off: 3456}
	if got, want := string(cp.encode()), "v1 00000000000000000012 3456 "; got[:len(want)] != want || len(got) != len(want)+9 {
		t.Fatalf("encode = %q", got)
	}
	good := string(cp.encode())
	tests := []struct {
		name, content, why string
	}{
		{"truncated", good[:len(good)-1], "no trailing newline"},
		{"version", "v2" + good[2:], "unknown format"},
		{"checksum", good[:len(good)-2] + "0\n", "checksum mismatch"},
		{"offset changed", "v1 00000000000000000012 3457" + good[len("v1 00000000000000000012 3456"):], "checksum mismatch"},
		{"empty", "", "no trailing newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, checkpointName), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{})
			want := fmt.Sprintf("spool: %s is unreadable (%s): remove it to replay every segment again "+
				"(Redis dedup drops the repeats within DEDUP_WINDOW)", filepath.Join(dir, checkpointName), tt.why)
			if err == nil || err.Error() != want {
				t.Fatalf("Open: %v\nwant %s", err, want)
			}
		})
	}
	dir := t.TempDir()
	if err := writeCheckpoint(dir, cp, (*os.File).Sync); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := readCheckpoint(dir); err != nil || !ok || got != cp {
		t.Fatalf("readCheckpoint = %+v %v %v", got, ok, err)
	}
}
