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

// dedupAppend: ARCHITECTURE §5.3.
// KEYS[1] dedup marker, KEYS[2] stream. ARGV[1] dedup TTL ms, ARGV[2..] fields.
// Returns {1, id} when appended, {0, first id} for a duplicate.
var dedupAppend = redis.NewScript(`
local prev = redis.call('GET', KEYS[1])
if prev then return {0, prev} end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return {1, id}
`)

// dedupAppendMany is dedupAppend for several entries of one shard in one
// call: the per-call overhead of EVALSHA dominates the work of one entry.
// KEYS[1] stream, KEYS[2..n+1] dedup markers. ARGV[1] dedup TTL ms,
// ARGV[2] F (field count), ARGV[3..2+F] field names, then n×F values.
// Returns a flat array {flag1, id1, flag2, id2, ...} (1 = appended with its
// id, 0 = duplicate with an empty id). SET NX first: one command decides and
// marks, so a new entry costs two commands.
var dedupAppendMany = redis.NewScript(`
local f = tonumber(ARGV[2])
local names = {}
for i = 1, f do names[i] = ARGV[2 + i] end
local out = {}
local base = 2 + f
local args = {}
for m = 1, #KEYS - 1 do
  if not redis.call('SET', KEYS[m + 1], '1', 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = 0
    out[#out + 1] = ''
  else
    for i = 1, f do
      args[2 * i - 1] = names[i]
      args[2 * i] = ARGV[base + (m - 1) * f + i]
    end
    out[#out + 1] = 1
    out[#out + 1] = redis.call('XADD', KEYS[1], '*', unpack(args, 1, 2 * f))
  end
end
return out
`)

// dedupAppendCapped is dedupAppend for the quarantine: the stream is capped
// approximately (a quarantine entry is evidence, not work).
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
var allScripts = []*redis.Script{dedupAppend, dedupAppendMany, dedupAppendCapped, nextEpoch, initMeta}

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
// FLUSH) it loads every script and tries once more: a call answered NOSCRIPT
// did not run, so nothing runs twice. It returns nil commands only when the
// scripts could not be loaded; otherwise per-command errors are in the
// commands and err is the pipeline's.
func (s *Store) evalPipelined(ctx context.Context, n int, call func(pipe redis.Pipeliner, i int) *redis.Cmd) ([]*redis.Cmd, error) {
	run := func() ([]*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for i := range cmds {
			cmds[i] = call(pipe, i)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if isNoScript(err) || anyNoScript(cmds) {
		if lerr := LoadScripts(ctx, s.rdb); lerr != nil {
			return nil, lerr
		}
		cmds, err = run()
	}
	return cmds, err
}
