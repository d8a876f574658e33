package workflow

// Tenancy: reads and actions on a workflow by id take the caller's tenant; a
// workflow of another tenant is NOT_FOUND exactly as a missing one. A workflow's
// tenant never changes, so checking it before acting leaves no race.

import (
	"context"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
)

// GetFor returns the tenant's workflow with the id (scheduler.AnyTenant: anyone's).
func (e *Engine) GetFor(ctx context.Context, tenant, id string) (*Workflow, error) {
	wf, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if tenant != scheduler.AnyTenant && wf.Spec.Tenant != tenant {
		return nil, workflowNotFound(id)
	}
	return wf, nil
}

// CancelFor cancels the tenant's workflow with the id (see Cancel).
func (e *Engine) CancelFor(ctx context.Context, tenant, id, reason string) (*Workflow, error) {
	if err := e.checkTenant(ctx, tenant, id); err != nil {
		return nil, err
	}
	return e.Cancel(ctx, id, reason)
}

// WatchFor watches the tenant's workflow with the id (see Watch).
func (e *Engine) WatchFor(ctx context.Context, tenant, id string, fromSeq *int64) (*Watch, error) {
	if err := e.checkTenant(ctx, tenant, id); err != nil {
		return nil, err
	}
	return e.Watch(ctx, id, fromSeq)
}

// checkTenant answers NOT_FOUND unless the workflow is the tenant's. A live run is
// checked without its lock: a spec's tenant is set once, before the run exists.
func (e *Engine) checkTenant(ctx context.Context, tenant, id string) error {
	if tenant == scheduler.AnyTenant {
		return nil
	}
	if r := e.run(id); r != nil {
		if r.wf.Spec.Tenant != tenant {
			return workflowNotFound(id)
		}
		return nil
	}
	_, err := e.GetFor(ctx, tenant, id)
	return err
}

// workflowNotFound is the one answer for a workflow that is missing or another tenant's.
func workflowNotFound(id string) error {
	return errs.NotFound(errs.ReasonWorkflowNotFound, "no workflow has id %q", id)
}
