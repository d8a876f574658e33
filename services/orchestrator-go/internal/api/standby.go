package api

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
)

// NewStandby returns the gRPC server of a standby orchestrator, which serves until
// it becomes the leader (then the leader's server, Register's, replaces it).
// grpc.health.v1 answers SERVING overall (the process is alive) and NOT_SERVING for
// OrchestratorService and WorkerHubService, so readiness probes and clients that
// health-check pass it by; every other call is answered UNAVAILABLE with reason
// NOT_LEADER and, when leaderAddr knows it, the leader's address in the ErrorInfo
// metadata, so clients and workers move on.
func NewStandby(leaderAddr func() string, opts ...grpc.ServerOption) *grpc.Server {
	refuse := func(any, grpc.ServerStream) error { return toStatus(nil, errs.NotLeader(leaderAddr())) }
	s := grpc.NewServer(append(opts, grpc.UnknownServiceHandler(refuse))...)
	hs := health.NewServer() // "" is SERVING
	for _, name := range []string{pb.OrchestratorService_ServiceDesc.ServiceName, pb.WorkerHubService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(s, hs)
	return s
}
