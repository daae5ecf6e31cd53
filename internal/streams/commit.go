package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fenced commits (ARCHITECTURE §6.3, §6.6, §7): every script below first
// checks that the shard's lease still holds the caller's token and changes
// nothing otherwise, answering "STALE".

// ErrStale is returned when a commit's lease token no longer holds the shard.
var ErrStale = errors.New("streams: stale commit rejected: the shard lease is no longer ours")

// commitBatch: KEYS[1] lease, KEYS[2] stream, KEYS[3] attempts, KEYS[4]
// started marker, KEYS[5..] state keys.
// ARGV[1] token, ARGV[2] n ids, ARGV[3..2+n] ids to acknowledge, then r, then
// r ids whose attempt records go (entries that were retried or adopted; a
// first attempt on the fast path has none), then the marker ("-" leaves it,
// "" deletes it, anything else replaces it), then m, then m ops of 5 values
// each: op ("set"|"del"|"expire"|"persist"), key index (into KEYS), field,
// value, ttl ms.
// Returns the number of entries acknowledged, or the error STALE.
var commitBatch = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('STALE') end
local n = tonumber(ARGV[2])
local i = 3 + n
local r = tonumber(ARGV[i])
local rlo = i + 1
i = i + 1 + r
local marker = ARGV[i]
i = i + 1
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  local op, k, f, v, ttl = ARGV[i], KEYS[tonumber(ARGV[i+1])], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4])
  if op == 'set' then
    redis.call('HSET', k, f, v)
  elseif op == 'del' then
    redis.call('HDEL', k, f)
  elseif op == 'expire' then
    redis.call('PEXPIRE', k, ttl)
  elseif op == 'persist' then
    redis.call('PERSIST', k)
  end
  i = i + 5
end
if marker == '' then
  redis.call('DEL', KEYS[4])
elseif marker ~= '-' then
  redis.call('SET', KEYS[4], marker)
end
for j = rlo, rlo + r - 1 do
  redis.call('HDEL', KEYS[3], ARGV[j], ARGV[j] .. ':f', ARGV[j] .. ':l')
end
if n == 0 then return 0 end
return redis.call('XACK', KEYS[2], 'workers', unpack(ARGV, 3, 2 + n))
`)

// promoteStarted turns the started marker a previous owner left into attempt
// records, before the new owner reads the shard's pending history: an entry
// listed there had its first attempt started, so it counts (ARCHITECTURE §7.1).
// Ids no longer pending (acknowledged since) are skipped, records already
// there are kept. KEYS[1] lease, KEYS[2] stream, KEYS[3] attempts, KEYS[4]
// started marker. ARGV[1] token. Returns the number of records written.
var promoteStarted = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('STALE') end
local ids = redis.call('GET', KEYS[4])
if not ids then return 0 end
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local n = 0
for id in string.gmatch(ids, '[^,]+') do
  if #redis.call('XPENDING', KEYS[2], 'workers', id, id, 1) > 0 and redis.call('HEXISTS', KEYS[3], id) == 0 then
    redis.call('HSET', KEYS[3], id, 1, id .. ':f', now, id .. ':l', now)
    n = n + 1
  end
end
redis.call('DEL', KEYS[4])
return n
`)

// attempt: KEYS[1] lease, KEYS[2] attempts. ARGV[1] token, ARGV[2] entry id,
// ARGV[3] delta (1 before an attempt, -1 to refund one). Returns
// {attempts, first ms, last ms} or STALE.
var attempt = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('STALE') end
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], tonumber(ARGV[3]))
if n < 0 then n = 0; redis.call('HSET', KEYS[2], ARGV[2], 0) end
redis.call('HSETNX', KEYS[2], ARGV[2] .. ':f', now)
if tonumber(ARGV[3]) > 0 then redis.call('HSET', KEYS[2], ARGV[2] .. ':l', now) end
return {n, redis.call('HGET', KEYS[2], ARGV[2] .. ':f'), redis.call('HGET', KEYS[2], ARGV[2] .. ':l') or now}
`)

// park: KEYS[1] lease, KEYS[2] stream, KEYS[3] dlq, KEYS[4] attempts.
// ARGV[1] token, ARGV[2] entry id, ARGV[3] approximate max length of the DLQ,
// ARGV[4..] DLQ entry fields. Returns {dlq id, entries trimmed} or STALE.
var park = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('STALE') end
local before = redis.call('XLEN', KEYS[3])
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
local after = redis.call('XLEN', KEYS[3])
redis.call('XACK', KEYS[2], 'workers', ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2], ARGV[2] .. ':f', ARGV[2] .. ':l')
return {id, before + 1 - after}
`)

func init() {
	allScripts = append(allScripts, commitBatch, promoteStarted, attempt, park)
}

