package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Submitted is one outcome of Submit.
type Submitted struct {
	Task *task.Task
	// Existing is true when the spec's idempotency key matched a task already submitted.
	Existing bool
}

// Submit stores and queues the specs, all or none. Specs must already be well-formed
// (the transport validates fields); zero values take the configured defaults. A spec
// whose idempotency key the tenant already used yields the existing task.
func (s *Scheduler) Submit(ctx context.Context, specs []task.Spec) ([]Submitted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrShuttingDown
	}
	now := s.now()
	out := make([]Submitted, len(specs))
	var fresh []*task.Task
	inBatch := map[[2]string]*task.Task{}
	for i, spec := range specs {
		if spec.IdempotencyKey != "" {
			k := [2]string{spec.Tenant, spec.IdempotencyKey}
			if t, ok := inBatch[k]; ok {
				out[i] = Submitted{Task: t, Existing: true}
				continue
			}
			t, err := s.store.FindByIdempotencyKey(ctx, spec.Tenant, spec.IdempotencyKey)
			if err == nil {
				out[i] = Submitted{Task: t, Existing: true}
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("look up idempotency key: %w", err)
			}
		}
		if !s.catalog.Has(spec.Agent) {
			s.metrics.SubmitRejected.WithLabelValues("AGENT_NOT_FOUND").Inc()
			return nil, agentNotFound(spec.Agent)
		}
		t := s.newTask(spec, now)
		fresh = append(fresh, t)
		out[i] = Submitted{Task: t}
		if spec.IdempotencyKey != "" {
			inBatch[[2]string{spec.Tenant, spec.IdempotencyKey}] = t
		}
	}
	if len(fresh) == 0 {
		return out, nil
	}
	if s.queuedLocked()+len(fresh) > s.cfg.MaxQueue {
		s.metrics.SubmitRejected.WithLabelValues("QUEUE_FULL").Inc()
		return nil, &errs.Error{
			Kind: errs.KindResourceExhausted, Reason: "QUEUE_FULL",
			Message:  fmt.Sprintf("the queue is full (%d tasks waiting, limit %d); retry later", s.queuedLocked(), s.cfg.MaxQueue),
			Metadata: map[string]string{"retry_after_ms": strconv.FormatInt(s.cfg.QueueFullRetryAfter.Milliseconds(), 10)},
		}
	}
	if err := s.store.Put(ctx, fresh...); err != nil {
		return nil, fmt.Errorf("store submitted tasks: %w", err)
	}
	for _, t := range fresh {
		s.queue.Push(t.ID, t.Agent, t.Priority, now)
		s.metrics.TasksSubmitted.WithLabelValues(t.Agent).Inc()
	}
	for i := range out {
		out[i].Task = out[i].Task.Clone()
	}
	s.dispatchLocked(ctx, nil)
	s.updateGaugesLocked()
	return out, nil
}

func (s *Scheduler) newTask(spec task.Spec, now time.Time) *task.Task {
	t := &task.Task{
		ID: s.newID(), Agent: spec.Agent, Input: spec.Input, Status: task.StatusQueued,
		Tenant: spec.Tenant, Priority: spec.Priority, Labels: spec.Labels,
		IdempotencyKey: spec.IdempotencyKey, MaxAttempts: spec.MaxAttempts, Timeout: spec.Timeout,
		InitialBackoff: spec.InitialBackoff, MaxBackoff: spec.MaxBackoff, CreatedAt: now,
	}
	if t.Priority == 0 {
		t.Priority = task.DefaultPriority
	}
	if t.MaxAttempts <= 0 {
		t.MaxAttempts = s.cfg.MaxAttempts
	}
	if t.Timeout <= 0 {
		t.Timeout = s.cfg.DefaultTimeout
	}
	if t.InitialBackoff <= 0 {
		t.InitialBackoff = s.cfg.InitialBackoff
	}
	if t.MaxBackoff <= 0 {
		t.MaxBackoff = max(s.cfg.MaxBackoff, t.InitialBackoff)
	}
	return t
}

// Get returns the task with the id.
func (s *Scheduler) Get(ctx context.Context, id string) (*task.Task, error) {
	t, err := s.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, taskNotFound(id)
	}
	return t, err
}

// List returns a page of tasks, newest first; see store.Store.List.
func (s *Scheduler) List(ctx context.Context, f store.Filter, cursor string, limit int) ([]*task.Task, string, error) {
	tasks, next, err := s.store.List(ctx, f, cursor, limit)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", errs.InvalidArgument("page_token", "the page token was not issued by this orchestrator")
	}
	return tasks, next, err
}

// Cancel stops a task: a queued one is cancelled at once; a running one is cancelled
// and its worker told to stop (its late result is ignored). A finished task cannot
// be cancelled.
func (s *Scheduler) Cancel(ctx context.Context, id, reason string) (*task.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Status.Finished() {
		return nil, errs.FailedPrecondition("TASK_FINISHED", "task %s already finished with status %s", id, t.Status)
	}
	if reason == "" {
		reason = "cancelled by request"
	}
	now := s.now()
	s.queue.Remove(id)
	delete(s.delayed, id)
	if l := s.running[id]; l != nil {
		s.dropLeaseLocked(l)
		s.sendCancelLocked(l, reason)
	}
	if err := s.finishLocked(ctx, t, task.StatusCancelled, &task.Failure{Reason: task.ReasonCancelled, Message: reason}, now); err != nil {
		return nil, err
	}
	s.updateGaugesLocked()
	return t.Clone(), nil
}

// Watch subscribes to the task's events from cur (nil for the start): see
// events.Hub.Subscribe. The caller must Close the subscription.
func (s *Scheduler) Watch(ctx context.Context, id string, cur *events.Cursor) (*events.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.hub.Subscribe(t, cur, s.now()), nil
}
