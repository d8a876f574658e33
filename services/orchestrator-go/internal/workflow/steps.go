package workflow

// One step's life: its input rendered and its task(s) submitted, then its
// success (output, exit_if) or failure.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/limits"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// maxMapElements bounds the fan-out of one map step, and defaultPriority is the
// priority of a step that gives none, as the contracts declare them.
var (
	maxMapElements  = int(limits.Field(&pb.Step{}, "map_over").GetMaxElements())
	defaultPriority = int32(limits.Field(&pb.Step{}, "priority").GetDefault())
)

// startStep renders the step's input and submits its task(s). It reports whether
// the step changed state (false: the submission failed and is retried later).
func (e *Engine) startStep(ctx context.Context, r *run, i int) bool {
	s := r.wf.Spec.Steps[i]
	st := &r.wf.Steps[i]
	sc := &scope{input: r.plan.input, steps: r.outputs}
	items := []any{nil}
	if ref := r.plan.mapOver[i]; ref != nil {
		v, err := sc.resolve(*ref)
		if err != nil {
			e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: errs.ReasonInvalidArgument, Message: "map_over: " + err.Error()})
			return true
		}
		list, ok := v.([]any)
		switch {
		case !ok:
			e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: errs.ReasonInvalidArgument,
				Message: fmt.Sprintf("map_over {{ %s }} is %s, not a list", ref.raw, kindOf(v))})
			return true
		case len(list) > maxMapElements:
			e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: errs.ReasonInvalidArgument,
				Message: fmt.Sprintf("map_over {{ %s }} has %d elements; a map step runs at most %d", errs.Clip(ref.raw), len(list), maxMapElements)})
			return true
		}
		items = list
		sc.hasItem = true
	}
	specs := make([]task.Spec, len(items))
	for k, item := range items {
		sc.item, sc.index = item, k
		var input json.RawMessage
		if s.Input != nil {
			v, err := render(r.plan.inputs[i], sc)
			if err != nil {
				e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: errs.ReasonInvalidArgument, Message: "input: " + err.Error()})
				return true
			}
			if input, err = json.Marshal(v); err != nil {
				e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: errs.ReasonInvalidArgument, Message: "input: " + err.Error()})
				return true
			}
		}
		specs[k] = task.Spec{
			Agent: s.Agent, Input: input, Tenant: r.wf.Spec.Tenant, Priority: s.Priority, Labels: r.wf.Spec.Labels,
			IdempotencyKey: stepTaskKey(r.wf.ID, s.ID, k), Timeout: s.Timeout, MaxAttempts: s.MaxAttempts,
			InitialBackoff: s.InitialBackoff, MaxBackoff: s.MaxBackoff, WorkflowID: r.wf.ID, StepID: s.ID,
		}
	}
	var out []scheduler.Submitted
	if len(specs) > 0 {
		sctx, cancel := context.WithTimeout(ctx, e.opTimeout)
		var err error
		out, err = e.sched.Submit(sctx, specs)
		cancel()
		if err != nil {
			e.log.Warn("cannot submit step tasks yet; will retry", "workflow_id", r.wf.ID, "step_id", s.ID, "err", err)
			r.stalled = true
			return false
		}
	}
	// The step started when its tasks were created, the same after a restart
	// (resubmitted, the tasks already exist).
	now := e.now()
	ids := make([]string, len(out))
	startedAt, resumed := now, len(out) > 0
	for k, o := range out {
		ids[k] = o.Task.ID
		resumed = resumed && o.Existing
		if c := o.Task.CreatedAt; !c.IsZero() && c.Before(startedAt) {
			startedAt = c
		}
	}
	if !resumed {
		e.metrics.StepOverhead.Observe(now.Sub(e.readyAt(r, i)).Seconds())
	}
	st.Status, st.TaskIDs, st.StartedAt = task.StatusRunning, ids, startedAt
	r.steps[i] = newStepRun(ids)
	e.attach(ctx, r, s.ID, ids)
	if len(ids) == 0 {
		e.succeedStep(ctx, r, i)
		return true
	}
	for _, o := range out {
		if o.Task.Status.Finished() { // re-submitted after a restart: already done
			e.apply(ctx, r, o.Task)
		}
	}
	return true
}

// stepTaskKey is the idempotency key of a step's task: the same on every submission.
func stepTaskKey(workflowID, stepID string, index int) string {
	return fmt.Sprintf("taskloom.workflow/%s/%s/%d", workflowID, stepID, index)
}

// readyAt is when the step could start: its last upstream step's end, or the
// workflow's creation.
func (e *Engine) readyAt(r *run, i int) time.Time {
	at := r.wf.CreatedAt
	for _, d := range r.plan.deps[i] {
		if f := r.wf.Steps[d].FinishedAt; f.After(at) {
			at = f
		}
	}
	return at
}

func (e *Engine) succeedStep(ctx context.Context, r *run, i int) {
	st := &r.wf.Steps[i]
	sr := r.steps[i]
	if r.plan.mapOver[i] != nil {
		var b bytes.Buffer
		b.WriteByte('[')
		for k, res := range sr.results {
			if k > 0 {
				b.WriteByte(',')
			}
			if len(res) == 0 {
				res = json.RawMessage("null")
			}
			b.Write(res)
		}
		b.WriteByte(']')
		st.Output = b.Bytes()
	} else {
		st.Output = sr.results[0]
	}
	st.Status, st.FinishedAt = task.StatusSucceeded, e.stepEnd(sr)
	r.steps[i] = nil
	out, _ := decodeJSON(st.Output)
	r.outputs[st.StepID] = out
	if c := r.plan.exitIf[i]; c != nil {
		sc := &scope{input: r.plan.input, steps: r.outputs, output: out, hasOutput: true}
		if c.eval(sc) {
			e.finish(ctx, r, StatusSucceeded, st.Output, nil, st.StepID, "workflow exited early at step "+st.StepID)
		}
	}
}

func (e *Engine) failStep(ctx context.Context, r *run, i int, status task.Status, f *task.Failure) {
	st := &r.wf.Steps[i]
	st.Status, st.Failure, st.FinishedAt = status, f, e.stepEnd(r.steps[i])
	// r.steps[i] stays: finish cancels the elements still running.
	if r.wf.Spec.FailurePolicy == PolicyFailFast {
		e.finish(ctx, r, StatusFailed, nil, stepFailure(st), "", fmt.Sprintf("workflow failed: step %s %s", st.StepID, status))
	}
}

// stepEnd is when a step ended: when its last task finished, or now (a step that
// ends without its tasks: no tasks, or its input could not be rendered).
func (e *Engine) stepEnd(sr *stepRun) time.Time {
	if sr != nil && !sr.lastEnd.IsZero() {
		return sr.lastEnd
	}
	return e.now()
}

func stepFailure(st *StepState) *task.Failure {
	f := &task.Failure{Reason: errs.ReasonAgentError, Message: fmt.Sprintf("step %s %s", st.StepID, st.Status)}
	if st.Failure != nil {
		f.Reason = st.Failure.Reason
		f.Message += ": " + st.Failure.Message
	}
	return f
}
