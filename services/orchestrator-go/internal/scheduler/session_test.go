package scheduler

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestResultSucceedsOnceAndStaleResultIsIgnored(t *testing.T) {
	f := newFixture(t, Config{})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: "stale", Output: json.RawMessage(`1`)})
	if got := f.get(tk.ID); got.Status != task.StatusRunning {
		t.Fatalf("a result with a wrong lease changed the task: %v", got.Status)
	}
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`{"x":1}`), Usage: task.Usage{PromptTokens: 3}})
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: errs.ReasonAgentError, Message: "late"}})
	got := f.get(tk.ID)
	if got.Status != task.StatusSucceeded || string(got.Result) != `{"x":1}` || got.Failure != nil ||
		got.Usage.PromptTokens != 3 || got.WorkerID != w.ID || got.FinishedAt.IsZero() || got.StartedAt.IsZero() {
		t.Fatalf("task = %+v", got)
	}
}

func TestDisconnectRequeuesAtOnce(t *testing.T) {
	f := newFixture(t, Config{})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	onlyAssignment(t, w)
	f.s.Disconnect(w)
	if got := f.get(tk.ID); got.Status != task.StatusQueued {
		t.Fatalf("after disconnect: %v", got.Status)
	}
	if a := onlyAssignment(t, f.worker(1)); a.Task.ID != tk.ID || a.Attempt != 2 {
		t.Fatalf("reassignment = %+v", a)
	}
}

func TestDrainingWorkerGetsNothing(t *testing.T) {
	f := newFixture(t, Config{})
	w := f.worker(0)
	f.s.Drain(w)
	f.s.Credit(w, 5)
	f.submit(task.Spec{Agent: "echo"})
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("draining worker got %+v", msgs)
	}
}

func TestWorkerOnlyGetsItsAgents(t *testing.T) {
	f := newFixture(t, Config{})
	w, _ := f.s.Connect(Registration{Agents: []task.AgentInfo{{Name: "summarize"}}, Concurrency: 1})
	f.s.Credit(w, 1)
	f.submit(task.Spec{Agent: "echo"})
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("worker got a task for an agent it did not register: %+v", msgs)
	}
}

func TestRegistrationBeyondTheCatalogLimitIsRefused(t *testing.T) {
	f := newFixture(t, Config{})
	f.catalog.SetLimit(2) // "echo" is known
	_, err := f.s.Connect(Registration{Agents: []task.AgentInfo{{Name: "a"}, {Name: "b"}}, Concurrency: 1})
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindResourceExhausted || e.Metadata["agent_limit"] != "2" {
		t.Fatalf("Connect over the limit = %#v", err)
	}
	if f.catalog.Has("a") || f.catalog.Has("b") {
		t.Fatal("a refused registration added agents")
	}
	if _, err := f.s.Connect(Registration{Agents: []task.AgentInfo{{Name: "echo"}, {Name: "a"}}, Concurrency: 1}); err != nil {
		t.Fatalf("Connect within the limit = %v", err)
	}
}

func TestFailedResultWriteIsRetriedAndReportedOnceDurable(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, task.AgentInfo{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo", WorkflowID: "wf", StepID: "a"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	sub, err := f.s.Watch(context.Background(), tk.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	st.set(3, false) // the result's write fails three times
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`"ok"`)})
	for {
		ev := nextEvent(t, sub)
		if ev.Kind != events.KindDone {
			continue
		}
		stored, err := st.Memory.Get(context.Background(), tk.ID)
		if err != nil || stored.Status != task.StatusSucceeded {
			t.Fatalf("Done was sent before the result was stored: %+v, %v", stored, err)
		}
		break
	}
	if err := f.s.waitDurable(); err != nil {
		t.Fatal(err)
	}
	step, ok := pollFinishedStep(f.s)
	if !ok || step.ID != tk.ID || step.Status != task.StatusSucceeded {
		t.Fatalf("finished step = %+v, %v", step, ok)
	}
	if again, ok := pollFinishedStep(f.s); ok {
		t.Fatalf("the step was reported finished twice: %+v", again)
	}
	if got := f.get(tk.ID); got.Status != task.StatusSucceeded || string(got.Result) != `"ok"` {
		t.Fatalf("task = %+v", got)
	}
	if n := testutil.ToFloat64(f.metrics.StoreCommitFailures); n != 3 {
		t.Fatalf("commit failures metric = %v, want 3", n)
	}
	f.s.mu.Lock()
	live := len(f.s.live)
	f.s.mu.Unlock()
	if live != 0 {
		t.Fatalf("%d tasks still live after their result was stored", live)
	}
}

func TestAWorkerHoldsAtMostTheConcurrencyTheProtoAllows(t *testing.T) {
	// One limit, stated on taskloom.v1.Register.concurrency; the Python worker's setting
	// reads it too (python/agents/tests/test_concurrency_limit.py).
	if MaxWorkerConcurrency <= 0 || DefaultConfig().MaxCredits != MaxWorkerConcurrency {
		t.Fatalf("MaxWorkerConcurrency %d, default MaxCredits %d", MaxWorkerConcurrency, DefaultConfig().MaxCredits)
	}
	f := newFixture(t, Config{})
	w := f.worker(1)
	f.s.Credit(w, int32(MaxWorkerConcurrency))
	f.s.Credit(w, 10)
	if w.Credits != MaxWorkerConcurrency {
		t.Fatalf("credits %d, want the cap %d", w.Credits, MaxWorkerConcurrency)
	}
}
