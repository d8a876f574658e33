package scheduler

// Finished workflow step tasks, handed to the workflow engine: the scheduler queues
// each one and never waits for the engine to take it.
//
// Early handoff: once the engine asks for it (HoldStepResults), a step task that
// succeeds is handed over before its result is written, and the engine writes
// that result in the same store transaction as the tasks of the steps it
// unblocks (SubmitAfter), or alone (WriteHeld). A chain of steps then costs one
// durable write per step instead of two (the result, then the next submit). The
// result is still durable before any watcher hears of it, and before anything
// that depends on it is: the next steps' tasks commit with it. A crash before
// that write runs the step again (at-least-once, as for any attempt that was not
// recorded). Held results the engine leaves are written at the next tick but one,
// and at shutdown.

import (
	"context"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// FinishedStep is a finished workflow step task handed to the engine.
type FinishedStep struct {
	Task *task.Task // a copy
	// Held: the task succeeded but its result is not written yet. The engine
	// writes it with the next steps' tasks (SubmitAfter) or alone (WriteHeld).
	Held bool
}

// NextFinishedStep waits for the next finished task that is a workflow step and
// returns it, in the order their results became durable (held ones as they
// arrived), or ctx's error. The workflow engine calls it in a loop; steps it never
// takes are found again in the store when it resumes its workflows.
func (s *Scheduler) NextFinishedStep(ctx context.Context) (FinishedStep, error) {
	return s.finishedSteps.next(ctx)
}

// HoldStepResults turns on early handoff: from now on a succeeded step task is
// handed to the engine before its result is written. The engine calls it once, as
// it starts taking finished steps.
func (s *Scheduler) HoldStepResults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdSteps = true
}

// SubmitAfter is Submit, with the held results of the step tasks finished (see
// FinishedStep.Held) written in the same store transaction as the new tasks, and
// durable when it returns without error. Results no longer held are skipped.
func (s *Scheduler) SubmitAfter(ctx context.Context, finished []string, specs []task.Spec) ([]Submitted, error) {
	return s.submit(ctx, finished, specs)
}

// WriteHeld writes the held result of the step task id, if it is still held, and
// returns the batch to wait for: once it is committed, the result is durable
// (when nothing was held, the batch is a barrier behind every earlier write).
func (s *Scheduler) WriteHeld(id string) *store.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fin := s.takeHeldLocked(id); fin != nil {
		return s.commit.Write(fin)
	}
	return s.commit.Write()
}

// holdStepLocked finishes a succeeded workflow step task without writing it and
// hands it to the engine, if early handoff is on; it reports whether it did.
// While the scheduler drains, results are written at once as usual.
func (s *Scheduler) holdStepLocked(e *liveTask, now time.Time) bool {
	if !s.holdSteps || s.closed || e.t.WorkflowID == "" {
		return false
	}
	fin := s.terminalLocked(e, task.StatusSucceeded, nil, now)
	e.handedOver = true
	s.held[fin.ID] = fin
	s.finishedSteps.push(FinishedStep{Task: fin.Clone(), Held: true})
	return true
}

// takeHeldLocked returns the held result of the task and forgets it (nil if none).
func (s *Scheduler) takeHeldLocked(id string) *task.Task {
	if fin := s.held[id]; fin != nil {
		delete(s.held, id)
		return fin
	}
	if fin := s.agingHeld[id]; fin != nil {
		delete(s.agingHeld, id)
		return fin
	}
	return nil
}

// takeHeldEachLocked takes the held results of the tasks (those still held).
func (s *Scheduler) takeHeldEachLocked(ids []string) []*task.Task {
	var out []*task.Task
	for _, id := range ids {
		if fin := s.takeHeldLocked(id); fin != nil {
			out = append(out, fin)
		}
	}
	return out
}

// writeAgedHeldLocked writes the results held since before the previous tick and
// ages those held since: the engine normally writes each within milliseconds, so
// only one it left (stopped, or never started) waits a tick or two.
func (s *Scheduler) writeAgedHeldLocked() {
	for id, fin := range s.agingHeld {
		s.commit.Write(fin)
		delete(s.agingHeld, id)
	}
	s.agingHeld, s.held = s.held, s.agingHeld
}

// writeAllHeldLocked writes every held result and ends early handoff (shutdown).
func (s *Scheduler) writeAllHeldLocked() {
	s.holdSteps = false
	s.writeAgedHeldLocked()
	s.writeAgedHeldLocked()
}

// stepQueue is an unbounded FIFO: push never blocks (it runs under the scheduler's
// lock), next waits until there is something to take.
type stepQueue struct {
	mu    sync.Mutex
	steps []FinishedStep
	ready chan struct{} // holds a token while steps is not empty
}

func (q *stepQueue) push(fs FinishedStep) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.steps = append(q.steps, fs)
	q.signalLocked()
}

func (q *stepQueue) next(ctx context.Context) (FinishedStep, error) {
	for {
		q.mu.Lock()
		if q.ready == nil {
			q.ready = make(chan struct{}, 1)
		}
		if len(q.steps) > 0 {
			fs := q.steps[0]
			q.steps[0] = FinishedStep{}
			q.steps = q.steps[1:]
			q.signalLocked()
			q.mu.Unlock()
			return fs, nil
		}
		ready := q.ready
		q.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return FinishedStep{}, ctx.Err()
		}
	}
}

// signalLocked leaves a token in ready while there are steps to take.
func (q *stepQueue) signalLocked() {
	if q.ready == nil {
		q.ready = make(chan struct{}, 1)
	}
	if len(q.steps) > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
}
