package api

// The workflow RPCs of OrchestratorService, served by internal/workflow.

import (
	"context"
	"errors"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
)

// SubmitWorkflow implements OrchestratorService: the spec is validated (ids,
// depends_on, cycles, templates, agents) before anything is stored.
func (o *Orchestrator) SubmitWorkflow(ctx context.Context, req *pb.SubmitWorkflowRequest) (*pb.SubmitWorkflowResponse, error) {
	spec, err := workflowSpecFromProto(req.GetWorkflow())
	if err != nil {
		return nil, toStatus(o.log, prefixField(err, "workflow"))
	}
	spec.Labels = withTraceparent(ctx, spec.Labels)
	wf, existing, err := o.workflows.Submit(ctx, spec)
	if err != nil {
		return nil, toStatus(o.log, workflowError(err))
	}
	return &pb.SubmitWorkflowResponse{Workflow: workflowToProto(wf), Existing: existing}, nil
}

// workflowError qualifies the field an engine error names ("steps[1].agent" →
// "workflow.steps[1].agent"); for NOT_FOUND the field goes in the metadata, since
// only INVALID_ARGUMENT carries a BadRequest.
func workflowError(err error) error {
	e, ok := errs.As(err)
	if !ok || e.Field == "" {
		return err
	}
	err = prefixField(err, "workflow")
	if e.Kind != errs.KindInvalidArgument {
		c, _ := errs.As(err)
		md := map[string]string{"field": c.Field}
		for k, v := range c.Metadata {
			md[k] = v
		}
		c.Metadata = md
	}
	return err
}

// GetWorkflow implements OrchestratorService.
func (o *Orchestrator) GetWorkflow(ctx context.Context, req *pb.GetWorkflowRequest) (*pb.GetWorkflowResponse, error) {
	wf, err := o.workflows.Get(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	return &pb.GetWorkflowResponse{Workflow: workflowToProto(wf)}, nil
}

// CancelWorkflow implements OrchestratorService: running steps are cancelled on
// their workers; a finished workflow is returned as it is.
func (o *Orchestrator) CancelWorkflow(ctx context.Context, req *pb.CancelWorkflowRequest) (*pb.CancelWorkflowResponse, error) {
	wf, err := o.workflows.Cancel(ctx, req.GetId(), req.GetReason())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	return &pb.CancelWorkflowResponse{Workflow: workflowToProto(wf)}, nil
}

// WatchWorkflow implements OrchestratorService: the workflow status now, every
// event of every step task (with its step id), then a last event with done=true
// and the final workflow.
func (o *Orchestrator) WatchWorkflow(req *pb.WatchWorkflowRequest, stream pb.OrchestratorService_WatchWorkflowServer) error {
	ctx := stream.Context()
	w, err := o.workflows.Watch(ctx, req.GetId())
	if err != nil {
		return toStatus(o.log, err)
	}
	defer w.Close()
	for {
		ev, err := w.Next(ctx)
		switch {
		case err == nil:
			if err := stream.Send(&pb.WatchWorkflowResponse{Event: workflowEventToProto(ev)}); err != nil {
				return err
			}
		case errors.Is(err, events.ErrDone):
			return nil
		case errors.Is(err, events.ErrShutdown):
			return toStatus(o.log, scheduler.ErrShuttingDown)
		default:
			return toStatus(o.log, err)
		}
	}
}
