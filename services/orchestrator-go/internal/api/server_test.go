package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/usage"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

// testServer is the real gRPC server on a loopback port chosen by the system.
type testServer struct {
	conn   *grpc.ClientConn
	client pb.OrchestratorServiceClient
	hub    pb.WorkerHubServiceClient
	sched  *scheduler.Scheduler
}

// startServer runs the scheduler and the workflow engine over a memory store and
// serves the API on a gRPC server listening on a loopback port chosen by the
// system; it returns clients of it. Everything stops when the test ends.
func startServer(t *testing.T, cfg scheduler.Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, store.NewMemory())
}

// startServerWith is startServer over st, with Register's options.
func startServerWith(t *testing.T, cfg scheduler.Config, st store.Store, opts ...Option) *testServer {
	t.Helper()
	return startGRPCServer(t, cfg, st, nil, opts...)
}

// startGRPCServer is startServerWith with gRPC server options besides ServerOptions.
func startGRPCServer(t *testing.T, cfg scheduler.Config, st store.Store, serverOpts []grpc.ServerOption, opts ...Option) *testServer {
	t.Helper()
	m := telemetry.NewTestMetrics()
	catalog := workers.NewCatalog()
	sched := scheduler.New(cfg, scheduler.Deps{
		Store: st, Catalog: catalog, Hub: events.NewHub(events.DefaultOptions(), m), Metrics: m,
		Usage: usage.NewRecorder(st, time.Hour, telemetry.NewLogger(io.Discard, 0)),
	})
	sched.Start()
	t.Cleanup(sched.Shutdown)
	eng := workflow.New(workflow.Deps{Scheduler: sched, Store: st, Catalog: catalog})
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Stop)
	srv := grpc.NewServer(append(ServerOptions(), serverOpts...)...)
	Register(srv, sched, eng, catalog, telemetry.NewLogger(io.Discard, 0), opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: the connection and server go before the
	// scheduler (and engine) their caller registered.
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return &testServer{conn: conn, client: pb.NewOrchestratorServiceClient(conn), hub: pb.NewWorkerHubServiceClient(conn), sched: sched}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeWorker is a test worker speaking the Session protocol.
type fakeWorker struct {
	t      *testing.T
	stream pb.WorkerHubService_SessionClient
	id     string
	cancel context.CancelFunc
}

func connectWorker(t *testing.T, ts *testServer, agent string, credits int32) *fakeWorker {
	t.Helper()
	return connectWorkerCtx(testCtx(t), t, ts, agent, credits)
}

// connectWorkerCtx connects a worker whose session call carries parent's metadata.
func connectWorkerCtx(parent context.Context, t *testing.T, ts *testServer, agent string, credits int32) *fakeWorker {
	t.Helper()
	w, reg := openWorker(parent, t, ts, &pb.Register{
		Agents: []*pb.AgentInfo{{Name: agent, Provider: "simulated"}}, Concurrency: max(credits, 1), Hostname: "test",
	})
	if reg == nil || reg.GetWorkerId() == "" || reg.GetLeaseTtl().AsDuration() <= 0 || reg.GetHeartbeatInterval().AsDuration() <= 0 {
		t.Fatalf("registered = %v", reg)
	}
	w.id = reg.GetWorkerId()
	if credits > 0 {
		w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Credit{Credit: &pb.CreditGrant{Credits: credits}}})
	}
	return w
}

// openWorker opens a session, registers with reg and returns the hub's answer.
func openWorker(parent context.Context, t *testing.T, ts *testServer, reg *pb.Register) (*fakeWorker, *pb.Registered) {
	t.Helper()
	ctx, cancel := context.WithCancel(parent)
	stream, err := ts.hub.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWorker{t: t, stream: stream, cancel: cancel}
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: reg}})
	return w, w.recv().GetRegistered()
}

func (w *fakeWorker) send(m *pb.SessionRequest) {
	w.t.Helper()
	if err := w.stream.Send(m); err != nil {
		w.t.Fatalf("worker send: %v", err)
	}
}

func (w *fakeWorker) recv() *pb.SessionResponse {
	w.t.Helper()
	m, err := w.stream.Recv()
	if err != nil {
		w.t.Fatalf("worker recv: %v", err)
	}
	return m
}

func (w *fakeWorker) chunk(a *pb.Assignment, seq int64, text string) {
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Chunk{Chunk: &pb.TaskChunk{TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Seq: seq, Text: text}}})
}

func (w *fakeWorker) result(a *pb.Assignment, out *structpb.Value) {
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Result{Result: &pb.TaskResult{
		TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Output: out,
		Usage: &pb.TokenUsage{PromptTokens: 5, CompletionTokens: 7},
	}}})
}

