package scheduler

// Submission: validating specs against the catalog and the queue bound, the durable
// write (group commit) and queueing once it is durable.

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
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
// The lock is never held while waiting for the store. Idempotency keys are first
// looked up in the store in one batched read (lookUpKeys), outside the lock; then
// validation, idempotency (the store's answers and the in-memory map, which holds
// every key submitted since) and the queue bound are decided under the lock; the
// durable write is waited for outside it (group commit), and only then do the tasks
// enter the queue, so no worker runs a task that is not yet durable.
//
// A write the store refuses permanently (store.IsPermanent, e.g. a key too
// large) fails this submission only. The committer retries any other failed
// write until the store takes it, so Submit waits
// for the store to come back, up to ctx. If ctx ends first it returns UNAVAILABLE:
// the tasks were not acknowledged, yet they are stored and run once the store
// takes the write (a retry with the same idempotency keys returns them).
func (s *Scheduler) Submit(ctx context.Context, specs []task.Spec) ([]Submitted, error) {
	var look *idemLookup
	var fps []task.Fingerprint
	if hasIdempotencyKeys(specs) {
		fps = fingerprints(specs) // outside the lock: it reads every input
		var err error
		if look, err = s.lookUpKeys(ctx, specs); err != nil {
			return nil, err
		}
	}
	out, fresh, waits, err := s.admit(specs, fps, look)
	if err != nil {
		return nil, err
	}
	if len(waits) == 0 {
		return out, nil
	}
	// freshErr is the outcome of this submission's own write (the last wait),
	// which decides whether its new tasks are queued or forgotten; werr may also
	// come from an idempotent repeat of a task another submission is storing.
	freshErr := func() error {
		if len(fresh) == 0 {
			return nil
		}
		w := waits[len(waits)-1]
		return w.b.ErrFor(w.task)
	}
	werr, cerr := waitBatches(ctx, waits)
	if cerr != nil {
		if len(fresh) > 0 {
			// Not yet durable: queue the tasks once they are (or drop them if the write fails).
			go func() {
				_, _ = waitBatches(context.Background(), waits[len(waits)-1:])
				_ = s.enqueueSubmitted(fresh, freshErr())
			}()
		}
		return nil, &errs.Error{
			Kind: errs.KindUnavailable, Reason: errs.ReasonUnavailable,
			Message: "the task store has not confirmed the submission yet (it is retrying); the tasks will run once it does. " +
				"Resubmit with the same idempotency keys to learn their ids",
		}
	}
	if err := s.enqueueSubmitted(fresh, freshErr()); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("store submitted tasks: %w", werr)
	}
	return out, nil
}

// batchWait is a batch to wait for and the task whose write in it matters.
type batchWait struct {
	b    *store.Batch
	task string
}

// waitBatches waits for every batch: werr is the first commit error of the
// writes waited for, cerr is ctx's error if it ended first.
func waitBatches(ctx context.Context, waits []batchWait) (werr, cerr error) {
	for _, w := range waits {
		select {
		case <-w.b.Done():
			if err := w.b.ErrFor(w.task); err != nil && werr == nil {
				werr = err
			}
		case <-ctx.Done():
			return werr, ctx.Err()
		}
	}
	return werr, nil
}

// enqueueSubmitted queues the fresh tasks of a submission once its write
// committed, or forgets them if it failed.
func (s *Scheduler) enqueueSubmitted(fresh []*task.Task, werr error) error {
	if len(fresh) == 0 && werr == nil {
		return nil
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
		return fmt.Errorf("store submitted tasks: %w", werr)
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
	return nil
}

// admit decides the submission under the lock: it returns the outcomes, the new
// tasks and the batches to wait for (the new tasks' and those of idempotent
// repeats of tasks still being stored). fps holds the keyed specs' fingerprints.
// It ends look, if any.
func (s *Scheduler) admit(specs []task.Spec, fps []task.Fingerprint, look *idemLookup) (out []Submitted, fresh []*task.Task, waits []batchWait, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if look != nil {
		defer s.endLookupLocked(look) // after the map was read below
	}
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
			existing, wait := s.existingLocked(k, inBatch, look)
			if existing != nil {
				if err := sameRequest(existing, fps[i], spec.IdempotencyKey); err != nil {
					s.metrics.SubmitRejected.WithLabelValues(errs.ReasonName(errs.ReasonIdempotencyConflict)).Inc()
					return nil, nil, nil, err
				}
				out[i] = Submitted{Task: existing, Existing: true}
				if wait != nil {
					waits = append(waits, *wait)
				}
				continue
			}
		}
		if !s.catalog.Has(spec.Agent) {
			s.metrics.SubmitRejected.WithLabelValues(errs.ReasonName(errs.ReasonAgentNotFound)).Inc()
			return nil, nil, nil, agentNotFound(spec.Agent)
		}
		t := s.newTask(spec, now)
		if fps != nil {
			t.Fingerprint = fps[i]
		}
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
		s.metrics.SubmitRejected.WithLabelValues(errs.ReasonName(errs.ReasonQueueFull)).Inc()
		return nil, nil, nil, &errs.Error{
			Kind: errs.KindResourceExhausted, Reason: errs.ReasonQueueFull,
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
	// One Write: the store takes all of the submission's tasks or none.
	return out, fresh, append(waits, batchWait{b, fresh[0].ID}), nil
}

func (s *Scheduler) newTask(spec task.Spec, now time.Time) *task.Task {
	t := &task.Task{
		ID: s.newID(), Agent: spec.Agent, Input: spec.Input, Status: task.StatusQueued,
		Tenant: spec.Tenant, Priority: spec.Priority, Labels: spec.Labels,
		IdempotencyKey: spec.IdempotencyKey, MaxAttempts: spec.MaxAttempts, Timeout: spec.Timeout,
		InitialBackoff: spec.InitialBackoff, MaxBackoff: spec.MaxBackoff, CreatedAt: now,
		WorkflowID: spec.WorkflowID, StepID: spec.StepID,
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
