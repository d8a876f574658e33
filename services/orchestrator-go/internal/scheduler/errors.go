package scheduler

// The scheduler's domain errors.

import (
	"strconv"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// ErrShuttingDown ends worker sessions and refuses new work during shutdown.
var ErrShuttingDown = &errs.Error{Kind: errs.KindUnavailable, Reason: errs.ReasonUnavailable, Message: "the orchestrator is shutting down"}

// ErrReplaced ends a worker session when a new session registers the same worker id.
var ErrReplaced = &errs.Error{Kind: errs.KindFailedPrecondition, Reason: errs.ReasonLeaseLost, Message: "a newer session registered this worker id"}

func taskNotFound(id string) error {
	return errs.NotFound(errs.ReasonTaskNotFound, "no task has id %q", id)
}

func agentNotFound(agent string) error {
	e := errs.NotFound(errs.ReasonAgentNotFound, "no worker has registered agent %q", agent)
	e.Metadata = map[string]string{"agent": agent}
	return e
}

// catalogFull refuses a worker registration that would overflow the agent catalog.
// (No ErrorReason names this case; QUEUE_FULL is the closest "too many" reason.)
func catalogFull(e *workers.ErrCatalogFull) error {
	return &errs.Error{
		Kind: errs.KindResourceExhausted, Reason: errs.ReasonQueueFull,
		Message:  e.Error() + "; register fewer distinct agent names or raise the orchestrator's limit",
		Metadata: map[string]string{"agent_limit": strconv.Itoa(e.Limit), "new_agents": strconv.Itoa(e.New)},
	}
}
