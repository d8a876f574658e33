package api

import (
	"context"
	"time"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/usage"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var usageGroups = map[pb.UsageGroupBy]usage.GroupBy{
	pb.UsageGroupBy_USAGE_GROUP_BY_UNSPECIFIED: usage.ByTenant,
	pb.UsageGroupBy_USAGE_GROUP_BY_TENANT:      usage.ByTenant,
	pb.UsageGroupBy_USAGE_GROUP_BY_AGENT:       usage.ByAgent,
	pb.UsageGroupBy_USAGE_GROUP_BY_MODEL:       usage.ByModel,
}

// GetUsage implements OrchestratorService: the rollups of a range, grouped.
func (o *Orchestrator) GetUsage(ctx context.Context, req *pb.GetUsageRequest) (*pb.GetUsageResponse, error) {
	recorder := o.sched.Usage()
	if recorder == nil {
		return nil, toStatus(o.log, &errs.Error{Kind: errs.KindUnimplemented, Reason: pb.ErrorReason_ERROR_REASON_UNIMPLEMENTED, Message: "usage rollups are not kept by this orchestrator"})
	}
	by, ok := usageGroups[req.GetGroupBy()]
	if !ok {
		return nil, toStatus(o.log, invalid("group_by", "unknown grouping %d", req.GetGroupBy()))
	}
	var since, until time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		until = req.GetUntil().AsTime()
	}
	if !since.IsZero() && !until.IsZero() && !until.After(since) {
		return nil, toStatus(o.log, invalid("until", "must be after since"))
	}
	r := usage.NewRange(since, until, time.Now())
	rows, err := recorder.Report(ctx, by, req.GetTenant(), r)
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	resp := &pb.GetUsageResponse{Since: timestamppb.New(r.Since), Until: timestamppb.New(r.Until)}
	for _, row := range rows {
		c := row.Counts
		resp.Rows = append(resp.Rows, &pb.UsageRow{
			Tenant: row.Tenant, Agent: row.Agent, Endpoint: row.Endpoint, Model: row.Model,
			Calls: c.Calls, PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens,
			CostNanoUsd: c.CostNanoUSD, UnpricedTokens: c.UnpricedTokens,
			SavedTokens: c.SavedTokens, SavedCostNanoUsd: c.SavedCostNanoUSD,
		})
	}
	return resp, nil
}

// usageLinesFromProto is a result's usage by endpoint and model.
func usageLinesFromProto(lines []*pb.UsageLine) []task.UsageLine {
	if len(lines) == 0 {
		return nil
	}
	out := make([]task.UsageLine, len(lines))
	for i, m := range lines {
		out[i] = task.UsageLine{
			Endpoint: m.GetEndpoint(), Model: m.GetModel(), Calls: m.GetCalls(),
			PromptTokens: m.GetPromptTokens(), CompletionTokens: m.GetCompletionTokens(),
			CostNanoUSD: m.GetCostNanoUsd(), Priced: m.GetPriced(),
			SavedPromptTokens: m.GetSavedPromptTokens(), SavedCompletionTokens: m.GetSavedCompletionTokens(),
			SavedCostNanoUSD: m.GetSavedCostNanoUsd(),
		}
	}
	return out
}

func usageLinesToProto(lines []task.UsageLine) []*pb.UsageLine {
	out := make([]*pb.UsageLine, len(lines))
	for i, l := range lines {
		out[i] = &pb.UsageLine{
			Endpoint: l.Endpoint, Model: l.Model, Calls: l.Calls,
			PromptTokens: l.PromptTokens, CompletionTokens: l.CompletionTokens,
			CostNanoUsd: l.CostNanoUSD, Priced: l.Priced,
			SavedPromptTokens: l.SavedPromptTokens, SavedCompletionTokens: l.SavedCompletionTokens,
			SavedCostNanoUsd: l.SavedCostNanoUSD,
		}
	}
	return out
}
