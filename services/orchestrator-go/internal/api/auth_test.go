package api

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/apikeys"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

const (
	serviceToken = "service-token-0123456789"
	workerToken  = "worker-token-0123456789"
	adminToken   = "admin-token-0123456789"
)

// startAuthServer serves the API with authentication on and the API keys of a memory store.
func startAuthServer(t *testing.T) *testServer {
	t.Helper()
	st := store.NewMemory()
	keys := apikeys.New(st)
	auth := NewAuth(AuthConfig{Enabled: true, ServiceToken: serviceToken, WorkerToken: workerToken, AdminToken: adminToken, Keys: keys})
	return startServerWith(t, scheduler.Config{}, st, WithAuth(auth), WithKeys(keys))
}

// as is ctx with a token in the call's metadata.
func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// newKey creates an API key with the admin token and returns its secret.
func newKey(t *testing.T, ts *testServer, tenant string, role pb.APIKeyRole) string {
	t.Helper()
	resp, err := ts.client.CreateAPIKey(as(testCtx(t), adminToken), &pb.CreateAPIKeyRequest{Tenant: tenant, Role: role, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetSecret()
}

func wantCode(t *testing.T, what string, err error, code codes.Code, reason string) {
	t.Helper()
	got, info, _ := errorInfo(t, err)
	if got != code || info.GetReason() != reason {
		t.Fatalf("%s: %v %s, want %v %s (%v)", what, got, info.GetReason(), code, reason, err)
	}
}

func TestCallsWithoutValidCredentialsAreRefusedWhenAuthIsOn(t *testing.T) {
	ts := startAuthServer(t)
	ctx := testCtx(t)
	_, err := ts.client.ListTasks(ctx, &pb.ListTasksRequest{})
	wantCode(t, "no token", err, codes.Unauthenticated, "UNAUTHENTICATED")
	_, err = ts.client.ListTasks(as(ctx, "tlk_not-a-key"), &pb.ListTasksRequest{})
	wantCode(t, "unknown key", err, codes.Unauthenticated, "UNAUTHENTICATED")
	_, err = ts.client.GetTask(as(ctx, "wrong-token-0123456789"), &pb.GetTaskRequest{Id: "x"})
	wantCode(t, "wrong token", err, codes.Unauthenticated, "UNAUTHENTICATED")
	// A stream is refused before it starts, and a malformed request does not get past either.
	watch, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: ""})
	if err == nil {
		_, err = watch.Recv()
	}
	wantCode(t, "unauthenticated watch", err, codes.Unauthenticated, "UNAUTHENTICATED")
	// Health stays open for probes.
	if resp, err := healthpb.NewHealthClient(ts.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
	if _, err := ts.client.ListTasks(as(ctx, serviceToken), &pb.ListTasksRequest{}); err != nil {
		t.Fatalf("the service token: %v", err)
	}
}

func TestAWorkerSessionNeedsTheWorkerToken(t *testing.T) {
	ts := startAuthServer(t)
	for token, code := range map[string]codes.Code{"": codes.Unauthenticated, serviceToken: codes.PermissionDenied} {
		ctx := testCtx(t)
		if token != "" {
			ctx = as(ctx, token)
		}
		stream, err := ts.hub.Session(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: &pb.Register{Concurrency: 1}}})
		_, err = stream.Recv()
		if got, _, _ := errorInfo(t, err); got != code {
			t.Fatalf("session with %q: %v, want %v", token, err, code)
		}
	}
	stream, err := ts.hub.Session(as(testCtx(t), workerToken))
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWorker{t: t, stream: stream}
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Register{Register: &pb.Register{
		Agents: []*pb.AgentInfo{{Name: "echo"}}, Concurrency: 1,
	}}})
	if reg := w.recv().GetRegistered(); reg.GetWorkerId() == "" {
		t.Fatalf("registered = %v", reg)
	}
}