func staleOr(err error, what string) error {
	if err != nil && strings.Contains(err.Error(), "STALE") {
		return fmt.Errorf("%s: %w", what, ErrStale)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// StateOp is one conversation-state write applied with a commit.
type StateOp struct {
	Key   string // a State key of the same shard
	Op    string // "set", "del", "expire" (TTL), "persist"
	Field string
	Value string
	TTL   time.Duration
}

// Commit acknowledges handled entries of one shard and applies their state
// writes, atomically and fenced by the lease. Every id's attempt record goes.
func (s *Store) Commit(ctx context.Context, l Lease, ids []string, ops []StateOp) (int64, error) {
	keys, args := s.commitArgs(CommitReq{Lease: l, IDs: ids, Recorded: ids, Ops: ops, Marker: "-"})
	n, err := commitBatch.Run(ctx, s.rdb, keys, args...).Int64()
	if err != nil {
		return 0, staleOr(err, fmt.Sprintf("streams: commit shard %d", l.Shard))
	}
	return n, nil
}

func (s *Store) commitArgs(r CommitReq) ([]string, []any) {
	n := r.Lease.Shard
	keys := []string{s.keys.Lease(n), s.keys.Stream(n), s.keys.Attempts(n), s.keys.Started(n)}
	args := make([]any, 0, 5+len(r.IDs)+len(r.Recorded)+5*len(r.Ops))
	args = append(args, r.Lease.Token, len(r.IDs))
	// The ids are boxed by pointer (go-redis writes a *string as the string):
	// boxing a string allocates, once per entry.
	for i := range r.IDs {
		args = append(args, &r.IDs[i])
	}
	args = append(args, len(r.Recorded))
	for i := range r.Recorded {
		args = append(args, &r.Recorded[i])
	}
	marker := r.Marker
	if marker == "" {
		marker = "-"
	} else if marker == MarkerClear {
		marker = ""
	}
	args = append(args, marker, len(r.Ops))
	var keyIdx map[string]int
	for _, op := range r.Ops {
		idx, ok := keyIdx[op.Key]
		if !ok {
			if keyIdx == nil {
				keyIdx = map[string]int{}
			}
			keys = append(keys, op.Key)
			idx = len(keys)
			keyIdx[op.Key] = idx
		}
		args = append(args, op.Op, idx, op.Field, op.Value, op.TTL.Milliseconds())
	}
	return keys, args
}

// PromoteStarted turns the started marker of a shard just acquired into
// attempt records (see promoteStarted). It returns how many it wrote.
func (s *Store) PromoteStarted(ctx context.Context, l Lease) (int64, error) {
	n := l.Shard
	res, err := promoteStarted.Run(ctx, s.rdb, []string{s.keys.Lease(n), s.keys.Stream(n), s.keys.Attempts(n), s.keys.Started(n)}, l.Token).Int64()
	if err != nil {
		return 0, staleOr(err, fmt.Sprintf("streams: promote started entries of shard %d", n))
	}
	return res, nil
}

// Attempts is an entry's durable attempt record.
type Attempts struct {
	Count       int64
	First, Last time.Time
}

// CountAttempt adds delta (1 before an attempt, -1 to refund one) to an
// entry's attempt count, fenced.
func (s *Store) CountAttempt(ctx context.Context, l Lease, id string, delta int) (Attempts, error) {
	res, err := attempt.Run(ctx, s.rdb, []string{s.keys.Lease(l.Shard), s.keys.Attempts(l.Shard)}, l.Token, id, delta).Slice()
	if err != nil {
		return Attempts{}, staleOr(err, fmt.Sprintf("streams: count attempt shard %d", l.Shard))
	}
	var a Attempts
	a.Count, _ = res[0].(int64)
	f, _ := res[1].(string)
	la, _ := res[2].(string)
	fm, _ := strconv.ParseInt(f, 10, 64)
	lm, _ := strconv.ParseInt(la, 10, 64)
	a.First, a.Last = time.UnixMilli(fm), time.UnixMilli(lm)
	return a, nil
}

// DLQ entry field names (ARCHITECTURE §7.4), besides the entry's own fields.
const (
	DLQFieldSource   = "src"
	DLQFieldShard    = "shard"
	DLQFieldAttempts = "attempts"
	DLQFieldError    = "err"
	DLQFieldReason   = "reason"
	DLQFieldFirst    = "ff"
	DLQFieldLast     = "lf"
	DLQFieldWorker   = "worker"
)

// Parked describes why an entry is parked.
type Parked struct {
	Entry    Entry
	Attempts Attempts
	Reason   string // handler_error, panic, timeout, format
	Error    string // last error, already redacted; cut to 1 KiB
	Worker   string
}

// Park moves an entry to its shard's DLQ and acknowledges it in one fenced
// step. It returns the DLQ id and how many old DLQ entries the cap trimmed.
func (s *Store) Park(ctx context.Context, l Lease, p Parked, maxLen int64) (string, int64, error) {
	if len(p.Error) > 1024 {
		p.Error = p.Error[:1024]
	}
	orig := p.Entry.OriginalID
	if orig == "" {
		orig = p.Entry.ID
	}
	e := p.Entry
	e.OriginalID = orig
	fields := e.Fields()
	fields = append(fields,
		DLQFieldSource, p.Entry.ID,
		DLQFieldShard, strconv.Itoa(l.Shard),
		DLQFieldAttempts, strconv.FormatInt(p.Attempts.Count, 10),
		DLQFieldError, p.Error,
		DLQFieldReason, p.Reason,
		DLQFieldFirst, strconv.FormatInt(p.Attempts.First.UnixMilli(), 10),
		DLQFieldLast, strconv.FormatInt(p.Attempts.Last.UnixMilli(), 10),
		DLQFieldWorker, p.Worker,
	)
	args := append([]any{l.Token, p.Entry.ID, maxLen}, fields...)
	keys := []string{s.keys.Lease(l.Shard), s.keys.Stream(l.Shard), s.keys.DLQ(l.Shard), s.keys.Attempts(l.Shard)}
	res, err := park.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return "", 0, staleOr(err, fmt.Sprintf("streams: park in shard %d", l.Shard))
	}
	id, _ := res[0].(string)
	trimmed, _ := res[1].(int64)
	return id, trimmed, nil
}

// AttemptReq is one CountAttempts request.
type AttemptReq struct {
	Lease Lease
	ID    string
	Delta int
}

// AttemptRes is the outcome of one AttemptReq.
type AttemptRes struct {
	Attempts Attempts
	Err      error // ErrStale (wrapped) when the lease moved
}

// CountAttempts runs several attempt counts in one pipelined round trip. The
// error is set only when the round trip failed as a whole.
func (s *Store) CountAttempts(ctx context.Context, reqs []AttemptReq) ([]AttemptRes, error) {
	cmds, err := s.evalPipelined(ctx, len(reqs), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		r := reqs[i]
		return attempt.EvalSha(ctx, pipe, []string{s.keys.Lease(r.Lease.Shard), s.keys.Attempts(r.Lease.Shard)}, r.Lease.Token, r.ID, r.Delta)
	})
	if cmds == nil {
		return nil, err
	}
	out := make([]AttemptRes, len(reqs))
	allFailed := err != nil
	for i, c := range cmds {
		res, cerr := c.Slice()
		if cerr != nil {
			if strings.Contains(cerr.Error(), "STALE") {
				allFailed = false
				out[i].Err = fmt.Errorf("streams: count attempt shard %d: %w", reqs[i].Lease.Shard, ErrStale)
				continue
			}
			out[i].Err = cerr
			continue
		}
		allFailed = false
		var a Attempts
		a.Count, _ = res[0].(int64)
		f, _ := res[1].(string)
		la, _ := res[2].(string)
		fm, _ := strconv.ParseInt(f, 10, 64)
		lm, _ := strconv.ParseInt(la, 10, 64)
		a.First, a.Last = time.UnixMilli(fm), time.UnixMilli(lm)
		out[i].Attempts = a
	}
	if allFailed {
		return out, fmt.Errorf("streams: count attempts: %w", err)
	}
	return out, nil
}

