package streams

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestAdmitGCRABurstThenSpacing(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 1)
	// 10 per second (100ms apart), burst 3.
	req := AdmitReq{Interval: 100 * time.Millisecond, Burst: 3}
	for i := 0; i < 3; i++ {
		r, err := s.Admit(ctx, req)
		if err != nil || r.Code != Admitted {
			t.Fatalf("call %d of the burst: %+v %v", i+1, r, err)
		}
	}
	r, err := s.Admit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != AdmitRate || r.Wait <= 0 || r.Wait > 100*time.Millisecond {
		t.Fatalf("4th call at once: %+v, want rate limited with a wait in (0, 100ms]", r)
	}
	time.Sleep(r.Wait)
	if r, _ := s.Admit(ctx, req); r.Code != Admitted {
		t.Fatalf("after the retry-after: %+v", r)
	}
	if r, _ := s.Admit(ctx, req); r.Code != AdmitRate {
		t.Fatalf("right after: %+v, want rate limited", r)
	}
	if ttl := c.PTTL(ctx, s.Keys().Rate()).Val(); ttl <= 0 || ttl > 400*time.Millisecond {
		t.Fatalf("rate key TTL %v, want the time until the TAT is past", ttl)
	}
	// A call that does not count toward the rate is admitted regardless.
	if r, _ := s.Admit(ctx, AdmitReq{}); r.Code != Admitted {
		t.Fatalf("uncounted call: %+v", r)
	}
}

func TestAdmitSemaphore(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 1)
	take := func(h string, lease time.Duration) AdmitRes {
		t.Helper()
		r, err := s.Admit(ctx, AdmitReq{Holder: h, Slots: 2, Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if take("a", time.Minute).Code != Admitted || take("b", 150*time.Millisecond).Code != Admitted {
		t.Fatal("two slots not granted")
	}
	r := take("c", time.Minute)
	if r.Code != AdmitBusy || r.Wait <= 0 || r.Wait > 150*time.Millisecond {
		t.Fatalf("third holder: %+v, want busy until b's lease ends", r)
	}
	if n, _ := s.SlotsInUse(ctx); n != 2 {
		t.Fatalf("slots in use %d", n)
	}
	if err := s.ReleaseSlot(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if take("c", time.Minute).Code != Admitted {
		t.Fatal("slot not reusable after release")
	}
	// b crashed without releasing: its lease ends and frees the slot.
	time.Sleep(200 * time.Millisecond)
	if take("d", time.Minute).Code != Admitted {
		t.Fatal("expired holder kept its slot")
	}
	if take("e", time.Minute).Code != AdmitBusy {
		t.Fatal("more than 2 holders")
	}
}

func TestRefreshSlot(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 1)
	if r, _ := s.Admit(ctx, AdmitReq{Holder: "a", Slots: 1, Lease: 100 * time.Millisecond}); r.Code != Admitted {
		t.Fatal("not admitted")
	}
	for i := 0; i < 4; i++ {
		time.Sleep(50 * time.Millisecond)
		if held, err := s.RefreshSlot(ctx, "a", 100*time.Millisecond); err != nil || !held {
			t.Fatalf("refresh %d: %v %v", i, held, err)
		}
	}
	if r, _ := s.Admit(ctx, AdmitReq{Holder: "b", Slots: 1, Lease: time.Minute}); r.Code != AdmitBusy {
		t.Fatal("a refreshed slot was taken")
	}
	time.Sleep(150 * time.Millisecond)
	if held, _ := s.RefreshSlot(ctx, "a", time.Minute); held {
		t.Fatal("an expired slot was re-created by a refresh")
	}
	if r, _ := s.Admit(ctx, AdmitReq{Holder: "b", Slots: 1, Lease: time.Minute}); r.Code != Admitted {
		t.Fatal("expired slot not freed")
	}
}

func TestAdmitBusyDoesNotSpendRate(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 1)
	req := AdmitReq{Holder: "a", Slots: 1, Lease: time.Minute, Interval: time.Hour, Burst: 1}
	if r, _ := s.Admit(ctx, req); r.Code != Admitted {
		t.Fatal("first")
	}
	req.Holder = "b"
	if r, _ := s.Admit(ctx, req); r.Code != AdmitBusy {
		t.Fatalf("second holder: %+v, want busy", r)
	}
	_ = s.ReleaseSlot(ctx, "a")
	// The rate's single token went to a; b must now be rate limited, and must not hold a slot.
	if r, _ := s.Admit(ctx, req); r.Code != AdmitRate {
		t.Fatalf("third: %+v, want rate limited", r)
	}
	if n, _ := s.SlotsInUse(ctx); n != 0 {
		t.Fatalf("a rate-limited caller holds %d slots", n)
	}
}

func TestPauseSends(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 1)
	got, err := s.PauseSends(ctx, 300*time.Millisecond)
	if err != nil || got != 300*time.Millisecond {
		t.Fatalf("pause: %v %v", got, err)
	}
	if got, _ := s.PauseSends(ctx, 10*time.Millisecond); got < 250*time.Millisecond {
		t.Fatalf("a shorter pause shortened the one in force: %v", got)
	}
	r, _ := s.Admit(ctx, AdmitReq{Holder: "a", Slots: 1, Lease: time.Minute})
	if r.Code != AdmitPaused || r.Wait <= 0 || r.Wait > 300*time.Millisecond {
		t.Fatalf("admit during pause: %+v", r)
	}
	if n, _ := s.SlotsInUse(ctx); n != 0 {
		t.Fatal("a paused caller took a slot")
	}
	time.Sleep(r.Wait + 10*time.Millisecond)
	if r, _ := s.Admit(ctx, AdmitReq{}); r.Code != Admitted {
		t.Fatalf("after the pause: %+v", r)
	}
}

func TestSentRecords(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t, 4)
	if _, ok, err := s.SentRecord(ctx, 3, "1-0", 1); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	if err := s.RecordSent(ctx, 3, "1-0", 1, "t:42", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSent(ctx, 3, "1-0", 2, "u", time.Hour); err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[int]string{1: "t:42", 2: "u"} {
		v, ok, err := s.SentRecord(ctx, 3, "1-0", seq)
		if err != nil || !ok || v != want {
			t.Fatalf("seq %d: %q %v %v, want %q", seq, v, ok, err, want)
		}
	}
	key := s.Keys().Sent(3, "1-0")
	if ttl := c.PTTL(ctx, key).Val(); ttl <= 59*time.Minute {
		t.Fatalf("record TTL %v", ttl)
	}
	if want := fmt.Sprintf("{%s.s3}", s.Keys().Account()); key[len(s.Keys().Prefix())+1:len(s.Keys().Prefix())+1+len(want)] != want {
		t.Fatalf("sent key %q is not in shard 3's slot", key)
	}
}
