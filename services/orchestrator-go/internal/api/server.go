package api

import (
	"log/slog"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/apikeys"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/tracing"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

// Register adds the orchestrator's services to s (made with ServerOptions):
// OrchestratorService and WorkerHubService, behind the authentication of the
// options (auth.go; none: every call is anonymous) and the guard that checks every
// request (guard.go), grpc.health.v1.Health (overall and per service SERVING) and
// server reflection. It returns the health server so shutdown can mark NOT_SERVING.
func Register(s *grpc.Server, sched *scheduler.Scheduler, engine *workflow.Engine, catalog *workers.Catalog, log *slog.Logger, opts ...Option) *health.Server {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.auth == nil {
		o.auth = NewAuth(AuthConfig{})
	}
	orch := NewOrchestrator(sched, engine, catalog, log)
	orch.keys = o.keys
	s.RegisterService(authenticated(guarded(&pb.OrchestratorService_ServiceDesc), o.auth), orch)
	s.RegisterService(authenticated(guarded(&pb.WorkerHubService_ServiceDesc), o.auth), NewWorkerHub(sched, log, tracing.NewAssignments(o.tracer)))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	for _, name := range []string{"", pb.OrchestratorService_ServiceDesc.ServiceName, pb.WorkerHubService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(s) // v1 and v1alpha
	return hs
}

// Option configures Register.
type Option func(*options)

type options struct {
	auth   *Auth
	keys   *apikeys.Service
	tracer trace.TracerProvider
}

// WithAuth authenticates every call with a.
func WithAuth(a *Auth) Option { return func(o *options) { o.auth = a } }

// WithKeys serves the API key RPCs from keys (without it they are UNIMPLEMENTED).
func WithKeys(keys *apikeys.Service) Option { return func(o *options) { o.keys = keys } }

// WithTracing records the assignment spans with tp (internal/tracing); without it,
// or with a nil tp, none. The server spans come from the server's stats handler
// (tracing.NewServerHandler).
func WithTracing(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }
