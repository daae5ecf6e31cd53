package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// DefaultSegmentBytes is the segment size used when Options.SegmentBytes is 0.
const DefaultSegmentBytes = 64 << 20

// DefaultReplayCommitEvery is how many records Replay hands to fn between
// checkpoint writes when Options.ReplayCommitEvery is 0.
const DefaultReplayCommitEvery = 512

// writeChunk is how much Append buffers before writing to the tail file; the
// bytes are durable only after Flush either way.
const writeChunk = 1 << 20

// Errors returned by the spool. Wrapped errors keep these as their cause, so
// callers test with errors.Is.
var (
	// ErrFull means the uncommitted backlog would exceed Options.MaxBytes; the
	// record was not stored.
	ErrFull = errors.New("spool: full: the backlog reached the size limit and the record was not stored; " +
		"restore Redis so the spool drains, or raise the limit")
	// ErrTooLarge means the record exceeds MaxRecordBytes.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrEmptyRecord means Append was given an empty record.
	ErrEmptyRecord = errors.New("spool: empty record: the spool stores only non-empty records")
	// ErrClosed means the Spool was closed.
	ErrClosed = errors.New("spool: closed")
	// ErrCorrupt is the cause of every *CorruptError.
	ErrCorrupt = errors.New("spool: corrupt")
	// ErrLocked means another open Spool (in this or another process) owns the directory.
	ErrLocked = errors.New("spool directory is locked")
)

// SyncPolicy says when appended records are fsynced (made durable).
type SyncPolicy int

const (
	// SyncOnFlush (the default) fsyncs in Flush: the caller appends a batch and
	// calls Flush once, paying one fsync per batch.
	SyncOnFlush SyncPolicy = iota
	// SyncEveryAppend writes and fsyncs inside every Append.
	SyncEveryAppend
)

// Options configure a Spool. The zero value is usable.
type Options struct {
	// SegmentBytes starts a new segment when the next record would make the
	// current one larger (a single larger record gets a segment of its own).
	// 0 means DefaultSegmentBytes.
	SegmentBytes int64
	// MaxBytes bounds the uncommitted backlog, record headers included; an
	// Append beyond it fails with ErrFull. Disk use can exceed it by the
	// committed part of the oldest segment (less than SegmentBytes). 0 means
	// unlimited.
	MaxBytes int64
	// Sync is the fsync policy.
	Sync SyncPolicy
	// ReplayCommitEvery is how many records Replay delivers between commits.
	// 0 means DefaultReplayCommitEvery.
	ReplayCommitEvery int
	// Logger receives recovery and I/O warnings (file names and offsets,
	// never record contents). nil means zap.NewNop().
	Logger *zap.Logger

	// noSync skips every fsync: only for tests whose subject is not
	// durability, to keep them fast on slow disks.
	noSync bool
}

// Stats is a snapshot of the spool's counters (since Open) and state.
type Stats struct {
	Appended    uint64 // records accepted by Append
	Recovered   uint64 // uncommitted records found on disk by Open
	Replayed    uint64 // records returned by Readers (repeats included)
	Committed   uint64 // records covered by Commit
	TornRecords uint64 // torn records at the tail discarded by Open
	Quarantined int    // *.corrupt segment files in the directory (skipped; for the operator to inspect)
	Full        uint64 // appends refused with ErrFull
	Segments    int    // segment files
	Bytes       int64  // uncommitted bytes, headers and not yet flushed records included
	DiskBytes   int64  // bytes in segment files, not yet flushed records included
	Depth       int    // uncommitted records
}

// Position is the place just after a record returned by a Reader. Commit it
// to mark that record and every one before it as replayed. The zero Position
// is before every record.
type Position struct {
	s   *Spool
	seg uint64
	off int64
	idx uint64 // records from the checkpoint at Open up to this position
}

// Segment is the number of the segment file the position is in.
func (p Position) Segment() uint64 { return p.seg }

// Offset is the byte offset in that segment.
func (p Position) Offset() int64 { return p.off }

func (p Position) String() string { return fmt.Sprintf("%s:%d", segName(p.seg), p.off) }

// segInfo is one live segment; size is its durable length (for the tail: up
// to the last fsync).
type segInfo struct {
	seq  uint64
	size int64
}

