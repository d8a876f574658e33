package workflow

// Listing workflows: pages from the store, newest first; a workflow still running
// here is shown as it is now rather than as it was last written.

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// List returns a page of workflows matching f, newest first; see store.Store.ListWorkflows.
func (e *Engine) List(ctx context.Context, f store.WorkflowFilter, cursor string, limit int) ([]*Workflow, string, error) {
	recs, next, err := e.store.ListWorkflows(ctx, f, cursor, limit)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", errs.InvalidArgument("page_token", "the page token was not issued by this orchestrator")
	}
	if err != nil {
		return nil, "", err
	}
	out := make([]*Workflow, 0, len(recs))
	for _, rec := range recs {
		if r := e.run(rec.ID); r != nil {
			if err := r.mu.LockCtx(ctx); err != nil {
				return nil, "", busy(rec.ID, err)
			}
			wf := r.wf.Clone()
			r.mu.Unlock()
			if f.Status == 0 || int32(wf.Status) == f.Status { // it may have moved on since
				out = append(out, wf)
			}
			continue
		}
		wf, err := decodeWorkflow(rec.State)
		if err != nil {
			return nil, "", fmt.Errorf("decode stored workflow %s: %w", rec.ID, err)
		}
		out = append(out, wf)
	}
	return out, next, nil
}
