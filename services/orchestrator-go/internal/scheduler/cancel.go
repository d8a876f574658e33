package scheduler

// Cancellation of a task by a client (or by the workflow engine).

import (
	"context"
	"fmt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Cancel stops a task: a queued one is cancelled at once; a running one is cancelled
// and its worker told to stop (its late result is ignored). A finished task cannot
// be cancelled. It returns once the cancellation is durable.
func (s *Scheduler) Cancel(ctx context.Context, id, reason string) (*task.Task, error) {
	s.mu.Lock()
	e := s.live[id]
	if e == nil || e.finishing {
		s.mu.Unlock()
		t, err := s.getStored(ctx, id)
		if err != nil {
			if e != nil {
				return nil, errs.FailedPrecondition(errs.ReasonTaskFinished, "task %s is finishing", id)
			}
			return nil, err
		}
		return nil, errs.FailedPrecondition(errs.ReasonTaskFinished, "task %s already finished with status %s", id, t.Status)
	}
	if reason == "" {
		reason = "cancelled by request"
	}
	if l := s.running[id]; l != nil {
		s.dropLeaseLocked(l)
		s.sendCancelLocked(l, reason)
	}
	fin, b := s.finishLocked(e, task.StatusCancelled, &task.Failure{Reason: errs.ReasonCancelled, Message: reason}, s.now())
	s.log.Info("task cancelled", append(taskAttrs(e.t), "reason", reason)...)
	s.afterLeaseChangeLocked()
	s.updateGaugesLocked()
	s.mu.Unlock()
	select {
	case <-b.Done():
		if err := b.ErrFor(id); err != nil {
			return nil, fmt.Errorf("store cancelled task: %w", err)
		}
	case <-ctx.Done():
		return nil, &errs.Error{
			Kind: errs.KindUnavailable, Reason: errs.ReasonUnavailable,
			Message: fmt.Sprintf("task %s is cancelled, but the task store has not confirmed it yet (it is retrying)", id),
		}
	}
	return fin.Clone(), nil
}
