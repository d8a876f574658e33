package api

import (
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
)

// echo answers every assignment with its input and a chunk, until the stream ends.
func (w *fakeWorker) echo() {
	go func() {
		for {
			m, err := w.stream.Recv()
			if err != nil {
				return
			}
			if a := m.GetAssignment(); a != nil {
				_ = w.stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Chunk{Chunk: &pb.TaskChunk{TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Text: "working"}}})
				_ = w.stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Result{Result: &pb.TaskResult{
					TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Output: a.GetTask().GetInput(),
				}}})
				_ = w.stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: 1}}})
			}
		}
	}()
}

func TestSubmitAndWatchWorkflowOverGRPC(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 4).echo()

	input, _ := structpb.NewValue(map[string]any{"name": "ada"})
	s1, _ := structpb.NewValue(map[string]any{"greeting": "hi {{ input.name }}"})
	s2 := structpb.NewStringValue("{{ steps.s1.output.greeting }}!")
	spec := &pb.WorkflowSpec{
		Name: "greet", Mode: pb.WorkflowMode_WORKFLOW_MODE_SEQUENTIAL, Input: input, Tenant: "acme", IdempotencyKey: "greet-1",
		Steps: []*pb.Step{{Id: "s1", Agent: "echo", Input: s1}, {Id: "s2", Agent: "echo", Input: s2}},
	}
	sub, err := ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: spec})
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetWorkflow().GetId()
	if id == "" || sub.GetExisting() || len(sub.GetWorkflow().GetSteps()) != 2 {
		t.Fatalf("submitted = %v", sub)
	}

	watch, err := ts.client.WatchWorkflow(ctx, &pb.WatchWorkflowRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	var events []*pb.WorkflowEvent
	for {
		resp, err := watch.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		events = append(events, resp.GetEvent())
	}
	if len(events) < 2 || events[0].GetStepId() != "" || events[0].GetStatus() == pb.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED {
		t.Fatalf("events = %v", events)
	}
	last := events[len(events)-1]
	if !last.GetDone() || last.GetWorkflow().GetStatus() != pb.WorkflowStatus_WORKFLOW_STATUS_SUCCEEDED ||
		last.GetWorkflow().GetOutput().GetStringValue() != "hi ada!" {
		t.Fatalf("last event = %v", last)
	}
	for _, ev := range events[:len(events)-1] {
		if ev.GetDone() {
			t.Fatalf("done before the last event: %v", ev)
		}
		if ev.GetTaskEvent() != nil && ev.GetStepId() == "" {
			t.Fatalf("task event without step id: %v", ev)
		}
	}

	got, err := ts.client.GetWorkflow(ctx, &pb.GetWorkflowRequest{Id: id})
	if err != nil || got.GetWorkflow().GetSteps()[1].GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED ||
		got.GetWorkflow().GetSpec().GetName() != "greet" || got.GetWorkflow().GetFinishedAt() == nil {
		t.Fatalf("GetWorkflow = %v, %v", got, err)
	}
	again, err := ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: spec})
	if err != nil || !again.GetExisting() || again.GetWorkflow().GetId() != id {
		t.Fatalf("repeat = %v, %v", again, err)
	}
	_, err = ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{
		Tenant: "acme", IdempotencyKey: "greet-1", Steps: []*pb.Step{{Id: "s1", Agent: "echo"}},
	}})
	if code, info, _ := errorInfo(t, err); code != codes.AlreadyExists || info.GetReason() != "IDEMPOTENCY_CONFLICT" || info.GetMetadata()["existing_id"] != id {
		t.Fatalf("another request under the key: %v %v", code, info)
	}
	cancelled, err := ts.client.CancelWorkflow(ctx, &pb.CancelWorkflowRequest{Id: id})
	if err != nil || cancelled.GetWorkflow().GetStatus() != pb.WorkflowStatus_WORKFLOW_STATUS_SUCCEEDED {
		t.Fatalf("cancel of a finished workflow = %v, %v", cancelled, err)
	}
}

