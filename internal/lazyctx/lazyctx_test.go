package lazyctx

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errLost = errors.New("lock lost")

func TestErrAndCauseMatchTheStandardContexts(t *testing.T) {
	past := time.Now().Add(-time.Second)
	cases := []struct {
		name      string
		deadline  time.Time
		parentEnd bool
		cancel    error // Cancel with this (nil: not cancelled)
		wantErr   error
		wantCause error
	}{
		{name: "live", wantErr: nil, wantCause: nil},
		{name: "live with a future deadline", deadline: time.Now().Add(time.Hour)},
		{name: "deadline passed", deadline: past, wantErr: context.DeadlineExceeded, wantCause: context.DeadlineExceeded},
		{name: "cancelled", cancel: context.Canceled, wantErr: context.Canceled, wantCause: context.Canceled},
		{name: "cancelled with a cause", cancel: errLost, wantErr: context.Canceled, wantCause: errLost},
		{name: "parent ended", parentEnd: true, wantErr: context.Canceled, wantCause: context.Canceled},
	}
	for _, tc := range cases {
		for _, build := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				parent, stop := context.WithCancel(context.Background())
				defer stop()
				c := New(parent, tc.deadline)
				if build {
					_ = c.Done()
				}
				if tc.parentEnd {
					stop()
				}
				if tc.cancel != nil {
					c.Cancel(tc.cancel)
				}
				if got := c.Err(); !errors.Is(got, tc.wantErr) || (tc.wantErr == nil && got != nil) {
					t.Fatalf("built=%v: Err() = %v, want %v", build, got, tc.wantErr)
				}
				// Cause builds it; once built, Done agrees with Err.
				if got := context.Cause(c); !errors.Is(got, tc.wantCause) || (tc.wantCause == nil && got != nil) {
					t.Fatalf("built=%v: Cause = %v, want %v", build, got, tc.wantCause)
				}
				select {
				case <-c.Done():
					if tc.wantErr == nil {
						t.Fatalf("built=%v: Done closed on a live context", build)
					}
				default:
					if tc.wantErr != nil {
						t.Fatalf("built=%v: Done open, Err %v", build, tc.wantErr)
					}
				}
				c.Cancel(nil)
			})
		}
	}
}

func TestDeadlineFiresOnceBuilt(t *testing.T) {
	c := New(context.Background(), time.Now().Add(20*time.Millisecond))
	defer c.Cancel(nil)
	select {
	case <-c.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("deadline did not close Done")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestParentCancellationReachesABuiltChild(t *testing.T) {
	parent, stop := context.WithCancel(context.Background())
	c := New(parent, time.Time{})
	derived, cancel := context.WithCancel(c) // builds c
	defer cancel()
	stop()
	select {
	case <-derived.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the parent's cancellation did not reach the derived context")
	}
}

func TestDeadlineIsTheEarlierOne(t *testing.T) {
	soon, late := time.Now().Add(time.Minute), time.Now().Add(time.Hour)
	p, cancel := context.WithDeadline(context.Background(), soon)
	defer cancel()
	cases := []struct {
		parent context.Context
		own    time.Time
		want   time.Time
		ok     bool
	}{
		{context.Background(), time.Time{}, time.Time{}, false},
		{context.Background(), late, late, true},
		{p, late, soon, true},
		{p, time.Time{}, soon, true},
	}
	for i, tc := range cases {
		got, ok := New(tc.parent, tc.own).Deadline()
		if !got.Equal(tc.want) || ok != tc.ok {
			t.Errorf("case %d: Deadline() = %v %v, want %v %v", i, got, ok, tc.want, tc.ok)
		}
	}
}

func BenchmarkPerMessage(b *testing.B) {
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	b.Run("std", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			h, cancel := context.WithTimeout(parent, time.Minute)
			cc, cancel2 := context.WithCancelCause(h)
			_ = cc.Err()
			cancel2(nil)
			cancel()
		}
	})
	b.Run("lazy", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			h := New(parent, time.Now().Add(time.Minute))
			cc := New(h, time.Time{})
			_ = cc.Err()
			cc.Cancel(nil)
			h.Cancel(nil)
		}
	})
}
