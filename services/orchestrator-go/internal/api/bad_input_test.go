package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
)

func TestPriorityAbsentIsFiveAndZeroIsTheLowest(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	for _, tc := range []struct {
		name     string
		priority *int32
		want     int32
	}{{"absent", nil, 5}, {"zero", proto.Int32(0), 0}, {"nine", proto.Int32(9), 9}} {
		resp, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Priority: tc.priority}})
		if err != nil || resp.GetTask().GetPriority() != tc.want {
			t.Fatalf("%s: priority %d, %v; want %d", tc.name, resp.GetTask().GetPriority(), err, tc.want)
		}
	}
	for _, p := range []int32{-1, 10} {
		_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Priority: proto.Int32(p)}})
		if code, _, bad := errorInfo(t, err); code != codes.InvalidArgument || bad.GetFieldViolations()[0].GetField() != "task.priority" ||
			!strings.Contains(bad.GetFieldViolations()[0].GetDescription(), "between 0 and 9") {
			t.Fatalf("priority %d: %v %v", p, code, bad)
		}
	}
	// A workflow's steps follow the same rule.
	wf, err := ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{
		Mode:  pb.WorkflowMode_WORKFLOW_MODE_PARALLEL,
		Steps: []*pb.Step{{Id: "absent", Agent: "echo"}, {Id: "zero", Agent: "echo", Priority: proto.Int32(0)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int32{"absent": 5, "zero": 0}
	for i, st := range wf.GetWorkflow().GetSpec().GetSteps() {
		if st.GetPriority() != want[st.GetId()] || st.Priority == nil {
			t.Fatalf("step %s priority = %v", st.GetId(), st.Priority)
		}
		task, err := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: wf.GetWorkflow().GetSteps()[i].GetTaskIds()[0]})
		if err != nil || task.GetTask().GetPriority() != want[st.GetId()] {
			t.Fatalf("step %s task priority = %d, %v", st.GetId(), task.GetTask().GetPriority(), err)
		}
	}
}

func TestHugeDurationsAreRefusedWithTheAllowedRange(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	huge := &durationpb.Duration{Seconds: 100_000_000_000} // 10^11 s: beyond time.Duration
	cases := []struct {
		call  func() error
		field string
		max   string
	}{
		{func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Timeout: huge}})
			return err
		}, "task.timeout", "86400"},
		{func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Retry: &pb.RetryPolicy{MaxBackoff: huge}}})
			return err
		}, "task.retry.max_backoff", "3600"},
		{func() error {
			_, err := ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{Steps: []*pb.Step{{Id: "a", Agent: "echo", Timeout: huge}}}})
			return err
		}, "workflow.steps[0].timeout", "86400"},
		{func() error {
			_, err := ts.client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{Steps: []*pb.Step{
				{Id: "a", Agent: "echo", Retry: &pb.RetryPolicy{InitialBackoff: huge}}}}})
			return err
		}, "workflow.steps[0].retry.initial_backoff", "3600"},
		{func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Timeout: durationpb.New(-time.Second)}})
			return err
		}, "task.timeout", "86400"},
	}
	for _, tc := range cases {
		code, info, bad := errorInfo(t, tc.call())
		if code != codes.InvalidArgument || info.GetReason() != "INVALID_ARGUMENT" || bad.GetFieldViolations()[0].GetField() != tc.field {
			t.Fatalf("%s: %v %v %v", tc.field, code, info, bad)
		}
		if msg := bad.GetFieldViolations()[0].GetDescription(); !strings.Contains(msg, "between 0 and "+tc.max+" seconds") {
			t.Fatalf("%s: message %q does not give the range", tc.field, msg)
		}
	}
	// At the bound it is accepted, as it is.
	resp, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Timeout: durationpb.New(24 * time.Hour)}})
	if err != nil || resp.GetTask().GetTimeout().AsDuration() != 24*time.Hour {
		t.Fatalf("a timeout of a day = %v, %v", resp.GetTask().GetTimeout(), err)
	}
}

func TestLongIdsAreInvalidWithABoundedMessage(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	id := strings.Repeat("x", 7000)
	calls := map[string]func() error{
		"GetTask": func() error { _, err := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: id}); return err },
		"CancelTask": func() error {
			_, err := ts.client.CancelTask(ctx, &pb.CancelTaskRequest{Id: id})
			return err
		},
		"WatchTask": func() error {
			stream, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: id})
			if err == nil {
				_, err = stream.Recv()
			}
			return err
		},
		"GetWorkflow": func() error { _, err := ts.client.GetWorkflow(ctx, &pb.GetWorkflowRequest{Id: id}); return err },
	}
	for name, call := range calls {
		code, info, bad := errorInfo(t, call())
		if code != codes.InvalidArgument || info.GetReason() != "INVALID_ARGUMENT" || bad.GetFieldViolations()[0].GetField() != "id" {
			t.Fatalf("%s: %v %v %v", name, code, info, bad)
		}
		if msg := bad.GetFieldViolations()[0].GetDescription(); len(msg) > 200 || strings.Contains(msg, "xxxx") {
			t.Fatalf("%s: the message echoes the id: %q", name, msg)
		}
	}
}

