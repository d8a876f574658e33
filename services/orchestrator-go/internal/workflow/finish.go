package workflow

// Finishing a workflow: the final state is written, then the step tasks still
// running are cancelled and the watchers told.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// finish ends the workflow: steps not yet finished are cancelled (their tasks
// through the scheduler), the final state is written, then watchers are told.
func (e *Engine) finish(ctx context.Context, r *run, status Status, output json.RawMessage, f *task.Failure, exitedAt, why string) {
	now := e.now()
	var cancel []string
	for i := range r.wf.Steps {
		st := &r.wf.Steps[i]
		switch st.Status {
		case task.StatusUnspecified:
			st.Status, st.FinishedAt = task.StatusCancelled, now
			st.Failure = &task.Failure{Reason: errs.ReasonCancelled, Message: "not run: " + why}
		case task.StatusRunning:
			st.Status, st.FinishedAt = task.StatusCancelled, now
			st.Failure = &task.Failure{Reason: errs.ReasonCancelled, Message: why}
		}
		if sr := r.steps[i]; sr != nil {
			for k, id := range st.TaskIDs {
				if !sr.done[k] {
					cancel = append(cancel, id)
				}
			}
			r.steps[i] = nil
		}
	}
	r.wf.Status, r.wf.Output, r.wf.Failure, r.wf.ExitedAtStep, r.wf.FinishedAt = status, output, f, exitedAt, now
	r.cancel, r.cancelWhy = cancel, why
	r.unsaved = true
	e.metrics.Running.Dec()
	e.metrics.Finished.WithLabelValues(status.String()).Inc()
	e.log.Info("workflow finished", "workflow_id", r.wf.ID, "status", status.String(), "exited_at_step", exitedAt)
	e.flush(ctx, r) // settles the run once the outcome is durable; else the loop retries
}

// settle completes a finished workflow whose final state is durable: it cancels
// the step tasks still running (only now, so that a crash before the write resumes
// a workflow whose tasks were left alone), forgets the run and tells the watchers.
// Until then the run stays in e.runs, so Get serves the finished state and the
// loop retries the write.
func (e *Engine) settle(ctx context.Context, r *run) {
	if r.settled || r.unsaved || !r.wf.Status.Finished() {
		return
	}
	r.settled = true
	for _, id := range r.cancel {
		// A cancellation the store has not confirmed in time still commits (the
		// committer retries it).
		cctx, cancel := context.WithTimeout(ctx, e.opTimeout)
		_, err := e.sched.Cancel(cctx, id, r.cancelWhy)
		cancel()
		if err != nil {
			e.log.Debug("cancel step task", "workflow_id", r.wf.ID, "task_id", id, "err", err)
		}
	}
	r.cancel = nil
	e.mu.Lock()
	if e.runs[r.wf.ID] == r {
		delete(e.runs, r.wf.ID)
	}
	e.mu.Unlock()
	final := r.wf.Clone()
	for w := range r.watchers {
		w.setFinal(final)
	}
	r.watchers = map[*Watch]struct{}{}
	r.feed.End(endGrace)
}

// flush writes the final state of a finished workflow and then settles it. A
// failed write leaves the run unsaved: the loop retries it. The states in between
// are not written: the step tasks, found again by their idempotency keys, are the
// durable record of a running workflow's progress (see reconcile).
func (e *Engine) flush(ctx context.Context, r *run) {
	if r.unsaved {
		if err := e.write(ctx, r.wf); err != nil {
			e.log.Error("store workflow", "workflow_id", r.wf.ID, "err", err)
			return
		}
		r.unsaved = false
	}
	e.settle(ctx, r)
}

func (e *Engine) write(ctx context.Context, wf *Workflow) error {
	state, err := json.Marshal(wf)
	if err != nil {
		return fmt.Errorf("encode workflow %s: %w", wf.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.opTimeout)
	defer cancel()
	err = e.store.PutWorkflow(ctx, &store.Workflow{
		ID: wf.ID, Tenant: wf.Spec.Tenant, IdempotencyKey: wf.Spec.IdempotencyKey, Done: wf.Status.Finished(),
		FinishedAt: wf.FinishedAt, State: state,
	})
	if err != nil {
		return fmt.Errorf("store workflow %s: %w", wf.ID, err)
	}
	return nil
}
