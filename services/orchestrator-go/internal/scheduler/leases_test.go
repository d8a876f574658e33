package scheduler

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestLeaseExpiryRequeuesAndHeartbeatRenews(t *testing.T) {
	f := newFixture(t, Config{LeaseTTL: 10 * time.Second})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)

	f.advance(6 * time.Second)
	f.s.Heartbeat(w, []string{a.LeaseID})
	f.advance(6 * time.Second) // 12s after assignment, 6s after the heartbeat
	if got := f.get(tk.ID); got.Status != task.StatusRunning {
		t.Fatalf("a renewed lease expired: %v", got.Status)
	}
	f.advance(5 * time.Second) // 11s after the heartbeat
	got := f.get(tk.ID)
	if got.Status != task.StatusQueued || got.Attempts != 1 || got.Failure.Reason != errs.ReasonLeaseLost {
		t.Fatalf("after expiry: %+v", got)
	}
	msgs := pending(t, w)
	if len(msgs) != 1 || msgs[0].Cancel == nil || msgs[0].Cancel.LeaseID != a.LeaseID {
		t.Fatalf("expected a cancel for the expired lease, got %+v", msgs)
	}
	// A late result of the expired attempt is ignored; a new worker takes attempt 2.
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)})
	w2 := f.worker(1)
	if a2 := onlyAssignment(t, w2); a2.Attempt != 2 || a2.Task.ID != tk.ID {
		t.Fatalf("requeued assignment = %+v", a2)
	}
}

func TestLeaseLostOnLastAttemptFails(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 1})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	onlyAssignment(t, w)
	f.s.Disconnect(w)
	if got := f.get(tk.ID); got.Status != task.StatusFailed || got.Failure.Reason != errs.ReasonLeaseLost {
		t.Fatalf("task = %+v", got)
	}
}

func TestDeadlineTimesOutAndCancelsWorker(t *testing.T) {
	f := newFixture(t, Config{LeaseTTL: time.Hour})
	tk := f.submit(task.Spec{Agent: "echo", Timeout: 5 * time.Second})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.advance(5 * time.Second)
	got := f.get(tk.ID)
	if got.Status != task.StatusTimedOut || got.Failure.Reason != errs.ReasonDeadlineExceeded {
		t.Fatalf("task = %+v", got)
	}
	msgs := pending(t, w)
	if len(msgs) != 1 || msgs[0].Cancel == nil || msgs[0].Cancel.LeaseID != a.LeaseID {
		t.Fatalf("worker messages = %+v", msgs)
	}
}
