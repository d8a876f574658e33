package tracing

// The orchestrator's spans of an assignment: task.queue_wait (from the task's
// enqueue to its assignment) and task.assign (from the assignment to its sending on
// the worker's stream), both children of the context stored in the task's
// traceparent label (the submit span). They are made in the worker's stream, off
// the scheduler's lock, and only for a sampled parent.

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Assignments records the spans of assignments; a nil *Assignments (tracing off)
// records none.
type Assignments struct {
	tracer trace.Tracer
}

// NewAssignments returns the recorder of assignment spans of tp; nil (off) for a
// nil tp.
func NewAssignments(tp trace.TracerProvider) *Assignments {
	if tp == nil {
		return nil
	}
	return &Assignments{tracer: tp.Tracer(instrumentation)}
}

// Assignment is what the spans of one assignment say.
type Assignment struct {
	// Traceparent is the task's stored traceparent label (the parent).
	Traceparent string
	TaskID      string
	WorkerID    string
	Attempt     int32
	// EnqueuedAt and AssignedAt bound the queue wait.
	EnqueuedAt, AssignedAt time.Time
}

// Record ends the spans of a and returns the traceparent of its task.assign span,
// for the worker; "" when nothing is recorded (off, no parent, or a parent not
// sampled), and the worker keeps the stored one.
func (r *Assignments) Record(a Assignment) string {
	if r == nil || !sampled(a.Traceparent) {
		return ""
	}
	parent := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": a.Traceparent})
	if !trace.SpanContextFromContext(parent).IsValid() {
		return ""
	}
	taskID := attrTaskID.String(a.TaskID)
	_, wait := r.tracer.Start(parent, "task.queue_wait", trace.WithTimestamp(a.EnqueuedAt), trace.WithAttributes(taskID))
	wait.End(trace.WithTimestamp(a.AssignedAt))
	_, assign := r.tracer.Start(parent, "task.assign", trace.WithTimestamp(a.AssignedAt), trace.WithAttributes(
		taskID, attrWorkerID.String(a.WorkerID), attrAttempt.Int(int(a.Attempt)),
	))
	assign.End()
	return formatTraceparent(assign.SpanContext())
}

// sampled reports, without parsing the rest, whether the traceparent's flags have
// the sampled bit: "00-<32 hex>-<16 hex>-<2 hex>".
func sampled(tp string) bool {
	const flagsLow = 54 // the flags' second hex digit holds the sampled bit
	if len(tp) < flagsLow+1 {
		return false
	}
	switch tp[flagsLow] {
	case '1', '3', '5', '7', '9', 'b', 'd', 'f':
		return true
	}
	return false
}
