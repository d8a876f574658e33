package api

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestTraceparentMetadataBecomesLabelUnlessSet(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", tp))
	if got := withTraceparent(ctx, nil); got["traceparent"] != tp {
		t.Fatalf("labels = %v", got)
	}
	own := map[string]string{"traceparent": "00-11111111111111111111111111111111-00f067aa0ba902b7-01"}
	if got := withTraceparent(ctx, own); got["traceparent"] != own["traceparent"] {
		t.Fatalf("the label was overwritten: %v", got)
	}
	bad := metadata.NewIncomingContext(context.Background(), metadata.Pairs("traceparent", "garbage"))
	if got := withTraceparent(bad, map[string]string{"a": "b"}); len(got) != 1 {
		t.Fatalf("a malformed traceparent was copied: %v", got)
	}
}
