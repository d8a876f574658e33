package workflow

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
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
