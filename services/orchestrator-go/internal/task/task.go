// Package task holds the orchestrator's domain model of a task: its spec, state and
// lifecycle rules. It knows nothing of protobuf or gRPC; internal/api translates.
package task

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
)

// Status is where a task is in its lifecycle.
type Status int

// The values match taskloom.v1.TaskStatus so translation is a cast, but nothing here
// depends on that package.
const (
	StatusUnspecified Status = iota
	StatusQueued
	StatusRunning
	StatusSucceeded
	StatusFailed
	StatusCancelled
	StatusTimedOut
)

var statusNames = map[Status]string{
	StatusUnspecified: "unspecified",
	StatusQueued:      "queued",
	StatusRunning:     "running",
	StatusSucceeded:   "succeeded",
	StatusFailed:      "failed",
	StatusCancelled:   "cancelled",
	StatusTimedOut:    "timed_out",
}

// String is the lower-case name used in logs and metric labels.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "unknown"
}

// Finished reports whether the status is terminal: the task never changes again.
func (s Status) Finished() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled || s == StatusTimedOut
}

// Failure says why a task did not succeed.
type Failure struct {
	Reason    errs.Reason
	Message   string
	Retryable bool
}

// Usage counts LLM tokens spent by one task.
type Usage struct {
	PromptTokens      int64
	CompletionTokens  int64
	CachedCompletions int64
}

// Task is one unit of agent work and its current state. Input and Result hold JSON
// (any JSON value), so a durable store can write them as they are.
//
// Input, Result, Labels and Failure are never modified in place once set: a new
// value replaces the old one. That is what lets Snapshot share them.
type Task struct {
	ID             string
	Agent          string
	Input          json.RawMessage
	Status         Status
	Result         json.RawMessage
	Failure        *Failure
	Tenant         string
	Priority       int32
	Labels         map[string]string
	IdempotencyKey string
	Attempts       int32
	MaxAttempts    int32
	Timeout        time.Duration
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	CreatedAt      time.Time
	StartedAt      time.Time
	FinishedAt     time.Time
	WorkflowID     string
	StepID         string
	Usage          Usage
	WorkerID       string
	// NotBefore is set on a queued task backing off after a failed attempt: its
	// next attempt may not start before it (kept across restarts).
	NotBefore time.Time
	// Fingerprint identifies the spec a task with an idempotency key was submitted
	// with (Spec.Fingerprint), so that the key's reuse with another request is told
	// from a retry. Zero: unknown (no key, or stored by an older version).
	Fingerprint Fingerprint
}

// Clone returns a deep copy, so stores and callers never share mutable state.
func (t *Task) Clone() *Task {
	if t == nil {
		return nil
	}
	c := *t
	c.Input = cloneBytes(t.Input)
	c.Result = cloneBytes(t.Result)
	c.Labels = maps.Clone(t.Labels)
	if t.Failure != nil {
		f := *t.Failure
		c.Failure = &f
	}
	return &c
}

// Snapshot returns a copy of t's fields that shares Input, Result, Labels and
// Failure with t (they are never modified in place). It costs one allocation, so the
// scheduler takes one per state change for the store and the worker stream; both
// only read it. Callers that may modify what they get use Clone.
func (t *Task) Snapshot() *Task {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func cloneBytes(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage(nil), b...)
}

// Spec is what a client submits; zero values mean "the orchestrator's default".
type Spec struct {
	Agent          string
	Input          json.RawMessage
	Tenant         string
	Priority       int32
	Labels         map[string]string
	IdempotencyKey string
	Timeout        time.Duration
	MaxAttempts    int32
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// WorkflowID and StepID are set by the workflow engine on a step's tasks.
	WorkflowID string
	StepID     string
}

// Priority bounds: the queue keeps one level per priority, so they are constants
// here; a test holds them equal to the range taskloom.v1.TaskSpec.priority declares
// (where its default, for an absent priority, is stated too). 0 is a real priority.
const (
	MinPriority = 0
	MaxPriority = 9
)

// AgentInfo describes an agent that workers can run: an entry of the agent
// catalog, which the store keeps (as JSON, hence the tags) so that tasks for known
// agents are accepted after a restart before any worker reconnects.
type AgentInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Provider    string   `json:"provider,omitempty"`
	Model       string   `json:"model,omitempty"`
	Tools       []string `json:"tools,omitempty"`
}

// Equal reports whether a and b describe the agent alike.
func (a AgentInfo) Equal(b AgentInfo) bool {
	return a.Name == b.Name && a.Description == b.Description && a.Provider == b.Provider &&
		a.Model == b.Model && slices.Equal(a.Tools, b.Tools)
}
