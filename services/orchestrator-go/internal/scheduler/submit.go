package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	if hasIdempotencyKeys(specs) {
		var err error
		if look, err = s.lookUpKeys(ctx, specs); err != nil {
			return nil, err
		}
	}
	out, fresh, waits, err := s.admit(specs, look)
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
			Kind: errs.KindUnavailable, Reason: "UNAVAILABLE",
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

func hasIdempotencyKeys(specs []task.Spec) bool {
	for i := range specs {
		if specs[i].IdempotencyKey != "" {
			return true
		}
	}
	return false
}

// idemLookup is one Submit's read of its idempotency keys from the store, made
// outside the lock.
//
// Why it cannot miss a task: a key not found in the store belonged to no durable
// task when the read began. A task with that key that becomes durable later was
// live, so in the in-memory map, before it was written, and stays there until it
// finishes. The map drops a finished task's key only once no lookup that began
// before the task finished is still in flight (retireIdemLocked); so when admit
// takes the lock, the key is either still in the map or was read by this lookup.
type idemLookup struct {
	start uint64                 // this lookup's sequence number
	known map[idemKey]*task.Task // durable tasks found, by key
}

// retiredIdem is the key of a finished task, kept in the idempotency map while a
// lookup that began before the task finished (seq >= its start) is in flight.
type retiredIdem struct {
	key idemKey
	e   *liveTask
	seq uint64
}

// lookUpKeys reads from the store, in one call and outside the lock, the tasks of
// the specs' idempotency keys that the in-memory map does not hold. admit ends the
// lookup.
func (s *Scheduler) lookUpKeys(ctx context.Context, specs []task.Spec) (*idemLookup, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrShuttingDown
	}
	s.lookupSeq++
	look := &idemLookup{start: s.lookupSeq, known: map[idemKey]*task.Task{}}
	s.lookups[look.start]++
	var keys []store.IdempotencyKey
	seen := map[idemKey]bool{}
	for i := range specs {
		k := idemKey{specs[i].Tenant, specs[i].IdempotencyKey}
		if k.key == "" || seen[k] {
			continue
		}
		seen[k] = true
		if e := s.idem[k]; e != nil {
			if e.final != nil { // finished and durable: may leave the map before admit
				look.known[k] = e.final
			}
			continue // live: stays in the map while this lookup is in flight
		}
		keys = append(keys, store.IdempotencyKey{Tenant: k.tenant, Key: k.key})
	}
	s.mu.Unlock()
	if len(keys) == 0 {
		return look, nil
	}
	found, err := s.store.FindByIdempotencyKeys(ctx, keys)
	if err != nil {
		s.mu.Lock()
		s.endLookupLocked(look)
		s.mu.Unlock()
		return nil, fmt.Errorf("look up idempotency keys: %w", err)
	}
	for k, t := range found {
		look.known[idemKey{k.Tenant, k.Key}] = t
	}
	return look, nil
}

// endLookupLocked ends an idempotency lookup and drops the keys of finished tasks
// that no lookup in flight may still need.
func (s *Scheduler) endLookupLocked(look *idemLookup) {
	if n := s.lookups[look.start] - 1; n > 0 {
		s.lookups[look.start] = n
	} else {
		delete(s.lookups, look.start)
	}
	s.purgeRetiredIdemLocked()
}

// retireIdemLocked drops the key of the finished task e from the idempotency map,
// or keeps it there (with the final snapshot) while an older lookup is in flight.
func (s *Scheduler) retireIdemLocked(k idemKey, e *liveTask, final *task.Task) {
	if s.idem[k] != e {
		return
	}
	if len(s.lookups) == 0 {
		delete(s.idem, k)
		return
	}
	e.final = final
	s.retiredIdem = append(s.retiredIdem, retiredIdem{key: k, e: e, seq: s.lookupSeq})
}

func (s *Scheduler) purgeRetiredIdemLocked() {
	if len(s.retiredIdem) == 0 {
		return
	}
	oldest := uint64(math.MaxUint64)
	for start := range s.lookups {
		oldest = min(oldest, start)
	}
	n := 0
	for _, r := range s.retiredIdem {
		if oldest <= r.seq {
			break
		}
		if s.idem[r.key] == r.e {
			delete(s.idem, r.key)
		}
		n++
	}
	clear(s.retiredIdem[:n])
	s.retiredIdem = s.retiredIdem[n:]
	if len(s.retiredIdem) == 0 {
		s.retiredIdem = nil
	}
}

// admit decides the submission under the lock: it returns the outcomes, the new
// tasks and the batches to wait for (the new tasks' and those of idempotent
// repeats of tasks still being stored). It ends look, if any.
func (s *Scheduler) admit(specs []task.Spec, look *idemLookup) (out []Submitted, fresh []*task.Task, waits []batchWait, err error) {
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
			if snap, ok := inBatch[k]; ok {
				out[i] = Submitted{Task: snap, Existing: true}
				continue
			}
			if e := s.idem[k]; e != nil {
				snap := e.final
				if snap == nil {
					snap = e.t.Snapshot()
				}
				out[i] = Submitted{Task: snap, Existing: true}
				if e.submitted != nil {
					waits = append(waits, batchWait{e.submitted, e.t.ID})
				}
				continue
			}
			if t := look.known[k]; t != nil {
				out[i] = Submitted{Task: t, Existing: true}
				continue
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
	select {
	case <-b.Done():
		if err := b.ErrFor(id); err != nil {
			return nil, fmt.Errorf("store cancelled task: %w", err)
		}
	case <-ctx.Done():
		return nil, &errs.Error{
			Kind: errs.KindUnavailable, Reason: "UNAVAILABLE",
			Message: fmt.Sprintf("task %s is cancelled, but the task store has not confirmed it yet (it is retrying)", id),
		}
	}
	return fin.Clone(), nil
}

// Watch subscribes to the task's events from cur (nil for the start): see
// events.Hub.Subscribe. The caller must Close the subscription.
//
// A live task is subscribed under the lock, so no event falls between its state
// and the subscription. A task not live has finished (its Done already published)
// and is read from the store outside the lock.
func (s *Scheduler) Watch(ctx context.Context, id string, cur *events.Cursor) (*events.Subscription, error) {
	s.mu.Lock()
	if e := s.live[id]; e != nil {
		defer s.mu.Unlock()
		return s.hub.Subscribe(e.t.Clone(), cur, s.now()), nil
	}
	s.mu.Unlock()
	t, err := s.getStored(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.hub.Subscribe(t, cur, s.now()), nil
}
