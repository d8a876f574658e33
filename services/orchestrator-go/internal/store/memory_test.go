package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestMemoryListNewestFirstWithPagesAndFilters(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	for i := range 5 {
		agent := "a"
		if i%2 == 1 {
			agent = "b"
		}
		if err := m.Put(ctx, &task.Task{ID: fmt.Sprintf("t%d", i), Agent: agent, Status: task.StatusQueued}); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := m.List(ctx, Filter{}, "", 2)
	if err != nil || len(page) != 2 || page[0].ID != "t4" || page[1].ID != "t3" || next == "" {
		t.Fatalf("first page = %v next=%q err=%v", ids(page), next, err)
	}
	page, next, _ = m.List(ctx, Filter{}, next, 2)
	if ids(page) != "t2,t1," || next == "" {
		t.Fatalf("second page = %v next=%q", ids(page), next)
	}
	page, next, _ = m.List(ctx, Filter{}, next, 2)
	if ids(page) != "t0," || next != "" {
		t.Fatalf("last page = %v next=%q", ids(page), next)
	}
	page, _, _ = m.List(ctx, Filter{Agent: "b"}, "", 10)
	if ids(page) != "t3,t1," {
		t.Fatalf("agent filter = %v", ids(page))
	}
	if _, _, err := m.List(ctx, Filter{}, "nope", 2); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor err = %v", err)
	}
}

func TestMemoryCopiesInAndOut(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	orig := &task.Task{ID: "x", Labels: map[string]string{"k": "v"}, Tenant: "t", IdempotencyKey: "key"}
	_ = m.Put(ctx, orig)
	orig.Labels["k"] = "changed"
	got, _ := m.Get(ctx, "x")
	if got.Labels["k"] != "v" {
		t.Fatal("store shares the caller's map")
	}
	got.Status = task.StatusFailed
	again, _ := m.FindByIdempotencyKey(ctx, "t", "key")
	if again.Status != task.StatusUnspecified {
		t.Fatal("store shares its task with the caller")
	}
	if _, err := m.FindByIdempotencyKey(ctx, "other", "key"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("idempotency key leaked across tenants: %v", err)
	}
}

func ids(ts []*task.Task) string {
	s := ""
	for _, t := range ts {
		s += t.ID + ","
	}
	return s
}
