package loadgen

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

// fakeWorkflows answers SubmitWorkflow with a workflow that WatchWorkflow reports
// finished 30 ms after it was created.
type fakeWorkflows struct {
	pb.UnimplementedOrchestratorServiceServer
	submitted *pb.WorkflowSpec
}

var wfCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (f *fakeWorkflows) SubmitWorkflow(_ context.Context, req *pb.SubmitWorkflowRequest) (*pb.SubmitWorkflowResponse, error) {
	f.submitted = req.GetWorkflow()
	return &pb.SubmitWorkflowResponse{Workflow: &pb.Workflow{Id: "wf-1", Status: pb.WorkflowStatus_WORKFLOW_STATUS_RUNNING}}, nil
}

func (f *fakeWorkflows) WatchWorkflow(req *pb.WatchWorkflowRequest, stream pb.OrchestratorService_WatchWorkflowServer) error {
	return stream.Send(&pb.WatchWorkflowResponse{Event: &pb.WorkflowEvent{WorkflowId: req.GetId(), Done: true, Workflow: &pb.Workflow{
		Id: req.GetId(), Status: pb.WorkflowStatus_WORKFLOW_STATUS_SUCCEEDED,
		CreatedAt: timestamppb.New(wfCreated), FinishedAt: timestamppb.New(wfCreated.Add(30 * time.Millisecond)),
	}}})
}

func dialFake(t *testing.T, srv pb.OrchestratorServiceServer) pb.OrchestratorServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	pb.RegisterOrchestratorServiceServer(s, srv)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pb.NewOrchestratorServiceClient(conn)
}

func TestRunWorkflowTimesThreeSequentialStepsByServerClock(t *testing.T) {
	fake := &fakeWorkflows{}
	r := &run{cfg: Config{agent: "noop"}}
	timing, err := r.runWorkflow(context.Background(), dialFake(t, fake))
	if err != nil {
		t.Fatal(err)
	}
	if timing.server != 30*time.Millisecond {
		t.Errorf("server duration = %v, want 30ms (finished_at - created_at)", timing.server)
	}
	spec := fake.submitted
	if spec.GetMode() != pb.WorkflowMode_WORKFLOW_MODE_SEQUENTIAL || len(spec.GetSteps()) != workflowSteps {
		t.Fatalf("submitted mode %v with %d steps, want sequential with %d", spec.GetMode(), len(spec.GetSteps()), workflowSteps)
	}
	for _, s := range spec.GetSteps() {
		if s.GetAgent() != "noop" {
			t.Errorf("step %s has agent %q, want noop", s.GetId(), s.GetAgent())
		}
	}
}

func TestRunWorkflowReportsUnimplemented(t *testing.T) {
	r := &run{cfg: Config{agent: "noop"}}
	_, err := r.runWorkflow(context.Background(), dialFake(t, &pb.UnimplementedOrchestratorServiceServer{}))
	if !isUnimplemented(err) {
		t.Fatalf("err = %v, want UNIMPLEMENTED", err)
	}
}
