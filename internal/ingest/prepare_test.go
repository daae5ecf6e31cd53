package ingest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signal-client/signal-client/internal/signal/receive"
	"github.com/signal-client/signal-client/internal/streams"
)

// epochRole is a leader whose epoch the test moves.
type epochRole struct{ epoch atomic.Int64 }

func (r *epochRole) IsLeader() bool { return true }
func (r *epochRole) Epoch() int64   { return r.epoch.Load() }

// A batch prepared ahead is sent only while it is exactly the queue's head:
// anything else (the queue moved to the spool, was emptied, or holds other
// frames) plans the batch afresh, so no frame is sent twice or skipped.
func TestPreparedBatchCoversOnlyTheQueueHead(t *testing.T) {
	a, b, c := &item{}, &item{}, &item{}
	cases := []struct {
		name  string
		p     *preparedBatch
		queue []*item
		gen   uint64
		want  bool
	}{
		{name: "none", queue: []*item{a}, want: false},
		{name: "the head", p: &preparedBatch{items: []*item{a, b}, gen: 3}, queue: []*item{a, b, c}, gen: 3, want: true},
		{name: "the whole queue", p: &preparedBatch{items: []*item{a, b, c}, gen: 3}, queue: []*item{a, b, c}, gen: 3, want: true},
		{name: "queue moved to the spool", p: &preparedBatch{items: []*item{a, b}, gen: 3}, queue: []*item{a, b, c}, gen: 4, want: false},
		{name: "queue shorter", p: &preparedBatch{items: []*item{a, b}, gen: 3}, queue: []*item{a}, gen: 3, want: false},
		{name: "other frames at the head", p: &preparedBatch{items: []*item{b, c}, gen: 3}, queue: []*item{a, b, c}, gen: 3, want: false},
		{name: "a frame missing", p: &preparedBatch{items: []*item{a, c}, gen: 3}, queue: []*item{a, b, c}, gen: 3, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := &Ingester{queue: tc.queue, gen: tc.gen}
			if got := tc.p.coversLocked(in); got != tc.want {
				t.Errorf("coversLocked = %v, want %v", got, tc.want)
			}
		})
	}
}

// A batch prepared under one epoch and sent under another carries the
// epoch current at sending, which is what fencing checks (ARCHITECTURE §5.2).
func TestSendPlansAgainWhenTheEpochMoved(t *testing.T) {
	h := newHarness(t, srv, 2)
	role := &epochRole{}
	role.epoch.Store(5)
	in := New(h.cfg("i1"), h.store, role, nil, nil)
	ctx := context.Background()
	var batch []*item
	for i := 0; i < 3; i++ {
		it := in.classify(frame(i, int64(1767225600000+i), "hi"), time.Now())
		batch = append(batch, &it)
	}
	p := in.prepare(ctx, batch)
	role.epoch.Store(6)
	if err := in.send(ctx, p); err != nil {
		t.Fatal(err)
	}
	n := 0
	for sh := 0; sh < 2; sh++ {
		for _, m := range h.client.XRange(ctx, h.store.Keys().Stream(sh), "-", "+").Val() {
			e, err := streams.ParseEntry(m)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if e.Epoch != 6 {
				t.Errorf("entry %s has epoch %d, want 6 (the epoch at sending)", m.ID, e.Epoch)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d entries appended, want 3", n)
	}
}

// A burst deeper than a batch is appended through batches prepared ahead,
// and still every frame lands once, in its conversation's order.
func TestBurstThroughPreparedBatchesKeepsOrder(t *testing.T) {
	h := newHarness(t, srv, 16)
	role := &fakeRole{}
	role.leader.Store(true)
	cfg := h.cfg("a")
	cfg.QueueSize = 1000 // batches of 500
	a := h.startWith(cfg, role, 10000)
	const n, convs = 6000, 50
	for i := 0; i < n; i++ {
		a.frames <- receive.Frame{Data: frame(i%convs, int64(1767225600000+i), fmt.Sprint(i)), ReceivedAt: time.Now()}
	}
	eventually(t, 30*time.Second, func() bool { return a.in.Stats().Appended.Load() == n }, "every frame appended")
	if d, dd := a.in.Stats().Dropped.Load(), a.in.Stats().Deduplicated.Load(); d+dd != 0 {
		t.Fatalf("%d dropped, %d deduplicated: every frame is distinct and Redis is healthy", d, dd)
	}
	if a.in.aheadSent.Load() == 0 {
		t.Fatal("no batch was sent as prepared ahead: the burst did not exercise that path")
	}
	texts := h.texts()
	if got := total(texts); got != n {
		t.Fatalf("%d entries in the streams, want %d", got, n)
	}
	for conv, seq := range texts {
		for j := 1; j < len(seq); j++ {
			prev, _ := strconv.Atoi(seq[j-1])
			cur, _ := strconv.Atoi(seq[j])
			if cur <= prev {
				t.Fatalf("conversation %s: %d after %d", conv, cur, prev)
			}
		}
	}
	t.Logf("%d of the batches were prepared ahead", a.in.aheadSent.Load())
}
