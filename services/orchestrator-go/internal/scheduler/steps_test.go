package scheduler

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/storetest"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// heldFixture is a scheduler holding step results, with one step task running on
// worker w, completed: its result is held.
type heldFixture struct {
	*fixture
	st   *storetest.Recording
	step *task.Task
	held FinishedStep
}

func newHeldFixture(t *testing.T) *heldFixture {
	t.Helper()
	st := storetest.NewRecording()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, task.AgentInfo{Name: "echo"})
	f.s.HoldStepResults()
	step := f.submit(task.Spec{Agent: "echo", WorkflowID: "wf-1", StepID: "a"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: a.Task.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`"out"`)})
	held, ok := pollFinishedStepHeld(f.s)
	if !ok {
		t.Fatal("the succeeded step was not handed over before its result was written")
	}
	return &heldFixture{fixture: f, st: st, step: step, held: held}
}

func pollFinishedStepHeld(s *Scheduler) (FinishedStep, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fs, err := s.NextFinishedStep(ctx)
	return fs, err == nil
}

func (h *heldFixture) stored(id string) *task.Task {
	h.t.Helper()
	if err := h.s.waitDurable(); err != nil {
		h.t.Fatal(err)
	}
	t, err := h.st.Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return t
}

func TestAHeldStepResultIsWrittenInTheSameStoreWriteAsTheNextStepsTasks(t *testing.T) {
	h := newHeldFixture(t)
	if !h.held.Held || h.held.Task.ID != h.step.ID || h.held.Task.Status != task.StatusSucceeded || string(h.held.Task.Result) != `"out"` {
		t.Fatalf("handed over %+v, want the held success of %s", h.held, h.step.ID)
	}
	if got := h.stored(h.step.ID); got.Status.Finished() {
		t.Fatalf("the held result was written before the engine asked: %s", got.Status)
	}

	out, err := h.s.SubmitAfter(context.Background(), []string{h.step.ID}, []task.Spec{{Agent: "echo", WorkflowID: "wf-1", StepID: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	next := out[0].Task
	// Durable when SubmitAfter returns, in one transaction with the next step's task.
	if got, _ := h.st.Get(context.Background(), h.step.ID); got == nil || got.Status != task.StatusSucceeded || string(got.Result) != `"out"` {
		t.Fatalf("after SubmitAfter the step is stored as %+v", got)
	}
	if fin, sub := h.st.PutOf(h.step.ID, task.StatusSucceeded), h.st.PutOf(next.ID, task.StatusQueued); fin < 0 || fin != sub {
		t.Fatalf("the result was written in put %d, the next task in put %d: want one store write", fin, sub)
	}
	// Written once: a second SubmitAfter naming it writes only its own tasks.
	if _, err := h.s.SubmitAfter(context.Background(), []string{h.step.ID}, []task.Spec{{Agent: "echo", WorkflowID: "wf-1", StepID: "c"}}); err != nil {
		t.Fatal(err)
	}
	if writes := h.st.Writes(h.step.ID, task.StatusSucceeded); writes != 1 {
		t.Fatalf("the held result was written %d times", writes)
	}
}

func TestAHeldStepIsHandedOverOnceAndWatchersHearOfItOnlyWhenDurable(t *testing.T) {
	h := newHeldFixture(t)
	sub, err := h.s.Watch(context.Background(), h.step.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev := nextEvent(t, sub); ev.Kind == events.KindDone { // the replay of its current state: running
		t.Fatalf("a watcher was told the held step is done: %+v", ev)
	}
	if b := h.s.WriteHeld(h.step.ID); b.Wait() != nil {
		t.Fatal(b.Err())
	}
	if ev := nextEvent(t, sub); ev.Kind != events.KindStatus || ev.Status != task.StatusSucceeded {
		t.Fatalf("after the write the watcher got %+v, want the succeeded status", ev)
	}
	if ev := nextEvent(t, sub); ev.Kind != events.KindDone || ev.Task.Status != task.StatusSucceeded {
		t.Fatalf("after the write the watcher got %+v, want done", ev)
	}
	if fs, ok := pollFinishedStepHeld(h.s); ok {
		t.Fatalf("the step was handed over again once written: %+v", fs)
	}
}

func TestAHeldResultNobodyWritesIsWrittenWithinTwoTicks(t *testing.T) {
	h := newHeldFixture(t)
	h.advance(DefaultConfig().TickInterval)
	h.advance(DefaultConfig().TickInterval)
	if got := h.stored(h.step.ID); got.Status != task.StatusSucceeded {
		t.Fatalf("two ticks later the step is stored as %s", got.Status)
	}
}

func TestShutdownWritesHeldResults(t *testing.T) {
	h := newHeldFixture(t)
	h.s.Shutdown()
	if got, err := h.st.Get(context.Background(), h.step.ID); err != nil || got.Status != task.StatusSucceeded {
		t.Fatalf("after shutdown the step is stored as %+v, %v", got, err)
	}
}

func TestOnlySucceededStepTasksAreHeld(t *testing.T) {
	f := newFixture(t, Config{})
	f.s.HoldStepResults()
	plain := f.submit(task.Spec{Agent: "echo"})
	failing := f.submit(task.Spec{Agent: "echo", WorkflowID: "wf-1", StepID: "a", MaxAttempts: 1})
	w := f.worker(2)
	for _, a := range assignments(t, w) {
		r := Result{TaskID: a.Task.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)}
		if a.Task.ID == failing.ID {
			r.Output, r.Failure = nil, &task.Failure{Message: "boom"}
		}
		f.s.Complete(w, r)
	}
	if got := f.get(plain.ID); got.Status != task.StatusSucceeded {
		t.Fatalf("a task that is no step was not written at once: %s", got.Status)
	}
	if got := f.get(failing.ID); got.Status != task.StatusFailed {
		t.Fatalf("a failed step was not written at once: %s", got.Status)
	}
	fs, ok := pollFinishedStepHeld(f.s)
	if !ok || fs.Held || fs.Task.ID != failing.ID {
		t.Fatalf("handed over %+v, want the durable failure of %s", fs, failing.ID)
	}
}