// Spool is an open spool directory. See the package doc for the locking.
type Spool struct {
	dir  string
	opts Options
	log  *zap.Logger
	lock *os.File

	wmu        sync.Mutex
	tail       *os.File // wmu
	tailSeq    uint64   // wmu
	buf        []byte   // wmu: encoded records not yet written to tail
	bufRecords int      // wmu
	written    int64    // wmu: bytes written to tail (its size)
	synced     int64    // wmu: bytes of tail known durable
	batchErr   error    // wmu: a write failed since the last Flush
	broken     error    // wmu: sticky: after a failed fsync the file state is unknown
	wclosed    bool     // wmu

	cmu sync.Mutex

	mu           sync.Mutex
	segs         []segInfo   // mu: ascending; the last one is the tail
	tailPending  int64       // mu: bytes appended to the tail but not durable
	cp           checkpoint  // mu: always names a segment in segs
	appendedIdx  uint64      // mu: records stored (recovered + appended - lost)
	committedIdx uint64      // mu
	quarantined  int         // mu
	closed       bool        // mu
	closedFlag   atomic.Bool // closed, for Readers without taking mu

	appended, recovered, replayed, committed, torn, full atomic.Uint64
}

// Open opens (creating if needed) the spool in dir, takes its lock, and
// recovers it: a torn tail is truncated, damage anywhere else returns a
// *CorruptError. Every uncommitted record is read once to count and check it,
// so Open takes time proportional to the backlog.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.SegmentBytes < 0 || opts.MaxBytes < 0 || opts.ReplayCommitEvery < 0 {
		return nil, fmt.Errorf("spool: open %s: SegmentBytes, MaxBytes and ReplayCommitEvery must not be negative", dir)
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.ReplayCommitEvery == 0 {
		opts.ReplayCommitEvery = DefaultReplayCommitEvery
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: open: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opts: opts, log: opts.Logger.With(zap.String("spool_dir", dir)), lock: lock}
	if err := s.recover(); err != nil {
		if s.tail != nil {
			s.tail.Close()
		}
		lock.Close()
		return nil, err
	}
	return s, nil
}

// fsync makes f's data (or a directory's entries) durable.
func (s *Spool) fsync(f *os.File) error {
	if s.opts.noSync {
		return nil
	}
	return f.Sync()
}

func segName(seq uint64) string { return fmt.Sprintf("seg-%020d.log", seq) }

