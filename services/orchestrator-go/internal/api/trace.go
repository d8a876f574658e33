package api

import (
	"context"
	"maps"

	"google.golang.org/grpc/metadata"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/tracing"
)

// withTraceparent sets the task's `traceparent` label, the one stored copy of its
// trace context, which the assignment spans hang under and logs read the trace id
// from. Tracing on, it is the submit call's server span (replacing any label the
// spec carried: that span is already the child of the call's metadata). Off, the
// call's W3C `traceparent` gRPC metadata is copied when the spec carries no label.
func withTraceparent(ctx context.Context, labels map[string]string) map[string]string {
	tp := tracing.Traceparent(ctx)
	if tp == "" {
		if _, ok := labels[task.LabelTraceparent]; ok {
			return labels
		}
		vals := metadata.ValueFromIncomingContext(ctx, task.LabelTraceparent)
		if len(vals) == 0 || task.TraceIDFromParent(vals[0]) == "" {
			return labels
		}
		tp = vals[0]
	}
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[task.LabelTraceparent] = tp
	return out
}
