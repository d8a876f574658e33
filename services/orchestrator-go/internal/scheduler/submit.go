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
	// Task is a snapshot shared with the store's writer: read it, never modify it.
	Task *task.Task
	// Existing is true when the spec's idempotency key matched a task already submitted.
	Existing bool
}

// Submit stores and queues the specs, all or none, and returns once they are
// durable. Specs must already be well-formed (the transport validates fields); zero
// values take the configured defaults. A spec whose idempotency key the tenant
// already used yields the existing task.
//
// Validation, idempotency and the queue bound are decided under the lock; the
// durable write is waited for outside it (group commit), and only then do the tasks
// enter the queue, so no worker runs a task that is not yet durable.
func (s *Scheduler) Submit(ctx context.Context, specs []task.Spec) ([]Submitted, error) {
	out, fresh, waits, err := s.admit(ctx, specs)
	if err != nil {
		return nil, err
	}
	var werr error
	for _, b := range waits {
		if err := b.Wait(); err != nil && werr == nil {
			werr = err
		}
	}
	if len(fresh) == 0 && werr == nil {
		return out, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pendingSubmits -= len(fresh)
	if werr != nil {
		for _, t := range fresh {
			if e := s.live[t.ID]; e != nil && !e.finishing {
				delete(s.live, t.ID)
				if s.idem[idemKey{t.Tenant, t.IdempotencyKey}] == e {
					delete(s.idem, idemKey{t.Tenant, t.IdempotencyKey})
				}
			}
		}
		return nil, fmt.Errorf("store submitted tasks: %w", werr)
	}
	now := s.now()
	for _, t := range fresh {
		s.agentSeriesLocked(t.Agent).Submitted().Inc()
		e := s.live[t.ID]
		if e == nil || e.finishing { // cancelled while being stored
			continue
		}
		e.submitted = nil
		s.queue.Push(e.t, now)
	}
	s.dispatchLocked(nil)
	return out, nil
}

// admit decides the submission under the lock: it returns the outcomes, the new
// tasks and the batches to wait for (the new tasks' and those of idempotent
// repeats of tasks still being stored).
func (s *Scheduler) admit(ctx context.Context, specs []task.Spec) (out []Submitted, fresh []*task.Task, waits []*store.Batch, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, nil, ErrShuttingDown
	}
	now := s.now()
	out = make([]Submitted, len(specs))
	var snaps []*task.Task // what the store writes and the caller reads; never modified
	var inBatch map[idemKey]*task.Task
	for i, spec := range specs {
		if spec.IdempotencyKey != "" {
			k := idemKey{spec.Tenant, spec.IdempotencyKey}
			if snap, ok := inBatch[k]; ok {
				out[i] = Submitted{Task: snap, Existing: true}
				continue
			}
			if e := s.idem[k]; e != nil {
				out[i] = Submitted{Task: e.t.Snapshot(), Existing: true}
				if e.submitted != nil {
					waits = append(waits, e.submitted)
				}
				continue
			}
			t, err := s.store.FindByIdempotencyKey(ctx, spec.Tenant, spec.IdempotencyKey)
			if err == nil {
				out[i] = Submitted{Task: t, Existing: true}
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return nil, nil, nil, fmt.Errorf("look up idempotency key: %w", err)
			}
		}
		if !s.catalog.Has(spec.Agent) {
			s.metrics.SubmitRejected.WithLabelValues("AGENT_NOT_FOUND").Inc()
			return nil, nil, nil, agentNotFound(spec.Agent)
		}
		t := s.newTask(spec, now)
		snap := t.Snapshot()
		fresh, snaps = append(fresh, t), append(snaps, snap)
		out[i] = Submitted{Task: snap}
		if spec.IdempotencyKey != "" {
			if inBatch == nil {
				inBatch = map[idemKey]*task.Task{}
			}
			inBatch[idemKey{spec.Tenant, spec.IdempotencyKey}] = snap
		}
	}
	if len(fresh) == 0 {
		return out, nil, waits, nil
	}
	if s.queuedLocked()+len(fresh) > s.cfg.MaxQueue {
		s.metrics.SubmitRejected.WithLabelValues("QUEUE_FULL").Inc()
		return nil, nil, nil, &errs.Error{
			Kind: errs.KindResourceExhausted, Reason: "QUEUE_FULL",
			Message:  fmt.Sprintf("the queue is full (%d tasks waiting, limit %d); retry later", s.queuedLocked(), s.cfg.MaxQueue),
			Metadata: map[string]string{"retry_after_ms": strconv.FormatInt(s.cfg.QueueFullRetryAfter.Milliseconds(), 10)},
		}
	}
	b := s.commit.Write(snaps...)
	for _, t := range fresh {
		e := &liveTask{t: t, submitted: b}
		s.live[t.ID] = e
		if t.IdempotencyKey != "" {
			s.idem[idemKey{t.Tenant, t.IdempotencyKey}] = e
		}
	}
	s.pendingSubmits += len(fresh)
	return out, fresh, append(waits, b), nil
}

