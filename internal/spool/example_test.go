package spool_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/signal-client/signal-client/internal/spool"
)

// The ingester's pattern: spool batches while Redis is down, then drain with
// a Reader, appending a batch to Redis and committing its last Position.
func Example() {
	dir, _ := os.MkdirTemp("", "spool-example")
	defer os.RemoveAll(dir)
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	for _, frame := range []string{`{"n":1}`, `{"n":2}`, `{"n":3}`} {
		if err := s.Append([]byte(frame)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := s.Flush(); err != nil { // the batch is spooled once Flush returns nil
		fmt.Println(err)
		return
	}

	redisAppend := func(batch [][]byte) error { // stands in for the pipelined dedup-and-append
		for _, f := range batch {
			fmt.Println("appended", string(f))
		}
		return nil
	}
	r, err := s.NewReader()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	for {
		var batch [][]byte
		var last spool.Position
		for len(batch) < 2 {
			rec, pos, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				fmt.Println(err)
				return
			}
			batch, last = append(batch, rec), pos
		}
		if len(batch) == 0 {
			break
		}
		if err := redisAppend(batch); err != nil {
			return // nothing of this batch is committed: the next replay repeats it
		}
		if err := s.Commit(last); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("depth", s.Depth())

	// Replay does the same one record at a time.
	_ = s.Replay(context.Background(), func(rec []byte) error { return nil })
	// Output:
	// appended {"n":1}
	// appended {"n":2}
	// appended {"n":3}
	// depth 0
}
