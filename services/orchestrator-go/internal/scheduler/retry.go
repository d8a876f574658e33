package scheduler

// Retries: what a failed or lost attempt leads to (another attempt, at once or after
// a jittered exponential backoff, or the end of the task), and the backoff timers.

import (
	"container/heap"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// backoffCap is the most a retry waits after n attempts: it doubles from the
// initial backoff up to the max.
func backoffCap(t *task.Task) time.Duration {
	d := t.InitialBackoff
	for i := int32(1); i < t.Attempts && d < t.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, t.MaxBackoff)
}

// backoff is the wait before the next attempt: "full jitter", uniform in
// [0, backoffCap], so retries of tasks that failed together spread out.
func (s *Scheduler) backoff(t *task.Task) time.Duration {
	c := backoffCap(t)
	if c <= 0 {
		return 0
	}
	return time.Duration(s.rand(int64(c) + 1))
}

// attemptFailedLocked ends an attempt the worker reported failed. A failure the
// worker reports as DEADLINE_EXCEEDED, or any failure arriving at or after the
// attempt's deadline, times the task out (TIMED_OUT, no retry) like the
// orchestrator's own deadline check; a retryable failure is retried after a
// backoff while attempts remain; any other fails the task.
func (s *Scheduler) attemptFailedLocked(e *liveTask, l *lease, f *task.Failure, now time.Time) {
	t := e.t
	switch {
	case f.Reason == errs.ReasonDeadlineExceeded || !now.Before(l.deadline):
		// The worker stopped the attempt at its deadline (often before a tick
		// noticed it), or failed it past the deadline: the task timed out, as if
		// the orchestrator had stopped it, and is not retried.
		s.timedOutLocked(e, l, now, f.Message)
	case f.Retryable && t.Attempts < t.MaxAttempts:
		s.requeueLocked(e, f, s.backoff(t), now)
	default:
		s.finishLocked(e, task.StatusFailed, f, now)
	}
}

// loseLeaseLocked handles an attempt whose worker is gone or silent: the attempt
// counts, and the task is queued again at once while attempts remain, else it fails.
func (s *Scheduler) loseLeaseLocked(l *lease, why string, now time.Time) {
	s.dropLeaseLocked(l)
	e := s.live[l.taskID]
	if e == nil || e.finishing {
		return
	}
	failure := &task.Failure{Reason: errs.ReasonLeaseLost, Message: why, Retryable: true}
	if e.t.Attempts >= e.t.MaxAttempts {
		s.finishLocked(e, task.StatusFailed, failure, now)
		return
	}
	s.requeueLocked(e, failure, 0, now)
}

// requeueLocked returns a running task to the queue for another attempt, after
// delay (0: at once).
func (s *Scheduler) requeueLocked(e *liveTask, failure *task.Failure, delay time.Duration, now time.Time) {
	t := e.t
	t.Status, t.Failure, t.WorkerID, t.NotBefore = task.StatusQueued, failure, "", time.Time{}
	if delay > 0 {
		t.NotBefore = now.Add(delay) // stored, so a restart keeps the backoff
	}
	s.commit.Write(t.Snapshot())
	s.metrics.TaskRetries.WithLabelValues(t.Agent).Inc()
	s.log.Info("task requeued", append(taskAttrs(t), "attempts", t.Attempts, "reason", failure.Message, "delay", delay.String())...)
	s.hub.Status(t.ID, task.StatusQueued, t.Attempts, now)
	if delay > 0 {
		s.delayLocked(t, t.NotBefore)
		return
	}
	s.queue.Push(t, now)
}

// delayLocked holds the queued task back until at; a tick then queues it.
func (s *Scheduler) delayLocked(t *task.Task, at time.Time) {
	s.delayed[t.ID] = at
	s.retries.push(retry{at: at, taskID: t.ID})
}

// queueDueRetriesLocked queues the backed-off tasks whose backoff has passed.
func (s *Scheduler) queueDueRetriesLocked(now time.Time) {
	for {
		r, ok := s.retries.popDue(now)
		if !ok {
			return
		}
		at, ok := s.delayed[r.taskID]
		if !ok || at.After(now) {
			continue
		}
		delete(s.delayed, r.taskID)
		if e := s.live[r.taskID]; e != nil && !e.finishing && e.t.Status == task.StatusQueued {
			s.queue.Push(e.t, now)
		}
	}
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