func (s *Scheduler) newTask(spec task.Spec, now time.Time) *task.Task {
	t := &task.Task{
		ID: s.newID(), Agent: spec.Agent, Input: spec.Input, Status: task.StatusQueued,
		Tenant: spec.Tenant, Priority: spec.Priority, Labels: spec.Labels,
		IdempotencyKey: spec.IdempotencyKey, MaxAttempts: spec.MaxAttempts, Timeout: spec.Timeout,
		InitialBackoff: spec.InitialBackoff, MaxBackoff: spec.MaxBackoff, CreatedAt: now,
		WorkflowID: spec.WorkflowID, StepID: spec.StepID,
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

// Get returns the task with the id: live tasks from memory, finished ones from the store.
func (s *Scheduler) Get(ctx context.Context, id string) (*task.Task, error) {
	s.mu.Lock()
	if e := s.live[id]; e != nil {
		t := e.t.Clone()
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	return s.getStored(ctx, id)
}

func (s *Scheduler) getStored(ctx context.Context, id string) (*task.Task, error) {
	t, err := s.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, taskNotFound(id)
	}
	return t, err
}

// List returns a page of tasks, newest first, from the store; see store.Store.List.
// A task appears once its submission is durable; live state may be a moment newer.
func (s *Scheduler) List(ctx context.Context, f store.Filter, cursor string, limit int) ([]*task.Task, string, error) {
	tasks, next, err := s.store.List(ctx, f, cursor, limit)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", errs.InvalidArgument("page_token", "the page token was not issued by this orchestrator")
	}
	return tasks, next, err
}

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
				return nil, errs.FailedPrecondition("TASK_FINISHED", "task %s is finishing", id)
			}
			return nil, err
		}
		return nil, errs.FailedPrecondition("TASK_FINISHED", "task %s already finished with status %s", id, t.Status)
	}
	if reason == "" {
		reason = "cancelled by request"
	}
	if l := s.running[id]; l != nil {
		s.dropLeaseLocked(l)
		s.sendCancelLocked(l, reason)
	}
	fin, b := s.finishLocked(e, task.StatusCancelled, &task.Failure{Reason: task.ReasonCancelled, Message: reason}, s.now())
	s.log.Info("task cancelled", append(taskAttrs(e.t), "reason", reason)...)
	s.afterLeaseChangeLocked()
	s.updateGaugesLocked()
	s.mu.Unlock()
	if err := b.Wait(); err != nil {
		return nil, fmt.Errorf("store cancelled task: %w", err)
	}
	return fin.Clone(), nil
}

// Watch subscribes to the task's events from cur (nil for the start): see
// events.Hub.Subscribe. The caller must Close the subscription.
func (s *Scheduler) Watch(ctx context.Context, id string, cur *events.Cursor) (*events.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *task.Task
	if e := s.live[id]; e != nil {
		t = e.t.Clone()
	} else {
		var err error
		if t, err = s.getStored(ctx, id); err != nil {
			return nil, err
		}
	}
	return s.hub.Subscribe(t, cur, s.now()), nil
}