func TestATenantKeySeesOnlyItsTenant(t *testing.T) {
	ts := startAuthServer(t)
	ctx := testCtx(t)
	connectWorkerAs(t, ts, "wait", 0)
	keyA, keyB := newKey(t, ts, "acme", pb.APIKeyRole_API_KEY_ROLE_TENANT), newKey(t, ts, "globex", pb.APIKeyRole_API_KEY_ROLE_TENANT)
	a, b := as(ctx, keyA), as(ctx, keyB)

	sub, err := ts.client.SubmitTask(a, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "wait"}})
	if err != nil || sub.GetTask().GetTenant() != "acme" {
		t.Fatalf("submit = %v, %v", sub, err)
	}
	id := sub.GetTask().GetId()
	_, err = ts.client.SubmitTask(a, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "wait", Tenant: "globex"}})
	wantCode(t, "submit for another tenant", err, codes.PermissionDenied, "PERMISSION_DENIED")

	_, err = ts.client.GetTask(b, &pb.GetTaskRequest{Id: id})
	wantCode(t, "get", err, codes.NotFound, "TASK_NOT_FOUND")
	_, err = ts.client.GetTask(b, &pb.GetTaskRequest{Id: id, Tenant: "acme"})
	wantCode(t, "get naming the other tenant", err, codes.PermissionDenied, "PERMISSION_DENIED")
	_, err = ts.client.CancelTask(b, &pb.CancelTaskRequest{Id: id})
	wantCode(t, "cancel", err, codes.NotFound, "TASK_NOT_FOUND")
	watch, err := ts.client.WatchTask(b, &pb.WatchTaskRequest{Id: id})
	if err == nil {
		_, err = watch.Recv()
	}
	wantCode(t, "watch", err, codes.NotFound, "TASK_NOT_FOUND")
	if list, err := ts.client.ListTasks(b, &pb.ListTasksRequest{}); err != nil || len(list.GetTasks()) != 0 {
		t.Fatalf("tenant B lists %v, %v", list, err)
	}
	_, err = ts.client.ListTasks(b, &pb.ListTasksRequest{Tenant: "acme"})
	wantCode(t, "list naming the other tenant", err, codes.PermissionDenied, "PERMISSION_DENIED")

	// The owner, the gateway acting for it and an admin see it; the gateway acting for another does not.
	if got, err := ts.client.GetTask(a, &pb.GetTaskRequest{Id: id}); err != nil || got.GetTask().GetId() != id {
		t.Fatalf("owner get = %v, %v", got, err)
	}
	_, err = ts.client.GetTask(as(ctx, serviceToken), &pb.GetTaskRequest{Id: id, Tenant: "globex"})
	wantCode(t, "service for globex", err, codes.NotFound, "TASK_NOT_FOUND")
	admin := as(ctx, newKey(t, ts, "ops", pb.APIKeyRole_API_KEY_ROLE_ADMIN))
	if list, err := ts.client.ListTasks(admin, &pb.ListTasksRequest{}); err != nil || len(list.GetTasks()) != 1 {
		t.Fatalf("admin lists %v, %v", list, err)
	}
	if got, err := ts.client.CancelTask(as(ctx, serviceToken), &pb.CancelTaskRequest{Id: id, Tenant: "acme"}); err != nil ||
		got.GetTask().GetStatus() != pb.TaskStatus_TASK_STATUS_CANCELLED {
		t.Fatalf("service cancel for acme = %v, %v", got, err)
	}
	// Keys are for admins.
	_, err = ts.client.CreateAPIKey(a, &pb.CreateAPIKeyRequest{Tenant: "acme"})
	wantCode(t, "a tenant key creating keys", err, codes.PermissionDenied, "PERMISSION_DENIED")
}

