package api

import (
	"context"
	"maps"

	"google.golang.org/grpc/metadata"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// withTraceparent copies the call's W3C `traceparent` gRPC metadata into the task's
// labels when the spec does not carry one already (the gateway sets the label; a
// direct gRPC client sends the metadata), so logs about the task carry its trace id.
func withTraceparent(ctx context.Context, labels map[string]string) map[string]string {
	if _, ok := labels[task.LabelTraceparent]; ok {
		return labels
	}
	vals := metadata.ValueFromIncomingContext(ctx, task.LabelTraceparent)
	if len(vals) == 0 || task.TraceIDFromParent(vals[0]) == "" {
		return labels
	}
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[task.LabelTraceparent] = vals[0]
	return out
}
