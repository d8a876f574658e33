package scheduler

import (
	"time"

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

// Tick expires unrenewed leases, times out attempts past their deadline, queues
// retries whose backoff has passed and refreshes the queue-depth gauges. Start
// calls it periodically; tests call it directly with a fake clock.
func (s *Scheduler) Tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped { // while draining, running leases are still checked
		return
	}
	now := s.now()
	for {
		l, ok := s.leaseChecks.popDue(now)
		if !ok {
			break
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
	for {
		r, ok := s.retries.popDue(now)
		if !ok {
			break
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
	s.limitFreed = false
	s.dispatchLocked(nil)
	s.saveRunningLocked()
	s.updateGaugesLocked()
	s.updateQueueDepthLocked()
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
	s.finishLocked(e, task.StatusTimedOut, &task.Failure{Reason: task.ReasonDeadlineExceeded, Message: msg}, now)
}

// loseLeaseLocked handles an attempt whose worker is gone or silent: the attempt
// counts, and the task is queued again at once while attempts remain, else it fails.
func (s *Scheduler) loseLeaseLocked(l *lease, why string, now time.Time) {
	s.dropLeaseLocked(l)
	e := s.live[l.taskID]
	if e == nil || e.finishing {
		return
	}
	failure := &task.Failure{Reason: task.ReasonLeaseLost, Message: why, Retryable: true}
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
