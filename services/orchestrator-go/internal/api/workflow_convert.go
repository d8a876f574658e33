package api

// Translation between the workflow messages of taskloom.v1 and internal/workflow.

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

// workflowSpecFromProto checks the enums of a WorkflowSpec whose field limits the
// guard has checked, and converts it; the engine validates the rest (ids,
// dependencies, templates, agents). Fields are relative to the spec.
func workflowSpecFromProto(p *pb.WorkflowSpec) (workflow.Spec, error) {
	if p == nil {
		return workflow.Spec{}, invalid("", "the workflow spec is required")
	}
	if _, ok := pb.WorkflowMode_name[int32(p.GetMode())]; !ok {
		return workflow.Spec{}, invalid("mode", "unknown workflow mode %d", p.GetMode())
	}
	if _, ok := pb.FailurePolicy_name[int32(p.GetFailurePolicy())]; !ok {
		return workflow.Spec{}, invalid("failure_policy", "unknown failure policy %d", p.GetFailurePolicy())
	}
	spec := workflow.Spec{
		Name: p.GetName(), Mode: workflow.Mode(p.GetMode()), FailurePolicy: workflow.FailurePolicy(p.GetFailurePolicy()),
		Tenant: p.GetTenant(), IdempotencyKey: p.GetIdempotencyKey(), Labels: p.GetLabels(),
		Steps: make([]workflow.Step, len(p.GetSteps())),
	}
	var err error
	if spec.Input, err = valueToJSON(p.GetInput()); err != nil {
		return workflow.Spec{}, invalid("input", "input is not a valid JSON value: %v", err)
	}
	for i, s := range p.GetSteps() {
		if spec.Steps[i], err = stepFromProto(s); err != nil {
			return workflow.Spec{}, prefixField(err, fmt.Sprintf("steps[%d]", i))
		}
	}
	return spec, nil
}

func stepFromProto(p *pb.Step) (workflow.Step, error) {
	s := workflow.Step{
		ID: p.GetId(), Agent: p.GetAgent(), DependsOn: p.GetDependsOn(), MapOver: p.GetMapOver(),
		ExitIf: p.GetExitIf(), Priority: priorityOr(p.Priority), Timeout: p.GetTimeout().AsDuration(),
		MaxAttempts: p.GetRetry().GetMaxAttempts(), InitialBackoff: p.GetRetry().GetInitialBackoff().AsDuration(),
		MaxBackoff: p.GetRetry().GetMaxBackoff().AsDuration(),
	}
	var err error
	if s.Input, err = valueToJSON(p.GetInput()); err != nil {
		return s, invalid("input", "input is not a valid JSON value: %v", err)
	}
	return s, nil
}

func workflowSpecToProto(s workflow.Spec) *pb.WorkflowSpec {
	p := &pb.WorkflowSpec{
		Name: s.Name, Mode: pb.WorkflowMode(s.Mode), Input: jsonToValue(s.Input),
		FailurePolicy: pb.FailurePolicy(s.FailurePolicy), Tenant: s.Tenant, IdempotencyKey: s.IdempotencyKey,
		Labels: s.Labels, Steps: make([]*pb.Step, len(s.Steps)),
	}
	for i, st := range s.Steps {
		ps := &pb.Step{
			Id: st.ID, Agent: st.Agent, Input: jsonToValue(st.Input), DependsOn: st.DependsOn,
			MapOver: st.MapOver, ExitIf: st.ExitIf, Priority: proto.Int32(st.Priority),
		}
		if st.Timeout > 0 {
			ps.Timeout = durationpb.New(st.Timeout)
		}
		if st.MaxAttempts > 0 || st.InitialBackoff > 0 || st.MaxBackoff > 0 {
			ps.Retry = &pb.RetryPolicy{MaxAttempts: st.MaxAttempts}
			if st.InitialBackoff > 0 {
				ps.Retry.InitialBackoff = durationpb.New(st.InitialBackoff)
			}
			if st.MaxBackoff > 0 {
				ps.Retry.MaxBackoff = durationpb.New(st.MaxBackoff)
			}
		}
		p.Steps[i] = ps
	}
	return p
}

func workflowToProto(w *workflow.Workflow) *pb.Workflow {
	if w == nil {
		return nil
	}
	p := &pb.Workflow{
		Id: w.ID, Spec: workflowSpecToProto(w.Spec), Status: pb.WorkflowStatus(w.Status),
		Output: jsonToValue(w.Output), Error: failureToProto(w.Failure),
		CreatedAt: timestamp(w.CreatedAt), FinishedAt: timestamp(w.FinishedAt), ExitedAtStep: w.ExitedAtStep,
		Steps: make([]*pb.StepState, len(w.Steps)),
	}
	for i, s := range w.Steps {
		p.Steps[i] = &pb.StepState{
			StepId: s.StepID, Status: pb.TaskStatus(s.Status), TaskIds: s.TaskIDs,
			Output: jsonToValue(s.Output), Error: failureToProto(s.Failure),
			StartedAt: timestamp(s.StartedAt), FinishedAt: timestamp(s.FinishedAt),
		}
	}
	return p
}

func workflowEventToProto(ev workflow.Event) *pb.WorkflowEvent {
	p := &pb.WorkflowEvent{
		WorkflowId: ev.WorkflowID, StepId: ev.StepID, Status: pb.WorkflowStatus(ev.Status),
		Workflow: workflowToProto(ev.Workflow), Done: ev.Done, Time: timestamp(ev.Time),
	}
	if ev.Task != nil {
		p.TaskEvent = eventToProto(*ev.Task)
	}
	return p
}
