package memstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/streams"
)

// The same scripts as on Redis: a shard lease and a redislock lock held by a
// "dead" owner expire on the embedded store as they would on Redis, and the
// next owner gets a higher epoch.
func TestLeaseAndLockExpiryOnTheEmbeddedStore(t *testing.T) {
	s, err := Start(Options{Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts, _ := redis.ParseURL(s.URL())
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	keys, _ := streams.NewKeys("sc", "+15550000001")
	st := streams.NewStore(c, keys, 4)

	dead, err := st.AcquireLease(ctx, 1, "dead-worker", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AcquireLease(ctx, 1, "w2", time.Second); !errors.Is(err, streams.ErrLeaseHeld) {
		t.Fatalf("lease taken while held: %v", err)
	}
	time.Sleep(350 * time.Millisecond)
	l, err := st.AcquireLease(ctx, 1, "w2", time.Second)
	if err != nil {
		t.Fatalf("lease of a dead worker did not expire: %v", err)
	}
	if l.Epoch <= dead.Epoch {
		t.Fatalf("epoch %d after %d", l.Epoch, dead.Epoch)
	}
	if _, err := st.Commit(ctx, dead, nil, nil); !errors.Is(err, streams.ErrStale) {
		t.Fatalf("the dead owner's commit: %v", err)
	}

	locker := redislock.New(c)
	if _, err := locker.Obtain(ctx, keys.UserLock("count"), 200*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Obtain(ctx, keys.UserLock("count"), time.Second, nil); !errors.Is(err, redislock.ErrNotObtained) {
		t.Fatalf("lock obtained twice: %v", err)
	}
	time.Sleep(350 * time.Millisecond)
	if _, err := locker.Obtain(ctx, keys.UserLock("count"), time.Second, nil); err != nil {
		t.Fatalf("a dead holder's lock did not expire: %v", err)
	}
}
