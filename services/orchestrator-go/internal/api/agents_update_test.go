package api

import (
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
)

func TestAnAgentsUpdateMakesANewAgentAcceptedAndAssignedWithoutAReconnect(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	w := connectWorker(t, ts, "echo", 2)
	submit := func() (*pb.SubmitTaskResponse, error) {
		return ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "fresh"}})
	}
	if _, err := submit(); err == nil {
		t.Fatal("a task for an agent no worker registered was accepted")
	} else if code, info, _ := errorInfo(t, err); code != codes.NotFound || info.GetReason() != "AGENT_NOT_FOUND" {
		t.Fatalf("unknown agent: %v %v", code, info)
	}

	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Agents{Agents: &pb.AgentsUpdate{Agents: []*pb.AgentInfo{
		{Name: "echo", Provider: "simulated"}, {Name: "fresh", Provider: "simulated", Model: "m2"},
	}}}})
	for {
		agents, err := ts.client.ListAgents(ctx, &pb.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(agents.GetAgents()) == 2 {
			break
		}
	}
	resp, err := submit()
	if err != nil {
		t.Fatalf("a task for the agent the update added: %v", err)
	}
	// The same session is assigned it: the worker serves the new agent now.
	a := w.recv().GetAssignment()
	if a.GetTask().GetId() != resp.GetTask().GetId() {
		t.Fatalf("assignment = %v, want task %s", a, resp.GetTask().GetId())
	}
}
