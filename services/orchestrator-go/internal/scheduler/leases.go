package scheduler

import (
	"context"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// lease is one running attempt's claim on a task. It lives while heartbeats renew
// it; its deadline is the attempt's timeout.
type lease struct {
	id       string
	taskID   string
	worker   *workers.Worker
	attempt  int32
	expires  time.Time
	deadline time.Time
}

// Tick expires unrenewed leases, times out attempts past their deadline and queues
// retries whose backoff has passed. Start calls it periodically; tests call it
// directly with a fake clock.
func (s *Scheduler) Tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	ctx := context.Background()
	now := s.now()
	for _, l := range s.leases {
		switch {
		case !now.Before(l.deadline):
			s.timeoutLocked(ctx, l, now)
		case !now.Before(l.expires):
			s.metrics.LeasesExpired.Inc()
			s.log.Warn("lease expired", "task_id", l.taskID, "worker_id", l.worker.ID, "lease_id", l.id)
			s.sendCancelLocked(l, "lease expired")
			s.loseLeaseLocked(ctx, l, "lease expired: no heartbeat within the lease TTL", now)
		}
	}
	for id, at := range s.delayed {
		if now.Before(at) {
			continue
		}
		delete(s.delayed, id)
		t, err := s.store.Get(ctx, id)
		if err != nil || t.Status != task.StatusQueued {
			continue
		}
		s.queue.Push(t.ID, t.Agent, t.Priority, now)
	}
	s.dispatchLocked(ctx, nil)
	s.updateGaugesLocked()
}

// dropLeaseLocked forgets the lease; later chunks and results carrying it are stale.
func (s *Scheduler) dropLeaseLocked(l *lease) {
	delete(s.leases, l.id)
	if s.running[l.taskID] == l {
		delete(s.running, l.taskID)
	}
	delete(l.worker.Leases, l.id)
}

func (s *Scheduler) sendCancelLocked(l *lease, reason string) {
	if l.worker.Gone {
		return
	}
	l.worker.Outbox.Post(workers.Message{Cancel: &workers.Cancel{TaskID: l.taskID, LeaseID: l.id, Reason: reason}})
	s.metrics.CancellationsSent.Inc()
}

// timeoutLocked ends an attempt that ran past its deadline: the task times out.
func (s *Scheduler) timeoutLocked(ctx context.Context, l *lease, now time.Time) {
	s.dropLeaseLocked(l)
	s.sendCancelLocked(l, "deadline exceeded")
	t, err := s.store.Get(ctx, l.taskID)
	if err != nil {
		s.log.Error("load timed-out task", "task_id", l.taskID, "err", err)
		return
	}
	msg := "the attempt did not finish within its timeout of " + t.Timeout.String()
	if err := s.finishLocked(ctx, t, task.StatusTimedOut, &task.Failure{Reason: task.ReasonDeadlineExceeded, Message: msg}, now); err != nil {
		s.log.Error("finish timed-out task", "task_id", l.taskID, "err", err)
	}
}

// loseLeaseLocked handles an attempt whose worker is gone or silent: the attempt
// counts, and the task is queued again at once while attempts remain, else it fails.
func (s *Scheduler) loseLeaseLocked(ctx context.Context, l *lease, why string, now time.Time) {
	s.dropLeaseLocked(l)
	t, err := s.store.Get(ctx, l.taskID)
	if err != nil {
		s.log.Error("load task of lost lease", "task_id", l.taskID, "err", err)
		return
	}
	failure := &task.Failure{Reason: task.ReasonLeaseLost, Message: why, Retryable: true}
	if t.Attempts >= t.MaxAttempts {
		if err := s.finishLocked(ctx, t, task.StatusFailed, failure, now); err != nil {
			s.log.Error("fail task of lost lease", "task_id", t.ID, "err", err)
		}
		return
	}
	s.requeueLocked(ctx, t, failure, 0, now)
}

// requeueLocked returns a running task to the queue for another attempt, after
// delay (0: at once).
func (s *Scheduler) requeueLocked(ctx context.Context, t *task.Task, failure *task.Failure, delay time.Duration, now time.Time) {
	t.Status, t.Failure = task.StatusQueued, failure
	if err := s.store.Put(ctx, t); err != nil {
		s.log.Error("requeue task", "task_id", t.ID, "err", err)
		return
	}
	s.metrics.TaskRetries.WithLabelValues(t.Agent).Inc()
	s.log.Info("task requeued", "task_id", t.ID, "attempts", t.Attempts, "reason", failure.Message, "delay", delay.String())
	s.hub.Status(t.ID, task.StatusQueued, t.Attempts, now)
	if delay > 0 {
		s.delayed[t.ID] = now.Add(delay)
		return
	}
	s.queue.Push(t.ID, t.Agent, t.Priority, now)
}
