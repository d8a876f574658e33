package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/tracing"
)

const (
	callerTrace   = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan    = "00f067aa0ba902b7"
	callerSampled = "00-" + callerTrace + "-" + callerSpan + "-01"
)

func TestTraceparentMetadataBecomesLabelUnlessSet(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", callerSampled))
	if got := withTraceparent(ctx, nil); got["traceparent"] != callerSampled {
		t.Fatalf("labels = %v", got)
	}
	own := map[string]string{"traceparent": "00-11111111111111111111111111111111-00f067aa0ba902b7-01"}
	if got := withTraceparent(ctx, own); got["traceparent"] != own["traceparent"] {
		t.Fatalf("the label was overwritten: %v", got)
	}
	bad := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", "garbage"))
	if got := withTraceparent(bad, map[string]string{"a": "b"}); len(got) != 1 {
		t.Fatalf("a malformed traceparent was copied: %v", got)
	}
}

// startTraced serves the API with tracing on: the server spans and the assignment
// spans of a provider sampling new traces at ratio, ended spans in the recorder.
func startTraced(t *testing.T, ratio float64) (*testServer, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(tracing.NewSampler(ratio)))
	handler := []grpc.ServerOption{grpc.StatsHandler(tracing.NewServerHandler(tp))}
	return startGRPCServer(t, scheduler.Config{}, store.NewMemory(), handler, WithTracing(tp)), sr
}

// callerCtx is a call carrying the caller's traceparent metadata.
func callerCtx(t *testing.T, traceparent string) context.Context {
	return metadata.AppendToOutgoingContext(testCtx(t), "traceparent", traceparent)
}

