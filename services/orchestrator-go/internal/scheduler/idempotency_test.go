package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestIdempotencyKeyReturnsExistingTaskPerTenant(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	first := f.submit(task.Spec{Agent: "echo", Tenant: "acme", IdempotencyKey: "k1"})
	again, err := f.s.Submit(ctx, []task.Spec{{Agent: "echo", Tenant: "acme", IdempotencyKey: "k1"}})
	if err != nil || !again[0].Existing || again[0].Task.ID != first.ID {
		t.Fatalf("repeat = %+v, %v", again, err)
	}
	other := f.submit(task.Spec{Agent: "echo", Tenant: "globex", IdempotencyKey: "k1"})
	if other.ID == first.ID {
		t.Fatal("idempotency key shared across tenants")
	}
	batch, err := f.s.Submit(ctx, []task.Spec{
		{Agent: "echo", Tenant: "acme", IdempotencyKey: "k2"},
		{Agent: "echo", Tenant: "acme", IdempotencyKey: "k2"},
	})
	if err != nil || batch[0].Existing || !batch[1].Existing || batch[0].Task.ID != batch[1].Task.ID {
		t.Fatalf("duplicate key in one batch = %+v, %v", batch, err)
	}
}

func TestIdempotentSubmitRacingTheKeysTaskFinishingMakesNoDuplicate(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, task.AgentInfo{Name: "echo"})
	w := f.worker(1)
	st.mu.Lock()
	st.lookupGate, st.lookupEntered = make(chan struct{}), make(chan struct{})
	gate, entered := st.lookupGate, st.lookupEntered
	st.mu.Unlock()

	type outcome struct {
		out []Submitted
		err error
	}
	late := make(chan outcome, 1)
	go func() { // its store lookup finds nothing, then stalls outside the lock
		out, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo", Tenant: "acme", IdempotencyKey: "k"}})
		late <- outcome{out, err}
	}()
	<-entered
	// Meanwhile (the lock is free) the same key is submitted, run and finished.
	first := f.submit(task.Spec{Agent: "echo", Tenant: "acme", IdempotencyKey: "k"})
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: first.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)})
	if got := f.get(first.ID); got.Status != task.StatusSucceeded {
		t.Fatalf("first = %+v", got)
	}
	close(gate)
	o := <-late
	if o.err != nil || !o.out[0].Existing || o.out[0].Task.ID != first.ID || o.out[0].Task.Status != task.StatusSucceeded {
		t.Fatalf("the racing submit = %+v, %v; want the finished task %s", o.out, o.err, first.ID)
	}
	page, _, _ := f.s.List(context.Background(), store.Filter{Tenant: "acme"}, "", 10)
	if len(page) != 1 {
		t.Fatalf("%d tasks stored for one idempotency key", len(page))
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if len(f.s.idem) != 0 || len(f.s.retiredIdem) != 0 || len(f.s.lookups) != 0 {
		t.Fatalf("idempotency bookkeeping left behind: idem %d retired %d lookups %d", len(f.s.idem), len(f.s.retiredIdem), len(f.s.lookups))
	}
}

func TestConcurrentSubmitsOfOneKeyMakeOneTask(t *testing.T) {
	f := newFixture(t, Config{})
	const n = 20
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := f.s.Submit(context.Background(), []task.Spec{
				{Agent: "echo", Tenant: "acme", IdempotencyKey: "same"},
				{Agent: "echo", Tenant: "acme", IdempotencyKey: fmt.Sprintf("own-%d", i)},
			})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = out[0].Task.ID
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("one key gave tasks %s and %s", got[0], got[i])
		}
	}
	if page, _, _ := f.s.List(context.Background(), store.Filter{}, "", 100); len(page) != n+1 {
		t.Fatalf("%d tasks stored, want %d", len(page), n+1)
	}
}
