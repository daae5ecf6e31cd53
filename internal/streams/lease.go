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

// Shard leases and worker membership (ARCHITECTURE §6.1–§6.3).

// acquireLease: KEYS[1] lease, KEYS[2] epoch. ARGV[1] worker id, ARGV[2] TTL ms.
// Returns {1, epoch} when acquired, {0, current holder value} when held.
var acquireLease = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if now > e then e = now end
local es = string.format('%d', e)
redis.call('SET', KEYS[2], es)
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. es, 'PX', ARGV[2])
return {1, es}
`)

// refreshLease: KEYS[1] lease. ARGV[1] token, ARGV[2] TTL ms. 1 = refreshed, 0 = lost.
var refreshLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseLease: KEYS[1] lease. ARGV[1] token. 1 = released, 0 = not ours.
var releaseLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// heartbeatMember: KEYS[1] membership zset. ARGV[1] member, ARGV[2] TTL ms.
// Adds the member with expiry now+TTL, prunes expired members, returns the
// live members.
var heartbeatMember = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

func init() {
	allScripts = append(allScripts, acquireLease, refreshLease, releaseLease, heartbeatMember)
}

// Lease is a held shard lease; Token is what fenced scripts compare.
type Lease struct {
	Shard int
	Epoch int64
	Token string // "<worker>|<epoch>"
}

// ErrLeaseHeld is returned by AcquireLease when another worker holds it.
var ErrLeaseHeld = errors.New("streams: lease held by another worker")

// AcquireLease takes shard n's lease if it is free.
func (s *Store) AcquireLease(ctx context.Context, shard int, worker string, ttl time.Duration) (Lease, error) {
	res, err := acquireLease.Run(ctx, s.rdb, []string{s.keys.Lease(shard), s.keys.LeaseEpoch(shard)}, worker, ttl.Milliseconds()).Slice()
	if err != nil {
		return Lease{}, fmt.Errorf("streams: acquire lease %d: %w", shard, err)
	}
	ok, _ := res[0].(int64)
	val, _ := res[1].(string)
	if ok != 1 {
		return Lease{}, fmt.Errorf("%w: shard %d held by %s", ErrLeaseHeld, shard, holderOf(val))
	}
	e, _ := strconv.ParseInt(val, 10, 64)
	return Lease{Shard: shard, Epoch: e, Token: worker + "|" + val}, nil
}

func holderOf(v string) string {
	if i := strings.LastIndexByte(v, '|'); i >= 0 {
		return v[:i]
	}
	return v
}

// RefreshLeases refreshes several leases in one pipelined round trip and
// reports, per lease, whether it is still ours. err is set when the round
// trip failed as a whole (nothing is known then).
func (s *Store) RefreshLeases(ctx context.Context, leases []Lease, ttl time.Duration) ([]bool, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	cmds, err := s.evalPipelined(ctx, len(leases), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		l := leases[i]
		return refreshLease.EvalSha(ctx, pipe, []string{s.keys.Lease(l.Shard)}, l.Token, ttl.Milliseconds())
	})
	if cmds == nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("streams: refresh leases: %w", err)
	}
	out := make([]bool, len(leases))
	for i, c := range cmds {
		n, _ := c.Int64()
		out[i] = n == 1
	}
	return out, nil
}

// ReleaseLease gives a lease back if it is still ours.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) (bool, error) {
	n, err := releaseLease.Run(ctx, s.rdb, []string{s.keys.Lease(l.Shard)}, l.Token).Int64()
	if err != nil {
		return false, fmt.Errorf("streams: release lease %d: %w", l.Shard, err)
	}
	return n == 1, nil
}

// LeaseHolders returns the holder worker id of every shard ("" = free), in
// one pipelined round trip.
func (s *Store) LeaseHolders(ctx context.Context) ([]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, s.shards)
	for n := range cmds {
		cmds[n] = pipe.Get(ctx, s.keys.Lease(n))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("streams: lease holders: %w", err)
	}
	out := make([]string, s.shards)
	for n, c := range cmds {
		if v, err := c.Result(); err == nil {
			out[n] = holderOf(v)
		}
	}
	return out, nil
}

// Heartbeat renews this worker's membership and returns the live workers.
func (s *Store) Heartbeat(ctx context.Context, worker string, ttl time.Duration) ([]string, error) {
	members, err := heartbeatMember.Run(ctx, s.rdb, []string{s.keys.Workers()}, worker, ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("streams: membership heartbeat: %w", err)
	}
	return members, nil
}

// Leave removes a worker from the membership.
func (s *Store) Leave(ctx context.Context, worker string) error {
	if err := s.rdb.ZRem(ctx, s.keys.Workers(), worker).Err(); err != nil {
		return fmt.Errorf("streams: leave membership: %w", err)
	}
	return nil
}