// endedSpan waits for the span named name to end (a server span ends once the
// response is sent, which may be after the client has it).
func endedSpan(t *testing.T, sr *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	ctx := testCtx(t)
	for {
		for _, s := range sr.Ended() {
			if s.Name() == name {
				return s
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no span %q ended", name)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// attrsOf is the span's attributes as text.
func attrsOf(s sdktrace.ReadOnlySpan) map[string]string {
	out := make(map[string]string, len(s.Attributes()))
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// traceparentOf is the W3C traceparent of a sampled span.
func traceparentOf(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
}

func TestTracedSubmitIsTheParentOfTheQueueWaitAndTheAssignment(t *testing.T) {
	ts, sr := startTraced(t, 1)
	w := connectWorker(t, ts, "echo", 1)
	sub, err := ts.client.SubmitTask(callerCtx(t, callerSampled), &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Input: structpb.NewStringValue("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetTask().GetId()
	a := w.recv().GetAssignment()
	if a.GetTask().GetId() != id {
		t.Fatalf("assignment = %v", a)
	}

	submit := endedSpan(t, sr, "taskloom.v1.OrchestratorService/SubmitTask")
	if submit.Parent().TraceID().String() != callerTrace || submit.Parent().SpanID().String() != callerSpan || !submit.Parent().IsRemote() {
		t.Errorf("submit's parent = %v, want the caller's metadata", submit.Parent())
	}
	if submit.SpanKind() != trace.SpanKindServer || attrsOf(submit)["rpc.system"] != "grpc" ||
		attrsOf(submit)["rpc.service"] != "taskloom.v1.OrchestratorService" || attrsOf(submit)["rpc.method"] != "SubmitTask" ||
		attrsOf(submit)["rpc.grpc.status_code"] != "0" {
		t.Errorf("submit span: kind %v, attributes %v", submit.SpanKind(), submit.Attributes())
	}
	if got := sub.GetTask().GetLabels()["traceparent"]; got != traceparentOf(submit.SpanContext()) {
		t.Errorf("stored traceparent %q, want the submit span's", got)
	}

	wait, assign := endedSpan(t, sr, "task.queue_wait"), endedSpan(t, sr, "task.assign")
	for _, s := range []sdktrace.ReadOnlySpan{wait, assign} {
		if s.Parent().SpanID() != submit.SpanContext().SpanID() || s.SpanContext().TraceID().String() != callerTrace || attrsOf(s)["taskloom.task_id"] != id {
			t.Errorf("%s: parent %v, task id %q; want a child of submit for %s", s.Name(), s.Parent(), attrsOf(s)["taskloom.task_id"], id)
		}
	}
	if attrsOf(assign)["taskloom.worker_id"] != w.id || attrsOf(assign)["taskloom.attempt"] != "1" {
		t.Errorf("assign attributes %v", assign.Attributes())
	}
	if got := a.GetTask().GetLabels()["traceparent"]; got != traceparentOf(assign.SpanContext()) {
		t.Errorf("the worker got traceparent %q, want task.assign's %s", got, assign.SpanContext().SpanID())
	}
	got, err := ts.client.GetTask(testCtx(t), &pb.GetTaskRequest{Id: id})
	if err != nil || got.GetTask().GetLabels()["traceparent"] != traceparentOf(submit.SpanContext()) {
		t.Errorf("stored label after the assignment: %v, %v", got.GetTask().GetLabels(), err)
	}
}

func TestTracedWorkflowStepsHangUnderTheWorkflowSubmit(t *testing.T) {
	ts, sr := startTraced(t, 1)
	w := connectWorker(t, ts, "echo", 1)
	_, err := ts.client.SubmitWorkflow(callerCtx(t, callerSampled), &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{
		Name: "one", Mode: pb.WorkflowMode_WORKFLOW_MODE_SEQUENTIAL, Steps: []*pb.Step{{Id: "s1", Agent: "echo", Input: structpb.NewStringValue("x")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := w.recv().GetAssignment()
	submit := endedSpan(t, sr, "taskloom.v1.OrchestratorService/SubmitWorkflow")
	assign := endedSpan(t, sr, "task.assign")
	if submit.Parent().SpanID().String() != callerSpan || assign.Parent().SpanID() != submit.SpanContext().SpanID() ||
		attrsOf(assign)["taskloom.task_id"] != a.GetTask().GetId() {
		t.Errorf("submit's parent %v, assign's parent %v (submit %v)", submit.Parent().SpanID(), assign.Parent().SpanID(), submit.SpanContext().SpanID())
	}
}

func TestANotSampledSubmitRecordsNoSpansAndPassesItsContextOn(t *testing.T) {
	ts, sr := startTraced(t, 0) // the worker's session, a new trace, is not sampled either
	w := connectWorker(t, ts, "echo", 1)
	notSampled := "00-" + callerTrace + "-" + callerSpan + "-00"
	sub, err := ts.client.SubmitTask(callerCtx(t, notSampled), &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Input: structpb.NewStringValue("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	a := w.recv().GetAssignment()
	stored := sub.GetTask().GetLabels()["traceparent"]
	if !strings.HasPrefix(stored, "00-"+callerTrace+"-") || !strings.HasSuffix(stored, "-00") || stored == notSampled {
		t.Errorf("stored traceparent %q, want the (not sampled) submit span's", stored)
	}
	if got := a.GetTask().GetLabels()["traceparent"]; got != stored {
		t.Errorf("the worker got %q, want the stored %q", got, stored)
	}
	if n := len(sr.Started()); n != 0 {
		t.Errorf("%d spans started for a trace not sampled", n)
	}
}

func TestUntracedSubmitStoresTheIncomingTraceparentAndStartsNoSpans(t *testing.T) {
	sr := tracetest.NewSpanRecorder() // as the global provider: nothing may use it
	defer otel.SetTracerProvider(noop.NewTracerProvider())
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)))
	ts := startServer(t, scheduler.Config{})
	w := connectWorker(t, ts, "echo", 1)
	sub, err := ts.client.SubmitTask(callerCtx(t, callerSampled), &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Input: structpb.NewStringValue("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	a := w.recv().GetAssignment()
	if got := sub.GetTask().GetLabels()["traceparent"]; got != callerSampled {
		t.Errorf("stored traceparent %q, want the caller's", got)
	}
	if got := a.GetTask().GetLabels()["traceparent"]; got != callerSampled {
		t.Errorf("the worker got %q, want the caller's", got)
	}
	if n := len(sr.Started()); n != 0 {
		t.Errorf("%d spans started with tracing off", n)
	}
}
