package api

import (
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Register adds the orchestrator's services to s: OrchestratorService,
// WorkerHubService, grpc.health.v1.Health (overall and per service SERVING) and
// server reflection. It returns the health server so shutdown can mark NOT_SERVING.
// Options add optional parts, e.g. WithWorkflows.
func Register(s *grpc.Server, sched *scheduler.Scheduler, catalog *workers.Catalog, log *slog.Logger, opts ...Option) *health.Server {
	pb.RegisterOrchestratorServiceServer(s, NewOrchestrator(sched, catalog, log, opts...))
	pb.RegisterWorkerHubServiceServer(s, NewWorkerHub(sched, log))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	for _, name := range []string{"", pb.OrchestratorService_ServiceDesc.ServiceName, pb.WorkerHubService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(s) // v1 and v1alpha
	return hs
}
