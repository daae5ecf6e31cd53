package sender

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/signal-client/signal-client/internal/streams"
)

// The sender's pipelined Redis calls. internal/streams runs each of its
// scripts in a round trip of its own; a keyed send would then cost four
// (record lookup, admission, slot release, record write). Here the lookup
// goes with the first admission and the release with the record write, so a
// keyed call costs two round trips. The records and the semaphore live in
// different hash slots, so they cannot share one script on Redis Cluster;
// a pipeline may span slots.
//
// The scripts are byte-for-byte copies of internal/streams' admit and
// recordSent (TestScriptsMatchStreams checks it): the same SHA, so
// streams.LoadScripts at start-up loads them, and the keys and semantics stay
// those of ARCHITECTURE §8.

// admitScript is internal/streams' admit: KEYS rate, sendpause, apisem.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local p = redis.call('PTTL', KEYS[2])
if p > 0 then return {1, p} end
local size = tonumber(ARGV[2])
if ARGV[1] ~= '' and size > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[3]) >= size then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local w = tonumber(first[2]) - now_ms
    if w < 1 then w = 1 end
    return {2, w}
  end
end
local iv = tonumber(ARGV[4])
if iv > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now_us then tat = now_us end
  local new_tat = tat + iv
  local allow_at = new_tat - iv * tonumber(ARGV[5])
  if allow_at > now_us then
    return {3, math.ceil((allow_at - now_us) / 1000)}
  end
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now_us) / 1000) + 1)
end
if ARGV[1] ~= '' and size > 0 then
  redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[3]), ARGV[1])
end
return {0, 0}
`)

// recordScript is internal/streams' recordSent: KEYS[1] sent hash; ARGV seq,
// result, TTL ms.
var recordScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// pipelined runs the commands build queues in one round trip. A script
// answered NOSCRIPT (Redis restarted or flushed its scripts) did not run: the
// scripts are loaded and the whole pipeline runs once more, which is safe
// because every pipeline here is safe to repeat (a read, an admission that
// did not run, a ZREM of a unique holder, an HSET of the same value).
// Callers read each command's own error.
func (s *Sender) pipelined(ctx context.Context, build func(p redis.Pipeliner) []redis.Cmder) []redis.Cmder {
	rdb := s.store.Client()
	run := func() []redis.Cmder {
		p := rdb.Pipeline()
		cmds := build(p)
		_, _ = p.Exec(ctx)
		return cmds
	}
	cmds := run()
	for _, c := range cmds {
		if isNoScript(c.Err()) {
			if err := streams.LoadScripts(ctx, rdb); err != nil {
				return cmds
			}
			return run()
		}
	}
	return cmds
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// admitArgs are the admit script's ARGV for r, normalized as
// streams.Store.Admit does.
func admitArgs(r streams.AdmitReq) []any {
	burst := max(r.Burst, 1)
	iv := r.Interval.Microseconds()
	if r.Interval > 0 && iv == 0 {
		iv = 1
	}
	return []any{r.Holder, r.Slots, max(r.Lease.Milliseconds(), 1), iv, burst}
}

// admitLookup runs the admission and reads the call's sent record in one
// round trip. found says a record exists (rec is its value). When the
// lookup fails, a slot the admission took is given back and err is set.
func (s *Sender) admitLookup(ctx context.Context, o op, req streams.AdmitReq) (res streams.AdmitRes, rec string, found bool, err error) {
	keys := s.store.Keys()
	var get *redis.StringCmd
	var adm *redis.Cmd
	s.pipelined(ctx, func(p redis.Pipeliner) []redis.Cmder {
		get = p.HGet(ctx, keys.Sent(o.key.Shard, o.key.Original), strconv.Itoa(o.key.Seq))
		adm = admitScript.EvalSha(ctx, p, []string{keys.Rate(), keys.SendPause(), keys.APISemaphore()}, admitArgs(req)...)
		return []redis.Cmder{get, adm}
	})
	res, aerr := admitResult(adm)
	rec, gerr := get.Result()
	if errors.Is(gerr, redis.Nil) {
		gerr = nil
	} else if gerr == nil {
		found = true
	}
	if gerr != nil {
		if aerr == nil && res.Code == streams.Admitted && req.Holder != "" {
			s.settleRedis(ctx, o, req.Holder, "") // the caller gives the gate token back
		}
		return streams.AdmitRes{}, "", false, fmt.Errorf("streams: read sent record: %w", gerr)
	}
	return res, rec, found, aerr
}

func admitResult(c *redis.Cmd) (streams.AdmitRes, error) {
	res, err := c.Int64Slice()
	if err != nil {
		return streams.AdmitRes{}, fmt.Errorf("streams: admit REST call: %w", err)
	}
	if len(res) != 2 {
		return streams.AdmitRes{}, fmt.Errorf("streams: admit REST call: unexpected reply %v", res)
	}
	return streams.AdmitRes{Code: streams.AdmitCode(res[0]), Wait: time.Duration(res[1]) * time.Millisecond}, nil
}

// settle ends a call in one round trip: it gives back the call's semaphore
// slot (holder, "" for none; with its gate token) and writes its sent record (rec, "" for none).
// A slot that cannot be released frees itself when its lease ends; a record
// that cannot be written leaves only a retry of this handling able to repeat
// the call.
func (s *Sender) settle(ctx context.Context, o op, holder, rec string) {
	if holder == "" && rec == "" {
		return
	}
	if holder != "" && s.gate != nil {
		// After the slot is given back (or left to its lease).
		defer s.leaveGate()
	}
	s.settleRedis(ctx, o, holder, rec)
}

// settleRedis is settle without the gate token.
func (s *Sender) settleRedis(ctx context.Context, o op, holder, rec string) {
	var cancel context.CancelFunc = func() {}
	ctx = context.WithoutCancel(ctx)
	if rec == "" {
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
	}
	defer cancel()
	keys := s.store.Keys()
	var zrem *redis.IntCmd
	var write *redis.Cmd
	s.pipelined(ctx, func(p redis.Pipeliner) []redis.Cmder {
		var cmds []redis.Cmder
		if holder != "" {
			// internal/streams' releaseSlot script is exactly this ZREM.
			zrem = p.ZRem(ctx, keys.APISemaphore(), holder)
			cmds = append(cmds, zrem)
		}
		if rec != "" {
			write = recordScript.EvalSha(ctx, p, []string{keys.Sent(o.key.Shard, o.key.Original)},
				o.key.Seq, rec, max(s.cfg.SentTTL.Milliseconds(), 1))
			cmds = append(cmds, write)
		}
		return cmds
	})
	if zrem != nil && zrem.Err() != nil {
		s.log.Warn("could not release a REST slot; it frees itself when its lease ends", zap.Error(zrem.Err()))
	}
	if write != nil && write.Err() != nil {
		if rec == recordUnknown {
			s.log.Warn("could not record an unknown outcome", zap.String("endpoint", o.endpoint), zap.Error(write.Err()))
		} else {
			// The call happened; only a retry of this handling could repeat it.
			s.log.Warn("could not record a confirmed call; a retry of this message may repeat it", zap.String("endpoint", o.endpoint), zap.Error(write.Err()))
		}
	}
}
