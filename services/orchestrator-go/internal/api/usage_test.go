package api

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
)

func TestResultUsageReachesTheRollupsAndGetUsage(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)

	w := connectWorker(t, ts, "writer", 1)
	input, _ := structpb.NewValue("hi")
	if _, err := ts.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "writer", Tenant: "acme", Input: input}}); err != nil {
		t.Fatal(err)
	}
	a := w.recv().GetAssignment()
	w.send(&pb.SessionRequest{Msg: &pb.SessionRequest_Result{Result: &pb.TaskResult{
		TaskId: a.GetTask().GetId(), LeaseId: a.GetLeaseId(), Output: input,
		Usage: &pb.TokenUsage{PromptTokens: 12, CompletionTokens: 4, CostNanoUsd: 5000, Models: []*pb.UsageLine{
			{Endpoint: "claude", Model: "haiku", Calls: 1, PromptTokens: 10, CompletionTokens: 3, CostNanoUsd: 5000, Priced: true, SavedPromptTokens: 2},
			{Endpoint: "local", Model: "llama", Calls: 1, PromptTokens: 2, CompletionTokens: 1},
		}},
	}}})

	var rows []*pb.UsageRow
	for deadline := time.Now().Add(10 * time.Second); len(rows) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the result's usage never reached the rollups")
		}
		time.Sleep(10 * time.Millisecond) // the result is recorded after the worker sent it
		resp, err := ts.client.GetUsage(ctx, &pb.GetUsageRequest{GroupBy: pb.UsageGroupBy_USAGE_GROUP_BY_MODEL, Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		rows = resp.GetRows()
	}
	if len(rows) != 2 || rows[0].GetModel() != "haiku" || rows[0].GetCostNanoUsd() != 5000 || rows[0].GetSavedTokens() != 2 {
		t.Fatalf("rows by model = %v", rows)
	}
	if rows[1].GetModel() != "llama" || rows[1].GetUnpricedTokens() != 3 || rows[1].GetCostNanoUsd() != 0 {
		t.Fatalf("the unpriced model's row = %v", rows[1])
	}
	byTenant, err := ts.client.GetUsage(ctx, &pb.GetUsageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := byTenant.GetRows(); len(got) != 1 || got[0].GetTenant() != "acme" || got[0].GetCalls() != 2 || got[0].GetPromptTokens() != 12 {
		t.Fatalf("rows by tenant = %v", got)
	}
	other, err := ts.client.GetUsage(ctx, &pb.GetUsageRequest{Tenant: "globex"})
	if err != nil || len(other.GetRows()) != 0 {
		t.Fatalf("another tenant sees %v, %v", other.GetRows(), err)
	}
}

func TestGetUsageNamesBadFields(t *testing.T) {
	ts := startServer(t, scheduler.Config{})
	ctx := testCtx(t)
	now := time.Now()
	for field, req := range map[string]*pb.GetUsageRequest{
		"group_by": {GroupBy: pb.UsageGroupBy(42)},
		"until":    {Since: timestamppb.New(now), Until: timestamppb.New(now.Add(-time.Hour))},
		"tenant":   {Tenant: string(make([]byte, 200))},
	} {
		_, err := ts.client.GetUsage(ctx, req)
		code, info, bad := errorInfo(t, err)
		if code != codes.InvalidArgument || info.GetReason() != "INVALID_ARGUMENT" || bad.GetFieldViolations()[0].GetField() != field {
			t.Fatalf("%s: %v %v %v", field, code, info, bad)
		}
	}
}