// parseSegName returns the number of a "seg-<20 digits><suffix>" name.
func parseSegName(name, suffix string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, suffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

func (s *Spool) path(seq uint64) string { return filepath.Join(s.dir, segName(seq)) }

func (s *Spool) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: open: %w", err)
	}
	var seqs []uint64
	corrupt := map[uint64]bool{}
	var maxSeen uint64
	for _, e := range entries {
		if seq, ok := parseSegName(e.Name(), ".log"); ok {
			seqs = append(seqs, seq)
			maxSeen = max(maxSeen, seq)
		} else if seq, ok := parseSegName(e.Name(), ".log.corrupt"); ok {
			corrupt[seq] = true
			maxSeen = max(maxSeen, seq)
		}
	}
	slices.Sort(seqs)
	if err := os.Remove(filepath.Join(s.dir, checkpointTemp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: open: %w", err)
	}

	cp, haveCP, err := readCheckpoint(s.dir)
	if err != nil {
		return err
	}
	if !haveCP {
		cp = checkpoint{seg: maxSeen + 1}
		if len(seqs) > 0 {
			cp.seg = seqs[0]
		}
	}

	// Segments before the checkpoint were committed; a crash between the
	// checkpoint write and their deletion leaves them behind.
	var live []uint64
	removed := false
	for _, seq := range seqs {
		if seq >= cp.seg {
			live = append(live, seq)
			continue
		}
		if err := os.Remove(s.path(seq)); err != nil {
			return fmt.Errorf("spool: open: remove committed segment: %w", err)
		}
		removed = true
	}
	if removed {
		if err := syncDir(s.dir, s.fsync); err != nil {
			return fmt.Errorf("spool: open: %w", err)
		}
	}

	// Every number from the checkpoint's segment to the last one must be a
	// segment or an acknowledged .corrupt stand-in: anything else lost records.
	// With no live segment and a checkpoint at offset 0 nothing is expected:
	// a fresh spool.
	last, expect := cp.seg, cp.off > 0
	if len(live) > 0 {
		last, expect = live[len(live)-1], true
	}
	for seq, i := cp.seg, 0; expect && seq <= last; seq++ {
		if i < len(live) && live[i] == seq {
			i++
			continue
		}
		if !corrupt[seq] {
			p := s.path(seq)
			return fmt.Errorf("spool: open: segment %s is missing, so records may have been lost; "+
				"if it was removed on purpose, create an empty %s.corrupt to acknowledge that, then restart", p, p)
		}
	}
	s.quarantined = len(corrupt)
	if len(corrupt) > 0 {
		s.log.Warn("spool: quarantined segments (*.corrupt) are skipped; inspect and remove them",
			zap.Int("count", len(corrupt)))
	}

	for i, seq := range live {
		// Only the highest-numbered file can have been the tail: a segment
		// before a quarantined one was sealed.
		isTail := i == len(live)-1 && seq == maxSeen
		from := int64(0)
		if seq == cp.seg {
			from = cp.off
		}
		size, count, err := s.recoverSegment(seq, from, isTail)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, segInfo{seq: seq, size: size})
		s.appendedIdx += uint64(count)
	}
	s.recovered.Store(s.appendedIdx)

	if s.tail == nil {
		seq := max(cp.seg, maxSeen+1)
		f, err := s.createSegment(seq)
		if err != nil {
			return err
		}
		s.tail, s.tailSeq = f, seq
		s.segs = append(s.segs, segInfo{seq: seq})
	}
	// A quarantined checkpoint segment: replay from the next live one.
	if s.segs[0].seq != cp.seg {
		cp = checkpoint{seg: s.segs[0].seq}
	}
	s.cp = cp
	if s.appendedIdx > 0 || s.torn.Load() > 0 {
		s.log.Info("spool: recovered",
			zap.Uint64("records", s.appendedIdx), zap.Int("segments", len(s.segs)),
			zap.Uint64("torn_records", s.torn.Load()))
	}
	return nil
}

// recoverSegment checks the records of one segment from offset from and
// returns its size and record count. For the tail it also truncates a torn
// last record and keeps the file open for appending.
func (s *Spool) recoverSegment(seq uint64, from int64, isTail bool) (int64, int, error) {
	p := s.path(seq)
	flag := os.O_RDONLY
	if isTail {
		flag = os.O_RDWR | os.O_APPEND
	}
	f, err := os.OpenFile(p, flag, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: open: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("spool: open: %w", err)
	}
	size := fi.Size()
	if from > size {
		return 0, 0, &CorruptError{File: p, Offset: from,
			Reason: fmt.Sprintf("the checkpoint points past the end of the file (%d bytes)", size)}
	}
	res, err := scan(f, from, size)
	if err != nil {
		return 0, 0, err
	}
	if res.bad != nil {
		if !isTail {
			return 0, 0, &CorruptError{File: p, Offset: res.bad.off,
				Reason: res.bad.reason + " in a sealed segment"}
		}
		torn, err := tornTail(f, res.bad.off, size)
		if err != nil {
			return 0, 0, err
		}
		if !torn {
			return 0, 0, &CorruptError{File: p, Offset: res.bad.off,
				Reason: res.bad.reason + ", and more data follows it"}
		}
		if err := f.Truncate(res.bad.off); err != nil {
			return 0, 0, fmt.Errorf("spool: open: truncate torn record: %w", err)
		}
		if err := s.fsync(f); err != nil {
			return 0, 0, fmt.Errorf("spool: open: truncate torn record: %w", err)
		}
		s.torn.Add(1)
		s.log.Warn("spool: discarded a torn record at the tail (a crash interrupted its write; it was never flushed)",
			zap.String("file", segName(seq)), zap.Int64("offset", res.bad.off),
			zap.Int64("bytes", size-res.bad.off), zap.String("reason", res.bad.reason))
		size = res.bad.off
	}
	if isTail {
		keep = true
		s.tail, s.tailSeq, s.written, s.synced = f, seq, size, size
	}
	return size, res.count, nil
}

