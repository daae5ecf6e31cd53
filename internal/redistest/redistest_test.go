package redistest

import (
	"context"
	"testing"
)

func TestStartKillRestartKeepsAOFData(t *testing.T) {
	s := MustStart(t, Options{AOF: true, Password: "pw"})
	ctx := context.Background()
	c := s.Client()
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart with AOF: got %q, %v; want v", got, err)
	}
}

func TestWithoutAOFRestartLosesData(t *testing.T) {
	s := MustStart(t, Options{})
	ctx := context.Background()
	c := s.Client()
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, "k").Result(); n != 0 {
		t.Fatalf("key survived a restart without persistence")
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("REDIS_SERVER_BIN", "")
	t.Setenv("PATH", t.TempDir())
	if _, err := Start(Options{}); err != ErrNoBinary {
		t.Fatalf("got %v, want ErrNoBinary", err)
	}
}