// MarkerClear as CommitReq.Marker deletes the started marker.
const MarkerClear = "\x00clear"

// CommitReq is one shard's batch for CommitMany.
type CommitReq struct {
	Lease    Lease
	IDs      []string // entries to acknowledge
	Recorded []string // entries whose attempt records go (a subset of IDs)
	Ops      []StateOp
	// Marker replaces the shard's started marker: "" leaves it alone,
	// MarkerClear deletes it, anything else is the new comma-separated list.
	Marker string
}

// CommitMany commits several shards' batches in one pipelined round trip
// (each batch one fenced script call). It returns one error per request
// (wrapping ErrStale for a moved lease); err is set when the round trip
// failed as a whole.
func (s *Store) CommitMany(ctx context.Context, reqs []CommitReq) ([]error, error) {
	build := func(pipe redis.Pipeliner, r CommitReq) *redis.Cmd {
		keys, args := s.commitArgs(r)
		return commitBatch.EvalSha(ctx, pipe, keys, args...)
	}
	cmds, err := s.evalPipelined(ctx, len(reqs), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		r := reqs[i]
		return build(pipe, r)
	})
	if cmds == nil {
		return nil, err
	}
	out := make([]error, len(reqs))
	allFailed := err != nil
	for i, c := range cmds {
		if cerr := c.Err(); cerr != nil {
			if strings.Contains(cerr.Error(), "STALE") {
				allFailed = false
				out[i] = fmt.Errorf("streams: commit shard %d: %w", reqs[i].Lease.Shard, ErrStale)
				continue
			}
			out[i] = cerr
			continue
		}
		allFailed = false
	}
	if allFailed {
		return out, fmt.Errorf("streams: commit: %w", err)
	}
	return out, nil
}
