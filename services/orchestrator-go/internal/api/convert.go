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
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Limits on a submitted spec. Tenants and idempotency keys become store keys
// (bbolt refuses keys over 32 KiB), so they are bounded well below that.
const (
	maxAttemptsLimit     = 100
	maxAgentNameLen      = 128
	maxTenantLen         = 128
	maxIdempotencyKeyLen = 256
	maxLabels            = 64
	maxLabelKeyLen       = 256
	maxLabelValueLen     = 4096
)

// checkOwnership bounds the tenant, idempotency key and labels of a task or
// workflow spec (sizes in bytes).
func checkOwnership(tenant, idempotencyKey string, labels map[string]string) error {
	switch {
	case len(tenant) > maxTenantLen:
		return invalid("tenant", "tenant is longer than %d bytes (%d)", maxTenantLen, len(tenant))
	case len(idempotencyKey) > maxIdempotencyKeyLen:
		return invalid("idempotency_key", "idempotency_key is longer than %d bytes (%d)", maxIdempotencyKeyLen, len(idempotencyKey))
	case len(labels) > maxLabels:
		return invalid("labels", "at most %d labels are allowed; got %d", maxLabels, len(labels))
	}
	for k, v := range labels {
		switch {
		case len(k) > maxLabelKeyLen:
			return invalid("labels", "label key %.32q... is longer than %d bytes", k, maxLabelKeyLen)
		case len(v) > maxLabelValueLen:
			return invalid("labels", "the value of label %q is longer than %d bytes", k, maxLabelValueLen)
		}
	}
	return nil
}

// specFromProto validates a TaskSpec and converts it. Field names in errors are
// relative to the spec ("agent"); callers prefix them ("task.agent").
func specFromProto(p *pb.TaskSpec) (task.Spec, error) {
	if p == nil {
		return task.Spec{}, invalid("", "the task spec is required")
	}
	spec := task.Spec{
		Agent: p.GetAgent(), Tenant: p.GetTenant(), Priority: p.GetPriority(),
		Labels: p.GetLabels(), IdempotencyKey: p.GetIdempotencyKey(),
	}
	switch {
	case strings.TrimSpace(spec.Agent) == "":
		return task.Spec{}, invalid("agent", "agent is required: name an agent from ListAgents")
	case len(spec.Agent) > maxAgentNameLen:
		return task.Spec{}, invalid("agent", "agent name is longer than %d characters", maxAgentNameLen)
	case spec.Priority < task.MinPriority || spec.Priority > task.MaxPriority:
		return task.Spec{}, invalid("priority", "priority must be between %d and %d (0 means the default, %d); got %d",
			task.MinPriority, task.MaxPriority, task.DefaultPriority, spec.Priority)
	}
	if err := checkOwnership(spec.Tenant, spec.IdempotencyKey, spec.Labels); err != nil {
		return task.Spec{}, err
	}
	var err error
	if spec.Input, err = valueToJSON(p.GetInput()); err != nil {
		return task.Spec{}, invalid("input", "input is not a valid JSON value: %v", err)
	}
	if spec.Timeout, err = durationFromProto(p.GetTimeout(), "timeout"); err != nil {
		return task.Spec{}, err
	}
	if r := p.GetRetry(); r != nil {
		if r.GetMaxAttempts() < 0 || r.GetMaxAttempts() > maxAttemptsLimit {
			return task.Spec{}, invalid("retry.max_attempts", "retry.max_attempts must be between 0 (default) and %d; got %d", maxAttemptsLimit, r.GetMaxAttempts())
		}
		spec.MaxAttempts = r.GetMaxAttempts()
		if spec.InitialBackoff, err = durationFromProto(r.GetInitialBackoff(), "retry.initial_backoff"); err != nil {
			return task.Spec{}, err
		}
		if spec.MaxBackoff, err = durationFromProto(r.GetMaxBackoff(), "retry.max_backoff"); err != nil {
			return task.Spec{}, err
		}
	}
	return spec, nil
}

// durationFromProto accepts an unset or non-negative duration (unset and 0 mean default).
func durationFromProto(d *durationpb.Duration, field string) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid(field, "%s is not a valid duration: %v", field, err)
	}
	if v := d.AsDuration(); v >= 0 {
		return v, nil
	}
	return 0, invalid(field, "%s must not be negative", field)
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
	return &pb.TaskError{Reason: reasonToProto(f.Reason), Message: f.Message, Retryable: f.Retryable}
}

const reasonPrefix = "ERROR_REASON_"

func reasonToProto(r task.Reason) pb.ErrorReason {
	return pb.ErrorReason(pb.ErrorReason_value[reasonPrefix+string(r)])
}

func failureFromProto(e *pb.TaskError) *task.Failure {
	reason := task.Reason(strings.TrimPrefix(e.GetReason().String(), reasonPrefix))
	if e.GetReason() == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
		reason = task.ReasonAgentError
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
		Time: timestamp(ev.Time),
	}
}

func agentToProto(a workers.Agent) *pb.AgentInfo {
	return &pb.AgentInfo{Name: a.Name, Description: a.Description, Provider: a.Provider, Model: a.Model, Tools: a.Tools}
}

func agentFromProto(a *pb.AgentInfo) workers.Agent {
	return workers.Agent{Name: a.GetName(), Description: a.GetDescription(), Provider: a.GetProvider(), Model: a.GetModel(), Tools: a.GetTools()}
}
