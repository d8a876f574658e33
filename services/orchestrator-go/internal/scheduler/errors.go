package scheduler

import (
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
)

// ErrShuttingDown ends worker sessions and refuses new work during shutdown.
var ErrShuttingDown = &errs.Error{Kind: errs.KindUnavailable, Reason: "UNAVAILABLE", Message: "the orchestrator is shutting down"}

// ErrReplaced ends a worker session when a new session registers the same worker id.
var ErrReplaced = &errs.Error{Kind: errs.KindFailedPrecondition, Reason: "LEASE_LOST", Message: "a newer session registered this worker id"}

func taskNotFound(id string) error {
	return errs.NotFound("TASK_NOT_FOUND", "no task has id %q", id)
}

func agentNotFound(agent string) error {
	e := errs.NotFound("AGENT_NOT_FOUND", "no worker has registered agent %q", agent)
	e.Metadata = map[string]string{"agent": agent}
	return e
}
