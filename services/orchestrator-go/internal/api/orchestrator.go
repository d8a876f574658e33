package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/apikeys"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/limits"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

// pageTokenPrefix marks the page tokens ListTasks issues.
const pageTokenPrefix = "v1:"

// What a page size of 0 means, as the contracts declare it for each list call.
var (
	defaultPageSize         = int(limits.Field(&pb.ListTasksRequest{}, "page_size").GetDefault())
	defaultWorkflowPageSize = int(limits.Field(&pb.ListWorkflowsRequest{}, "page_size").GetDefault())
	defaultKeyPageSize      = int(limits.Field(&pb.ListAPIKeysRequest{}, "page_size").GetDefault())
)

// Orchestrator implements taskloom.v1.OrchestratorService.
type Orchestrator struct {
	pb.UnimplementedOrchestratorServiceServer
	sched   *scheduler.Scheduler
	catalog *workers.Catalog
	log     *slog.Logger
	// workflows serves the workflow RPCs (workflow.go).
	workflows *workflow.Engine
	// keys serves the API key RPCs (keys.go); nil: they are unimplemented.
	keys *apikeys.Service
}

// NewOrchestrator returns the OrchestratorService handlers.
func NewOrchestrator(sched *scheduler.Scheduler, engine *workflow.Engine, catalog *workers.Catalog, log *slog.Logger) *Orchestrator {
	return &Orchestrator{sched: sched, workflows: engine, catalog: catalog, log: log}
}

// SubmitTask implements OrchestratorService.
func (o *Orchestrator) SubmitTask(ctx context.Context, req *pb.SubmitTaskRequest) (*pb.SubmitTaskResponse, error) {
	spec, err := specFromProto(req.GetTask())
	if err == nil {
		err = o.submitTenant(ctx, &spec)
	}
	if err != nil {
		return nil, toStatus(o.log, prefixField(err, "task"))
	}
	spec.Labels = withTraceparent(ctx, spec.Labels)
	out, err := o.sched.Submit(ctx, []task.Spec{spec})
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	return &pb.SubmitTaskResponse{Task: taskToProto(out[0].Task), Existing: out[0].Existing}, nil
}

// SubmitTasks implements OrchestratorService: every spec is validated before any is stored.
func (o *Orchestrator) SubmitTasks(ctx context.Context, req *pb.SubmitTasksRequest) (*pb.SubmitTasksResponse, error) {
	specs := make([]task.Spec, len(req.GetTasks()))
	for i, p := range req.GetTasks() {
		spec, err := specFromProto(p)
		if err == nil {
			err = o.submitTenant(ctx, &spec)
		}
		if err != nil {
			return nil, toStatus(o.log, prefixField(err, fmt.Sprintf("tasks[%d]", i)))
		}
		spec.Labels = withTraceparent(ctx, spec.Labels)
		specs[i] = spec
	}
	out, err := o.sched.Submit(ctx, specs)
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	resp := &pb.SubmitTasksResponse{Tasks: make([]*pb.Task, len(out))}
	for i, s := range out {
		resp.Tasks[i] = taskToProto(s.Task)
	}
	return resp, nil
}

// GetTask implements OrchestratorService.
func (o *Orchestrator) GetTask(ctx context.Context, req *pb.GetTaskRequest) (*pb.GetTaskResponse, error) {
	tenant, err := actingTenant(ctx, req.GetTenant())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	t, err := o.sched.GetFor(ctx, tenant, req.GetId())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	return &pb.GetTaskResponse{Task: taskToProto(t)}, nil
}

// ListTasks implements OrchestratorService: newest first, filtered, paginated.
func (o *Orchestrator) ListTasks(ctx context.Context, req *pb.ListTasksRequest) (*pb.ListTasksResponse, error) {
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	if _, ok := pb.TaskStatus_name[int32(req.GetStatus())]; !ok {
		return nil, toStatus(o.log, invalid("status", "unknown status %d", req.GetStatus()))
	}
	tenant, err := actingTenant(ctx, req.GetTenant())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	cursor, err := decodePageToken(taskPages, req.GetPageToken())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	f := store.Filter{Tenant: tenant, Status: task.Status(req.GetStatus()), Agent: req.GetAgent()}
	tasks, next, err := o.sched.List(ctx, f, cursor, size)
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	resp := &pb.ListTasksResponse{Tasks: make([]*pb.Task, len(tasks))}
	for i, t := range tasks {
		resp.Tasks[i] = taskToProto(t)
	}
	resp.NextPageToken = encodePageToken(taskPages, next)
	return resp, nil
}