func errorInfo(t *testing.T, err error) (codes.Code, *errdetails.ErrorInfo, *errdetails.BadRequest) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("not a status error: %v", err)
	}
	var info *errdetails.ErrorInfo
	var bad *errdetails.BadRequest
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			bad = d
		}
	}
	if info == nil || info.GetDomain() != ErrorDomain {
		t.Fatalf("status %v has no taskloom ErrorInfo", st)
	}
	return st.Code(), info, bad
}

func TestEndToEndWithFakeWorker(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	w := connectWorker(t, ts, "echo", 2)

	agents, err := ts.client.ListAgents(ctx, &pb.ListAgentsRequest{})
	if err != nil || len(agents.GetAgents()) != 1 || agents.GetAgents()[0].GetName() != "echo" {
		t.Fatalf("ListAgents = %v, %v", agents, err)
	}
	input, _ := structpb.NewValue(map[string]any{"text": "hello"})
	sub, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Input: input, Tenant: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetTask().GetId()
	if sub.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_QUEUED && sub.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_RUNNING {
		t.Fatalf("submitted task = %v", sub.GetTask())
	}

	a := w.recv().GetAssignment()
	if a == nil || a.GetTask().GetId() != id || a.GetAttempt() != 1 || a.GetLeaseId() == "" ||
		a.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_RUNNING || a.GetDeadline() == nil ||
		a.GetTask().GetInput().GetStructValue().GetFields()["text"].GetStringValue() != "hello" {
		t.Fatalf("assignment = %v", a)
	}
	w.chunk(a, 0, "hel")
	w.chunk(a, 1, "lo")

	watch, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil || first.GetEvent().GetType() != pb.TaskEventType_TASK_EVENT_TYPE_STATUS ||
		first.GetEvent().GetStatus() != pb.TaskStatus_TASK_STATUS_RUNNING {
		t.Fatalf("first event = %v, %v", first, err)
	}
	w.chunk(a, 2, "!")
	w.result(a, structpb.NewStringValue("hello!"))

	text, last := watchedText(t, watch)
	if text != "hello!" || last.GetType() != pb.TaskEventType_TASK_EVENT_TYPE_DONE ||
		last.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED {
		t.Fatalf("watched text %q, last event %v", text, last)
	}

	got, err := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	tk := got.GetTask()
	if tk.GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED || tk.GetResult().GetStringValue() != "hello!" ||
		tk.GetWorkerId() != w.id || tk.GetAttempts() != 1 || tk.GetUsage().GetCompletionTokens() != 7 ||
		tk.GetCreatedAt() == nil || tk.GetStartedAt() == nil || tk.GetFinishedAt() == nil {
		t.Fatalf("GetTask = %v", tk)
	}
	list, err := ts.client.ListTasks(ctx, &pb.ListTasksRequest{Tenant: "acme", Status: pb.TaskStatus_TASK_STATUS_SUCCEEDED})
	if err != nil || len(list.GetTasks()) != 1 || list.GetNextPageToken() != "" {
		t.Fatalf("ListTasks = %v, %v", list, err)
	}
}

func TestWorkerDisconnectRequeuesAndCancelReachesWorker(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	w1 := connectWorker(t, ts, "echo", 1)
	sub, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo"}})
	if err != nil {
		t.Fatal(err)
	}
	a1 := w1.recv().GetAssignment()
	w1.cancel() // the worker dies

	w2 := connectWorker(t, ts, "echo", 1)
	a2 := w2.recv().GetAssignment()
	if a2.GetTask().GetId() != sub.GetTask().GetId() || a2.GetAttempt() != 2 || a2.GetLeaseId() == a1.GetLeaseId() {
		t.Fatalf("reassignment = %v", a2)
	}
	if _, err := ts.client.CancelTask(ctx, &pb.CancelTaskRequest{Id: a2.GetTask().GetId(), Reason: "stop"}); err != nil {
		t.Fatal(err)
	}
	c := w2.recv().GetCancel()
	if c.GetLeaseId() != a2.GetLeaseId() || c.GetReason() != "stop" {
		t.Fatalf("cancel = %v", c)
	}
	w2.result(a2, structpb.NewStringValue("too late")) // ignored
	_, err = ts.client.CancelTask(ctx, &pb.CancelTaskRequest{Id: a2.GetTask().GetId()})
	if code, info, _ := errorInfo(t, err); code != codes.FailedPrecondition || info.GetReason() != "TASK_FINISHED" {
		t.Fatalf("second cancel: %v %v", code, info)
	}
	got, _ := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: a2.GetTask().GetId()})
	if got.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_CANCELLED {
		t.Fatalf("task = %v", got.GetTask())
	}
	// Drain and half-close end the session cleanly.
	w2.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Drain{Drain: &pb.Drain{}}})
	if err := w2.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("session end = %v, want EOF", err)
	}
}

