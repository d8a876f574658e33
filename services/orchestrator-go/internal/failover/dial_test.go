package failover

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// orchestrator is a gRPC server whose health says whether it leads; it answers
// the health check of its own name, so a caller learns which one it reached.
type orchestrator struct {
	name   string
	addr   string
	srv    *grpc.Server
	health *health.Server
}

func serve(t *testing.T, name string, leading bool) *orchestrator {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &orchestrator{name: name, addr: lis.Addr().String(), srv: grpc.NewServer(), health: health.NewServer()}
	o.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	o.lead(leading)
	healthpb.RegisterHealthServer(o.srv, o.health)
	go func() { _ = o.srv.Serve(lis) }()
	t.Cleanup(o.srv.Stop)
	return o
}

func (o *orchestrator) lead(leading bool) {
	s := healthpb.HealthCheckResponse_NOT_SERVING
	if leading {
		s = healthpb.HealthCheckResponse_SERVING
	}
	o.health.SetServingStatus(OrchestratorService, s)
}

// reached is the name of the orchestrator a call went to. A call cut by the
// leader's death (UNAVAILABLE) is made again, as a client would.
func reached(ctx context.Context, t *testing.T, c healthpb.HealthClient) string {
	t.Helper()
	for {
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "a"}, grpc.WaitForReady(true))
		switch status.Code(err) {
		case codes.OK:
			return "a"
		case codes.NotFound:
			return "b"
		case codes.Unavailable:
			continue
		default:
			t.Fatalf("check: %v", err)
		}
	}
}

// Calls go to the orchestrator that leads, never the standby, and follow the lead
// when it moves: the old leader dies and the standby takes over.
func TestCallsGoToTheLeaderAndFollowItWhenItMoves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := serve(t, "a", false), serve(t, "b", true)
	conn, err := Dial(a.addr+", "+b.addr, OrchestratorService)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	c := healthpb.NewHealthClient(conn)
	for range 5 {
		if got := reached(ctx, t, c); got != "b" {
			t.Fatalf("a call reached the standby %s", got)
		}
	}
	b.srv.Stop() // the leader dies
	a.lead(true) // the standby takes over
	for range 5 {
		if got := reached(ctx, t, c); got != "a" {
			t.Fatalf("after the takeover a call reached %s", got)
		}
	}
}

func TestDialNeedsAnAddress(t *testing.T) {
	if _, err := Dial(" , ", OrchestratorService); err == nil {
		t.Fatal("an empty list was accepted")
	}
	if got := Addresses(" a:1,b:2 ,,"); len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("Addresses = %v", got)
	}
}
