package scheduler

import (
	"context"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// dispatchLocked hands queued tasks to workers with free credits: to only if given
// (it just granted credits), else to every connected worker.
func (s *Scheduler) dispatchLocked(ctx context.Context, only *workers.Worker) {
	if s.queue.Len() == 0 {
		return
	}
	candidates := []*workers.Worker{only}
	if only == nil {
		candidates = s.workers.All()
	}
	for _, w := range candidates {
		for w.CanTake() {
			item, ok := s.queue.Peek(w.Agents)
			if !ok {
				break
			}
			if err := s.assignLocked(ctx, w, item); err != nil {
				s.log.Error("assign task", "task_id", item.id, "worker_id", w.ID, "err", err)
				return
			}
		}
	}
}

// assignLocked starts the next attempt of the queued task on w: the task turns
// running, a fresh lease is taken and the assignment is posted to the worker.
func (s *Scheduler) assignLocked(ctx context.Context, w *workers.Worker, item *queued) error {
	now := s.now()
	t, err := s.store.Get(ctx, item.id)
	if err != nil {
		s.queue.Remove(item.id) // nothing to run: drop it rather than spin on it
		return err
	}
	t.Status, t.WorkerID, t.StartedAt = task.StatusRunning, w.ID, now
	t.Attempts++
	if err := s.store.Put(ctx, t); err != nil {
		return err
	}
	s.queue.Remove(item.id)
	l := &lease{
		id: s.newID(), taskID: t.ID, worker: w, attempt: t.Attempts,
		expires: now.Add(s.cfg.LeaseTTL), deadline: now.Add(t.Timeout),
	}
	s.leases[l.id], s.running[t.ID] = l, l
	w.Leases[l.id] = struct{}{}
	w.Credits--
	w.Outbox.Post(workers.Message{Assignment: &workers.Assignment{Task: t, LeaseID: l.id, Attempt: l.attempt, Deadline: l.deadline}})
	s.metrics.AssignmentsSent.Inc()
	s.metrics.SchedulingLatency.Observe(now.Sub(item.enqueuedAt).Seconds())
	s.hub.Status(t.ID, task.StatusRunning, t.Attempts, now)
	s.log.Debug("task assigned", "task_id", t.ID, "worker_id", w.ID, "attempt", t.Attempts, "lease_id", l.id)
	return nil
}

// backoff is the wait before attempt n+1 after n attempts: it doubles from the
// initial backoff up to the max. (Jitter is left for when retries come in storms.)
func backoff(t *task.Task) time.Duration {
	d := t.InitialBackoff
	for i := int32(1); i < t.Attempts && d < t.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, t.MaxBackoff)
}