func TestErrorsCarryReasonAndField(t *testing.T) {
	ts := startServer(t, scheduler.Config{MaxQueue: 1})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)

	cases := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
		field  string
	}{
		{"missing agent", func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "task.agent"},
		{"priority out of range", func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Priority: proto.Int32(10)}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "task.priority"},
		{"negative timeout", func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Timeout: durationpb.New(-time.Second)}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "task.timeout"},
		{"bad spec in a batch", func() error {
			_, err := ts.client.SubmitTasks(ctx, &pb.SubmitTasksRequest{Tasks: []*pb.TaskSpec{{Agent: "echo"}, {}}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "tasks[1].agent"},
		{"idempotency key too long", func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", IdempotencyKey: strings.Repeat("k", 40_000)}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "task.idempotency_key"},
		{"tenant too long", func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Tenant: strings.Repeat("t", 129)}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "task.tenant"},
		{"label value too long", func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo",
				Labels: map[string]string{"k": strings.Repeat("v", 4097)}}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "task.labels"},
		{"too many labels", func() error {
			labels := map[string]string{}
			for i := range 65 {
				labels[fmt.Sprint("l", i)] = "v"
			}
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo", Labels: labels}})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "task.labels"},
		{"unknown agent", func() error {
			_, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "nope"}})
			return err
		}, codes.NotFound, "AGENT_NOT_FOUND", ""},
		{"unknown task", func() error {
			_, err := ts.client.GetTask(ctx, &pb.GetTaskRequest{Id: "nope"})
			return err
		}, codes.NotFound, "TASK_NOT_FOUND", ""},
		{"bad page token", func() error {
			_, err := ts.client.ListTasks(ctx, &pb.ListTasksRequest{PageToken: "garbage"})
			return err
		}, codes.InvalidArgument, "INVALID_ARGUMENT", "page_token"},
		{"queue full", func() error {
			_, err := ts.client.SubmitTasks(ctx, &pb.SubmitTasksRequest{Tasks: []*pb.TaskSpec{{Agent: "echo"}, {Agent: "echo"}}})
			return err
		}, codes.ResourceExhausted, "QUEUE_FULL", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, info, bad := errorInfo(t, tc.call())
			if code != tc.code || info.GetReason() != tc.reason {
				t.Fatalf("got %v %s, want %v %s", code, info.GetReason(), tc.code, tc.reason)
			}
			if tc.field != "" && (bad == nil || bad.GetFieldViolations()[0].GetField() != tc.field) {
				t.Fatalf("BadRequest = %v, want field %q", bad, tc.field)
			}
			if tc.reason == "QUEUE_FULL" && info.GetMetadata()["retry_after_ms"] == "" {
				t.Fatal("QUEUE_FULL without retry_after_ms")
			}
		})
	}
	// Nothing was stored by the rejected calls.
	list, err := ts.client.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil || len(list.GetTasks()) != 0 {
		t.Fatalf("ListTasks after rejected calls = %v, %v", list, err)
	}
}

func TestIdempotentSubmitAndPaging(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	connectWorker(t, ts, "echo", 0)
	spec := &pb.TaskSpec{Agent: "echo", Tenant: "acme", IdempotencyKey: "order-1"}
	first, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: spec})
	if err != nil || first.GetExisting() || first.GetTask().GetPriority() != 5 {
		t.Fatalf("first = %v, %v", first, err)
	}
	again, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: spec})
	if err != nil || !again.GetExisting() || again.GetTask().GetId() != first.GetTask().GetId() {
		t.Fatalf("again = %v, %v", again, err)
	}
	for range 4 {
		if _, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo"}}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	token := ""
	for {
		page, err := ts.client.ListTasks(ctx, &pb.ListTasksRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range page.GetTasks() {
			seen = append(seen, tk.GetId())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(seen) != 5 || seen[4] != first.GetTask().GetId() {
		t.Fatalf("paged ids = %v (oldest last should be %s)", seen, first.GetTask().GetId())
	}
}

func TestHealthServing(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	resp, err := healthpb.NewHealthClient(ts.conn).Check(testCtx(t), &healthpb.HealthCheckRequest{Service: "taskloom.v1.WorkerHubService"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
}

func TestShutdownEndsWorkerSessions(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	w := connectWorker(t, ts, "echo", 1)
	ts.sched.Shutdown()
	_, err := w.stream.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("session end = %v, want UNAVAILABLE", err)
	}
}
