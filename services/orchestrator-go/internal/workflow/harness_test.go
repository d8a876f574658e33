package workflow

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Agents of the fake worker: echo returns its input; slow does so after 1 s; fail
// fails (not retryable); block never answers (it waits to be cancelled).
var testAgents = []string{"echo", "slow", "fail", "block"}

// harness is a real scheduler and engine over a store, with an optional fake worker.
type harness struct {
	t     *testing.T
	store store.Store
	sched *scheduler.Scheduler
	eng   *Engine
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

func newHarness(t *testing.T, st store.Store) *harness {
	t.Helper()
	return newHarnessWith(t, st, 0)
}

// newHarnessWith is newHarness with the engine's StoreTimeout (0: the default).
func newHarnessWith(t *testing.T, st store.Store, storeTimeout time.Duration) *harness {
	t.Helper()
	m := telemetry.NewTestMetrics()
	catalog := workers.NewCatalog()
	for _, a := range testAgents {
		catalog.Add(task.AgentInfo{Name: a})
	}
	h := &harness{t: t, store: st}
	h.sched = scheduler.New(scheduler.Config{TickInterval: 20 * time.Millisecond}, scheduler.Deps{
		Store: st, Catalog: catalog, Hub: events.NewHub(events.DefaultOptions(), m), Metrics: m,
	})
	h.eng = New(Deps{Scheduler: h.sched, Store: st, Catalog: catalog, RetryInterval: 20 * time.Millisecond, StoreTimeout: storeTimeout})
	ctx := context.Background()
	if err := h.sched.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	h.sched.Start()
	if err := h.eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	if h.stop != nil {
		h.stop()
		h.wg.Wait()
		h.stop = nil
	}
	h.eng.Stop()
	h.sched.Shutdown()
}

// worker connects a fake worker running up to concurrency tasks at once.
func (h *harness) worker(concurrency int32) {
	h.t.Helper()
	w, err := h.sched.Connect(scheduler.Registration{Agents: agentList(), Concurrency: concurrency})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	h.sched.Credit(w, concurrency)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			msgs, closed, err := w.Outbox.Next(ctx)
			if closed || err != nil {
				return
			}
			for _, m := range msgs {
				if a := m.Assignment; a != nil {
					h.wg.Add(1)
					go func() {
						defer h.wg.Done()
						h.run(ctx, w, a)
					}()
				}
			}
		}
	}()
}

func agentList() []task.AgentInfo {
	out := make([]task.AgentInfo, len(testAgents))
	for i, a := range testAgents {
		out[i] = task.AgentInfo{Name: a}
	}
	return out
}

func (h *harness) run(ctx context.Context, w *workers.Worker, a *workers.Assignment) {
	res := scheduler.Result{TaskID: a.Task.ID, LeaseID: a.LeaseID, Output: a.Task.Input}
	if len(res.Output) == 0 {
		res.Output = json.RawMessage("null")
	}
	switch a.Task.Agent {
	case "slow":
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
	case "fail":
		res.Output, res.Failure = nil, &task.Failure{Reason: errs.ReasonAgentError, Message: "boom"}
	case "block":
		<-ctx.Done()
		return
	}
	h.sched.Complete(w, res)
	h.sched.Credit(w, 1)
}

func (h *harness) submit(spec Spec) *Workflow {
	h.t.Helper()
	wf, _, err := h.eng.Submit(context.Background(), spec)
	if err != nil {
		h.t.Fatalf("Submit: %v", err)
	}
	return wf
}

// wait polls until the workflow has finished.
func (h *harness) wait(id string) *Workflow {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		wf, err := h.eng.Get(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if wf.Status.Finished() {
			return wf
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("workflow %s did not finish", id)
	return nil
}

// waitRunning polls until the step has started.
func (h *harness) waitRunning(id, stepID string) *StepState {
	h.t.Helper()
	for range 2000 {
		wf, _ := h.eng.Get(context.Background(), id)
		for _, st := range wf.Steps {
			if st.StepID == stepID && st.Status == task.StatusRunning {
				return &st
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("step %s never ran", stepID)
	return nil
}

func (h *harness) task(id string) *task.Task {
	h.t.Helper()
	tk, err := h.store.Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return tk
}

func stepOf(wf *Workflow, id string) StepState {
	for _, st := range wf.Steps {
		if st.StepID == id {
			return st
		}
	}
	return StepState{}
}

func js(s string) json.RawMessage { return json.RawMessage(s) }

// jsonEq compares JSON texts semantically.
func jsonEq(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	g, err := decodeJSON(got)
	if err != nil {
		t.Fatalf("bad JSON %s: %v", got, err)
	}
	if !jsonEqual(g, mustDecode(t, want)) {
		t.Fatalf("got %s, want %s", got, want)
	}
}
