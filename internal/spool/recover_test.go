package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// recordOffsets parses a segment file independently of the package code and
// returns the start of every record plus the end of the last one.
func recordOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	off := int64(0)
	for off < int64(len(b)) {
		offs = append(offs, off)
		off += headerSize + int64(binary.LittleEndian.Uint32(b[off:]))
	}
	if off != int64(len(b)) {
		t.Fatalf("%s: records end at %d, file has %d bytes", path, off, len(b))
	}
	return append(offs, off)
}

// writeSpool creates a spool in dir with records 0..n-1, closed cleanly.
func writeSpool(t *testing.T, dir string, n int, opts Options) {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, s, 0, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailAtEveryOffset(t *testing.T) {
	src := t.TempDir()
	const n = 6
	// fsync is not the subject here and ~600 of them are slow on a busy disk.
	fast := Options{noSync: true}
	writeSpool(t, src, n, fast)
	name := segName(1)
	data, err := os.ReadFile(filepath.Join(src, name))
	if err != nil {
		t.Fatal(err)
	}
	offs := recordOffsets(t, filepath.Join(src, name))
	start, end := offs[n-1], offs[n]
	if end-start < 100 {
		t.Fatalf("last record is only %d bytes; the test wants a longer one", end-start)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	for cut := start; cut < end; cut++ {
		if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, fast)
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		wantTorn := uint64(0)
		if cut > start {
			wantTorn = 1
		}
		st := s.Stats()
		if st.TornRecords != wantTorn || st.Recovered != n-1 || st.DiskBytes != start {
			t.Fatalf("cut at %d: %+v; want TornRecords %d, Recovered %d, DiskBytes %d", cut, st, wantTorn, n-1, start)
		}
		// The tail is usable: a new record lands right after the intact ones.
		if err := s.Append(payload(100, spread)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, fast)
		if err != nil {
			t.Fatalf("cut at %d: reopen: %v", cut, err)
		}
		got := readNums(t, s)
		s.Close()
		if want := append(seq(0, n-1), 100); !slices.Equal(got, want) {
			t.Fatalf("cut at %d: records %v, want %v", cut, got, want)
		}
	}
}

func TestTornTailVariants(t *testing.T) {
	const n = 5
	tests := []struct {
		name   string
		mangle func(data []byte, lastStart int64) []byte
	}{
		{"bad CRC at the very end", func(d []byte, _ int64) []byte {
			d[len(d)-1] ^= 0xff
			return d
		}},
		{"bad CRC word in the last header", func(d []byte, last int64) []byte {
			d[last+5] ^= 0x01
			return d
		}},
		{"zero-filled tail after the records", func(d []byte, _ int64) []byte {
			return append(d, make([]byte, 8192)...)
		}},
		{"last record zeroed, file size kept", func(d []byte, last int64) []byte {
			clear(d[last:])
			return d
		}},
		{"garbage length word then a few bytes", func(d []byte, _ int64) []byte {
			return append(d, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7)
		}},
		{"short header", func(d []byte, _ int64) []byte {
			return append(d, 7, 0, 0)
		}},
		{"length beyond the end", func(d []byte, _ int64) []byte {
			return binary.LittleEndian.AppendUint32(append(d, 0x00, 0x10, 0, 0), 0xdeadbeef)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSpool(t, dir, n, Options{})
			path := filepath.Join(dir, segName(1))
			offs := recordOffsets(t, path)
			data, _ := os.ReadFile(path)
			data = tt.mangle(data, offs[n-1])
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			got := readNums(t, s)
			complete := n
			if tt.name == "bad CRC at the very end" || tt.name == "bad CRC word in the last header" ||
				tt.name == "last record zeroed, file size kept" {
				complete = n - 1
			}
			if !slices.Equal(got, seq(0, complete)) || s.Stats().TornRecords != 1 {
				t.Fatalf("records %v, TornRecords %d; want 0..%d and 1", got, s.Stats().TornRecords, complete-1)
			}
			fi, _ := os.Stat(path)
			if fi.Size() != offs[complete] {
				t.Fatalf("file is %d bytes after recovery, want %d", fi.Size(), offs[complete])
			}
		})
	}
}

func TestCorruptionIsReported(t *testing.T) {
	const n = 40
	opts := Options{SegmentBytes: 4096}
	type target struct{ seg, rec int } // rec: index of the record within the segment
	tests := []struct {
		name   string
		at     target
		mangle func(d []byte, off int64) []byte
		reason string
	}{
		{"bad CRC mid tail", target{-1, 1}, func(d []byte, off int64) []byte {
			d[off+20] ^= 0x40
			return d
		}, "CRC mismatch, and more data follows it"},
		{"zero length mid tail", target{-1, 2}, func(d []byte, off int64) []byte {
			binary.LittleEndian.PutUint32(d[off:], 0)
			return d
		}, "invalid length 0, and more data follows it"},
		{"length grown past the end mid tail", target{-1, 1}, func(d []byte, off int64) []byte {
			binary.LittleEndian.PutUint32(d[off:], 1<<20)
			return d
		}, "short payload (%d of 1048576 bytes), and more data follows it"},
		{"bytes lost inside a tail record", target{-1, 1}, func(d []byte, off int64) []byte {
			return slices.Delete(d, int(off)+30, int(off)+40)
		}, "CRC mismatch, and more data follows it"},
		{"bad CRC in a sealed segment", target{0, 2}, func(d []byte, off int64) []byte {
			d[off+12] ^= 0x01
			return d
		}, "CRC mismatch in a sealed segment"},
		{"sealed segment cut short", target{1, 3}, func(d []byte, off int64) []byte {
			return d[:off+12]
		}, "short payload (4 of %d bytes) in a sealed segment"},
		{"zero tail in a sealed segment", target{1, 3}, func(d []byte, off int64) []byte {
			clear(d[off:])
			return d
		}, "invalid length 0 in a sealed segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSpool(t, dir, n, opts)
			names := segFiles(t, dir)
			if len(names) < 3 {
				t.Fatalf("only %d segments", len(names))
			}
			seg := tt.at.seg
			if seg < 0 {
				seg = len(names) - 1
			}
			path := filepath.Join(dir, names[seg])
			offs := recordOffsets(t, path)
			if len(offs) < tt.at.rec+3 {
				t.Fatalf("%s has only %d records", names[seg], len(offs)-1)
			}
			off := offs[tt.at.rec]
			data, _ := os.ReadFile(path)
			recLen := binary.LittleEndian.Uint32(data[off:])
			data = tt.mangle(data, off)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			reason := tt.reason
			switch tt.name {
			case "length grown past the end mid tail":
				reason = fmt.Sprintf(tt.reason, int64(len(data))-off-headerSize)
			case "sealed segment cut short":
				reason = fmt.Sprintf(tt.reason, recLen)
			}

			_, err := Open(dir, opts)
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want a *CorruptError", err)
			}
			if want := (CorruptError{File: path, Offset: off, Reason: reason}); *ce != want {
				t.Fatalf("got %+v\nwant %+v", *ce, want)
			}
			wantText := fmt.Sprintf("spool: corrupt record in %s at offset %d: %s; no record from there on was used: "+
				"stop the ingester, inspect the file, and rename it to %s.corrupt to skip it "+
				"(its records not yet replayed are lost)", path, off, reason, path)
			if err.Error() != wantText {
				t.Fatalf("error text\n%s\nwant\n%s", err, wantText)
			}
			// Nothing was truncated or deleted.
			if after, _ := os.ReadFile(path); !slices.Equal(after, data) {
				t.Fatal("Open modified the corrupt segment")
			}

			// The documented remedy: quarantine the file by renaming it.
			if err := os.Rename(path, path+".corrupt"); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatalf("Open after quarantine: %v", err)
			}
			defer s.Close()
			if q := s.Stats().Quarantined; q != 1 {
				t.Fatalf("Quarantined = %d, want 1", q)
			}
			got := readNums(t, s)
			if len(got) == 0 || !slices.IsSorted(got) || len(got) >= n {
				t.Fatalf("records after quarantine: %v", got)
			}
			// New appends still work and land after the survivors.
			appendRange(t, s, n, n+1)
			if got := readNums(t, s); got[len(got)-1] != n {
				t.Fatalf("last record %d, want %d", got[len(got)-1], n)
			}
		})
	}
}

func TestMissingSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 2048}
	writeSpool(t, dir, 60, opts)
	names := segFiles(t, dir)
	missing := filepath.Join(dir, names[1])
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, opts)
	want := fmt.Sprintf("spool: open: segment %s is missing, so records may have been lost; "+
		"if it was removed on purpose, create an empty %s.corrupt to acknowledge that, then restart", missing, missing)
	if err == nil || err.Error() != want {
		t.Fatalf("Open: %v\nwant %s", err, want)
	}
	if err := os.WriteFile(missing+".corrupt", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dir, opts)
	got := readNums(t, s)
	if st := s.Stats(); st.Quarantined != 1 || st.Segments != len(names)-1 || len(got) == 0 || got[0] != 0 || got[len(got)-1] != 59 {
		t.Fatalf("after acknowledging: %+v, records %v", st, got)
	}
}

func TestCheckpointPastEndOfFile(t *testing.T) {
	dir := t.TempDir()
	writeSpool(t, dir, 3, Options{})
	path := filepath.Join(dir, segName(1))
	fi, _ := os.Stat(path)
	if err := writeCheckpoint(dir, checkpoint{seg: 1, off: fi.Size() + 10}, (*os.File).Sync); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	var ce *CorruptError
	want := CorruptError{File: path, Offset: fi.Size() + 10,
		Reason: fmt.Sprintf("the checkpoint points past the end of the file (%d bytes)", fi.Size())}
	if !errors.As(err, &ce) || *ce != want {
		t.Fatalf("Open: %v, want %+v", err, want)
	}
}