func TestATenantKeySeesOnlyItsTenantsWorkflows(t *testing.T) {
	ts := startAuthServer(t)
	ctx := testCtx(t)
	connectWorkerAs(t, ts, "wait", 0)
	a, b := as(ctx, newKey(t, ts, "acme", 0)), as(ctx, newKey(t, ts, "globex", 0))
	sub, err := ts.client.SubmitWorkflow(a, &pb.SubmitWorkflowRequest{Workflow: &pb.WorkflowSpec{
		Name: "one", Steps: []*pb.Step{{Id: "s", Agent: "wait"}},
	}})
	if err != nil || sub.GetWorkflow().GetSpec().GetTenant() != "acme" {
		t.Fatalf("submit = %v, %v", sub, err)
	}
	id := sub.GetWorkflow().GetId()
	_, err = ts.client.GetWorkflow(b, &pb.GetWorkflowRequest{Id: id})
	wantCode(t, "get", err, codes.NotFound, "WORKFLOW_NOT_FOUND")
	_, err = ts.client.CancelWorkflow(b, &pb.CancelWorkflowRequest{Id: id})
	wantCode(t, "cancel", err, codes.NotFound, "WORKFLOW_NOT_FOUND")
	watch, err := ts.client.WatchWorkflow(b, &pb.WatchWorkflowRequest{Id: id})
	if err == nil {
		_, err = watch.Recv()
	}
	wantCode(t, "watch", err, codes.NotFound, "WORKFLOW_NOT_FOUND")
	if list, err := ts.client.ListWorkflows(b, &pb.ListWorkflowsRequest{}); err != nil || len(list.GetWorkflows()) != 0 {
		t.Fatalf("tenant B lists %v, %v", list, err)
	}
	list, err := ts.client.ListWorkflows(a, &pb.ListWorkflowsRequest{Name: "one", Status: pb.WorkflowStatus_WORKFLOW_STATUS_RUNNING})
	if err != nil || len(list.GetWorkflows()) != 1 || list.GetWorkflows()[0].GetId() != id {
		t.Fatalf("tenant A lists %v, %v", list, err)
	}
	if _, err := ts.client.CancelWorkflow(a, &pb.CancelWorkflowRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
}

func TestAChildTaskRunsUnderItsParentsTenant(t *testing.T) {
	ts := startAuthServer(t)
	ctx := testCtx(t)
	connectWorkerAs(t, ts, "wait", 0)
	acme := as(ctx, newKey(t, ts, "acme", 0))
	parent, err := ts.client.SubmitTask(acme, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "wait"}})
	if err != nil {
		t.Fatal(err)
	}
	worker := as(ctx, workerToken)
	child := func(tenant, parentID string) (*pb.SubmitTaskResponse, error) {
		labels := map[string]string{}
		if parentID != "" {
			labels[task.ParentLabel] = parentID
		}
		return ts.client.SubmitTask(worker, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "wait", Tenant: tenant, Labels: labels}})
	}
	got, err := child("", parent.GetTask().GetId())
	if err != nil || got.GetTask().GetTenant() != "acme" {
		t.Fatalf("child = %v, %v", got, err)
	}
	// The worker reads and cancels its child, whatever its tenant.
	if _, err := ts.client.CancelTask(worker, &pb.CancelTaskRequest{Id: got.GetTask().GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = child("", "")
	wantCode(t, "no parent", err, codes.PermissionDenied, "PERMISSION_DENIED")
	_, err = child("globex", parent.GetTask().GetId())
	wantCode(t, "another tenant", err, codes.PermissionDenied, "PERMISSION_DENIED")
	_, err = child("", "no-such-task")
	wantCode(t, "unknown parent", err, codes.InvalidArgument, "INVALID_ARGUMENT")
	// Another tenant cannot attach a child to acme's task.
	globex := as(ctx, newKey(t, ts, "globex", 0))
	_, err = ts.client.SubmitTask(globex, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "wait", Labels: map[string]string{task.ParentLabel: parent.GetTask().GetId()}}})
	wantCode(t, "globex's child of acme's task", err, codes.InvalidArgument, "INVALID_ARGUMENT")
	// A finished parent starts no more children; workers may call nothing else.
	if _, err := ts.client.CancelTask(acme, &pb.CancelTaskRequest{Id: parent.GetTask().GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = child("", parent.GetTask().GetId())
	wantCode(t, "finished parent", err, codes.PermissionDenied, "PERMISSION_DENIED")
	_, err = ts.client.ListTasks(worker, &pb.ListTasksRequest{})
	wantCode(t, "a worker listing", err, codes.PermissionDenied, "PERMISSION_DENIED")
}

func TestARevokedKeyIsRefused(t *testing.T) {
	ts := startAuthServer(t)
	ctx := testCtx(t)
	created, err := ts.client.CreateAPIKey(as(ctx, adminToken), &pb.CreateAPIKeyRequest{Tenant: "acme", Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	key := created.GetApiKey()
	if key.GetRole() != pb.APIKeyRole_API_KEY_ROLE_TENANT || key.GetPrefix() == "" || len(key.GetPrefix()) >= len(created.GetSecret()) {
		t.Fatalf("created = %v", created)
	}
	verified, err := ts.client.VerifyAPIKey(as(ctx, serviceToken), &pb.VerifyAPIKeyRequest{Secret: created.GetSecret()})
	if err != nil || verified.GetApiKey().GetId() != key.GetId() || verified.GetApiKey().GetTenant() != "acme" {
		t.Fatalf("verify = %v, %v", verified, err)
	}
	if _, err := ts.client.ListTasks(as(ctx, created.GetSecret()), &pb.ListTasksRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.RevokeAPIKey(as(ctx, adminToken), &pb.RevokeAPIKeyRequest{Id: key.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = ts.client.ListTasks(as(ctx, created.GetSecret()), &pb.ListTasksRequest{})
	wantCode(t, "revoked key", err, codes.Unauthenticated, "UNAUTHENTICATED")
	_, err = ts.client.VerifyAPIKey(as(ctx, serviceToken), &pb.VerifyAPIKeyRequest{Secret: created.GetSecret()})
	wantCode(t, "verify a revoked key", err, codes.NotFound, "API_KEY_NOT_FOUND")
	listed, err := ts.client.ListAPIKeys(as(ctx, adminToken), &pb.ListAPIKeysRequest{IncludeRevoked: true})
	if err != nil || len(listed.GetApiKeys()) != 1 || listed.GetApiKeys()[0].GetRevokedAt() == nil {
		t.Fatalf("listed = %v, %v", listed, err)
	}
	_, err = ts.client.RevokeAPIKey(as(ctx, adminToken), &pb.RevokeAPIKeyRequest{Id: "missing"})
	wantCode(t, "revoke a missing key", err, codes.NotFound, "API_KEY_NOT_FOUND")
}

func TestWatchResumesAfterFromSeq(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	w := connectWorker(t, ts, "echo", 1)
	sub, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "echo"}})
	if err != nil {
		t.Fatal(err)
	}
	a := w.recv().GetAssignment()
	for i, text := range []string{"a", "b", "c", "d"} {
		w.chunk(a, int64(i), text)
	}
	w.result(a, structpb.NewStringValue("abcd"))
	// Once the first watch has seen the task to its end, a resumed one starts after seq 1.
	first, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: sub.GetTask().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := first.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetEvent().GetType() == pb.TaskEventType_TASK_EVENT_TYPE_DONE {
			break
		}
	}
	from := int64(1)
	watch, err := ts.client.WatchTask(ctx, &pb.WatchTaskRequest{Id: sub.GetTask().GetId(), FromSeq: &from, FromAttempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		resp, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch ended: %v (got %v)", err, got)
		}
		ev := resp.GetEvent()
		switch ev.GetType() {
		case pb.TaskEventType_TASK_EVENT_TYPE_CHUNK:
			got = append(got, ev.GetChunk())
		case pb.TaskEventType_TASK_EVENT_TYPE_DONE:
			if len(got) != 2 || got[0] != "c" || got[1] != "d" {
				t.Fatalf("chunks after seq 1 = %v, want [c d]", got)
			}
			return
		}
	}
}

// connectWorkerAs connects a worker with the worker token.
func connectWorkerAs(t *testing.T, ts *testServer, agent string, credits int32) *fakeWorker {
	t.Helper()
	return connectWorkerCtx(as(testCtx(t), workerToken), t, ts, agent, credits)
}
