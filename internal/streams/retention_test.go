package streams

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestTrimShardKeepsUnacknowledged(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	key := s.Keys().Stream(0)
	// No group yet: nothing may be trimmed.
	var ids []string
	for i := 0; i < 10; i++ {
		ids = append(ids, c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"i", i}}).Val())
	}
	future := time.Now().Add(time.Hour)
	if n, err := s.TrimShard(ctx, 0, time.Minute, future); err != nil || n != 0 {
		t.Fatalf("trim without group: %d %v", n, err)
	}
	if err := s.EnsureGroups(ctx); err != nil {
		t.Fatal(err)
	}
	// Deliver 6 entries, ack 0..2 and 4; 3 and 5 stay pending; 6..9 undelivered.
	if _, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: GroupName, Consumer: OwnerConsumer, Streams: []string{key, ">"}, Count: 6}).Result(); err != nil {
		t.Fatal(err)
	}
	c.XAck(ctx, key, GroupName, ids[0], ids[1], ids[2], ids[4])

	// Retention not yet passed: nothing goes.
	if n, _ := s.TrimShard(ctx, 0, time.Hour, time.Now()); n != 0 {
		t.Fatalf("trimmed %d entries younger than retention", n)
	}
	// Retention passed for all: only entries before the first pending one go.
	n, err := s.TrimShard(ctx, 0, time.Minute, future)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("trimmed %d, want 3 (ids 0..2)", n)
	}
	left := c.XRange(ctx, key, "-", "+").Val()
	if len(left) != 7 || left[0].ID != ids[3] {
		t.Fatalf("left %d entries starting %s, want 7 starting %s", len(left), left[0].ID, ids[3])
	}
	// Ack everything delivered: undelivered entries still stay.
	c.XAck(ctx, key, GroupName, ids[3], ids[5])
	if n, _ = s.TrimShard(ctx, 0, time.Minute, future); n != 3 {
		t.Fatalf("trimmed %d, want 3 (ids 3..5)", n)
	}
	left = c.XRange(ctx, key, "-", "+").Val()
	if len(left) != 4 || left[0].ID != ids[6] {
		t.Fatalf("undelivered entries trimmed: %d left", len(left))
	}
	st, err := s.Stats(ctx, 0)
	if err != nil || st.Length != 4 || st.Lag != 4 || st.Pending != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestAppendHeartbeats(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 5)
	if err := s.AppendHeartbeats(ctx, "ing-1", 3, time.UnixMilli(1234)); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 5; n++ {
		m := c.XRange(ctx, s.Keys().Stream(n), "-", "+").Val()
		if len(m) != 1 {
			t.Fatalf("shard %d has %d entries", n, len(m))
		}
		e, err := ParseEntry(m[0])
		if err != nil || e.Kind != KindHeartbeat || e.Timestamp != 1234 || e.Epoch != 3 {
			t.Fatalf("heartbeat %+v %v", e, err)
		}
	}
}

func TestStreamIDOrder(t *testing.T) {
	cases := []struct {
		a, b string
		less bool
	}{
		{"1-0", "1-1", true}, {"1-5", "2-0", true}, {"2-0", "1-9", false}, {"3-3", "3-3", false},
	}
	for _, c := range cases {
		a, _ := parseStreamID(c.a)
		b, _ := parseStreamID(c.b)
		if a.less(b) != c.less {
			t.Errorf("%s < %s = %v", c.a, c.b, !c.less)
		}
	}
	if _, err := parseStreamID("x-1"); err == nil {
		t.Error("bad id accepted")
	}
}
