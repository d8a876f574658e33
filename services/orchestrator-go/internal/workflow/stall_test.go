package workflow

import (
	"context"
	"sync"
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
