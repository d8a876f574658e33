package workflow

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// flakyStore fails PutWorkflow while failing is set, counting the failures.
type flakyStore struct {
	store.Store
	failing  atomic.Bool
	failures atomic.Int64
}

func (s *flakyStore) PutWorkflow(ctx context.Context, wf *store.Workflow) error {
	if s.failing.Load() {
		s.failures.Add(1)
		return errors.New("disk unavailable")
	}
	return s.Store.PutWorkflow(ctx, wf)
}

func TestFinishKeepsTheRunUntilItsFinalWriteSucceeds(t *testing.T) {
	st := &flakyStore{Store: store.NewMemory()}
	h := newHarness(t, st)
	ctx := context.Background()
	wf := h.submit(Spec{Steps: []Step{{ID: "wait", Agent: "block"}, {ID: "b", Agent: "echo"}}})
	h.waitRunning(wf.ID, "wait")

	st.failing.Store(true)
	// The cancellation is not durable: Cancel says so (a restart would resume the workflow).
	cancelled, err := h.eng.Cancel(ctx, wf.ID, "stop")
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindUnavailable || cancelled != nil {
		t.Fatalf("Cancel while the final write fails = %+v, %v; want UNAVAILABLE", cancelled, err)
	}
	// The loop retries the write every 20 ms; meanwhile Get serves the finished
	// state, not the stored running one, and the step task is left alone.
	for st.failures.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	got, err := h.eng.Get(ctx, wf.ID)
	if err != nil || got.Status != StatusCancelled {
		t.Fatalf("Get while the final write fails = %+v, %v", got, err)
	}
	if sw, _ := st.GetWorkflow(ctx, wf.ID); sw.Done {
		t.Fatal("the stored workflow is done although every write failed")
	}
	stepTask := got.Steps[0].TaskIDs[0]
	if tk := h.task(stepTask); tk.Status.Finished() {
		t.Fatalf("step task %v before the outcome is durable", tk.Status)
	}

	st.failing.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sw, err := st.GetWorkflow(ctx, wf.ID)
		if err == nil && sw.Done && h.eng.run(wf.ID) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the final write was never retried: %+v, %v", sw, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, err := h.eng.Get(ctx, wf.ID); err != nil || got.Status != StatusCancelled {
		t.Fatalf("Get after the write = %+v, %v", got, err)
	}
	if got, err := h.eng.Cancel(ctx, wf.ID, "again"); err != nil || got.Status != StatusCancelled {
		t.Fatalf("Cancel retried after the write = %+v, %v", got, err)
	}
	for h.task(stepTask).Status != task.StatusCancelled {
		if time.Now().After(deadline) {
			t.Fatalf("step task not cancelled once the outcome was durable: %v", h.task(stepTask).Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFinishRetriesAFailedFinalWriteAfterTheLastStep(t *testing.T) {
	st := &flakyStore{Store: store.NewMemory()}
	h := newHarness(t, st)
	ctx := context.Background()
	wf := h.submit(Spec{Steps: []Step{{ID: "only", Agent: "echo", Input: js(`7`)}}})
	st.failing.Store(true)
	h.worker(1) // the step finishes while every write fails
	done := h.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("Get = %+v", done)
	}
	if sw, _ := st.GetWorkflow(ctx, wf.ID); sw.Done {
		t.Fatal("stored as done although the write failed")
	}
	st.failing.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for sw, _ := st.GetWorkflow(ctx, wf.ID); !sw.Done; sw, _ = st.GetWorkflow(ctx, wf.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the final write was never retried")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.failures.Load() == 0 {
		t.Fatal("no write failed: the test did not exercise the retry")
	}
}

func mapSpec(n int, agent string) Spec {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	return Spec{Input: js(`{"items":[` + strings.Join(items, ",") + `]}`), Steps: []Step{
		{ID: "fan", Agent: agent, MapOver: "{{ input.items }}", Input: js(`"{{ item }}"`)},
	}}
}

// drain reads the watch to its end, checking the order: the workflow status
// first, step task events with a step id, one Done event per task, the final last.
func drain(t *testing.T, w *Watch, tasks int) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := w.Next(ctx)
	if err != nil || first.StepID != "" || first.Status != StatusRunning || first.Done {
		t.Fatalf("first = %+v, %v", first, err)
	}
	dones := map[string]int{}
	var last Event
	for {
		ev, err := w.Next(ctx)
		if errors.Is(err, events.ErrDone) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if last.Done {
			t.Fatalf("event after the final one: %+v", ev)
		}
		if !ev.Done && (ev.StepID != "fan" || ev.Task == nil) {
			t.Fatalf("step event = %+v", ev)
		}
		if ev.Task != nil && ev.Task.Kind == events.KindDone {
			dones[ev.Task.TaskID]++
		}
		last = ev
	}
	if !last.Done || last.Workflow == nil || last.Workflow.Status != StatusSucceeded {
		t.Fatalf("last = %+v", last)
	}
	if len(dones) != tasks {
		t.Fatalf("Done events of %d tasks, want %d", len(dones), tasks)
	}
	for id, n := range dones {
		if n != 1 {
			t.Fatalf("task %s: %d Done events", id, n)
		}
	}
	return last
}

func TestWatchOfAMapStepHoldsOneSubscriptionNotAGoroutinePerTask(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	wf := h.submit(mapSpec(1000, "echo")) // no worker yet: the 1,000 tasks wait
	h.waitRunning(wf.ID, "fan")

	before := runtime.NumGoroutine()
	var watches []*Watch
	for range 3 {
		w, err := h.eng.Watch(context.Background(), wf.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		watches = append(watches, w)
	}
	if delta := runtime.NumGoroutine() - before; delta > 20 {
		t.Fatalf("3 watches of a 1,000-element map step started %d goroutines", delta)
	}

	h.worker(64)
	for _, w := range watches {
		last := drain(t, w, 1000)
		if n := strings.Count(string(last.Workflow.Output), ","); n != 999 {
			t.Fatalf("output has %d elements", n+1)
		}
	}
}

func TestSlowWatcherNeverHoldsUpTheWorkflowAndCatchesUp(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	wf := h.submit(mapSpec(1000, "echo"))
	w, err := h.eng.Watch(context.Background(), wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Nobody reads while 3,000 step task events (running, succeeded, done) go by,
	// far beyond the watch's bounds: the workflow still finishes.
	h.worker(64)
	if done := h.wait(wf.ID); done.Status != StatusSucceeded {
		t.Fatalf("workflow = %+v", done)
	}
	// Then the watcher reads: it resubscribed from its cursor, so it still gets
	// every task's Done exactly once, and the final event last.
	drain(t, w, 1000)
}

func TestLateWatcherGetsTheStepTasksSoFar(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wf := h.submit(Spec{Mode: ModeParallel, Steps: []Step{{ID: "wait", Agent: "block"}, {ID: "quick", Agent: "echo"}}})
	h.waitRunning(wf.ID, "wait")
	for {
		got, _ := h.eng.Get(ctx, wf.ID)
		if stepOf(got, "quick").Status == task.StatusSucceeded {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	w, err := h.eng.Watch(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := h.eng.Cancel(ctx, wf.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	final := map[string]task.Status{}
	var last Event
	for {
		ev, err := w.Next(ctx)
		if errors.Is(err, events.ErrDone) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if ev.Task != nil && ev.Task.Kind == events.KindDone {
			final[ev.StepID] = ev.Task.Status
		}
		last = ev
	}
	if final["quick"] != task.StatusSucceeded || final["wait"] != task.StatusCancelled {
		t.Fatalf("step tasks' Done events = %v", final)
	}
	if !last.Done || last.Workflow.Status != StatusCancelled {
		t.Fatalf("last = %+v", last)
	}
}
