package streams

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkAppendBatch is the dedup-and-append script alone (no decoding), in
// pipelined batches of 1024 (the ingester's largest): the Redis-side cost of the ingest path.
func BenchmarkAppendBatch(b *testing.B) {
	c := srv.Client()
	defer c.Close()
	k, _ := NewKeys(fmt.Sprintf("b%d", time.Now().UnixNano()), "+15550000001")
	s := NewStore(c, k, 16)
	payload := []byte(strings.Repeat("x", 400))
	ctx := context.Background()
	cpu := srv.StartCPU(b)
	b.ResetTimer()
	for i := 0; i < b.N; i += 1024 {
		var reqs []Append
		for j := i; j < i+1024 && j < b.N; j++ {
			reqs = append(reqs, Append{Shard: j % 16, Identity: fmt.Sprint(j), Entry: Entry{Kind: "message", Conversation: "u:x", Timestamp: int64(1767225600000 + j), Payload: payload}})
		}
		if _, err := s.AppendBatch(ctx, reqs, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu.Report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReadGroup compares ReadGroup with go-redis' typed XReadGroup on
// the same reply, in the same run: 16 streams of 128 pending ~450-byte
// entries each (the worker's read of a burst), read again and again from the
// consumer's history (id 0), so every read returns the same 2048 entries.
// Compare go-µs/msg (the client's CPU per entry; ns/op is mostly Redis's
// time) and allocs/op (per read of 2048 entries):
//
//	go test -run '^$' -bench ReadGroup -count 6 ./internal/streams/
func BenchmarkReadGroup(b *testing.B) {
	c := srv.Client()
	defer c.Close()
	ctx := context.Background()
	k, _ := NewKeys(fmt.Sprintf("r%d", time.Now().UnixNano()), "+15550000001")
	s := NewStore(c, k, 16)
	if err := s.EnsureGroups(ctx); err != nil {
		b.Fatal(err)
	}
	payload := []byte(strings.Repeat("x", 400))
	var reqs []Append
	for j := range 16 * 128 {
		reqs = append(reqs, Append{Shard: j % 16, Identity: fmt.Sprint(j), Entry: Entry{Kind: "message", Conversation: "u:x", Timestamp: int64(1767225600000 + j), Payload: payload}})
	}
	if _, err := s.AppendBatch(ctx, reqs, time.Hour); err != nil {
		b.Fatal(err)
	}
	keys, fresh, hist := make([]string, 16), make([]string, 16), make([]string, 16)
	for n := range 16 {
		keys[n], fresh[n], hist[n] = k.Stream(n), ">", "0"
	}
	if _, err := ReadGroup(ctx, c, nil, GroupName, "c", 128, keys, fresh); err != nil {
		b.Fatal(err)
	}
	check := func(b *testing.B, got int) {
		if got != 16*128 {
			b.Fatalf("read %d entries, want %d", got, 16*128)
		}
	}
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		cpu := srv.StartCPU(b)
		defer func() { cpu.Report(b, b.N*16*128) }()
		for range b.N {
			res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: GroupName, Consumer: "c", Streams: append(keys[:16:16], hist...), Count: 128}).Result()
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for _, s := range res {
				for _, m := range s.Messages {
					if _, err := ParseEntry(m); err != nil {
						b.Fatal(err)
					}
					got++
				}
			}
			check(b, got)
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		var buf ReadBuffer
		cpu := srv.StartCPU(b)
		defer func() { cpu.Report(b, b.N*16*128) }()
		for range b.N {
			res, err := ReadGroup(ctx, c, &buf, GroupName, "c", 128, keys, hist)
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for _, s := range res {
				for _, m := range s.Messages {
					if _, err := ParseMessage(m); err != nil {
						b.Fatal(err)
					}
					got++
				}
			}
			check(b, got)
		}
	})
}
