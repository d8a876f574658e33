package scheduler

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

func TestWorkerGetsHighestPriorityFirst(t *testing.T) {
	f := newFixture(t, Config{})
	low := f.submit(task.Spec{Agent: "echo", Priority: 1})
	high := f.submit(task.Spec{Agent: "echo", Priority: 9})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	if a.Task.ID != high.ID || a.Attempt != 1 || a.Task.Status != task.StatusRunning || a.Task.Attempts != 1 {
		t.Fatalf("assignment = %+v", a)
	}
	if !a.Deadline.Equal(f.now.Add(DefaultConfig().DefaultTimeout)) {
		t.Fatalf("deadline = %v", a.Deadline)
	}
	if f.get(low.ID).Status != task.StatusQueued {
		t.Fatal("a worker with one credit got two tasks")
	}
	f.s.Complete(w, Result{TaskID: high.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`"ok"`)})
	f.s.Credit(w, 1)
	if next := onlyAssignment(t, w); next.Task.ID != low.ID {
		t.Fatalf("second assignment = %s, want %s", next.Task.ID, low.ID)
	}
}

// assignments returns the ids of the tasks assigned to w so far (not blocking).
func assignments(t *testing.T, w *workers.Worker) []*workers.Assignment {
	t.Helper()
	var out []*workers.Assignment
	for _, m := range pending(t, w) {
		if m.Assignment != nil {
			out = append(out, m.Assignment)
		}
	}
	return out
}

func TestFairShareABusyTenantCannotStarveAnother(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	specs := make([]task.Spec, 500)
	for i := range specs {
		specs[i] = task.Spec{Agent: "echo", Tenant: "busy"}
	}
	if _, err := f.s.Submit(ctx, specs); err != nil {
		t.Fatal(err)
	}
	lonely := f.submit(task.Spec{Agent: "echo", Tenant: "lonely"})
	w := f.worker(2)
	got := assignments(t, w)
	if len(got) != 2 || (got[0].Task.ID != lonely.ID && got[1].Task.ID != lonely.ID) {
		ids := []string{}
		for _, a := range got {
			ids = append(ids, a.Task.Tenant)
		}
		t.Fatalf("the lonely tenant's only task was not among the first 2 assignments: %v", ids)
	}
}

func TestAgentLimitCapsRunningTasksAndFreesOnCompletion(t *testing.T) {
	f := newFixture(t, Config{AgentLimits: map[string]int{"echo": 2}})
	for range 4 {
		f.submit(task.Spec{Agent: "echo"})
	}
	w1, w2 := f.worker(5), f.worker(5)
	a := append(assignments(t, w1), assignments(t, w2)...)
	if len(a) != 2 {
		t.Fatalf("%d tasks of a capped agent run at once, limit 2", len(a))
	}
	// Finishing one frees a slot for any worker, without waiting for a tick.
	first := a[0]
	owner := w1
	if first.Task.WorkerID == w2.ID {
		owner = w2
	}
	f.s.Complete(owner, Result{TaskID: first.Task.ID, LeaseID: first.LeaseID, Output: json.RawMessage(`1`)})
	if more := append(assignments(t, w1), assignments(t, w2)...); len(more) != 1 {
		t.Fatalf("after one finished, %d new assignments, want 1", len(more))
	}
}

func TestProviderLimitSpansTheProvidersAgents(t *testing.T) {
	f := newFixtureWith(t, Config{ProviderLimits: map[string]int{"simulated": 3}}, Deps{Store: store.NewMemory()},
		task.AgentInfo{Name: "writer", Provider: "simulated"}, task.AgentInfo{Name: "coder", Provider: "simulated"},
		task.AgentInfo{Name: "local", Provider: "ollama"})
	for _, agent := range []string{"writer", "writer", "coder", "coder", "local", "local"} {
		f.submit(task.Spec{Agent: agent})
	}
	w, err := f.s.Connect(Registration{Agents: []task.AgentInfo{{Name: "writer", Provider: "simulated"}, {Name: "coder", Provider: "simulated"}, {Name: "local", Provider: "ollama"}}, Concurrency: 10})
	if err != nil {
		t.Fatal(err)
	}
	f.s.Credit(w, 10)
	byProvider := map[string]int{}
	for _, a := range assignments(t, w) {
		byProvider[f.catalog.Provider(a.Task.Agent)]++
	}
	if byProvider["simulated"] != 3 || byProvider["ollama"] != 2 {
		t.Fatalf("running by provider = %v, want simulated 3 (its limit), ollama 2", byProvider)
	}
}

func TestRunningStateWrittenOnlyOnceAnAttemptOutlivesATick(t *testing.T) {
	f := newFixture(t, Config{})
	short := f.submit(task.Spec{Agent: "echo"})
	long := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(2)
	got := assignments(t, w)
	stored := func(id string) *task.Task {
		t.Helper()
		if err := f.s.waitDurable(); err != nil {
			t.Fatal(err)
		}
		st, err := f.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	f.s.Complete(w, Result{TaskID: short.ID, LeaseID: got[0].LeaseID})
	f.s.tick()
	if st := stored(long.ID); st.Status != task.StatusQueued || st.Attempts != 0 {
		t.Fatalf("after one tick the store has %v attempts %d; want queued 0 (not yet written)", st.Status, st.Attempts)
	}
	f.s.tick()
	if st := stored(long.ID); st.Status != task.StatusRunning || st.Attempts != 1 || st.WorkerID != w.ID {
		t.Fatalf("after two ticks the store has %v attempts %d worker %q; want running 1 %q", st.Status, st.Attempts, st.WorkerID, w.ID)
	}
	if st := stored(short.ID); st.Status != task.StatusSucceeded || st.Attempts != 1 || st.StartedAt.IsZero() {
		t.Fatalf("short task stored as %v attempts %d started %v; want succeeded 1 with a start time", st.Status, st.Attempts, st.StartedAt)
	}
}
