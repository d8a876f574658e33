package workflow

// Reading a workflow: a live run from memory, a finished one from the store.

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// Get returns the workflow with the id.
func (e *Engine) Get(ctx context.Context, id string) (*Workflow, error) {
	if r := e.run(id); r != nil {
		if err := r.mu.LockCtx(ctx); err != nil {
			return nil, busy(id, err)
		}
		defer r.mu.Unlock()
		return r.wf.Clone(), nil
	}
	sw, err := e.store.GetWorkflow(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFound(errs.ReasonWorkflowNotFound, "no workflow has id %q", id)
	}
	if err != nil {
		return nil, err
	}
	wf, err := decodeWorkflow(sw.State)
	if err != nil {
		return nil, fmt.Errorf("decode stored workflow %s: %w", id, err)
	}
	return wf, nil
}
