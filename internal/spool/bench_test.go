package spool

import (
	"io"
	"testing"
)

// BenchmarkAppendFlush measures one ingester batch during an outage: 64
// records of ~400 bytes, then Flush (one write and one fsync). The backlog is
// drained outside the timer so the disk use stays bounded.
func BenchmarkAppendFlush(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 64
	recs := make([][]byte, batch)
	for i := range recs {
		recs[i] = make([]byte, 380+i%41) // 380..420 bytes
		for j := range recs[i] {
			recs[i][j] = byte('a' + (i+j)%26)
		}
	}
	b.SetBytes(int64(batch * (400 + headerSize)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range recs {
			if err := s.Append(r); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
		if i%512 == 511 {
			b.StopTimer()
			drain(b, s)
			b.StartTimer()
		}
	}
}

func drain(b *testing.B, s *Spool) {
	r, err := s.NewReader()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var last Position
	for {
		_, pos, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		last = pos
	}
	if err := s.Commit(last); err != nil {
		b.Fatal(err)
	}
}
