package streams

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
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
