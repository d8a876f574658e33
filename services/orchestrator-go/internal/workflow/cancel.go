package workflow

// Cancelling a workflow and its running steps.

import (
	"context"
	"fmt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Cancel cancels the workflow's running steps and ends it CANCELLED. A finished
// workflow is returned unchanged.
func (e *Engine) Cancel(ctx context.Context, id, reason string) (*Workflow, error) {
	r := e.run(id)
	if r == nil {
		return e.Get(ctx, id)
	}
	if reason == "" {
		reason = "cancelled by request"
	}
	if err := r.mu.LockCtx(ctx); err != nil {
		return nil, busy(id, err)
	}
	defer r.mu.Unlock()
	if !r.wf.Status.Finished() {
		// Not cut short by the caller leaving: each store call is bounded instead.
		e.finish(context.WithoutCancel(ctx), r, StatusCancelled, nil,
			&task.Failure{Reason: errs.ReasonCancelled, Message: reason}, "", "workflow cancelled: "+reason)
	}
	if r.unsaved {
		// The loop keeps retrying the write; until it lands a restart would resume
		// the workflow, so the cancellation is not confirmed.
		return nil, &errs.Error{Kind: errs.KindUnavailable, Reason: errs.ReasonUnavailable,
			Message: fmt.Sprintf("workflow %s is cancelled, but the store has not confirmed it yet (it is retrying); retry the call to confirm", id)}
	}
	return r.wf.Clone(), nil
}