// Segments before the checkpoint (a crash between the checkpoint write and
// their deletion) are deleted by Open; a .tmp checkpoint is ignored.
func TestCommittedLeftoversRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, noSync: true}
	writeSpool(t, dir, 50, opts)
	names := segFiles(t, dir)
	saved, _ := os.ReadFile(filepath.Join(dir, names[0]))
	s := openT(t, dir, opts)
	r, _ := s.NewReader()
	var pos Position
	for i := 0; i < 20; i++ {
		_, pos, _ = r.Next()
	}
	r.Close()
	if err := s.Commit(pos); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, names[0]), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, checkpointTemp), []byte("v1 garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, opts)
	if got := readNums(t, s); !slices.Equal(got, seq(20, 50)) {
		t.Fatalf("records %v, want 20..49", got)
	}
	for _, name := range []string{names[0], checkpointTemp} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still exists after Open (%v)", name, err)
		}
	}
}

// Damage that appears after Open is caught by the Reader's CRC check.
func TestReaderDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendRange(t, s, 0, 5)
	path := filepath.Join(dir, segName(1))
	offs := recordOffsets(t, path)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("#"), offs[3]+15); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, _ := s.NewReader()
	defer r.Close()
	for i := 0; i < 3; i++ {
		if _, _, err := r.Next(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	_, _, err = r.Next()
	var ce *CorruptError
	if !errors.As(err, &ce) || *ce != (CorruptError{File: path, Offset: offs[3], Reason: "CRC mismatch"}) {
		t.Fatalf("Next on the damaged record: %v", err)
	}
	if _, _, err2 := r.Next(); err2 != err {
		t.Fatalf("the error is not sticky: %v", err2)
	}
}
