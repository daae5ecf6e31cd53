package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reader reads records in order from the checkpoint (as it was when the
// Reader was created) up to the durable end. It sees records appended and
// flushed while it runs. A Reader is for one goroutine; it holds no spool lock
// between calls.
type Reader struct {
	s     *Spool
	seg   uint64
	off   int64 // next record
	idx   uint64
	limit int64 // durable end of seg known to the reader
	f     *os.File
	br    *bufio.Reader
	err   error // sticky
}

// NewReader returns a Reader positioned at the checkpoint. Close it when done.
func (s *Spool) NewReader() (*Reader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	return &Reader{s: s, seg: s.cp.seg, off: s.cp.off, idx: s.committedIdx, limit: s.cp.off}, nil
}

// Next returns the next record (a fresh slice the caller may keep) and the
// Position just after it. It returns io.EOF when every durable record has been
// read; later calls return records flushed since. Other errors (a
// *CorruptError, ErrClosed, I/O) are sticky.
func (r *Reader) Next() ([]byte, Position, error) {
	if r.err != nil {
		return nil, Position{}, r.err
	}
	if r.s.closedFlag.Load() {
		r.err = ErrClosed
		return nil, Position{}, r.err
	}
	rec, pos, err := r.next()
	if err != nil && err != io.EOF {
		r.err = err
	}
	return rec, pos, err
}

func (r *Reader) next() ([]byte, Position, error) {
	for r.off >= r.limit {
		end, next, hasNext, err := r.s.extent(r)
		if err != nil {
			return nil, Position{}, err
		}
		if end < 0 {
			continue // moved to the checkpoint
		}
		if r.off < end {
			if err := r.open(end); err != nil {
				return nil, Position{}, err
			}
			break
		}
		if !hasNext {
			return nil, Position{}, io.EOF
		}
		if r.f != nil {
			r.f.Close()
			r.f = nil
		}
		r.seg, r.off, r.limit = next, 0, 0
	}

	var hdr [headerSize]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return nil, Position{}, r.readErr(err)
	}
	n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
	if n == 0 || n > MaxRecordBytes || n > r.limit-r.off-headerSize {
		return nil, Position{}, &CorruptError{File: r.s.path(r.seg), Offset: r.off,
			Reason: fmt.Sprintf("invalid length %d", n)}
	}
	rec := make([]byte, n)
	if _, err := io.ReadFull(r.br, rec); err != nil {
		return nil, Position{}, r.readErr(err)
	}
	if checksum(rec) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return nil, Position{}, &CorruptError{File: r.s.path(r.seg), Offset: r.off, Reason: "CRC mismatch"}
	}
	r.off += headerSize + n
	r.idx++
	r.s.replayed.Add(1)
	return rec, Position{s: r.s, seg: r.seg, off: r.off, idx: r.idx}, nil
}

// open (re)positions the buffered reader on [r.off, end) of the current
// segment. The bound matters: bytes past the durable end may be a write in
// progress.
func (r *Reader) open(end int64) error {
	if r.f == nil {
		f, err := os.Open(r.s.path(r.seg))
		if err != nil {
			return fmt.Errorf("spool: reader: %w", err)
		}
		r.f = f
	}
	sr := io.NewSectionReader(r.f, r.off, end-r.off)
	if r.br == nil {
		r.br = bufio.NewReaderSize(sr, 256<<10)
	} else {
		r.br.Reset(sr)
	}
	r.limit = end
	return nil
}

func (r *Reader) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The file is shorter than the size the spool knows to be durable.
		return &CorruptError{File: r.s.path(r.seg), Offset: r.off, Reason: "file shorter than its durable size"}
	}
	return fmt.Errorf("spool: reader: read %s: %w", segName(r.seg), err)
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.err == nil {
		r.err = errReaderClosed
	}
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

var errReaderClosed = errors.New("spool: reader closed")

// extent returns the durable size of the reader's segment and the next
// segment's number, if there is one. If the segment has been committed and
// deleted (the reader committed its end, or another reader went further), it
// moves the reader to the checkpoint and returns end -1: every record it skips
// is committed already.
func (s *Spool) extent(r *Reader) (end int64, next uint64, hasNext bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, false, ErrClosed
	}
	for i, sg := range s.segs {
		if sg.seq == r.seg {
			if i+1 < len(s.segs) {
				return sg.size, s.segs[i+1].seq, true, nil
			}
			return sg.size, 0, false, nil
		}
	}
	if r.seg > s.segs[0].seq {
		return 0, 0, false, fmt.Errorf("spool: reader: %s is not a live segment", segName(r.seg))
	}
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.seg, r.off, r.limit, r.idx = s.cp.seg, s.cp.off, s.cp.off, s.committedIdx
	return -1, 0, false, nil
}

// Replay delivers every durable record from the checkpoint, in order, to fn,
// committing after every Options.ReplayCommitEvery records and at the end. It
// returns nil once it has caught up with the durable end (records flushed
// while it runs are included). If fn fails, Replay commits the records before
// the failed one and returns fn's error wrapped; the failed record and those
// after it are delivered again by the next Replay. ctx is checked between
// records.
func (s *Spool) Replay(ctx context.Context, fn func(rec []byte) error) error {
	r, err := s.NewReader()
	if err != nil {
		return err
	}
	defer r.Close()
	var last Position
	pending := 0
	commit := func() error {
		if pending == 0 {
			return nil
		}
		pending = 0
		return s.Commit(last)
	}
	for {
		if err := ctx.Err(); err != nil {
			return errors.Join(fmt.Errorf("spool: replay: %w", err), commit())
		}
		rec, pos, err := r.Next()
		if err == io.EOF {
			return commit()
		}
		if err != nil {
			return errors.Join(err, commit())
		}
		if err := fn(rec); err != nil {
			return errors.Join(fmt.Errorf("spool: replay: %w", err), commit())
		}
		last = pos
		if pending++; pending >= s.opts.ReplayCommitEvery {
			if err := commit(); err != nil {
				return err
			}
		}
	}
}
