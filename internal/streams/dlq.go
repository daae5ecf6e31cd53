package streams

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Operator-side DLQ and quarantine operations (ARCHITECTURE §7.5, §9.2):
// replay, import, statistics and the audit trail of dlqctl. Parking itself
// is in commit.go (a fenced worker operation).

// DLQImportMark marks an exported DLQ entry as imported into shard n, so an
// import run twice (or resumed after a crash) adds nothing twice. digest is
// any stable identity of the exported record.
func (k Keys) DLQImportMark(n int, digest string) string {
	return k.shard(n, "dlqimp:"+digest16(digest))
}

// QuarantineImportMark is DLQImportMark for the quarantine stream.
func (k Keys) QuarantineImportMark(digest string) string { return k.global("qimp:" + digest16(digest)) }

// AuditMaxLen caps the audit stream (approximately), ARCHITECTURE §3.
const AuditMaxLen = 10000

// replayDLQ moves one parked entry back to the end of its shard stream and
// out of the DLQ in one step, so a replay killed at any point leaves every
// entry either still parked or back in the stream, never both, never neither.
// The new entry carries only the routing fields (m, p), the original id (o:
// kept through every replay, so effectively-once records still apply) and
// the replay count (rc); its new stream id gives it a fresh attempt budget.
// KEYS[1] dlq, KEYS[2] shard stream (same {A.sN} slot). ARGV[1] DLQ entry id.
// Returns {1, new id}, {0, ”} when the entry is gone (replayed or purged
// meanwhile), {-1, ”} when it lacks the fields a worker needs.
var replayDLQ = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return {0, ''} end
local f = e[1][2]
local m, p, o, src, rc
for i = 1, #f, 2 do
  local k = f[i]
  if k == 'm' then m = f[i + 1]
  elseif k == 'p' then p = f[i + 1]
  elseif k == 'o' then o = f[i + 1]
  elseif k == 'src' then src = f[i + 1]
  elseif k == 'rc' then rc = f[i + 1]
  end
