package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The outbound sender's Redis side (ARCHITECTURE §1 item 6, §8): one admission
// script that checks the account-wide 429 pause, the cluster-wide in-flight
// semaphore and the GCRA rate limit together, the semaphore release, the
// pause itself, and the effectively-once records of confirmed calls.
//
// Keys added here (documented in ARCHITECTURE §3):
//
//	P:{A}:sendpause     string, set after a 429 so every worker stops sending; PX = RATE_LIMIT_429_PAUSE
//	P:{A}:rate          (Keys.Rate)          GCRA theoretical arrival time in µs; PX = time until it is in the past
//	P:{A}:apisem        (Keys.APISemaphore)  zset holder → lease expiry ms (short leases, refreshed while a call runs)
//	P:{A.sN}:sent:<o>   (Keys.Sent)          hash call seq → result; PX = SENT_RECORD_TTL

// SendPause is the account-wide "stop sending" marker set after a 429.
func (k Keys) SendPause() string { return k.global("sendpause") }

// admit: KEYS[1] rate, KEYS[2] sendpause, KEYS[3] apisem.
// ARGV[1] holder ("" = no semaphore), ARGV[2] semaphore size, ARGV[3] lease ms,
// ARGV[4] GCRA emission interval µs (0 = no rate limit), ARGV[5] burst.
// Returns {code, wait ms}: 0 admitted (the holder holds a slot, the rate
// limit counted the call), 1 paused after a 429, 2 every slot is taken,
// 3 rate limited. Nothing is taken unless everything admits, so a caller that
// waits for the rate does not sit on a slot, and one waiting for a slot does
// not use up the rate. TIME is read once, before any write.
var admit = redis.NewScript(`
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

// refreshSlot: KEYS[1] apisem. ARGV[1] holder, ARGV[2] lease ms. Extends a
// slot still held (never re-creates a lost one). Returns 1 when extended.
var refreshSlot = redis.NewScript(`
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp then return 0 end
if tonumber(exp) <= now_ms then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// releaseSlot: KEYS[1] apisem. ARGV[1] holder. Returns 1 when the holder held a slot.
var releaseSlot = redis.NewScript(`return redis.call('ZREM', KEYS[1], ARGV[1])`)

// pauseSends: KEYS[1] sendpause. ARGV[1] pause ms. Extends, never shortens, the pause.
// Returns the pause in force (ms).
var pauseSends = redis.NewScript(`
local p = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[1])
if p < want then
  redis.call('SET', KEYS[1], '429', 'PX', want)
  return want
end
return p
`)

// recordSent: KEYS[1] sent hash. ARGV[1] seq, ARGV[2] result, ARGV[3] TTL ms.
var recordSent = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

func init() {
	allScripts = append(allScripts, admit, refreshSlot, releaseSlot, pauseSends, recordSent)
}

// AdmitCode says why a call was or was not admitted.
type AdmitCode int

// Admission outcomes.
const (
	Admitted    AdmitCode = 0 // go ahead (and release the slot afterwards)
	AdmitPaused AdmitCode = 1 // the account is paused after a 429
	AdmitBusy   AdmitCode = 2 // API_MAX_CONCURRENCY calls are in flight
	AdmitRate   AdmitCode = 3 // the rate limit needs a wait
)

// AdmitReq asks to make one REST call.
type AdmitReq struct {
	// Holder names the semaphore slot to take; "" skips the semaphore.
	Holder string
	// Slots is API_MAX_CONCURRENCY (0 = no semaphore).
	Slots int
	// Lease bounds how long a crashed holder keeps its slot.
	Lease time.Duration
	// Interval is the GCRA emission interval, RATE_LIMIT_PERIOD / RATE_LIMIT
	// (0 = the call does not count toward the rate limit).
	Interval time.Duration
	// Burst is RATE_LIMIT_BURST.
	Burst int
}

// AdmitRes is the answer: Wait says how long to wait before asking again
// (the pause left, the earliest slot expiry, or the GCRA retry-after).
type AdmitRes struct {
	Code AdmitCode
	Wait time.Duration
}

// Admit runs the admission script.
func (s *Store) Admit(ctx context.Context, r AdmitReq) (AdmitRes, error) {
	return ParseAdmit(admit.Run(ctx, s.rdb, []string{s.keys.Rate(), s.keys.SendPause(), s.keys.APISemaphore()}, admitArgs(r)...))
}

// admitArgs are the admission script's arguments for r.
func admitArgs(r AdmitReq) []any {
	burst := max(r.Burst, 1)
	iv := r.Interval.Microseconds()
	if r.Interval > 0 && iv == 0 {
		iv = 1
	}
	return []any{r.Holder, r.Slots, max(r.Lease.Milliseconds(), 1), iv, burst}
}

// QueueAdmit queues the admission script on a pipeline (EVALSHA: the
// caller reloads the scripts and repeats the pipeline on NOSCRIPT) so that a
// caller can send it in one round trip with other commands. Read the answer
// with ParseAdmit.
func (s *Store) QueueAdmit(ctx context.Context, p redis.Pipeliner, r AdmitReq) *redis.Cmd {
	return admit.EvalSha(ctx, p, []string{s.keys.Rate(), s.keys.SendPause(), s.keys.APISemaphore()}, admitArgs(r)...)
}

// ParseAdmit reads the answer of a queued admission.
func ParseAdmit(c *redis.Cmd) (AdmitRes, error) {
	res, err := c.Int64Slice()
	if err != nil {
		return AdmitRes{}, fmt.Errorf("streams: admit REST call: %w", err)
	}
	if len(res) != 2 {
		return AdmitRes{}, fmt.Errorf("streams: admit REST call: unexpected reply %v", res)
	}
	return AdmitRes{Code: AdmitCode(res[0]), Wait: time.Duration(res[1]) * time.Millisecond}, nil
}

// QueueRecordSent queues RecordSent on a pipeline (EVALSHA, as QueueAdmit).
func (s *Store) QueueRecordSent(ctx context.Context, p redis.Pipeliner, shard int, orig string, seq int, result string, ttl time.Duration) *redis.Cmd {
	return recordSent.EvalSha(ctx, p, []string{s.keys.Sent(shard, orig)}, seq, result, max(ttl.Milliseconds(), 1))
}

// ReleaseSlot gives a semaphore slot back. A holder whose lease expired
// already lost it; that is not an error.
func (s *Store) ReleaseSlot(ctx context.Context, holder string) error {
	if err := releaseSlot.Run(ctx, s.rdb, []string{s.keys.APISemaphore()}, holder).Err(); err != nil {
		return fmt.Errorf("streams: release REST slot: %w", err)
	}
	return nil
}

// RefreshSlot extends a held slot's lease (calls longer than the lease keep
// their slot this way, while a crashed holder's slot frees itself soon).
// held is false when the slot was lost.
func (s *Store) RefreshSlot(ctx context.Context, holder string, lease time.Duration) (held bool, err error) {
	n, err := refreshSlot.Run(ctx, s.rdb, []string{s.keys.APISemaphore()}, holder, max(lease.Milliseconds(), 1)).Int64()
	if err != nil {
		return false, fmt.Errorf("streams: refresh REST slot: %w", err)
	}
	return n == 1, nil
}

// SlotsInUse counts the live semaphore holders (for tests and stats).
func (s *Store) SlotsInUse(ctx context.Context) (int64, error) {
	now := time.Now().UnixMilli()
	n, err := s.rdb.ZCount(ctx, s.keys.APISemaphore(), "("+strconv.FormatInt(now, 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("streams: count REST slots: %w", err)
	}
	return n, nil
}

// PauseSends pauses every worker's REST calls for d (extending, never
// shortening, a pause in force) and returns the pause now in force.
func (s *Store) PauseSends(ctx context.Context, d time.Duration) (time.Duration, error) {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	got, err := pauseSends.Run(ctx, s.rdb, []string{s.keys.SendPause()}, ms).Int64()
	if err != nil {
		return 0, fmt.Errorf("streams: pause sends: %w", err)
	}
	return time.Duration(got) * time.Millisecond, nil
}

// SentRecord reads the recorded result of call seq of the handling of the
// entry whose original id is orig (ARCHITECTURE §8); ok is false when none.
func (s *Store) SentRecord(ctx context.Context, shard int, orig string, seq int) (string, bool, error) {
	v, err := s.rdb.HGet(ctx, s.keys.Sent(shard, orig), strconv.Itoa(seq)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("streams: read sent record: %w", err)
	}
	return v, true, nil
}

// RecordSent stores the result of call seq for orig, kept for ttl.
func (s *Store) RecordSent(ctx context.Context, shard int, orig string, seq int, result string, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	if err := recordSent.Run(ctx, s.rdb, []string{s.keys.Sent(shard, orig)}, seq, result, ms).Err(); err != nil {
		return fmt.Errorf("streams: record sent call: %w", err)
	}
	return nil
}
