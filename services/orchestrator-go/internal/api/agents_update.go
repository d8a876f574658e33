package api

// A worker's AgentsUpdate: its agents after a hot reload of their definitions.

import (
	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// updateAgents applies an AgentsUpdate (names checked by the guard). A refusal (the
// catalog is full) is logged by the scheduler and leaves the session as it was: the
// worker's running tasks go on.
func (h *WorkerHub) updateAgents(w *workers.Worker, u *pb.AgentsUpdate) {
	agents := make([]task.AgentInfo, len(u.GetAgents()))
	for i, a := range u.GetAgents() {
		agents[i] = agentFromProto(a)
	}
	_ = h.sched.UpdateAgents(w, agents)
}
