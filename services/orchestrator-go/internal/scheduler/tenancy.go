package scheduler

// Tenancy: the reads and actions on a task by id take the caller's tenant, and a
// task of another tenant is answered NOT_FOUND exactly as a missing one, so that
// ids reveal nothing across tenants. A task's tenant never changes, so checking it
// before acting leaves no race.

import (
	"context"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// AnyTenant is the tenant argument that reaches every tenant's tasks (the
// orchestrator's own calls, admins, the gateway acting for no tenant in particular).
const AnyTenant = ""

// GetFor returns the tenant's task with the id.
func (s *Scheduler) GetFor(ctx context.Context, tenant, id string) (*task.Task, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if tenant != AnyTenant && t.Tenant != tenant {
		return nil, taskNotFound(id)
	}
	return t, nil
}

// CancelFor cancels the tenant's task with the id (see Cancel).
func (s *Scheduler) CancelFor(ctx context.Context, tenant, id, reason string) (*task.Task, error) {
	if tenant != AnyTenant {
		if _, err := s.GetFor(ctx, tenant, id); err != nil {
			return nil, err
		}
	}
	return s.Cancel(ctx, id, reason)
}

// WatchFor subscribes to the tenant's task with the id (see Watch).
func (s *Scheduler) WatchFor(ctx context.Context, tenant, id string, cur *events.Cursor) (*events.Subscription, error) {
	if tenant != AnyTenant {
		if _, err := s.GetFor(ctx, tenant, id); err != nil {
			return nil, err
		}
	}
	return s.Watch(ctx, id, cur)
}
