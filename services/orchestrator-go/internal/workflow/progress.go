package workflow

// A run's progress: finished step tasks are applied, the steps they unblock
// started, and the workflow completed once nothing is left to run.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// stepFinished records a finished step task and starts what it unblocks; a task
// of a workflow the engine does not run is ignored.
func (e *Engine) stepFinished(t *task.Task) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return // the workflow resumes from the task store at the next start
	}
	e.inflight++
	r := e.runs[t.WorkflowID]
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.inflight--; e.inflight == 0 && e.idle != nil {
			close(e.idle)
			e.idle = nil
		}
		e.mu.Unlock()
	}()
	if r == nil {
		return
	}
	ctx := context.Background()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.apply(ctx, r, t) {
		e.advance(ctx, r)
	}
	e.flush(ctx, r)
}

// apply records a finished step task; it reports whether anything changed.
func (e *Engine) apply(ctx context.Context, r *run, t *task.Task) bool {
	if r.wf.Status.Finished() || !t.Status.Finished() {
		return false
	}
	i, ok := r.plan.index[t.StepID]
	if !ok || r.wf.Steps[i].Status != task.StatusRunning {
		return false
	}
	sr := r.steps[i]
	k, ok := sr.byTask[t.ID]
	if !ok || sr.done[k] {
		return false
	}
	sr.done[k] = true
	sr.ndone++
	if t.FinishedAt.After(sr.lastEnd) {
		sr.lastEnd = t.FinishedAt
	}
	if t.Status == task.StatusSucceeded {
		sr.results[k] = t.Result
	} else if sr.failed == nil {
		sr.failed, sr.failIdx = t, k
	}
	all := sr.ndone == len(sr.done)
	switch {
	case sr.failed != nil && (all || r.wf.Spec.FailurePolicy == PolicyFailFast):
		e.failStep(ctx, r, i, sr.failed.Status, e.elementFailure(r, i, sr))
	case all:
		e.succeedStep(ctx, r, i)
	}
	return true
}

func (e *Engine) elementFailure(r *run, i int, sr *stepRun) *task.Failure {
	f := cloneFailure(sr.failed.Failure)
	if f == nil {
		f = &task.Failure{Reason: errs.ReasonAgentError, Message: "the step's task " + sr.failed.Status.String()}
	}
	if r.plan.mapOver[i] != nil {
		f.Message = fmt.Sprintf("element %d (task %s): %s", sr.failIdx, sr.failed.ID, f.Message)
	}
	return f
}

// advance starts every step whose upstream steps succeeded, skips those that can no
// longer run, and ends the workflow once nothing is left to run.
func (e *Engine) advance(ctx context.Context, r *run) {
	for progress := true; progress; {
		progress = false
		for i := range r.wf.Steps {
			if r.wf.Status.Finished() {
				return
			}
			st := &r.wf.Steps[i]
			if st.Status != task.StatusUnspecified {
				continue
			}
			ready, blocker := true, ""
			for _, d := range r.plan.deps[i] {
				ds := r.wf.Steps[d].Status
				if ds.Finished() && ds != task.StatusSucceeded {
					blocker = r.wf.Steps[d].StepID
					break
				}
				ready = ready && ds == task.StatusSucceeded
			}
			switch {
			case blocker != "":
				st.Status, st.Skipped, st.FinishedAt = task.StatusCancelled, true, e.now()
				st.Failure = &task.Failure{Reason: errs.ReasonSkipped, Message: fmt.Sprintf("skipped: upstream %s failed", blocker)}
				progress = true
			case ready:
				progress = e.startStep(ctx, r, i) || progress
			}
		}
	}
	e.completeIfDone(ctx, r)
}

// completeIfDone ends the workflow once every step has finished.
func (e *Engine) completeIfDone(ctx context.Context, r *run) {
	if r.wf.Status.Finished() {
		return
	}
	var failed *StepState
	for i := range r.wf.Steps {
		st := &r.wf.Steps[i]
		if !st.Status.Finished() {
			return
		}
		if st.Status != task.StatusSucceeded && !st.Skipped && failed == nil {
			failed = st
		}
	}
	output := e.output(r)
	if failed != nil {
		e.finish(ctx, r, StatusFailed, output, stepFailure(failed), "", "")
		return
	}
	e.finish(ctx, r, StatusSucceeded, output, nil, "", "")
}

// output is the workflow's result: the last step's output (SEQUENTIAL) or an
// object of the succeeded sink steps' outputs (PARALLEL, DAG).
func (e *Engine) output(r *run) json.RawMessage {
	if r.wf.Spec.Mode == ModeSequential {
		last := r.wf.Steps[len(r.wf.Steps)-1]
		if last.Status != task.StatusSucceeded {
			return nil
		}
		return last.Output
	}
	obj := map[string]json.RawMessage{}
	for _, i := range r.plan.sinks {
		if st := r.wf.Steps[i]; st.Status == task.StatusSucceeded {
			out := st.Output
			if len(out) == 0 {
				out = json.RawMessage("null")
			}
			obj[st.StepID] = out
		}
	}
	b, _ := json.Marshal(obj)
	return b
}
