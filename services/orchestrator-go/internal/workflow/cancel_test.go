package workflow

import (
	"context"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestCancelWorkflow(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeSequential, Steps: []Step{{ID: "wait", Agent: "block"}, {ID: "next", Agent: "echo"}}})
	st := h.waitRunning(wf.ID, "wait")
	got, err := h.eng.Cancel(context.Background(), wf.ID, "user asked")
	if err != nil || got.Status != StatusCancelled || got.Failure.Message != "user asked" {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	if tk := h.task(st.TaskIDs[0]); tk.Status != task.StatusCancelled {
		t.Fatalf("step task = %v", tk.Status)
	}
	if s := stepOf(got, "next"); s.Status != task.StatusCancelled || len(s.TaskIDs) != 0 {
		t.Fatalf("pending step = %+v", s)
	}
	again, err := h.eng.Cancel(context.Background(), wf.ID, "twice")
	if err != nil || again.Status != StatusCancelled || again.Failure.Message != "user asked" {
		t.Fatalf("second Cancel = %+v, %v", again, err)
	}
	if _, err := h.eng.Cancel(context.Background(), "nope", ""); err == nil {
		t.Fatal("cancel of an unknown workflow succeeded")
	}
}
