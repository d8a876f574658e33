package scheduler

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestCancelQueuedRunningAndFinished(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	queuedTask := f.submit(task.Spec{Agent: "echo", Priority: 1})
	runningTask := f.submit(task.Spec{Agent: "echo", Priority: 9})
	w := f.worker(1)
	a := onlyAssignment(t, w)

	got, err := f.s.Cancel(ctx, queuedTask.ID, "")
	if err != nil || got.Status != task.StatusCancelled || got.FinishedAt.IsZero() {
		t.Fatalf("cancel queued = %+v, %v", got, err)
	}
	got, err = f.s.Cancel(ctx, runningTask.ID, "user changed their mind")
	if err != nil || got.Status != task.StatusCancelled {
		t.Fatalf("cancel running = %+v, %v", got, err)
	}
	msgs := pending(t, w)
	if len(msgs) != 1 || msgs[0].Cancel == nil || msgs[0].Cancel.LeaseID != a.LeaseID || msgs[0].Cancel.Reason != "user changed their mind" {
		t.Fatalf("worker messages = %+v", msgs)
	}
	// The worker still answers; the result is ignored.
	f.s.Complete(w, Result{TaskID: runningTask.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)})
	if f.get(runningTask.ID).Status != task.StatusCancelled {
		t.Fatal("a result after cancel changed the task")
	}
	// The cancelled queued task is never assigned.
	f.s.Credit(w, 1)
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("cancelled task was assigned: %+v", msgs)
	}
	_, err = f.s.Cancel(ctx, runningTask.ID, "")
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindFailedPrecondition || e.Reason != errs.ReasonTaskFinished {
		t.Fatalf("cancel finished err = %v", err)
	}
	if _, err := f.s.Cancel(ctx, "missing", ""); reasonOf(err) != "TASK_NOT_FOUND" {
		t.Fatalf("cancel missing err = %v", err)
	}
}
