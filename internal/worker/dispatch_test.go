package worker

import "testing"

func TestPopFront(t *testing.T) {
	for _, n := range []int{1, 2, 16, 17, 40} {
		q := make([]int, n)
		for i := range q {
			q[i] = i
		}
		for want := 0; want < n; want++ {
			var got int
			got, q = popFront(q)
			if got != want || len(q) != n-want-1 {
				t.Fatalf("n=%d: popFront = %d with %d left, want %d with %d", n, got, len(q), want, n-want-1)
			}
			for i, v := range q {
				if v != want+1+i {
					t.Fatalf("n=%d: after popping %d, q = %v", n, want, q)
				}
			}
		}
	}
	// A short queue keeps its capacity, so appending after a pop reuses it.
	q := make([]int, 3, 8)
	_, q = popFront(q)
	if cap(q) != 8 {
		t.Errorf("cap after popping a short queue = %d, want 8", cap(q))
	}
}