// pages is a kind of page token: its prefix and the call that issues it.
type pages struct{ prefix, issuer string }

// The page tokens of the list calls: base64url of the prefix and the store's
// cursor, so that a token of one list is refused by another.
var (
	taskPages     = pages{pageTokenPrefix, "ListTasks"}
	workflowPages = pages{"wf1:", "ListWorkflows"}
	keyPages      = pages{"key1:", "ListAPIKeys"}
)

func encodePageToken(kind pages, cursor string) string {
	if cursor == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(kind.prefix + cursor))
}

func decodePageToken(kind pages, tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(raw), kind.prefix) || len(raw) == len(kind.prefix) {
		return "", invalid("page_token", "page_token is not one returned by %s", kind.issuer)
	}
	return strings.TrimPrefix(string(raw), kind.prefix), nil
}

// CancelTask implements OrchestratorService.
func (o *Orchestrator) CancelTask(ctx context.Context, req *pb.CancelTaskRequest) (*pb.CancelTaskResponse, error) {
	tenant, err := actingTenant(ctx, req.GetTenant())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	t, err := o.sched.CancelFor(ctx, tenant, req.GetId(), req.GetReason())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	return &pb.CancelTaskResponse{Task: taskToProto(t)}, nil
}

// WatchTask implements OrchestratorService: the status now, chunks (the current
// attempt's so far replayed first, or those after from_seq), status changes, then
// DONE with the final task.
func (o *Orchestrator) WatchTask(req *pb.WatchTaskRequest, stream pb.OrchestratorService_WatchTaskServer) error {
	ctx := stream.Context()
	tenant, err := actingTenant(ctx, req.GetTenant())
	if err != nil {
		return toStatus(o.log, err)
	}
	var cur events.Cursor
	if req.FromSeq != nil { // the watcher has the chunks up to from_seq of from_attempt
		cur = events.Cursor{Attempt: req.GetFromAttempt(), NextSeq: req.GetFromSeq() + 1}
	}
	sub, err := o.sched.WatchFor(ctx, tenant, req.GetId(), &cur)
	if err != nil {
		return toStatus(o.log, err)
	}
	resumed := cur // chunks the watcher has: never sent again, live or replayed
	for {
		ev, err := sub.Next(ctx)
		if err == nil && req.FromSeq != nil && ev.Kind == events.KindChunk && ev.Attempt == resumed.Attempt && ev.Seq < resumed.NextSeq {
			continue
		}
		if err == nil {
			if err := stream.Send(&pb.WatchTaskResponse{Event: eventToProto(ev)}); err != nil {
				sub.Close()
				return err
			}
			cur.Advance(ev)
			continue
		}
		sub.Close()
		switch {
		case errors.Is(err, events.ErrDone):
			return nil
		case errors.Is(err, events.ErrLagged):
			// Fell behind: pick up from the last event sent.
			if sub, err = o.sched.WatchFor(ctx, tenant, req.GetId(), &cur); err != nil {
				return toStatus(o.log, err)
			}
		case errors.Is(err, events.ErrShutdown):
			return toStatus(o.log, scheduler.ErrShuttingDown)
		default:
			return toStatus(o.log, err)
		}
	}
}

// ListAgents implements OrchestratorService.
func (o *Orchestrator) ListAgents(context.Context, *pb.ListAgentsRequest) (*pb.ListAgentsResponse, error) {
	agents := o.catalog.List()
	cfg := o.sched.Config()
	resp := &pb.ListAgentsResponse{Agents: make([]*pb.AgentInfo, len(agents))}
	for i, a := range agents {
		info := agentToProto(a)
		// The orchestrator's own caps (0: none), beside what the worker declared.
		info.MaxRunning = int32(cfg.AgentLimits[a.Name])
		info.ProviderMaxRunning = int32(cfg.ProviderLimits[a.Provider])
		resp.Agents[i] = info
	}
	return resp, nil
}