end
if not m or not p or p == '' then return {-1, ''} end
if not o or o == '' then o = src end
if not o or o == '' then o = ARGV[1] end
local n = (tonumber(rc) or 0) + 1
local id = redis.call('XADD', KEYS[2], '*', 'm', m, 'p', p, 'o', o, 'rc', string.format('%d', n))
redis.call('XDEL', KEYS[1], ARGV[1])
return {1, id}
`)

// importEntry appends an exported entry to a DLQ (or the quarantine) unless
// it was imported before (marker) or is still there under its exported id
// (an export re-imported into the same cluster).
// KEYS[1] stream, KEYS[2] marker (same slot). ARGV[1] marker TTL ms,
// ARGV[2] exported stream id to probe (” = none), ARGV[3] probe field,
// ARGV[4] its expected value, ARGV[5..] the fields.
// Returns {1, new id}, {0, id of the earlier import}, {2, probed id}.
var importEntry = redis.NewScript(`
local prev = redis.call('GET', KEYS[2])
if prev then return {0, prev} end
if ARGV[2] ~= '' then
  local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
  if #e > 0 then
    local f = e[1][2]
    for i = 1, #f, 2 do
      if f[i] == ARGV[3] and f[i + 1] == ARGV[4] then return {2, ARGV[2]} end
    end
  end
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return {1, id}
`)

// streamSummary counts a DLQ or quarantine stream by reason inside Redis, so
// neither the payloads nor the entries travel to the caller.
// KEYS[1] stream. Returns {length, first id or ”, reason1, n1, reason2, n2, ...}.
var streamSummary = redis.NewScript(`
local n = redis.call('XLEN', KEYS[1])
if n == 0 then return {0, ''} end
local counts, order, first = {}, {}, ''
local start = '-'
while true do
  local page = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 500)
  for _, e in ipairs(page) do
    if first == '' then first = e[1] end
    local f, r = e[2], ''
    for i = 1, #f, 2 do
      if f[i] == 'reason' then r = f[i + 1]; break end
    end
    if not counts[r] then counts[r] = 0; order[#order + 1] = r end
    counts[r] = counts[r] + 1
  end
  if #page < 500 then break end
  start = '(' .. page[#page][1]
end
local out = {n, first}
for _, r in ipairs(order) do
  out[#out + 1] = r
  out[#out + 1] = counts[r]
end
return out
`)

func init() {
	allScripts = append(allScripts, replayDLQ, importEntry, streamSummary)
}

// ReplayStatus is the outcome of replaying one DLQ entry.
type ReplayStatus int

// Replay outcomes.
const (
	ReplayGone          ReplayStatus = 0  // not in the DLQ any more (replayed or purged by someone else)
	ReplayDone          ReplayStatus = 1  // back at the end of the shard stream
	ReplayNotReplayable ReplayStatus = -1 // no payload to hand to a worker (left in the DLQ)
)

// ReplayReq names one DLQ entry.
type ReplayReq struct {
	Shard int
	ID    string
}

// ReplayRes is the outcome of one ReplayReq.
type ReplayRes struct {
	Status ReplayStatus
	NewID  string // the id in the shard stream when Status is ReplayDone
	Err    error
}

// ReplayDLQ replays entries, one atomic script call each, pipelined in one
// round trip, in the order given. The error is set only when the round trip
// failed as a whole; then some of the entries may have been replayed (each
// one completely or not at all).
func (s *Store) ReplayDLQ(ctx context.Context, reqs []ReplayReq) ([]ReplayRes, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	cmds, err := s.evalPipelined(ctx, len(reqs), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		r := reqs[i]
		return replayDLQ.EvalSha(ctx, pipe, []string{s.keys.DLQ(r.Shard), s.keys.Stream(r.Shard)}, r.ID)
	})
	if cmds == nil {
		return nil, err
	}
	out := make([]ReplayRes, len(reqs))
	allFailed := err != nil
	for i, c := range cmds {
		res, cerr := c.Slice()
		if cerr == nil && len(res) != 2 {
			cerr = fmt.Errorf("unexpected reply %v", res)
		}
		if cerr != nil {
			out[i].Err = fmt.Errorf("streams: replay %d:%s: %w", reqs[i].Shard, reqs[i].ID, cerr)
			continue
		}
		allFailed = false
		st, _ := res[0].(int64)
		id, _ := res[1].(string)
		out[i] = ReplayRes{Status: ReplayStatus(st), NewID: id}
	}
	if allFailed {
		return out, fmt.Errorf("streams: replay: %w", err)
	}
	return out, nil
}

// ImportReq is one exported entry to append to a DLQ shard (Shard >= 0) or
// to the quarantine (Shard < 0).
type ImportReq struct {
	Shard  int
	Digest string // stable identity of the exported record (import marker)
	// ProbeID, when set, is the record's exported stream id: if an entry with
	// that id and ProbeField = ProbeValue is still in the target stream, the
	// record is already there.
	ProbeID, ProbeField, ProbeValue string
	Fields                          []any // field/value pairs
}

// ImportStatus is the outcome of one ImportReq.
type ImportStatus int

// Import outcomes.
const (
	ImportAdded     ImportStatus = 1 // appended
	ImportDuplicate ImportStatus = 0 // imported before (marker still present)
	ImportPresent   ImportStatus = 2 // the exported entry is still in the stream
)

// ImportRes is the outcome of one ImportReq.
type ImportRes struct {
	Status ImportStatus
	ID     string
	Err    error
}

// ImportEntries appends exported entries in one pipelined round trip. A
// marker with markerTTL makes an import run twice a no-op within that time.
func (s *Store) ImportEntries(ctx context.Context, reqs []ImportReq, markerTTL time.Duration) ([]ImportRes, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ttl := strconv.FormatInt(markerTTL.Milliseconds(), 10)
	cmds, err := s.evalPipelined(ctx, len(reqs), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		r := reqs[i]
		var keys []string
		if r.Shard < 0 {
			keys = []string{s.keys.Quarantine(), s.keys.QuarantineImportMark(r.Digest)}
		} else {
			keys = []string{s.keys.DLQ(r.Shard), s.keys.DLQImportMark(r.Shard, r.Digest)}
		}
		args := make([]any, 0, 4+len(r.Fields))
		args = append(args, ttl, r.ProbeID, r.ProbeField, r.ProbeValue)
		args = append(args, r.Fields...)
		return importEntry.EvalSha(ctx, pipe, keys, args...)
	})
	if cmds == nil {
		return nil, fmt.Errorf("streams: import: %w", err)
	}
	out := make([]ImportRes, len(reqs))
	allFailed := err != nil
	for i, c := range cmds {
		res, cerr := c.Slice()
		if cerr == nil && len(res) != 2 {
			cerr = fmt.Errorf("unexpected reply %v", res)
		}
		if cerr != nil {
			out[i].Err = fmt.Errorf("streams: import: %w", cerr)
			continue
		}
		allFailed = false
		st, _ := res[0].(int64)
		id, _ := res[1].(string)
		out[i] = ImportRes{Status: ImportStatus(st), ID: id}
	}
	if allFailed {
		return out, fmt.Errorf("streams: import: %w", err)
	}
	return out, nil
}

// StreamSummary is a DLQ or quarantine stream counted by reason.
type StreamSummary struct {
	Length   int64
	FirstID  string // "" when empty
	ByReason map[string]int64
}

// SummarizeStreams counts the given DLQ/quarantine streams by reason in one
// pipelined round trip (the counting runs inside Redis).
func (s *Store) SummarizeStreams(ctx context.Context, keys []string) ([]StreamSummary, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds, err := s.evalPipelined(ctx, len(keys), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		k := keys[i]
		return streamSummary.EvalSha(ctx, pipe, []string{k})
	})
	if cmds == nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("streams: summarize: %w", err)
	}
	out := make([]StreamSummary, len(keys))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil {
			return nil, fmt.Errorf("streams: summarize %s: %w", keys[i], err)
		}
		if len(res) < 2 {
			return nil, fmt.Errorf("streams: summarize %s: unexpected reply %v", keys[i], res)
		}
		sum := StreamSummary{ByReason: map[string]int64{}}
		sum.Length, _ = res[0].(int64)
		sum.FirstID, _ = res[1].(string)
		for j := 2; j+1 < len(res); j += 2 {
			r, _ := res[j].(string)
			n, _ := res[j+1].(int64)
			sum.ByReason[r] = n
		}
		out[i] = sum
	}
	return out, nil
}

// AppendAudit adds one record to the dlqctl audit stream (capped at about
// AuditMaxLen entries) and returns its id.
func (s *Store) AppendAudit(ctx context.Context, fields []any) (string, error) {
	id, err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.Audit(), MaxLen: AuditMaxLen, Approx: true, Values: fields}).Result()
	if err != nil {
		return "", fmt.Errorf("streams: audit: %w", err)
	}
	return id, nil
}
