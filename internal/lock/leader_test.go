package lock

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type runner struct {
	l      *Leader
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, key, id string, ttl time.Duration, epoch *atomic.Int64) *runner {
	t.Helper()
	c := srv.Client()
	t.Cleanup(func() { c.Close() })
	l, err := NewLeader(c, LeaderOptions{Key: key, TTL: ttl, ID: id, Epoch: func(context.Context) (int64, error) { return epoch.Add(1), nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{l: l, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = l.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *runner) stop() { r.cancel(); <-r.done }

func TestOneLeaderAndHandoverOnRelease(t *testing.T) {
	var epoch atomic.Int64
	ttl := 300 * time.Millisecond
	a := start(t, t.Name(), "ingester-a", ttl, &epoch)
	eventually(t, time.Second, a.l.IsLeader, "a leads")
	b := start(t, t.Name(), "ingester-b", ttl, &epoch)
	time.Sleep(2 * ttl)
	if !a.l.IsLeader() || b.l.IsLeader() {
		t.Fatalf("leaders: a=%v b=%v, want only a", a.l.IsLeader(), b.l.IsLeader())
	}
	holder, err := a.l.Holder(context.Background())
	if err != nil || holder != "ingester-a" {
		t.Fatalf("holder %q %v", holder, err)
	}
	ea := a.l.Epoch()
	a.stop() // graceful: releases
	if a.l.IsLeader() {
		t.Fatal("a still leader after stop")
	}
	// Released, so b takes over at its next try (TTL/3), well before the TTL.
	eventually(t, ttl/3+150*time.Millisecond, b.l.IsLeader, "b leads after a released")
	if b.l.Epoch() <= ea {
		t.Fatalf("epoch did not increase: %d then %d", ea, b.l.Epoch())
	}
}

func TestLeaderDemotesWhenLockIsTaken(t *testing.T) {
	var epoch atomic.Int64
	var mu sync.Mutex
	var changes []bool
	c := srv.Client()
	defer c.Close()
	l, _ := NewLeader(c, LeaderOptions{Key: t.Name(), TTL: 300 * time.Millisecond, ID: "x",
		Epoch:    func(context.Context) (int64, error) { return epoch.Add(1), nil },
		OnChange: func(leader bool, _ int64) { mu.Lock(); changes = append(changes, leader); mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	eventually(t, time.Second, l.IsLeader, "leads")
	// Someone else's value under the key (as after a failover granting it twice).
	c.Set(context.Background(), t.Name(), "someone-else-token-xxxxOTHER", time.Minute)
	eventually(t, time.Second, func() bool { return !l.IsLeader() }, "demoted after losing the lock")
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("role changes %v, want [true false]", changes)
	}
}

func TestCrashedLeaderReplacedWithinTTL(t *testing.T) {
	var epoch atomic.Int64
	ttl := 400 * time.Millisecond
	c := srv.Client()
	defer c.Close()
	// A "crashed" leader: the lock is held by a token nobody refreshes.
	if err := c.Set(context.Background(), t.Name(), "crashed-token-xxxxxxxxxdead", ttl).Err(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	b := start(t, t.Name(), "b", ttl, &epoch)
	eventually(t, 2*ttl, b.l.IsLeader, "standby leads after the crashed leader's TTL")
	if el := time.Since(began); el < ttl*3/4 {
		t.Fatalf("took over after %v, before the crashed lock expired", el)
	}
}

func TestNewLeaderValidates(t *testing.T) {
	if _, err := NewLeader(srv.Client(), LeaderOptions{}); err == nil {
		t.Fatal("empty options accepted")
	}
}
