package api

import (
	"encoding/json"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/limits"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// defaultPriority is what an absent priority means, as the contracts declare it.
var defaultPriority = int32(limits.Field(&pb.TaskSpec{}, "priority").GetDefault())

// priorityOr is the spec's priority, or the default when it is absent (0 is a
// real priority, the lowest).
func priorityOr(p *int32) int32 {
	if p == nil {
		return defaultPriority
	}
	return *p
}

// specFromProto converts a TaskSpec whose field limits the guard has checked.
// Field names in errors are relative to the spec ("agent"); callers prefix them
// ("task.agent").
func specFromProto(p *pb.TaskSpec) (task.Spec, error) {
	if p == nil {
		return task.Spec{}, invalid("", "the task spec is required")
	}
	if strings.TrimSpace(p.GetAgent()) == "" {
		return task.Spec{}, invalid("agent", "agent is required: name an agent from ListAgents")
	}
	spec := task.Spec{
		Agent: p.GetAgent(), Tenant: p.GetTenant(), Priority: priorityOr(p.Priority),
		Labels: p.GetLabels(), IdempotencyKey: p.GetIdempotencyKey(), Timeout: p.GetTimeout().AsDuration(),
		MaxAttempts: p.GetRetry().GetMaxAttempts(), InitialBackoff: p.GetRetry().GetInitialBackoff().AsDuration(),
		MaxBackoff: p.GetRetry().GetMaxBackoff().AsDuration(),
	}
	var err error
	if spec.Input, err = valueToJSON(p.GetInput()); err != nil {
		return task.Spec{}, invalid("input", "input is not a valid JSON value: %v", err)
	}
	return spec, nil
}

func valueToJSON(v *structpb.Value) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return protojson.Marshal(v)
}

func jsonToValue(b json.RawMessage) *structpb.Value {
	if len(b) == 0 {
		return nil
	}
	v := &structpb.Value{}
	if err := protojson.Unmarshal(b, v); err != nil {
		return nil // stored JSON is produced by valueToJSON, so this does not happen
	}
	return v
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func taskToProto(t *task.Task) *pb.Task {
	if t == nil {
		return nil
	}
	p := &pb.Task{
		Id: t.ID, Agent: t.Agent, Input: jsonToValue(t.Input), Status: pb.TaskStatus(t.Status),
		Result: jsonToValue(t.Result), Error: failureToProto(t.Failure), Tenant: t.Tenant,
		Priority: t.Priority, Labels: t.Labels, IdempotencyKey: t.IdempotencyKey,
		Attempts: t.Attempts, MaxAttempts: t.MaxAttempts, Timeout: durationpb.New(t.Timeout),
		CreatedAt: timestamp(t.CreatedAt), StartedAt: timestamp(t.StartedAt), FinishedAt: timestamp(t.FinishedAt),
		WorkflowId: t.WorkflowID, StepId: t.StepID, WorkerId: t.WorkerID,
		Usage: &pb.TokenUsage{
			PromptTokens: t.Usage.PromptTokens, CompletionTokens: t.Usage.CompletionTokens,
			CachedCompletions: t.Usage.CachedCompletions,
		},
	}
	return p
}

func failureToProto(f *task.Failure) *pb.TaskError {
	if f == nil {
		return nil
	}
	return &pb.TaskError{Reason: f.Reason, Message: f.Message, Retryable: f.Retryable}
}

// failureFromProto reads a worker's TaskError; a worker that names no reason
// reports an AGENT_ERROR.
func failureFromProto(e *pb.TaskError) *task.Failure {
	reason := e.GetReason()
	if reason == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		reason = errs.ReasonAgentError
	}
	return &task.Failure{Reason: reason, Message: e.GetMessage(), Retryable: e.GetRetryable()}
}

func usageFromProto(u *pb.TokenUsage) task.Usage {
	return task.Usage{
		PromptTokens: u.GetPromptTokens(), CompletionTokens: u.GetCompletionTokens(),
		CachedCompletions: u.GetCachedCompletions(),
	}
}

var eventTypes = map[events.Kind]pb.TaskEventType{
	events.KindStatus: pb.TaskEventType_TASK_EVENT_TYPE_STATUS,
	events.KindChunk:  pb.TaskEventType_TASK_EVENT_TYPE_CHUNK,
	events.KindDone:   pb.TaskEventType_TASK_EVENT_TYPE_DONE,
}

func eventToProto(ev events.Event) *pb.TaskEvent {
	return &pb.TaskEvent{
		TaskId: ev.TaskID, Type: eventTypes[ev.Kind], Status: pb.TaskStatus(ev.Status),
		Chunk: ev.Chunk, ChunkSeq: ev.Seq, Attempt: ev.Attempt, Task: taskToProto(ev.Task),
		ChunkKind: pb.ChunkKind(ev.ChunkKind), ChunkData: ev.ChunkData,
		Time: timestamp(ev.Time),
	}
}

func agentToProto(a task.AgentInfo) *pb.AgentInfo {
	return &pb.AgentInfo{Name: a.Name, Description: a.Description, Provider: a.Provider, Model: a.Model, Tools: a.Tools}
}

func agentFromProto(a *pb.AgentInfo) task.AgentInfo {
	return task.AgentInfo{Name: a.GetName(), Description: a.GetDescription(), Provider: a.GetProvider(), Model: a.GetModel(), Tools: a.GetTools()}
}
