package workflow

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

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

func TestWatchSeesStatusStepEventsAndDone(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeSequential, Steps: []Step{{ID: "wait", Agent: "block"}, {ID: "b", Agent: "echo"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := h.eng.Watch(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Next(ctx)
	if err != nil || first.Status != StatusRunning || first.StepID != "" {
		t.Fatalf("first = %+v, %v", first, err)
	}
	h.waitRunning(wf.ID, "wait")
	if _, err := h.eng.Cancel(ctx, wf.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	var stepDone, last Event
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			if err != events.ErrDone {
				t.Fatalf("Next: %v", err)
			}
			break
		}
		if ev.StepID == "wait" && ev.Task.Kind == events.KindDone {
			stepDone = ev
		}
		last = ev
	}
	if stepDone.Task == nil || stepDone.Task.Status != task.StatusCancelled {
		t.Fatalf("no DONE event of the step task: %+v", stepDone)
	}
	if !last.Done || last.Workflow == nil || last.Workflow.Status != StatusCancelled {
		t.Fatalf("last = %+v", last)
	}

	// A finished workflow: its status, then Done.
	w2, err := h.eng.Watch(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if ev, _ := w2.Next(ctx); ev.Status != StatusCancelled || ev.Done {
		t.Fatalf("first = %+v", ev)
	}
	if ev, _ := w2.Next(ctx); !ev.Done || ev.Workflow.Status != StatusCancelled {
		t.Fatalf("second = %+v", ev)
	}
}
