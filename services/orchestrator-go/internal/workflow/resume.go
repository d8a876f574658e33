package workflow

// Resuming after a restart: unfinished workflows are run again from their stored
// state and their step tasks; step tasks left by finished workflows are cancelled.

import (
	"context"
	"errors"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// resume runs the stored unfinished workflows again: each is registered, then its
// step tasks that finished meanwhile are applied, its running ones followed and
// the next steps started (see "Durability" in docs/workflows.md).
func (e *Engine) resume(ctx context.Context, stored []*store.Workflow) {
	var resumed []*run
	e.mu.Lock()
	for _, sw := range stored {
		wf, err := decodeWorkflow(sw.State)
		if err != nil {
			e.log.Error("skip unreadable workflow", "workflow_id", sw.ID, "err", err)
			continue
		}
		p, err := compile(&wf.Spec)
		if err != nil {
			e.log.Error("skip invalid stored workflow", "workflow_id", sw.ID, "err", err)
			continue
		}
		r := newRun(wf, p)
		e.runs[wf.ID] = r
		resumed = append(resumed, r)
	}
	e.mu.Unlock()
	e.metrics.Running.Add(float64(len(resumed)))

	// Registered first, reconciled second: a step task finishing meanwhile is
	// either already in the task store or taken from the scheduler afterwards.
	for _, r := range resumed {
		r.mu.Lock()
		e.reconcile(ctx, r)
		for i, sr := range r.steps {
			if sr != nil && !r.wf.Status.Finished() {
				e.attach(ctx, r, r.wf.Steps[i].StepID, r.wf.Steps[i].TaskIDs)
			}
		}
		e.advance(ctx, r)
		e.flush(ctx, r)
		r.mu.Unlock()
	}
	if len(resumed) > 0 {
		e.log.Info("resumed unfinished workflows", "count", len(resumed))
	}
}

// cancelOrphanSteps cancels the unfinished step tasks of workflows that are done
// (or pruned): a crash between a workflow's final write and the cancellation of
// its running steps (settle) leaves them queued for nobody.
func (e *Engine) cancelOrphanSteps(ctx context.Context) {
	for wfID, ids := range e.sched.UnfinishedSteps() {
		if e.run(wfID) != nil {
			continue
		}
		sw, err := e.store.GetWorkflow(ctx, wfID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			e.log.Warn("cannot read the workflow of unfinished step tasks; leaving them", "workflow_id", wfID, "tasks", len(ids), "err", err)
			continue
		case !sw.Done:
			continue // stored unfinished but not resumed (unreadable): leave it alone
		}
		for _, id := range ids {
			cctx, cancel := context.WithTimeout(ctx, e.opTimeout)
			_, err := e.sched.Cancel(cctx, id, "workflow "+wfID+" already finished")
			cancel()
			if err != nil {
				e.log.Warn("cancel a step task of a finished workflow", "workflow_id", wfID, "task_id", id, "err", err)
			}
		}
		e.log.Info("cancelled the step tasks left running by a finished workflow", "workflow_id", wfID, "tasks", len(ids))
	}
}

// reconcile applies the results of a resumed workflow's step tasks that finished
// while nobody was listening. A step whose task cannot be read (missing from the
// store, or the store failed) goes back to pending: advance submits it again under
// the same idempotency keys, which return the tasks that exist (applying the
// finished ones) and recreate only what is gone, so the workflow cannot hang on it.
func (e *Engine) reconcile(ctx context.Context, r *run) {
	for i := range r.wf.Steps {
		st := &r.wf.Steps[i]
		if st.Status != task.StatusRunning {
			continue
		}
		for _, id := range st.TaskIDs {
			if r.wf.Status.Finished() {
				return
			}
			t, err := e.store.Get(ctx, id)
			if err != nil {
				e.log.Warn("cannot read a step task of a resumed workflow; submitting the step again",
					"workflow_id", r.wf.ID, "step_id", st.StepID, "task_id", id, "err", err)
				st.Status, st.TaskIDs, st.StartedAt = task.StatusUnspecified, nil, time.Time{}
				r.steps[i] = nil
				break
			}
			if t.Status.Finished() {
				e.apply(ctx, r, t)
			}
			if st.Status != task.StatusRunning {
				break // the step ended (e.g. a failed element under FAIL_FAST)
			}
		}
	}
}
