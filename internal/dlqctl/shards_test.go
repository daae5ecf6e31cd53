package dlqctl

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/signal-client/signal-client/internal/redistest"
	"github.com/signal-client/signal-client/internal/streams"
)

func TestShardsSetRefusesUntilDrainedAndSafe(t *testing.T) {
	srv := redistest.MustStart(t, redistest.Options{})
	c := srv.Client()
	defer c.Close()
	ctx := context.Background()
	keys, _ := streams.NewKeys("sc", "+15550000001")
	st := streams.NewStore(c, keys, 4)
	if err := st.InitMeta(ctx, "01"); err != nil {
		t.Fatal(err)
	}
	_ = st.EnsureGroups(ctx)
	env := map[string]string{"SIGNAL_PHONE_NUMBER": "+15550000001", "REDIS_URL": srv.URL()}
	run := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := Run(ctx, args, IO{Stdout: &out, Stderr: &errb, Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
		return code, out.String() + errb.String()
	}
	// An undelivered entry: refused.
	c.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(2), Values: streams.Entry{Kind: "message", Conversation: "u:x"}.Fields()})
	if code, out := run("shards", "set", "8", "--yes"); code != 2 || !strings.Contains(out, "not drained: shard 2 (lag 1, pending 0)") {
		t.Fatalf("undrained: %d %s", code, out)
	}
	msgs, _ := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: streams.GroupName, Consumer: "owner", Streams: []string{keys.Stream(2), ">"}}).Result()
	c.XAck(ctx, keys.Stream(2), streams.GroupName, msgs[0].Messages[0].ID)
	// A running ingester: refused.
	c.Set(ctx, keys.Leader(), "token", time.Minute)
	if code, out := run("shards", "set", "8", "--yes"); code != 2 || !strings.Contains(out, "stop every ingester first") {
		t.Fatalf("leader: %d %s", code, out)
	}
	c.Del(ctx, keys.Leader())
	// Conversation state: refused without --discard-state.
	c.HSet(ctx, keys.State(1, "u:x"), "count", "0|7")
	if code, out := run("shards", "set", "8", "--yes"); code != 2 || !strings.Contains(out, "1 conversations have state") {
		t.Fatalf("state: %d %s", code, out)
	}
	// Without --yes: nothing changes.
	if code, out := run("shards", "set", "8", "--discard-state"); code != 2 || !strings.Contains(out, "add --yes") {
		t.Fatalf("no --yes: %d %s", code, out)
	}
	if v := c.HGet(ctx, keys.Meta(), "shard_count").Val(); v != "4" {
		t.Fatalf("changed without --yes: %s", v)
	}
	if code, out := run("shards", "set", "8", "--discard-state", "--yes"); code != 0 || !strings.Contains(out, "changed from 4 to 8") {
		t.Fatalf("set: %d %s", code, out)
	}
	if v := c.HGet(ctx, keys.Meta(), "shard_count").Val(); v != "8" {
		t.Fatalf("shard_count %s", v)
	}
	if c.Exists(ctx, keys.State(1, "u:x")).Val() != 0 {
		t.Fatal("state kept")
	}
	if err := streams.NewStore(c, keys, 8).InitMeta(ctx, "01"); err != nil {
		t.Fatalf("a process with the new count is refused: %v", err)
	}
	if code, out := run("shards", "show"); code != 0 || strings.TrimSpace(out) != "8" {
		t.Fatalf("show: %d %q", code, out)
	}
}
