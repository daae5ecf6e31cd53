package memstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestTTLsExpireInRealTime(t *testing.T) {
	s, err := Start(Options{Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "lease", "w1", 150*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if c.Exists(ctx, "lease").Val() != 1 {
		t.Fatal("key missing at once")
	}
	time.Sleep(300 * time.Millisecond)
	if c.Exists(ctx, "lease").Val() != 0 {
		t.Fatal("key did not expire: the embedded store's clock is not driven")
	}
}

func TestPasswordRequired(t *testing.T) {
	s, err := Start(Options{Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("unauthenticated ping: %v", err)
	}
	if !strings.Contains(s.URL(), ":secret@") {
		t.Fatalf("URL %s lacks the password", s.URL())
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	if _, err := Start(Options{Addr: "0.0.0.0:0"}); err == nil {
		t.Fatal("non-loopback address accepted")
	}
}
