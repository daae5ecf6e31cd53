package streams

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestLeaseLifecycle(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	l, err := s.AcquireLease(ctx, 2, "w1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, 2, "w2", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second acquire: %v", err)
	}
	holders, err := s.LeaseHolders(ctx)
	if err != nil || holders[2] != "w1" || holders[0] != "" {
		t.Fatalf("holders %v %v", holders, err)
	}
	ok, err := s.RefreshLeases(ctx, []Lease{l}, 50*time.Millisecond)
	if err != nil || !ok[0] {
		t.Fatalf("refresh %v %v", ok, err)
	}
	time.Sleep(80 * time.Millisecond) // lease expires
	l2, err := s.AcquireLease(ctx, 2, "w2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Epoch <= l.Epoch {
		t.Fatalf("epoch went from %d to %d", l.Epoch, l2.Epoch)
	}
	ok, _ = s.RefreshLeases(ctx, []Lease{l}, time.Minute)
	if ok[0] {
		t.Fatal("stale lease refreshed")
	}
	if rel, _ := s.ReleaseLease(ctx, l); rel {
		t.Fatal("stale lease released someone else's lease")
	}
	if rel, _ := s.ReleaseLease(ctx, l2); !rel {
		t.Fatal("own lease not released")
	}
	if n := c.Exists(ctx, s.Keys().Lease(2)).Val(); n != 0 {
		t.Fatal("lease key left after release")
	}
}

func TestMembership(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 1)
	if m, err := s.Heartbeat(ctx, "w1", 60*time.Millisecond); err != nil || len(m) != 1 {
		t.Fatalf("%v %v", m, err)
	}
	m, _ := s.Heartbeat(ctx, "w2", time.Minute)
	if len(m) != 2 {
		t.Fatalf("members %v", m)
	}
	time.Sleep(90 * time.Millisecond)
	m, _ = s.Heartbeat(ctx, "w2", time.Minute)
	if len(m) != 1 || m[0] != "w2" {
		t.Fatalf("expired member kept: %v", m)
	}
	_ = s.Leave(ctx, "w2")
	m, _ = s.Heartbeat(ctx, "w3", time.Minute)
	if len(m) != 1 || m[0] != "w3" {
		t.Fatalf("left member kept: %v", m)
	}
}

func readAll(t *testing.T, c *redis.Client, stream string) []redis.XMessage {
	res, err := c.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: GroupName, Consumer: OwnerConsumer, Streams: []string{stream, ">"}, Count: 100}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Messages
}

func TestCommitIsFencedAndAtomic(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	_ = s.EnsureGroups(ctx)
	for i := 0; i < 3; i++ {
		c.XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().Stream(0), Values: Entry{Kind: "message"}.Fields()})
	}
	msgs := readAll(t, c, s.Keys().Stream(0))
	l, _ := s.AcquireLease(ctx, 0, "w1", time.Minute)
	if a, err := s.CountAttempt(ctx, l, msgs[0].ID, 1); err != nil || a.Count != 1 {
		t.Fatalf("attempt %+v %v", a, err)
	}
	st := s.Keys().State(0, "u:a")
	n, err := s.Commit(ctx, l, []string{msgs[0].ID, msgs[1].ID}, []StateOp{{Key: st, Op: "set", Field: "count", Value: "1"}, {Key: st, Op: "expire", TTL: time.Hour}})
	if err != nil || n != 2 {
		t.Fatalf("commit %d %v", n, err)
	}
	if v := c.HGet(ctx, st, "count").Val(); v != "1" {
		t.Fatalf("state %q", v)
	}
	if ttl := c.PTTL(ctx, st).Val(); ttl <= 0 {
		t.Fatalf("state ttl %v", ttl)
	}
	if c.HExists(ctx, s.Keys().Attempts(0), msgs[0].ID).Val() {
		t.Fatal("attempt count not cleared on ack")
	}
	// Another worker takes the shard: the old token's commit changes nothing.
	c.Del(ctx, s.Keys().Lease(0))
	if _, err := s.AcquireLease(ctx, 0, "w2", time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = s.Commit(ctx, l, []string{msgs[2].ID}, []StateOp{{Key: st, Op: "set", Field: "count", Value: "2"}})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("stale commit: %v", err)
	}
	if v := c.HGet(ctx, st, "count").Val(); v != "1" {
		t.Fatalf("stale commit wrote state: %q", v)
	}
	p, _ := c.XPending(ctx, s.Keys().Stream(0), GroupName).Result()
	if p.Count != 1 {
		t.Fatalf("pending %d, want 1 (stale ack rejected)", p.Count)
	}
	if _, err := s.CountAttempt(ctx, l, msgs[2].ID, 1); !errors.Is(err, ErrStale) {
		t.Fatalf("stale attempt count: %v", err)
	}
}

func TestParkMovesAtomically(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	_ = s.EnsureGroups(ctx)
	c.XAdd(ctx, &redis.XAddArgs{Stream: s.Keys().Stream(0), Values: Entry{Kind: "message", Conversation: "u:a", Payload: []byte("p")}.Fields()})
	msgs := readAll(t, c, s.Keys().Stream(0))
	e, _ := ParseEntry(msgs[0])
	l, _ := s.AcquireLease(ctx, 0, "w1", time.Minute)
	var a Attempts
	for i := 0; i < 3; i++ {
		a, _ = s.CountAttempt(ctx, l, e.ID, 1)
	}
	if a.Count != 3 {
		t.Fatalf("attempts %d", a.Count)
	}
	if a, _ = s.CountAttempt(ctx, l, e.ID, -1); a.Count != 2 {
		t.Fatalf("refund: %d", a.Count)
	}
	id, trimmed, err := s.Park(ctx, l, Parked{Entry: e, Attempts: a, Reason: "handler_error", Error: "boom", Worker: "w1"}, 100)
	if err != nil || id == "" || trimmed != 0 {
		t.Fatalf("park %s %d %v", id, trimmed, err)
	}
	d := c.XRange(ctx, s.Keys().DLQ(0), "-", "+").Val()
	if len(d) != 1 {
		t.Fatalf("dlq %v", d)
	}
	v := d[0].Values
	if v[DLQFieldSource] != e.ID || v[FieldOriginalID] != e.ID || v[DLQFieldAttempts] != "2" || v[DLQFieldReason] != "handler_error" || v[FieldPayload] != "p" || v[DLQFieldShard] != "0" {
		t.Fatalf("dlq entry %v", v)
	}
	p, _ := c.XPending(ctx, s.Keys().Stream(0), GroupName).Result()
	if p.Count != 0 {
		t.Fatal("parked entry still pending")
	}
	if c.HLen(ctx, s.Keys().Attempts(0)).Val() != 0 {
		t.Fatal("attempt record left after park")
	}
}
