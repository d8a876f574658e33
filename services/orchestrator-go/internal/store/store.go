// Package store persists tasks and workflows. The scheduler talks only to the Store
// interface (through a group Committer for writes), so the embedded bbolt file
// (default), Redis (shared state) and memory (tests) implementations are
// interchangeable. Open picks one by name.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// ErrNotFound is what every "not found" of the store wraps: ErrTaskNotFound when
// no task has the id or key, ErrWorkflowNotFound when no workflow has it.
var (
	ErrNotFound         = errors.New("not found")
	ErrTaskNotFound     = fmt.Errorf("task %w", ErrNotFound)
	ErrWorkflowNotFound = fmt.Errorf("workflow %w", ErrNotFound)
)

// ErrBadCursor is returned by List when the cursor was not produced by this store.
var ErrBadCursor = errors.New("invalid page cursor")

// IdempotencyKey is a tenant's idempotency key.
type IdempotencyKey struct{ Tenant, Key string }

// Filter narrows List; zero fields match everything.
type Filter struct {
	Tenant string
	Status task.Status
	Agent  string
}

// Store holds every task by id. Implementations must be safe for concurrent use and
// must copy tasks in and out: callers may mutate what they get back.
type Store interface {
	// Put inserts or replaces the given tasks atomically: all are written or none,
	// and durably (fsync / acknowledged by Redis) before it returns. The same id may
	// appear more than once; the last one wins.
	Put(ctx context.Context, tasks ...*task.Task) error
	// Get returns the task with the id, or ErrTaskNotFound.
	Get(ctx context.Context, id string) (*task.Task, error)
	// FindByIdempotencyKey returns the task the tenant submitted with key, or ErrTaskNotFound.
	FindByIdempotencyKey(ctx context.Context, tenant, key string) (*task.Task, error)
	// FindByIdempotencyKeys looks up many keys in one round trip: it returns the
	// tasks found, by key (keys without a task are absent).
	FindByIdempotencyKeys(ctx context.Context, keys []IdempotencyKey) (map[IdempotencyKey]*task.Task, error)
	// List returns up to limit tasks matching f, newest first, starting after cursor
	// (empty for the first page). next is empty on the last page.
	List(ctx context.Context, f Filter, cursor string, limit int) (tasks []*task.Task, next string, err error)
	// Unfinished returns every task not yet in a terminal status (used to recover
	// the queue at start).
	Unfinished(ctx context.Context) ([]*task.Task, error)

	// PutWorkflow inserts or replaces a workflow's record.
	PutWorkflow(ctx context.Context, w *Workflow) error
	// GetWorkflow returns the workflow with the id, or ErrWorkflowNotFound.
	GetWorkflow(ctx context.Context, id string) (*Workflow, error)
	// FindWorkflowByIdempotencyKey returns the workflow the tenant submitted with key, or ErrWorkflowNotFound.
	FindWorkflowByIdempotencyKey(ctx context.Context, tenant, key string) (*Workflow, error)
	// UnfinishedWorkflows returns every workflow not yet done (to resume them at start).
	UnfinishedWorkflows(ctx context.Context) ([]*Workflow, error)

	// PruneFinished deletes up to limit finished tasks whose FinishedAt is before
	// before, oldest first, and returns how many it deleted. It never deletes a step
	// task whose workflow is stored and not done: resuming the workflow reads its
	// result. Such tasks stay indexed and are pruned once their workflow is done.
	PruneFinished(ctx context.Context, before time.Time, limit int) (int, error)
	// PruneFinishedWorkflows deletes up to limit done workflows whose FinishedAt is
	// before before, oldest first, and returns how many it deleted.
	PruneFinishedWorkflows(ctx context.Context, before time.Time, limit int) (int, error)

	// PutAgents inserts or replaces agents of the catalog, by name.
	PutAgents(ctx context.Context, agents ...task.AgentInfo) error
	// Agents returns every stored agent, sorted by name.
	Agents(ctx context.Context) ([]task.AgentInfo, error)

	// Ping reports whether the store can serve (readiness): the bolt file is open,
	// Redis answers.
	Ping(ctx context.Context) error

	Close() error
}

// Workflow is the stored record of a workflow. The workflow engine owns State (its
// own serialized form); the store only indexes the other fields.
type Workflow struct {
	ID             string
	Tenant         string
	IdempotencyKey string
	Done           bool
	// FinishedAt is when a done workflow finished (retention pruning); a done
	// workflow without it is never pruned.
	FinishedAt time.Time
	State      []byte
}

// Clone returns a deep copy.
func (w *Workflow) Clone() *Workflow {
	c := *w
	c.State = append([]byte(nil), w.State...)
	return &c
}
