package workflow

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// gatedWorkflowStore holds workflow writes until the gate opens.
type gatedWorkflowStore struct {
	store.Store
	entered, gate chan struct{}
	written       atomic.Bool
}

func (s *gatedWorkflowStore) PutWorkflow(ctx context.Context, w *store.Workflow) error {
	if w.Done {
		close(s.entered)
		<-s.gate
		defer s.written.Store(true)
	}
	return s.Store.PutWorkflow(ctx, w)
}

func TestStopWaitsForStepResultsBeingApplied(t *testing.T) {
	st := &gatedWorkflowStore{Store: store.NewMemory(), entered: make(chan struct{}), gate: make(chan struct{})}
	h := newHarness(t, st)
	wf := h.submit(Spec{Steps: []Step{{ID: "a", Agent: "block"}}})
	step := h.waitRunning(wf.ID, "a")
	fin := &task.Task{ID: step.TaskIDs[0], WorkflowID: wf.ID, StepID: "a", Status: task.StatusSucceeded,
		Result: js(`1`), FinishedAt: time.Now()}
	go h.eng.stepFinished(fin)
	<-st.entered // the final write is in progress

	stopped := make(chan bool)
	go func() {
		h.eng.Stop()
		stopped <- st.written.Load()
	}()
	for {
		h.eng.mu.Lock()
		s := h.eng.stopped
		h.eng.mu.Unlock()
		if s {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(st.gate)
	if !<-stopped {
		t.Fatal("Stop returned while a step result was still being written")
	}
}
