package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every Lua script of signal-client. Each names all its keys in KEYS, and the
// keys of one call always share one hash tag (ARCHITECTURE §3), so each call
// touches one slot on Redis Cluster. Scripts that read TIME do so before their
// first write; Redis 7 replicates script effects, so that is allowed.

// dedupAppendMany: ARCHITECTURE §5.3. Dedup-and-append for a run of entries
// of one shard in one call (the per-call overhead of EVALSHA dominates the
// work of one entry). A marker is a 16-byte member of a time-bucketed set
// (the bucket of the entry's own timestamp, so every copy of an event maps
// to the same bucket): one SMISMEMBER per bucket decides for the whole run,
// one SADD per bucket marks every new entry, and an XADD per new entry is the
// only per-entry command. Entries without a timestamp use a per-entry string
// marker (SET NX PX) instead, so that one bucket cannot collect them forever.
//
// KEYS[1] stream, KEYS[2..1+B] bucket sets, then one string marker per
// timestamp-less entry, in entry order.
// ARGV[1] dedup TTL ms, ARGV[2] F (field count), ARGV[3] slots: one byte per
// entry, the entry's bucket (1..B, KEYS[1+slot]) or 0 for a string marker,
// ARGV[4] digests: 16 bytes per entry, ARGV[5..4+F] field names, then F
// values per entry. (Every ARGV element costs Redis about 0.4 µs, so the
// per-entry dedup data travels packed in two strings.)
// Returns one value per entry: the new id, or an empty string for a
// duplicate (also for a copy earlier in the same call). A bucket's TTL is
// raised to the dedup TTL whenever a marker is added (never lowered), so a
// marker lives at least DEDUP_WINDOW after it is set.
var dedupAppendMany = redis.NewScript(`
local call, sbyte, ssub = redis.call, string.byte, string.sub
local ttl = ARGV[1]
local f = tonumber(ARGV[2])
local slots, digests = ARGV[3], ARGV[4]
local n = #slots
local stream = KEYS[1]
local nb = 0
local ask, pos, dig = {}, {}, {}
for m = 1, n do
  local b = sbyte(slots, m)
  if b > 0 then
    if b > nb then
      for j = nb + 1, b do ask[j] = {} end
      nb = b
    end
    local d = ssub(digests, 16 * m - 15, 16 * m)
    dig[m] = d
    local t = ask[b]
    local k = #t + 1
    t[k] = d
    pos[m] = k
  end
end
local have, add = {}, {}
for b = 1, nb do
  have[b] = call('SMISMEMBER', KEYS[1 + b], unpack(ask[b]))
  add[b] = {}
end
local seen, out = {}, {}
local sk = 1 + nb
local n1, n2 = ARGV[5], ARGV[6]
local names, args = {}, {}
for i = 1, f do names[i] = ARGV[4 + i] end
local o = 4 + f
for m = 1, n do
  local b = sbyte(slots, m)
  local dup
  if b > 0 then
    local d = dig[m]
    dup = have[b][pos[m]] == 1 or seen[d]
    if not dup then
      seen[d] = true
      local t = add[b]
      t[#t + 1] = d
    end
  else
    sk = sk + 1
    dup = not call('SET', KEYS[sk], '1', 'NX', 'PX', ttl)
  end
  if dup then
    out[m] = ''
  elseif f == 2 then
    out[m] = call('XADD', stream, '*', n1, ARGV[o + 1], n2, ARGV[o + 2])
  else
    for i = 1, f do
      args[2 * i - 1] = names[i]
      args[2 * i] = ARGV[o + i]
    end
    out[m] = call('XADD', stream, '*', unpack(args, 1, 2 * f))
  end
  o = o + f
end
local ttln = tonumber(ttl)
for b = 1, nb do
  if #add[b] > 0 then
    call('SADD', KEYS[1 + b], unpack(add[b]))
    if call('PTTL', KEYS[1 + b]) < ttln then
      call('PEXPIRE', KEYS[1 + b], ttl)
    end
  end
end
return out
`)

// dedupAppendCapped is dedup-and-append of one entry for the quarantine, with
// a string marker holding the first id; the stream is capped approximately (a
// quarantine entry is evidence, not work).
// KEYS[1] dedup marker, KEYS[2] stream. ARGV[1] TTL ms, ARGV[2] max length, ARGV[3..] fields.
var dedupAppendCapped = redis.NewScript(`
local prev = redis.call('GET', KEYS[1])
if prev then return {0, prev} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return {1, id}
`)

// nextEpoch: ARCHITECTURE §6.3. epoch = max(stored + 1, TIME in ms), so epochs
// stay monotonic even when a failover lost the last increments.
// KEYS[1] epoch key. Returns the new epoch.
var nextEpoch = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local e = cur + 1
if now > e then e = now end
redis.call('SET', KEYS[1], string.format('%d', e))
return e
`)

// initMeta records the shard count on first start and returns what is recorded.
// KEYS[1] meta hash. ARGV[1] shard count, ARGV[2] format, ARGV[3] number hint.
var initMeta = redis.NewScript(`
local t = redis.call('TIME')
redis.call('HSETNX', KEYS[1], 'shard_count', ARGV[1])
redis.call('HSETNX', KEYS[1], 'format', ARGV[2])
redis.call('HSETNX', KEYS[1], 'created_at', t[1])
redis.call('HSETNX', KEYS[1], 'number_hint', ARGV[3])
return redis.call('HGET', KEYS[1], 'shard_count')
`)

// allScripts lists every script so Load can preload them (pipelined calls use
// EVALSHA and cannot fall back to EVAL mid-pipeline).
var allScripts = []*redis.Script{dedupAppendMany, dedupAppendCapped, nextEpoch, initMeta}

// LoadScripts loads every script into the script cache (at start and after a
// NOSCRIPT error, e.g. when Redis restarted).
func LoadScripts(ctx context.Context, rdb redis.Scripter) error {
	for _, s := range allScripts {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("streams: load scripts: %w", err)
		}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// ErrShardCountMismatch is returned by InitMeta when the deployment was created
// with another shard count.
var ErrShardCountMismatch = errors.New("shard count mismatch")

// evalPipelined runs n script calls, built by call, in one pipelined round
// trip of EVALSHA. When Redis answers NOSCRIPT (after a restart or a SCRIPT
// FLUSH) it loads every script and runs again only the calls answered
// NOSCRIPT: they did not run, and the others did (another process's reload
// can land in the middle of this pipeline), so nothing runs twice. It returns
// nil commands only when the scripts could not be loaded; otherwise
// per-command errors are in the commands and err is the first of them, as
// pipe.Exec reports it.
func (s *Store) evalPipelined(ctx context.Context, n int, call func(pipe redis.Pipeliner, i int) *redis.Cmd) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, n)
	run := func(which []int) error { // nil: every call
		pipe := s.rdb.Pipeline()
		if which == nil {
			for i := range cmds {
				cmds[i] = call(pipe, i)
			}
		}
		for _, i := range which {
			cmds[i] = call(pipe, i)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run(nil)
	if isNoScript(err) || anyNoScript(cmds) {
		if lerr := LoadScripts(ctx, s.rdb); lerr != nil {
			return nil, lerr
		}
		var refused []int
		for i, c := range cmds {
			if isNoScript(c.Err()) {
				refused = append(refused, i)
			}
		}
		if len(refused) > 0 {
			err = run(refused)
		}
		if err == nil {
			// As pipe.Exec reports it: the first command's error, so that
			// err is nil only when every call succeeded, first run or second.
			for _, c := range cmds {
				if err = c.Err(); err != nil {
					break
				}
			}
		}
	}
	return cmds, err
}
