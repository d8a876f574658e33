package crash

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
)

func TestAgentCatalogSurvivesRestartBolt(t *testing.T) {
	runCatalogRestart(t, []string{"--store", "bolt", "--data-dir", t.TempDir()})
}

func TestAgentCatalogSurvivesRestartRedis(t *testing.T) {
	srv := redistest.Start(t)
	runCatalogRestart(t, []string{"--store", "redis", "--redis-url", srv.URL})
}

// runCatalogRestart: workers register their agents and leave; the orchestrator is
// killed and restarted; before any worker reconnects, tasks and workflows for those
// agents are accepted and queued (an agent never registered is still rejected);
// once a worker is back they complete.
func runCatalogRestart(t *testing.T, storeArgs []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := append([]string{"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn"}, storeArgs...)
	logs := filepath.Join(t.TempDir(), "orchestrator.log")
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := pb.NewOrchestratorServiceClient(conn)
	rec := newRecorder()
	rec.releaseHeld()
	worker := func() (stop func()) {
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); runWorker(wctx, conn, "catalog-worker", rec) }()
		return func() { cancel(); wg.Wait() }
	}

	first := start(t, args, logs)
	stopWorker := worker()
	waitForAgent(ctx, t, client)
	stopWorker()
	first.kill(t)

	second := start(t, args, logs)
	defer second.stop(t)
	waitReady(ctx, t, httpAddr) // on Redis, once the killed process's leader lease has expired
	agents, err := client.ListAgents(ctx, &pb.ListAgentsRequest{})
	if err != nil || len(agents.GetAgents()) != 2 || agents.GetAgents()[0].GetName() != agentName || agents.GetAgents()[0].GetProvider() != "simulated" {
		t.Fatalf("agents after the restart, before any worker = %v, %v", agents.GetAgents(), err)
	}
	sub, err := client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: agentName, Tenant: tenant, Input: structpb.NewNumberValue(1)}})
	if err != nil || sub.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_QUEUED {
		t.Fatalf("SubmitTask for a known agent with no worker connected = %v, %v", sub, err)
	}
	wf, err := client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{
		Tenant: workflowTenant, Steps: []*pb.Step{{Id: "only", Agent: workflowAgent, Input: mustValue(t, map[string]any{"v": "x"})}},
	}})
	if err != nil || wf.GetWorkflow().GetStatus() != pb.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
		t.Fatalf("SubmitWorkflow for a known agent with no worker connected = %v, %v", wf, err)
	}
	if _, err := client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "never-registered", Tenant: tenant}}); status.Code(err) != codes.NotFound {
		t.Fatalf("SubmitTask for an unknown agent = %v, want NotFound", err)
	}

	defer worker()()
	for {
		tk, err := client.GetTask(ctx, &pb.GetTaskRequest{Id: sub.GetTask().GetId()})
		w, werr := client.GetWorkflow(ctx, &pb.GetWorkflowRequest{Id: wf.GetWorkflow().GetId()})
		if err == nil && werr == nil && tk.GetTask().GetStatus() == pb.TaskStatus_TASK_STATUS_SUCCEEDED &&
			w.GetWorkflow().GetStatus() == pb.WorkflowStatus_WORKFLOW_STATUS_SUCCEEDED {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("after a worker reconnected: task %v (%v), workflow %v (%v)", tk.GetTask(), err, w.GetWorkflow(), werr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
