package crash

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

// SIGTERM drains the workers: an attempt running when the signal comes keeps its
// session, its result is recorded durably, and the process exits 0; after a
// restart the task is SUCCEEDED with that result.
func TestSigtermLetsRunningAttemptsFinishBolt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn",
		"--store", "bolt", "--data-dir", t.TempDir(), "--shutdown-timeout", "20s"}
	logs := filepath.Join(t.TempDir(), "orchestrator.log")
	p := start(t, args, logs)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client, health := pb.NewOrchestratorServiceClient(conn), healthpb.NewHealthClient(conn)

	stream, err := pb.NewWorkerHubServiceClient(conn).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *pb.SessionRequest) {
		t.Helper()
		if err := stream.Send(m); err != nil {
			t.Fatalf("send %T: %v", m.GetMsg(), err)
		}
	}
	send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: &pb.Register{
		WorkerId: "drain-worker", Concurrency: 1, Agents: []*pb.AgentInfo{{Name: agentName}},
	}}})
	send(&pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: 1}}})
	waitForAgent(ctx, t, client)
	sub, err := client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: agentName, Tenant: tenant}})
	if err != nil {
		t.Fatal(err)
	}
	var a *pb.Assignment
	for a == nil {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the assignment: %v", err)
		}
		a = resp.GetAssignment()
	}
	if a.GetTask().GetId() != sub.GetTask().GetId() {
		t.Fatalf("assigned %s, submitted %s", a.GetTask().GetId(), sub.GetTask().GetId())
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for { // shutting down: health says NOT_SERVING; the worker's attempt still runs
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health during the drain: %v", err)
		}
		if r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(&pb.SessionRequest{Msg: &pb.SessionRequest_Result{Result: &pb.TaskResult{
		TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Output: structpb.NewStringValue("finished during the drain"),
	}}})
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM", code)
		}
	case <-ctx.Done():
		t.Fatal("the orchestrator did not exit after its last attempt finished")
	}

	second := start(t, args, logs)
	defer second.stop(t)
	got, err := client.GetTask(ctx, &pb.GetTaskRequest{Id: a.GetTask().GetId()})
	if err != nil || got.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED || got.GetTask().GetResult().GetStringValue() != "finished during the drain" {
		t.Fatalf("task after the drain and a restart = %v, %v", got.GetTask(), err)
	}
}
