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

// ShardStats describes one shard stream for backpressure and metrics.
type ShardStats struct {
	Length  int64
	Lag     int64 // entries not yet delivered to the group (-1 when Redis cannot tell)
	Pending int64 // delivered, not acknowledged
}

// Stats reads a shard's length, lag and pending count.
func (s *Store) Stats(ctx context.Context, shard int) (ShardStats, error) {
	key := s.keys.Stream(shard)
	st := ShardStats{Lag: -1}
	n, err := s.rdb.XLen(ctx, key).Result()
	if err != nil {
		return st, fmt.Errorf("streams: stats shard %d: %w", shard, err)
	}
	st.Length = n
	groups, err := s.rdb.XInfoGroups(ctx, key).Result()
	if err != nil && !isNoGroup(err) {
		return st, fmt.Errorf("streams: stats shard %d: %w", shard, err)
	}
	for _, g := range groups {
		if g.Name == GroupName {
			st.Lag, st.Pending = g.Lag, g.Pending
		}
	}
	return st, nil
}

func isNoGroup(err error) bool {
	return err != nil && (errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "no such key"))
}

// TrimShard deletes entries that every consumer group has both received and
// acknowledged and that are older than retention (ARCHITECTURE §9.1). It never
// deletes an entry that is undelivered or pending in any group; a stream with
// no group is not trimmed at all. It returns how many entries went.
func (s *Store) TrimShard(ctx context.Context, shard int, retention time.Duration, now time.Time) (int64, error) {
	key := s.keys.Stream(shard)
	groups, err := s.rdb.XInfoGroups(ctx, key).Result()
	if err != nil {
		if isNoGroup(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("streams: trim shard %d: %w", shard, err)
	}
	if len(groups) == 0 {
		return 0, nil
	}
	minID := streamID{ms: uint64(now.Add(-retention).UnixMilli())}
	for _, g := range groups {
		next, err := parseStreamID(g.LastDeliveredID)
		if err != nil {
			return 0, fmt.Errorf("streams: trim shard %d: group %s: %w", shard, g.Name, err)
		}
		next = next.next()
		if next.less(minID) {
			minID = next
		}
		if g.Pending > 0 {
			p, err := s.rdb.XPending(ctx, key, g.Name).Result()
			if err != nil {
				return 0, fmt.Errorf("streams: trim shard %d: pending of %s: %w", shard, g.Name, err)
			}
			first, err := parseStreamID(p.Lower)
			if err != nil {
				return 0, fmt.Errorf("streams: trim shard %d: %w", shard, err)
			}
			if first.less(minID) {
				minID = first
			}
		}
	}
	n, err := s.rdb.XTrimMinID(ctx, key, minID.String()).Result()
	if err != nil {
		return 0, fmt.Errorf("streams: trim shard %d: %w", shard, err)
	}
	return n, nil
}

// AppendHeartbeats appends a heartbeat entry to every shard in one pipelined
// round trip (ARCHITECTURE §12).
func (s *Store) AppendHeartbeats(ctx context.Context, ingester string, epoch int64, now time.Time) error {
	pipe := s.rdb.Pipeline()
	ms := now.UnixMilli()
	for n := 0; n < s.shards; n++ {
		e := Entry{Kind: KindHeartbeat, Conversation: "", Timestamp: ms, ReceivedAt: ms, Ingester: ingester, Epoch: epoch}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.Stream(n), Values: e.Fields()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("streams: heartbeats: %w", err)
	}
	return nil
}

type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	var b uint64
	var err2 error
	if ok {
		b, err2 = strconv.ParseUint(seq, 10, 64)
	}
	if err1 != nil || err2 != nil {
		return streamID{}, fmt.Errorf("bad stream id %q", s)
	}
	return streamID{a, b}, nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func (a streamID) next() streamID {
	if a.seq == ^uint64(0) {
		return streamID{a.ms + 1, 0}
	}
	return streamID{a.ms, a.seq + 1}
}

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}
