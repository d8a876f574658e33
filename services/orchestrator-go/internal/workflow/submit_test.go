package workflow

import (
	"context"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

func TestIdempotencyKeyPerTenant(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	spec := Spec{Tenant: "acme", IdempotencyKey: "run-1", Steps: []Step{{ID: "a", Agent: "echo"}}}
	first, existing, err := h.eng.Submit(context.Background(), spec)
	if err != nil || existing {
		t.Fatalf("first = %v, %v", existing, err)
	}
	again, existing, err := h.eng.Submit(context.Background(), spec)
	if err != nil || !existing || again.ID != first.ID {
		t.Fatalf("again = %+v, %v, %v", again, existing, err)
	}
	spec.Tenant = "globex"
	other, existing, err := h.eng.Submit(context.Background(), spec)
	if err != nil || existing || other.ID == first.ID {
		t.Fatalf("other tenant = %+v, %v, %v", other, existing, err)
	}
}
