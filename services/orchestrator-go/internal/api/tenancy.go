package api

// Tenancy of the calls: which tenant a call acts for, given its principal (auth.go)
// and the tenant its request names, and the tenant of what it submits.

import (
	"context"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// actingTenant is the tenant a call reads or acts for: a tenant key's own (the
// request may name it, or none), else the one the request names
// (scheduler.AnyTenant when none).
func actingTenant(ctx context.Context, requested string) (string, error) {
	p := principalOf(ctx)
	if p.Role != RoleTenant {
		return requested, nil
	}
	if requested != "" && requested != p.Tenant {
		return "", errs.PermissionDenied("a key of tenant %q may not act for tenant %q", p.Tenant, errs.Clip(requested))
	}
	return p.Tenant, nil
}

// submitTenant sets the tenant of a spec about to be submitted. A tenant key's
// specs go to its tenant. A child task (its parent named by the label
// task.ParentLabel) runs under its parent's tenant, and a worker may submit only
// children of a task that has not finished: the agent that starts one runs it.
func (o *Orchestrator) submitTenant(ctx context.Context, spec *task.Spec) error {
	p := principalOf(ctx)
	tenant, err := actingTenant(ctx, spec.Tenant)
	if err != nil {
		return err
	}
	spec.Tenant = tenant
	parentID := spec.Labels[task.ParentLabel]
	if parentID == "" {
		if p.Role == RoleWorker {
			return errs.PermissionDenied("a worker submits only child tasks: label %s must name the task that starts it", task.ParentLabel)
		}
		return nil
	}
	scope := scheduler.AnyTenant
	if p.Role == RoleTenant {
		scope = p.Tenant
	}
	parent, err := o.sched.GetFor(ctx, scope, parentID)
	if err != nil {
		if e, ok := errs.As(err); ok && e.Kind == errs.KindNotFound {
			return errs.InvalidArgument("labels["+task.ParentLabel+"]", "no task has id %q", errs.Clip(parentID))
		}
		return err
	}
	if p.Role == RoleWorker && parent.Status.Finished() {
		return errs.PermissionDenied("task %s has finished: a worker submits child tasks only for a task that runs", parent.ID)
	}
	if spec.Tenant != "" && spec.Tenant != parent.Tenant {
		return errs.PermissionDenied("a child task runs under its parent's tenant %q, not %q", parent.Tenant, errs.Clip(spec.Tenant))
	}
	spec.Tenant = parent.Tenant
	return nil
}
