package workflow

import (
	"context"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
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

func TestAKeyReusedWithAnotherRequestIsAConflictAndCreatesNothing(t *testing.T) {
	st := store.NewMemory()
	h := newHarness(t, st)
	ctx := context.Background()
	spec := Spec{Tenant: "acme", IdempotencyKey: "run-1", Input: js(`{"a": 1}`), Labels: map[string]string{"traceparent": "first"},
		Steps: []Step{{ID: "a", Agent: "echo", Input: js(`"{{ input.a }}"`)}}}
	first, _, err := h.eng.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The same request again, spaced differently and with its own trace: a retry.
	retry := spec
	retry.Input, retry.Labels = js(`{ "a" : 1 }`), map[string]string{"traceparent": "second"}
	if again, existing, err := h.eng.Submit(ctx, retry); err != nil || !existing || again.ID != first.ID {
		t.Fatalf("retry = %+v, %v, %v", again, existing, err)
	}
	other := spec
	other.Steps = []Step{{ID: "a", Agent: "echo", Input: js(`"{{ input.a }}"`), Priority: 7}}
	_, _, err = h.eng.Submit(ctx, other)
	e, ok := errs.As(err)
	if !ok || e.Kind != errs.KindAlreadyExists || e.Reason != errs.ReasonIdempotencyConflict || e.Metadata["existing_id"] != first.ID {
		t.Fatalf("another request under the key = %v", err)
	}
	if wfs, err := st.UnfinishedWorkflows(ctx); err != nil || len(wfs) != 1 {
		t.Fatalf("workflows stored = %d, %v (want only the first)", len(wfs), err)
	}
}
