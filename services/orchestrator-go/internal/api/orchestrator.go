package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
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

// defaultPageSize is what a page size of 0 means, as the contracts declare it.
var defaultPageSize = int(limits.Field(&pb.ListTasksRequest{}, "page_size").GetDefault())

// Orchestrator implements taskloom.v1.OrchestratorService.
type Orchestrator struct {
	pb.UnimplementedOrchestratorServiceServer
	sched   *scheduler.Scheduler
	catalog *workers.Catalog
	log     *slog.Logger
	// workflows serves the workflow RPCs (workflow.go).
	workflows *workflow.Engine
}

// NewOrchestrator returns the OrchestratorService handlers.
func NewOrchestrator(sched *scheduler.Scheduler, engine *workflow.Engine, catalog *workers.Catalog, log *slog.Logger) *Orchestrator {
	return &Orchestrator{sched: sched, workflows: engine, catalog: catalog, log: log}
}

// SubmitTask implements OrchestratorService.
func (o *Orchestrator) SubmitTask(ctx context.Context, req *pb.SubmitTaskRequest) (*pb.SubmitTaskResponse, error) {
	spec, err := specFromProto(req.GetTask())
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
	t, err := o.sched.Get(ctx, req.GetId())
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
	cursor, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	f := store.Filter{Tenant: req.GetTenant(), Status: task.Status(req.GetStatus()), Agent: req.GetAgent()}
	tasks, next, err := o.sched.List(ctx, f, cursor, size)
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	resp := &pb.ListTasksResponse{Tasks: make([]*pb.Task, len(tasks))}
	for i, t := range tasks {
		resp.Tasks[i] = taskToProto(t)
	}
	if next != "" {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + next))
	}
	return resp, nil
}

func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(raw), pageTokenPrefix) || len(raw) == len(pageTokenPrefix) {
		return "", invalid("page_token", "page_token is not one returned by ListTasks")
	}
	return strings.TrimPrefix(string(raw), pageTokenPrefix), nil
}

// CancelTask implements OrchestratorService.
func (o *Orchestrator) CancelTask(ctx context.Context, req *pb.CancelTaskRequest) (*pb.CancelTaskResponse, error) {
	t, err := o.sched.Cancel(ctx, req.GetId(), req.GetReason())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	return &pb.CancelTaskResponse{Task: taskToProto(t)}, nil
}

// WatchTask implements OrchestratorService: the status now, chunks (the current
// attempt's so far replayed first), status changes, then DONE with the final task.
func (o *Orchestrator) WatchTask(req *pb.WatchTaskRequest, stream pb.OrchestratorService_WatchTaskServer) error {
	ctx := stream.Context()
	var cur events.Cursor
	sub, err := o.sched.Watch(ctx, req.GetId(), nil)
	if err != nil {
		return toStatus(o.log, err)
	}
	for {
		ev, err := sub.Next(ctx)
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
			if sub, err = o.sched.Watch(ctx, req.GetId(), &cur); err != nil {
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
	resp := &pb.ListAgentsResponse{Agents: make([]*pb.AgentInfo, len(agents))}
	for i, a := range agents {
		resp.Agents[i] = agentToProto(a)
	}
	return resp, nil
}
