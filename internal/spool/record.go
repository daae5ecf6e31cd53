package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// MaxRecordBytes is the largest payload Append accepts (16 MiB). Frames are
// bounded well below it by MAX_FRAME_BYTES; the bound also keeps a damaged
// length field from making recovery read a huge region.
const MaxRecordBytes = 16 << 20

// headerSize is the length and CRC words in front of every payload.
const headerSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// appendRecord appends the encoded record to dst.
func appendRecord(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, checksum(payload))
	return append(dst, payload...)
}

// CorruptError reports a record that cannot be read where a valid one must be.
// Open returns it rather than skip the damaged segment; see the package doc.
type CorruptError struct {
	File   string // path of the segment file
	Offset int64  // byte offset of the damaged record in File
	Reason string // what is wrong, e.g. "CRC mismatch"
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: corrupt record in %s at offset %d: %s; "+
		"no record from there on was used: stop the ingester, inspect the file, and rename it to %s.corrupt "+
		"to skip it (its records not yet replayed are lost)", e.File, e.Offset, e.Reason, e.File)
}

// Is makes errors.Is(err, ErrCorrupt) true for every *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// badRecord describes the first unreadable record found by scan.
type badRecord struct {
	off    int64
	reason string
}

// scanResult is what scan found in [from, size) of one segment.
type scanResult struct {
	end   int64 // end of the valid prefix (a record boundary)
	count int   // valid records in [from, end)
	bad   *badRecord
}

// scan validates records in f from offset from to size, stopping at the first
// record that does not parse.
func scan(f *os.File, from, size int64) (scanResult, error) {
	res := scanResult{end: from}
	br := bufio.NewReaderSize(io.NewSectionReader(f, from, size-from), 1<<20)
	var hdr [headerSize]byte
	var payload []byte
	for res.end < size {
		rest := size - res.end
		if rest < headerSize {
			res.bad = &badRecord{res.end, fmt.Sprintf("short header (%d of %d bytes)", rest, headerSize)}
			return res, nil
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return res, fmt.Errorf("spool: read %s: %w", f.Name(), err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if n == 0 || n > MaxRecordBytes {
			res.bad = &badRecord{res.end, fmt.Sprintf("invalid length %d", n)}
			return res, nil
		}
		if n > rest-headerSize {
			res.bad = &badRecord{res.end, fmt.Sprintf("short payload (%d of %d bytes)", rest-headerSize, n)}
			return res, nil
		}
		if int64(cap(payload)) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return res, fmt.Errorf("spool: read %s: %w", f.Name(), err)
		}
		if checksum(payload) != sum {
			res.bad = &badRecord{res.end, "CRC mismatch"}
			return res, nil
		}
		res.end += headerSize + n
		res.count++
	}
	return res, nil
}

// resyncBudget bounds the CRC work of validRecordAfter: a pathological tail
// (many plausible length words) is treated as corruption rather than
// scanned for minutes.
const resyncBudget = 256 << 20

// errResyncBudget means validRecordAfter gave up; the caller must not call
// the damage a torn tail.
var errResyncBudget = errors.New("resync budget exhausted")

// tornTail decides whether the damage at bad.off in the last segment is a torn
// final record (true) or corruption with data after it (false). A crash can
// only tear the record being written, which is the last one, so the region
// from bad.off to EOF must be either all zero bytes (a zero-filled extension
// after a power loss) or at most one record long and contain no valid record
// at any later offset.
func tornTail(f *os.File, off, size int64) (bool, error) {
	rest := size - off
	zero, err := allZero(f, off, size)
	if err != nil || zero {
		return zero, err
	}
	if rest > headerSize+MaxRecordBytes {
		return false, nil
	}
	buf := make([]byte, rest)
	if _, err := f.ReadAt(buf, off); err != nil {
		return false, fmt.Errorf("spool: read %s: %w", f.Name(), err)
	}
	found, err := validRecordAfter(buf)
	if errors.Is(err, errResyncBudget) {
		return false, nil
	}
	return !found, err
}

// validRecordAfter reports whether a complete record with a matching CRC
// starts at any offset in buf[1:].
func validRecordAfter(buf []byte) (bool, error) {
	budget := int64(resyncBudget)
	for i := 1; i+headerSize < len(buf); i++ {
		n := int(binary.LittleEndian.Uint32(buf[i:]))
		if n == 0 || n > MaxRecordBytes || n > len(buf)-i-headerSize {
			continue
		}
		if budget -= int64(n); budget < 0 {
			return false, errResyncBudget
		}
		p := buf[i+headerSize : i+headerSize+n]
		if checksum(p) == binary.LittleEndian.Uint32(buf[i+4:]) {
			return true, nil
		}
	}
	return false, nil
}

func allZero(f *os.File, from, to int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return false, fmt.Errorf("spool: read %s: %w", f.Name(), err)
		}
		for _, b := range buf[:n] {
			if b != 0 {
				return false, nil
			}
		}
		off += n
	}
	return true, nil
}
