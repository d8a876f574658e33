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
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

// Register adds the orchestrator's services to s (made with ServerOptions):
// OrchestratorService and WorkerHubService, behind the guard that checks every
// request (guard.go), grpc.health.v1.Health (overall and per service SERVING) and
// server reflection. It returns the health server so shutdown can mark NOT_SERVING.
func Register(s *grpc.Server, sched *scheduler.Scheduler, engine *workflow.Engine, catalog *workers.Catalog, log *slog.Logger) *health.Server {
	s.RegisterService(guarded(&pb.OrchestratorService_ServiceDesc), NewOrchestrator(sched, engine, catalog, log))
	s.RegisterService(guarded(&pb.WorkerHubService_ServiceDesc), NewWorkerHub(sched, log))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	for _, name := range []string{"", pb.OrchestratorService_ServiceDesc.ServiceName, pb.WorkerHubService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(s) // v1 and v1alpha
	return hs
}
