// Package task holds the orchestrator's domain model of a task: its spec, state and
// lifecycle rules. It knows nothing of protobuf or gRPC; internal/api translates.
package task

import (
	"encoding/json"
	"maps"
	"time"
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

// Reason names a failure cause; the values are taskloom.v1.ErrorReason names without
// the ERROR_REASON_ prefix.
type Reason string

// Reasons the orchestrator itself records on tasks.
const (
	ReasonAgentError       Reason = "AGENT_ERROR"
	ReasonLeaseLost        Reason = "LEASE_LOST"
	ReasonDeadlineExceeded Reason = "DEADLINE_EXCEEDED"
	ReasonCancelled        Reason = "CANCELLED"
	ReasonSkipped          Reason = "SKIPPED"
)

// Failure says why a task did not succeed.
type Failure struct {
	Reason    Reason
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

// Priority bounds. A submitted priority of 0 means "unset" and becomes DefaultPriority:
// proto3 cannot tell 0 from absent, and 5 is the documented default.
const (
	MinPriority     = 0
	MaxPriority     = 9
	DefaultPriority = 5
)
