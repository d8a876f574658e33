package workflow

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// blockingStore holds task writes (Put) while blocked, ignoring their context
// as bbolt does: a store that has stopped answering.
type blockingStore struct {
	store.Store
	mu   sync.Mutex
	gate chan struct{}
}

func (s *blockingStore) block() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
}

func (s *blockingStore) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.gate)
	s.gate = nil
}

func (s *blockingStore) Put(ctx context.Context, tasks ...*task.Task) error {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
	return s.Store.Put(ctx, tasks...)
}

func isUnavailable(err error) bool {
	e, ok := errs.As(err)
	return ok && e.Kind == errs.KindUnavailable
}

func TestEngineStallsNotBlocksWhileTheTaskStoreHangs(t *testing.T) {
	st := &blockingStore{Store: store.NewMemory()}
	h := newHarnessWith(t, st, 50*time.Millisecond)
	h.worker(4)
	st.block()
	// The step's submission cannot be confirmed: Submit returns anyway, the step pending.
	wf := h.submit(Spec{Steps: []Step{{ID: "a", Agent: "echo", Input: js(`1`)}, {ID: "b", Agent: "echo", Input: js(`2`)}}})
	if wf.Status != StatusRunning || wf.Steps[0].Status != task.StatusUnspecified {
		t.Fatalf("workflow while the store hangs = %v, step a %v", wf.Status, wf.Steps[0].Status)
	}
	if got, err := h.eng.Get(context.Background(), wf.ID); err != nil || got.Status != StatusRunning {
		t.Fatalf("Get while the store hangs = %+v, %v", got, err)
	}

	// Calls waiting for a run held by someone else give up at their deadline.
	r := h.eng.run(wf.ID)
	r.mu.Lock()
	for name, call := range map[string]func(ctx context.Context) error{
		"Get":    func(ctx context.Context) error { _, err := h.eng.Get(ctx, wf.ID); return err },
		"Cancel": func(ctx context.Context) error { _, err := h.eng.Cancel(ctx, wf.ID, "x"); return err },
		"Watch":  func(ctx context.Context) error { _, err := h.eng.Watch(ctx, wf.ID); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if err := call(ctx); !isUnavailable(err) {
			t.Errorf("%s on a busy workflow = %v, want UNAVAILABLE", name, err)
		}
		cancel()
	}
	r.mu.Unlock()

	st.release()
	done := h.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("workflow after the store came back = %v (%+v)", done.Status, done.Failure)
	}
	// The stalled submission was retried under the same keys: one task per step.
	tasks, _, err := st.List(context.Background(), store.Filter{}, "", 100)
	if err != nil || len(tasks) != 2 {
		t.Fatalf("stored tasks = %d, %v; want 2", len(tasks), err)
	}
}

func TestStartCancelsStepTasksOfFinishedWorkflows(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	state, _ := json.Marshal(&Workflow{ID: "wf-done", Status: StatusSucceeded})
	if err := st.PutWorkflow(ctx, &store.Workflow{ID: "wf-done", Done: true, FinishedAt: time.Now(), State: state}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mk := func(id, wf string) *task.Task {
		return &task.Task{ID: id, Agent: "block", Status: task.StatusQueued, WorkflowID: wf, StepID: "a",
			MaxAttempts: 3, Timeout: time.Minute, CreatedAt: now}
	}
	// Left by a crash between the workflow's final write and the cancellation of its
	// steps; the pruned workflow's task likewise; a plain task is not touched.
	if err := st.Put(ctx, mk("orphan", "wf-done"), mk("pruned", "wf-gone"), mk("plain", "")); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, st)
	if err := h.sched.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"orphan", "pruned"} {
		if got := h.task(id); got.Status != task.StatusCancelled {
			t.Errorf("step task %s of a finished workflow = %v, want CANCELLED", id, got.Status)
		}
	}
	if got := h.task("plain"); got.Status != task.StatusQueued {
		t.Errorf("plain task = %v, want QUEUED", got.Status)
	}
}

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
	go h.eng.StepFinished(fin)
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