func TestWorkflowErrors(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	dag := pb.WorkflowMode_WORKFLOW_MODE_DAG

	_, err := ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{Mode: dag, Steps: []*pb.Step{
		{Id: "a", Agent: "echo", DependsOn: []string{"c"}}, {Id: "b", Agent: "echo", DependsOn: []string{"a"}}, {Id: "c", Agent: "echo", DependsOn: []string{"b"}},
	}}})
	code, info, bad := errorInfo(t, err)
	if code != codes.InvalidArgument || info.GetReason() != "WORKFLOW_CYCLE" || info.GetMetadata()["cycle"] != "a -> c -> b -> a" ||
		bad == nil || bad.GetFieldViolations()[0].GetField() != "workflow.steps[0].depends_on" {
		t.Fatalf("cycle: %v %v %v", code, info, bad)
	}

	cases := []struct {
		name   string
		spec   *pb.WorkflowSpec
		code   codes.Code
		reason string
		field  string
	}{
		{"no steps", &pb.WorkflowSpec{}, codes.InvalidArgument, "INVALID_ARGUMENT", "workflow.steps"},
		{"unknown step", &pb.WorkflowSpec{Mode: dag, Steps: []*pb.Step{{Id: "a", Agent: "echo", DependsOn: []string{"x"}}}},
			codes.InvalidArgument, "UNKNOWN_STEP", "workflow.steps[0].depends_on"},
		{"bad priority", &pb.WorkflowSpec{Steps: []*pb.Step{{Id: "a", Agent: "echo", Priority: proto.Int32(12)}}},
			codes.InvalidArgument, "INVALID_ARGUMENT", "workflow.steps[0].priority"},
		{"idempotency key too long", &pb.WorkflowSpec{IdempotencyKey: strings.Repeat("k", 40_000), Steps: []*pb.Step{{Id: "a", Agent: "echo"}}},
			codes.InvalidArgument, "INVALID_ARGUMENT", "workflow.idempotency_key"},
		{"tenant too long", &pb.WorkflowSpec{Tenant: strings.Repeat("t", 129), Steps: []*pb.Step{{Id: "a", Agent: "echo"}}},
			codes.InvalidArgument, "INVALID_ARGUMENT", "workflow.tenant"},
		{"label key too long", &pb.WorkflowSpec{Labels: map[string]string{strings.Repeat("k", 257): "v"}, Steps: []*pb.Step{{Id: "a", Agent: "echo"}}},
			codes.InvalidArgument, "INVALID_ARGUMENT", "workflow.labels"},
		{"unknown agent", &pb.WorkflowSpec{Steps: []*pb.Step{{Id: "a", Agent: "echo"}, {Id: "b", Agent: "nope"}}},
			codes.NotFound, "AGENT_NOT_FOUND", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: tc.spec})
			code, info, bad := errorInfo(t, err)
			if code != tc.code || info.GetReason() != tc.reason {
				t.Fatalf("got %v %s, want %v %s", code, info.GetReason(), tc.code, tc.reason)
			}
			if tc.field != "" && (bad == nil || bad.GetFieldViolations()[0].GetField() != tc.field) {
				t.Fatalf("BadRequest = %v, want field %q", bad, tc.field)
			}
			if tc.reason == "AGENT_NOT_FOUND" && info.GetMetadata()["field"] != "workflow.steps[1].agent" {
				t.Fatalf("metadata = %v", info.GetMetadata())
			}
		})
	}
	_, err = ts.client.GetWorkflow(ctx, &pb.GetWorkflowRequest{Id: "nope"})
	if code, info, _ := errorInfo(t, err); code != codes.NotFound || info.GetReason() != "WORKFLOW_NOT_FOUND" {
		t.Fatalf("GetWorkflow(nope): %v %v", code, info)
	}
	stream, err := ts.client.WatchWorkflow(ctx, &pb.WatchWorkflowRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if code, _, _ := errorInfo(t, err); code != codes.InvalidArgument {
		t.Fatalf("WatchWorkflow without id: %v", code)
	}
}
