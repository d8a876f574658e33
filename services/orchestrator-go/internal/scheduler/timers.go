package scheduler

import (
	"container/heap"
	"time"
)

// timerKind says what a timer checks when it fires.
type timerKind uint8

const (
	timerLease timerKind = iota // a lease's expiry or deadline (id: lease id)
	timerRetry                  // a backed-off retry may be queued (id: task id)
)

type timer struct {
	at   time.Time
	kind timerKind
	id   string
}

// timerHeap orders timers by time, so a tick only looks at what is due: O(due x
// log n) instead of scanning every running lease. Timers are not removed when
// their lease ends or is renewed; a fired timer checks the current state and
// re-arms itself if the lease was renewed.
type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func (h *timerHeap) push(t timer) { heap.Push(h, t) }

// popDue returns the earliest timer due at now, if any.
func (h *timerHeap) popDue(now time.Time) (timer, bool) {
	if len(*h) == 0 || (*h)[0].at.After(now) {
		return timer{}, false
	}
	return heap.Pop(h).(timer), true
}
