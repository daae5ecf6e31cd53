// Package spool is the ingester's append-only on-disk outage spool
// (ARCHITECTURE §5.6): while Redis is unreachable the ingester appends every
// frame it cannot hand to Redis here, and when Redis returns it replays the
// spool in order through the idempotent dedup-and-append (§5.3), so a record
// replayed twice is a no-op in the stream. The spool survives kill -9 at any
// instant: a record is durable once the Flush (or, with SyncEveryAppend, the
// Append) that covers it has returned nil.
//
// # On-disk format
//
// One spool owns one directory (SPOOL_DIR/<instance id>/):
//
//	LOCK                        flock(LOCK_EX) held while open: one process per directory
//	CHECKPOINT                  the position replayed and committed so far
//	seg-00000000000000000001.log
//	seg-00000000000000000002.log ...
//
// Segments are numbered consecutively and only ever appended to; a new one is
// started when the next record would push the current one past
// Options.SegmentBytes. A segment is a sequence of records:
//
//	[u32 little-endian payload length][u32 little-endian CRC-32C (Castagnoli) of payload][payload]
//
// The payload is 1 byte to MaxRecordBytes (16 MiB). Empty payloads are refused
// so that a run of zero bytes (what some filesystems expose after a power
// loss) can never parse as a record.
//
// CHECKPOINT is one line, "v1 <segment> <offset> <crc>\n", where crc is the
// CRC-32C of the text before it (8 hex digits). It is replaced atomically
// (temp file, fsync, rename, fsync of the directory); segments entirely before
// it are then deleted. Records at or after it are replayed again after a
// crash: the spool is at-least-once and Redis dedup makes the stream
// exactly-once within DEDUP_WINDOW (§10).
//
// # Recovery
//
// Open reads every record after the checkpoint. The last segment may end in a
// torn record (a crash between write and fsync): a short header, a short
// payload, a CRC mismatch or a zero-filled tail. That record was never
// acknowledged, so it is truncated away and counted in Stats.TornRecords. A
// damaged record is only treated as torn when no valid record follows it (a
// torn record is necessarily the last one); otherwise, and for any damage in
// a sealed segment (sealed segments are fsynced before the next one is
// created), Open refuses with a *CorruptError naming the file and offset.
// The spool never skips records on its own: the operator decides, by renaming
// the file to <name>.corrupt, after which Open skips that segment number and
// counts it in Stats.Quarantined. A segment number missing between the
// checkpoint and the newest segment is refused the same way (records were
// lost) until an empty <name>.corrupt acknowledges it.
//
// kill -9 only ever tears the last record: the kernel keeps every completed
// write. After a power loss, a filesystem that persisted unflushed pages out
// of order could leave damage that is not at the very end; Open then reports
// it as corruption rather than guess.
//
// # Concurrency
//
// Append, Flush, Commit, Depth, Bytes, Stats and Close may be called from any
// goroutine, and a Reader (or Replay) may run while another goroutine keeps
// appending: appends go to the tail segment and a Reader only ever reads
// records that are durable, learning the durable end under a short lock. The
// locks, always taken in this order:
//
//   - wmu serializes writer I/O (Append, Flush, segment rotation, Close);
//     it is held across write and fsync of the tail.
//   - cmu serializes Commit's checkpoint I/O, so appends are never blocked by
//     a commit's fsyncs.
//   - mu guards the in-memory state (segment list, durable ends, checkpoint,
//     counters) and is held only for short, I/O-free sections.
//
// One replayer at a time is the intended use; two Readers would both deliver
// every record.
//
// # Use by the ingester
//
// While Redis is down: Append each frame, Flush after each batch (the batch is
// spooled once Flush returns nil). When Redis is back, keep spooling new frames
// (so their order relative to the backlog is kept) and drain with Replay, or
// with a Reader to pipeline batches: Next up to N records, append them, then
// Commit the Position of the last one. Replay returns once it has caught up
// with the durable end; when the caller has stopped appending, Flush and a
// final Replay leave Depth() == 0, and the caller switches to direct appends.
package spool
