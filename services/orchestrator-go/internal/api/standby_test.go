package api

import (
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

// A standby answers every client and worker call UNAVAILABLE with reason NOT_LEADER,
// naming the leader once it is known, and its health service passes it by: alive
// overall, NOT_SERVING for both Taskloom services.
func TestStandbyRefusesCallsNamingTheLeader(t *testing.T) {
	var leader atomic.Value
	leader.Store("")
	srv := NewStandby(func() string { return leader.Load().(string) })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := testCtx(t)
	client := pb.NewOrchestratorServiceClient(conn)

	_, err = client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "a"}})
	code, info, _ := errorInfo(t, err)
	if code != codes.Unavailable || info.GetReason() != "NOT_LEADER" || len(info.GetMetadata()) != 0 {
		t.Fatalf("with no leader known: %v %v", code, info)
	}

	leader.Store("10.0.0.7:50051")
	_, err = client.GetTask(ctx, &pb.GetTaskRequest{Id: "x"})
	code, info, _ = errorInfo(t, err)
	if code != codes.Unavailable || info.GetReason() != "NOT_LEADER" || info.GetMetadata()["leader"] != "10.0.0.7:50051" {
		t.Fatalf("with a leader known: %v %v", code, info)
	}
	stream, err := pb.NewWorkerHubServiceClient(conn).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if code, info, _ := errorInfo(t, err); code != codes.Unavailable || info.GetReason() != "NOT_LEADER" || info.GetMetadata()["leader"] != "10.0.0.7:50051" {
		t.Fatalf("a worker session: %v %v", code, info)
	}

	health := healthpb.NewHealthClient(conn)
	for service, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":                                healthpb.HealthCheckResponse_SERVING,
		"taskloom.v1.OrchestratorService": healthpb.HealthCheckResponse_NOT_SERVING,
		"taskloom.v1.WorkerHubService":    healthpb.HealthCheckResponse_NOT_SERVING,
	} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != want {
			t.Errorf("health of %q = %v, %v; want %v", service, resp.GetStatus(), err, want)
		}
	}
}
