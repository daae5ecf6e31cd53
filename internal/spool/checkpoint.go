package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	checkpointName = "CHECKPOINT"
	checkpointTemp = "CHECKPOINT.tmp"
)

// checkpoint is the first uncommitted byte: segment seg at offset off.
type checkpoint struct {
	seg uint64
	off int64
}

func (c checkpoint) encode() []byte {
	body := fmt.Sprintf("v1 %020d %d", c.seg, c.off)
	return fmt.Appendf(nil, "%s %08x\n", body, checksum([]byte(body)))
}

// readCheckpoint returns ok=false when no checkpoint has been written yet.
func readCheckpoint(dir string) (c checkpoint, ok bool, err error) {
	path := filepath.Join(dir, checkpointName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, fmt.Errorf("spool: read checkpoint: %w", err)
	}
	bad := func(why string) error {
		return fmt.Errorf("spool: %s is unreadable (%s): remove it to replay every segment again "+
			"(Redis dedup drops the repeats within DEDUP_WINDOW)", path, why)
	}
	line, found := strings.CutSuffix(string(b), "\n")
	if !found {
		return checkpoint{}, false, bad("no trailing newline")
	}
	f := strings.Split(line, " ")
	if len(f) != 4 || f[0] != "v1" {
		return checkpoint{}, false, bad("unknown format")
	}
	want, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil || len(f[3]) != 8 {
		return checkpoint{}, false, bad("bad checksum field")
	}
	body := strings.Join(f[:3], " ")
	if checksum([]byte(body)) != uint32(want) {
		return checkpoint{}, false, bad("checksum mismatch")
	}
	seg, err1 := strconv.ParseUint(f[1], 10, 64)
	off, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || off < 0 {
		return checkpoint{}, false, bad("bad number")
	}
	return checkpoint{seg: seg, off: off}, true, nil
}

// writeCheckpoint replaces CHECKPOINT atomically and durably: after it
// returns, a crash leaves either this checkpoint or a later one. fsync is
// (*os.File).Sync except in tests that trade durability for speed.
func writeCheckpoint(dir string, c checkpoint, fsync func(*os.File) error) error {
	tmp := filepath.Join(dir, checkpointTemp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: write checkpoint: %w", err)
	}
	_, err = f.Write(c.encode())
	if err == nil {
		err = fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpointName))
	}
	if err == nil {
		err = syncDir(dir, fsync)
	}
	if err != nil {
		return fmt.Errorf("spool: write checkpoint: %w", err)
	}
	return nil
}

// syncDir makes created, renamed and removed directory entries durable.
func syncDir(dir string, fsync func(*os.File) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