// createSegment creates an empty segment and makes its name durable, so a
// checkpoint may name it as soon as it is in s.segs.
func (s *Spool) createSegment(seq uint64) (*os.File, error) {
	f, err := os.OpenFile(s.path(seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: create segment: %w", err)
	}
	if err := syncDir(s.dir, s.fsync); err != nil {
		f.Close()
		os.Remove(s.path(seq))
		return nil, fmt.Errorf("spool: create segment: %w", err)
	}
	return f, nil
}

// Append adds rec (copied) to the spool. It is durable after the next Flush
// returns nil (with SyncEveryAppend: when Append returns nil). Errors:
// ErrEmptyRecord, ErrTooLarge, ErrFull (nothing stored), ErrClosed, or an I/O
// error after which the records appended since the last Flush may be lost
// (Flush reports it too).
func (s *Spool) Append(rec []byte) error {
	if len(rec) == 0 {
		return ErrEmptyRecord
	}
	if len(rec) > MaxRecordBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d; the record was not stored", ErrTooLarge, len(rec), MaxRecordBytes)
	}
	need := int64(headerSize + len(rec))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return ErrClosed
	}
	if s.broken != nil {
		return s.broken
	}
	if s.opts.MaxBytes > 0 {
		s.mu.Lock()
		backlog := s.bytesLocked()
		s.mu.Unlock()
		if backlog+need > s.opts.MaxBytes {
			s.full.Add(1)
			return ErrFull
		}
	}
	if size := s.written + int64(len(s.buf)); size > 0 && size+need > s.opts.SegmentBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	s.buf = appendRecord(s.buf, rec)
	s.bufRecords++
	s.mu.Lock()
	s.appendedIdx++
	s.tailPending += need
	s.mu.Unlock()
	s.appended.Add(1)
	if s.opts.Sync == SyncEveryAppend {
		return s.flushLocked()
	}
	if len(s.buf) >= writeChunk {
		return s.writeBuf()
	}
	return nil
}

// Flush writes buffered records and fsyncs the tail. When it returns nil,
// every record appended before the call is durable and visible to Readers.
// An error means some records appended since the previous Flush may be lost:
// the caller should append them again (Redis dedup absorbs any repeat).
func (s *Spool) Flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return ErrClosed
	}
	return s.flushLocked()
}

// flushLocked syncs and reports a write failure since the last flush.
func (s *Spool) flushLocked() error {
	err := s.syncLocked()
	berr := s.batchErr
	s.batchErr = nil
	if err != nil {
		return err
	}
	return berr
}

// syncLocked writes the buffer and fsyncs the tail.
func (s *Spool) syncLocked() error {
	if s.broken != nil {
		return s.broken
	}
	werr := s.writeBuf()
	if s.written > s.synced {
		if err := s.fsync(s.tail); err != nil {
			// After a failed fsync the kernel may have dropped the dirty pages:
			// only a reopen (which re-reads the file) knows what is on disk.
			s.broken = fmt.Errorf("spool: fsync %s: %w; close and reopen the spool", segName(s.tailSeq), err)
			return s.broken
		}
		s.synced = s.written
		s.mu.Lock()
		s.segs[len(s.segs)-1].size = s.synced
		s.tailPending = 0
		s.mu.Unlock()
	}
	return werr
}

// writeBuf hands the buffered records to the kernel (not durable yet). On
// failure it drops them and cuts any partial write off the file, so a later
// record never lands behind a partial one.
func (s *Spool) writeBuf() error {
	if len(s.buf) == 0 {
		return nil
	}
	n, err := s.tail.Write(s.buf)
	if err == nil {
		s.written += int64(n)
		s.bufRecords = 0
		if cap(s.buf) > 4*writeChunk {
			s.buf = nil
		} else {
			s.buf = s.buf[:0]
		}
		return nil
	}
	s.batchErr = fmt.Errorf("spool: write %s: %w; the last %d records appended are not stored",
		segName(s.tailSeq), err, s.bufRecords)
	if terr := s.tail.Truncate(s.written); terr != nil {
		s.broken = fmt.Errorf("spool: write %s: %w, and cutting off the partial write failed: %v; close and reopen the spool",
			segName(s.tailSeq), err, terr)
	}
	s.mu.Lock()
	s.appendedIdx -= uint64(s.bufRecords)
	s.tailPending -= int64(len(s.buf))
	s.mu.Unlock()
	s.buf, s.bufRecords = s.buf[:0], 0
	return s.batchErr
}

