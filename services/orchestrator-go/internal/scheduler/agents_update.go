package scheduler

// A worker's agents change while its session is open: its hot reload of agent
// definitions sends them at once (taskloom.v1.AgentsUpdate), so tasks for a new
// agent are accepted without a worker restart.

import (
	"errors"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// UpdateAgents replaces the agents w serves with agents: new and changed ones join
// the catalog (written to the store first, as at Connect), and w is assigned work
// for exactly these from now on. Agents it no longer serves stay in the catalog, as
// when a worker disconnects. An update that would take the catalog past its limit is
// refused with RESOURCE_EXHAUSTED and changes nothing; the session goes on.
func (s *Scheduler) UpdateAgents(w *workers.Worker, agents []task.AgentInfo) error {
	if err := s.catalog.Register(agents...); err != nil {
		var full *workers.ErrCatalogFull
		if errors.As(err, &full) {
			s.log.Warn("agents update refused: agent catalog full", "worker_id", w.ID, "limit", full.Limit, "new_agents", full.New)
			return catalogFull(full)
		}
		return err
	}
	names := make([]string, len(agents))
	for i, a := range agents {
		names[i] = a.Name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.Gone {
		return nil
	}
	w.Agents = names // a new slice: Peek may still hold the old one
	s.dispatchLocked(w)
	s.log.Info("worker agents updated", "worker_id", w.ID, "agents", names)
	return nil
}
