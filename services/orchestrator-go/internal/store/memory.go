package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Memory is the in-memory Store: a map by id for O(1) lookups plus the insertion
// order for newest-first listing. It keeps every task for the life of the process.
type Memory struct {
	mu     sync.RWMutex
	byID   map[string]*entry
	order  []string // ids in insertion order
	byIdem map[idemKey]string

	workflows    map[string]*Workflow
	workflowIdem map[idemKey]string

	agents map[string]task.AgentInfo
	closed bool
}

type entry struct {
	pos  int // index in order
	task *task.Task
}

type idemKey struct{ tenant, key string }

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		byID: map[string]*entry{}, byIdem: map[idemKey]string{},
		workflows: map[string]*Workflow{}, workflowIdem: map[idemKey]string{},
		agents: map[string]task.AgentInfo{},
	}
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, tasks ...*task.Task) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range tasks {
		c := t.Clone()
		if e, ok := m.byID[t.ID]; ok {
			e.task = c
			continue
		}
		m.byID[t.ID] = &entry{pos: len(m.order), task: c}
		m.order = append(m.order, t.ID)
		if t.IdempotencyKey != "" {
			m.byIdem[idemKey{t.Tenant, t.IdempotencyKey}] = t.ID
		}
	}
	return nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, id string) (*task.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.byID[id]
	if !ok {
		return nil, ErrTaskNotFound
	}
	return e.task.Clone(), nil
}

// FindByIdempotencyKey implements Store.
func (m *Memory) FindByIdempotencyKey(_ context.Context, tenant, key string) (*task.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.byIdem[idemKey{tenant, key}]
	if !ok {
		return nil, ErrTaskNotFound
	}
	return m.byID[id].task.Clone(), nil
}

// FindByIdempotencyKeys implements Store.
func (m *Memory) FindByIdempotencyKeys(_ context.Context, keys []IdempotencyKey) (map[IdempotencyKey]*task.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[IdempotencyKey]*task.Task{}
	for _, k := range keys {
		if id, ok := m.byIdem[idemKey{k.Tenant, k.Key}]; ok {
			out[k] = m.byID[id].task.Clone()
		}
	}
	return out, nil
}

// List implements Store (at most MaxListScan tasks examined per call). The cursor
// is a position (listing.go); a position whose task was pruned is found by
// comparing positions.
func (m *Memory) List(_ context.Context, f Filter, cursor string, limit int) ([]*task.Task, string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	start := len(m.order) - 1
	if cursor != "" {
		_, id, ok := parseCursor(cursor)
		if !ok {
			id = cursor // a bare task id (earlier versions' cursor)
		}
		switch e, found := m.byID[id]; {
		case found:
			start = e.pos - 1
		case !ok:
			return nil, "", ErrBadCursor
		default:
			for start >= 0 && createdMember(m.byID[m.order[start]].task) >= cursor {
				start--
			}
		}
	}
	var out []*task.Task
	for i, scanned := start, 0; i >= 0; i, scanned = i-1, scanned+1 {
		t := m.byID[m.order[i]].task
		if scanned == MaxListScan {
			return out, createdMember(m.byID[m.order[i+1]].task), nil
		}
		if !matches(t, f) {
			continue
		}
		if len(out) == limit {
			return out, createdMember(out[len(out)-1]), nil
		}
		out = append(out, t.Clone())
	}
	return out, "", nil
}

// Unfinished implements Store.
func (m *Memory) Unfinished(context.Context) ([]*task.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*task.Task
	for _, id := range m.order {
		if t := m.byID[id].task; !t.Status.Finished() {
			out = append(out, t.Clone())
		}
	}
	return out, nil
}

// PutWorkflow implements Store.
func (m *Memory) PutWorkflow(_ context.Context, w *Workflow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.workflows[w.ID] = w.Clone()
	if w.IdempotencyKey != "" {
		m.workflowIdem[idemKey{w.Tenant, w.IdempotencyKey}] = w.ID
	}
	return nil
}

// GetWorkflow implements Store.
func (m *Memory) GetWorkflow(_ context.Context, id string) (*Workflow, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	w, ok := m.workflows[id]
	if !ok {
		return nil, ErrWorkflowNotFound
	}
	return w.Clone(), nil
}

// FindWorkflowByIdempotencyKey implements Store.
func (m *Memory) FindWorkflowByIdempotencyKey(_ context.Context, tenant, key string) (*Workflow, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.workflowIdem[idemKey{tenant, key}]
	if !ok {
		return nil, ErrWorkflowNotFound
	}
	return m.workflows[id].Clone(), nil
}

// UnfinishedWorkflows implements Store.
func (m *Memory) UnfinishedWorkflows(context.Context) ([]*Workflow, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Workflow
	for _, w := range m.workflows {
		if !w.Done {
			out = append(out, w.Clone())
		}
	}
	return out, nil
}

// PruneFinished implements Store. It scans every task: the memory store is for tests.
func (m *Memory) PruneFinished(_ context.Context, before time.Time, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pruned := 0
	kept := m.order[:0]
	for _, id := range m.order {
		t := m.byID[id].task
		if pruned < limit && t.Status.Finished() && t.FinishedAt.Before(before) && !m.workflowOpenLocked(t.WorkflowID) {
			delete(m.byID, id)
			if t.IdempotencyKey != "" {
				delete(m.byIdem, idemKey{t.Tenant, t.IdempotencyKey})
			}
			pruned++
			continue
		}
		m.byID[id].pos = len(kept)
		kept = append(kept, id)
	}
	clear(m.order[len(kept):])
	m.order = kept
	return pruned, nil
}

func (m *Memory) workflowOpenLocked(id string) bool {
	if id == "" {
		return false
	}
	w, ok := m.workflows[id]
	return ok && !w.Done
}

// PruneFinishedWorkflows implements Store.
func (m *Memory) PruneFinishedWorkflows(_ context.Context, before time.Time, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var doomed []*Workflow
	for _, w := range m.workflows {
		if w.Done && !w.FinishedAt.IsZero() && w.FinishedAt.Before(before) {
			doomed = append(doomed, w)
		}
	}
	slices.SortFunc(doomed, func(a, b *Workflow) int { return a.FinishedAt.Compare(b.FinishedAt) })
	doomed = doomed[:min(len(doomed), limit)]
	for _, w := range doomed {
		delete(m.workflows, w.ID)
		if k := (idemKey{w.Tenant, w.IdempotencyKey}); w.IdempotencyKey != "" && m.workflowIdem[k] == w.ID {
			delete(m.workflowIdem, k)
		}
	}
	return len(doomed), nil
}

// PutAgents implements Store.
func (m *Memory) PutAgents(_ context.Context, agents ...task.AgentInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range agents {
		a.Tools = slices.Clone(a.Tools)
		m.agents[a.Name] = a
	}
	return nil
}

// Agents implements Store.
func (m *Memory) Agents(context.Context) ([]task.AgentInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]task.AgentInfo, 0, len(m.agents))
	for _, a := range m.agents {
		a.Tools = slices.Clone(a.Tools)
		out = append(out, a)
	}
	sortAgents(out)
	return out, nil
}

// Ping implements Store: the memory store serves until closed.
func (m *Memory) Ping(context.Context) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errors.New("memory store closed")
	}
	return nil
}

// Close implements Store. The data stays readable (tests reuse a closed store).
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func matches(t *task.Task, f Filter) bool {
	return (f.Tenant == "" || t.Tenant == f.Tenant) &&
		(f.Status == task.StatusUnspecified || t.Status == f.Status) &&
		(f.Agent == "" || t.Agent == f.Agent)
}
