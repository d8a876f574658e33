package scheduler

// Leases: each running attempt holds one, renewed by heartbeats and chunks; an
// expired lease loses the attempt, a passed deadline times the task out.

import (
	"container/heap"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// lease is one running attempt's claim on a task. It lives while heartbeats renew
// it; its deadline is the attempt's timeout.
type lease struct {
	id       string
	taskID   string
	agent    string
	provider string // "" unless provider limits are configured
	worker   *workers.Worker
	attempt  int32
	expires  time.Time
	deadline time.Time
	// check is the time the lease is filed under in the lease heap, heapIndex its
	// place there (-1: not in it).
	check     time.Time
	heapIndex int
}

// nextCheck is when the lease may next need action: its expiry or its deadline.
func (l *lease) nextCheck() time.Time {
	if l.deadline.Before(l.expires) {
		return l.deadline
	}
	return l.expires
}

// expireLeasesLocked ends the attempts whose lease was not renewed in time (the
// task is queued again while attempts remain) and times out those past their
// deadline. The lease heap holds them by their next check, so only what is due is
// looked at.
func (s *Scheduler) expireLeasesLocked(now time.Time) {
	for {
		l, ok := s.leaseChecks.popDue(now)
		if !ok {
			return
		}
		if l.nextCheck().After(now) {
			s.leaseChecks.add(l) // renewed since
			continue
		}
		if !now.Before(l.deadline) {
			s.timeoutLocked(l, now)
			continue
		}
		s.metrics.LeasesExpired.Inc()
		attrs := []any{"task_id", l.taskID}
		if e := s.live[l.taskID]; e != nil {
			attrs = taskAttrs(e.t)
		}
		s.log.Warn("lease expired", append(attrs, "worker_id", l.worker.ID, "lease_id", l.id)...)
		s.sendCancelLocked(l, "lease expired")
		s.loseLeaseLocked(l, "lease expired: no heartbeat within the lease TTL", now)
	}
}

// dropLeaseLocked forgets the lease; later chunks and results carrying it are stale.
func (s *Scheduler) dropLeaseLocked(l *lease) {
	if _, ok := s.leases[l.id]; !ok {
		return
	}
	delete(s.leases, l.id)
	s.leaseChecks.remove(l)
	if s.running[l.taskID] == l {
		delete(s.running, l.taskID)
	}
	delete(l.worker.Leases, l.id)
	if limit, ok := s.cfg.AgentLimits[l.agent]; ok && s.runningAgent[l.agent] == limit {
		s.limitFreed = true
	}
	if limit, ok := s.cfg.ProviderLimits[l.provider]; ok && s.runningProv[l.provider] == limit {
		s.limitFreed = true
	}
	if s.runningAgent[l.agent]--; s.runningAgent[l.agent] <= 0 {
		delete(s.runningAgent, l.agent)
	}
	if s.runningProv[l.provider]--; s.runningProv[l.provider] <= 0 {
		delete(s.runningProv, l.provider)
	}
	if s.drained != nil && len(s.running) == 0 {
		close(s.drained)
		s.drained = nil
	}
}

// afterLeaseChangeLocked offers queued work to every worker when a capped agent or
// provider got room (a worker's own credits are handled where they are granted).
func (s *Scheduler) afterLeaseChangeLocked() {
	if s.limitFreed {
		s.limitFreed = false
		s.dispatchLocked(nil)
	}
}

func (s *Scheduler) sendCancelLocked(l *lease, reason string) {
	if l.worker.Gone {
		return
	}
	l.worker.Outbox.Post(workers.Message{Cancel: &workers.Cancel{TaskID: l.taskID, LeaseID: l.id, Reason: reason}})
	s.metrics.CancellationsSent.Inc()
}

// timeoutLocked ends an attempt that ran past its deadline: the task times out.
func (s *Scheduler) timeoutLocked(l *lease, now time.Time) {
	s.dropLeaseLocked(l)
	s.sendCancelLocked(l, "deadline exceeded")
	e := s.live[l.taskID]
	if e == nil || e.finishing {
		return
	}
	s.timedOutLocked(e, l, now, "")
}

// timedOutLocked finishes the task of an attempt that ran out of time: TIMED_OUT,
// never retried. detail is the worker's own message, if it reported the timeout.
func (s *Scheduler) timedOutLocked(e *liveTask, l *lease, now time.Time, detail string) {
	msg := "the attempt did not finish within its timeout of " + e.t.Timeout.String()
	if detail != "" {
		msg += " (worker: " + detail + ")"
	}
	s.log.Warn("task timed out", append(taskAttrs(e.t), "worker_id", l.worker.ID, "attempt", l.attempt)...)
	s.finishLocked(e, task.StatusTimedOut, &task.Failure{Reason: errs.ReasonDeadlineExceeded, Message: msg}, now)
}

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