func TestEmptyLabelKeyIsRefused(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Labels: map[string]string{"": "v"}}})
	if code, _, bad := errorInfo(t, err); code != codes.InvalidArgument || bad.GetFieldViolations()[0].GetField() != "task.labels" {
		t.Fatalf("empty label key: %v %v", code, bad)
	}
}

// rawCodec sends bytes as they are, so a test can send what no client library would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string   { return "proto" }
func (rawCodec) String() string { return "raw" }
func rawCall() grpc.CallOption  { return grpc.ForceCodec(encoding.Codec(rawCodec{})) }
func submitTaskBytes(agent []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), taskSpecBytes(agent))
}
func taskSpecBytes(agent []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), agent)
}
func methodName(service, method string) string { return "/taskloom.v1." + service + "/" + method }
func invokeRaw(ctx context.Context, ts *testServer, method string, req []byte) error {
	var out []byte
	return ts.conn.Invoke(ctx, methodName("OrchestratorService", method), &req, &out, rawCall())
}

func TestUndecodableRequestsAreInvalidArgumentNotInternal(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	notUTF8 := submitTaskBytes([]byte{'e', 0xff, 0xfe})
	garbage := []byte{0xff, 0xff, 0xff, 0xff}
	for name, err := range map[string]error{
		"invalid UTF-8": invokeRaw(ctx, ts, "SubmitTask", notUTF8),
		"not protobuf":  invokeRaw(ctx, ts, "SubmitTask", garbage),
		"stream": func() error {
			desc := &grpc.StreamDesc{ServerStreams: true}
			stream, err := ts.conn.NewStream(ctx, desc, methodName("OrchestratorService", "WatchTask"), rawCall())
			if err != nil {
				return err
			}
			if err := stream.SendMsg(&garbage); err != nil {
				return err
			}
			_ = stream.CloseSend()
			var out []byte
			return stream.RecvMsg(&out)
		}(),
	} {
		code, info, _ := errorInfo(t, err)
		if code != codes.InvalidArgument || info.GetReason() != "INVALID_ARGUMENT" {
			t.Fatalf("%s: %v %v", name, code, info)
		}
	}
}

func TestARequestOverTheSizeLimitIsResourceExhaustedWithAReason(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	input := structpb.NewStringValue(strings.Repeat("x", 5<<20)) // 5 MiB
	_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Input: input}})
	code, info, _ := errorInfo(t, err)
	if code != codes.ResourceExhausted || info.GetReason() != "REQUEST_TOO_LARGE" || info.GetMetadata()["limit_bytes"] != "4194304" {
		t.Fatalf("5 MiB input: %v %v", code, info)
	}
	// Under the request bound but over the input's own: INVALID_ARGUMENT naming it.
	input = structpb.NewStringValue(strings.Repeat("x", 3<<20+1))
	_, err = ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Input: input}})
	if code, _, bad := errorInfo(t, err); code != codes.InvalidArgument || bad.GetFieldViolations()[0].GetField() != "task.input" {
		t.Fatalf("input over its bound: %v %v", code, bad)
	}
}

func TestAnIdempotencyKeyReusedWithAnotherRequestIsAConflict(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	spec := &pb.TaskSpec{Agent: "echo", IdempotencyKey: "order-7", Input: structpb.NewStringValue("a")}
	first, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: spec})
	if err != nil {
		t.Fatal(err)
	}
	again, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: spec})
	if err != nil || !again.GetExisting() || again.GetTask().GetId() != first.GetTask().GetId() {
		t.Fatalf("retry = %v, %v", again, err)
	}
	other := proto.Clone(spec).(*pb.TaskSpec)
	other.Input = structpb.NewStringValue("b")
	_, err = ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: other})
	code, info, _ := errorInfo(t, err)
	if code != codes.AlreadyExists || info.GetReason() != "IDEMPOTENCY_CONFLICT" || info.GetMetadata()["existing_id"] != first.GetTask().GetId() {
		t.Fatalf("another request under the key: %v %v", code, info)
	}
	list, err := ts.client.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil || len(list.GetTasks()) != 1 {
		t.Fatalf("tasks = %d, %v (the conflict must create nothing)", len(list.GetTasks()), err)
	}
}