// rotate seals the tail (everything in it becomes durable) and starts the
// next segment. Sealed segments are complete on disk before the next one
// exists, which is why Open may treat any damage in them as corruption.
func (s *Spool) rotate() error {
	if err := s.syncLocked(); err != nil {
		return err
	}
	next := s.tailSeq + 1
	f, err := s.createSegment(next)
	if err != nil {
		return err
	}
	if err := s.tail.Close(); err != nil {
		s.log.Warn("spool: close sealed segment", zap.String("file", segName(s.tailSeq)), zap.Error(err))
	}
	s.tail, s.tailSeq, s.written, s.synced = f, next, 0, 0
	s.mu.Lock()
	s.segs = append(s.segs, segInfo{seq: next})
	s.mu.Unlock()
	return nil
}

// Commit records that every record up to p (a Position returned by a Reader
// of this Spool) has been replayed: the checkpoint file is replaced
// atomically and fully committed segments are deleted. Committing a position
// at or before the current checkpoint does nothing.
func (s *Spool) Commit(p Position) error {
	if p.s == nil {
		return nil
	}
	if p.s != s {
		return errors.New("spool: commit: the position comes from another spool")
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if p.idx <= s.committedIdx {
		s.mu.Unlock()
		return nil
	}
	cp := checkpoint{seg: p.seg, off: p.off}
	// At the end of a sealed segment the checkpoint moves to the next one, so
	// the sealed one can be deleted now rather than on the next commit.
	for i := 0; i < len(s.segs)-1; i++ {
		if s.segs[i].seq == cp.seg && s.segs[i].size == cp.off {
			cp = checkpoint{seg: s.segs[i+1].seq}
		}
	}
	s.mu.Unlock()

	if err := writeCheckpoint(s.dir, cp, s.fsync); err != nil {
		return err
	}

	s.mu.Lock()
	n := p.idx - s.committedIdx
	s.committedIdx, s.cp = p.idx, cp
	var drop []uint64
	for len(s.segs) > 0 && s.segs[0].seq < cp.seg {
		drop = append(drop, s.segs[0].seq)
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	s.committed.Add(n)
	for _, seq := range drop {
		// A segment that survives here is deleted by the next Open: it is
		// before the checkpoint.
		if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: remove committed segment", zap.String("file", segName(seq)), zap.Error(err))
		}
	}
	return nil
}

// Depth is the number of records appended (or recovered) and not yet committed.
func (s *Spool) Depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.appendedIdx - s.committedIdx)
}

// Bytes is the size of the uncommitted backlog, record headers included: the
// figure Options.MaxBytes bounds.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytesLocked()
}

func (s *Spool) bytesLocked() int64 {
	var b int64
	for _, sg := range s.segs {
		if sg.seq >= s.cp.seg {
			b += sg.size
		}
	}
	return b - s.cp.off + s.tailPending
}

// Stats returns the counters and state.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Appended:    s.appended.Load(),
		Recovered:   s.recovered.Load(),
		Replayed:    s.replayed.Load(),
		Committed:   s.committed.Load(),
		TornRecords: s.torn.Load(),
		Quarantined: s.quarantined,
		Full:        s.full.Load(),
		Segments:    len(s.segs),
		Bytes:       s.bytesLocked(),
		Depth:       int(s.appendedIdx - s.committedIdx),
	}
	for _, sg := range s.segs {
		st.DiskBytes += sg.size
	}
	st.DiskBytes += s.tailPending
	return st
}

// Close flushes (write + fsync), closes the files and releases the directory
// lock. Readers fail with ErrClosed afterwards. Close is idempotent.
func (s *Spool) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return nil
	}
	err := s.flushLocked()
	if cerr := s.tail.Close(); err == nil {
		err = cerr
	}
	s.wclosed = true
	s.cmu.Lock()
	s.mu.Lock()
	s.closed = true
	s.closedFlag.Store(true)
	s.mu.Unlock()
	s.cmu.Unlock()
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}
