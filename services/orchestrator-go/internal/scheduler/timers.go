package scheduler

import (
	"container/heap"
	"time"
)

// leaseHeap orders the running leases by their next check (expiry or deadline), so
// a tick only looks at what is due: O(due x log n) instead of scanning every lease.
// A lease leaves it when it ends; a renewal does not move it: when its old check
// comes, it is filed again under the new one.
type leaseHeap []*lease

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].check.Before(h[j].check) }
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *leaseHeap) Push(x any) {
	l := x.(*lease)
	l.heapIndex = len(*h)
	*h = append(*h, l)
}
func (h *leaseHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.heapIndex = -1
	return l
}

// add files l under its next check.
func (h *leaseHeap) add(l *lease) {
	l.check = l.nextCheck()
	heap.Push(h, l)
}

// remove takes l out, if it is in.
func (h *leaseHeap) remove(l *lease) {
	if l.heapIndex >= 0 && l.heapIndex < len(*h) && (*h)[l.heapIndex] == l {
		heap.Remove(h, l.heapIndex)
	}
}

// popDue returns the lease with the earliest check due at now, if any.
func (h *leaseHeap) popDue(now time.Time) (*lease, bool) {
	if len(*h) == 0 || (*h)[0].check.After(now) {
		return nil, false
	}
	return heap.Pop(h).(*lease), true
}

// retry is when a backed-off task may be queued again.
type retry struct {
	at     time.Time
	taskID string
}

// retryHeap orders backed-off tasks by the end of their backoff. An entry whose
// task was cancelled meanwhile is skipped when it comes due.
type retryHeap []retry

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retry)) }
func (h *retryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

func (h *retryHeap) push(r retry) { heap.Push(h, r) }

// popDue returns the earliest retry due at now, if any.
func (h *retryHeap) popDue(now time.Time) (retry, bool) {
	if len(*h) == 0 || (*h)[0].at.After(now) {
		return retry{}, false
	}
	return heap.Pop(h).(retry), true
}
