package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestRetryableErrorRetriesAfterBackoffThenFails(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 2, InitialBackoff: time.Second})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(2)
	fail := &task.Failure{Reason: errs.ReasonAgentError, Message: "rate limited", Retryable: true}
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: fail})
	if got := f.get(tk.ID); got.Status != task.StatusQueued || got.Failure == nil {
		t.Fatalf("after a retryable error: %+v", got)
	}
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("retried before the backoff: %+v", msgs)
	}
	f.advance(time.Second)
	a2 := onlyAssignment(t, w)
	if a2.Attempt != 2 || a2.LeaseID == a.LeaseID {
		t.Fatalf("second attempt = %+v", a2)
	}
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a2.LeaseID, Failure: fail})
	if got := f.get(tk.ID); got.Status != task.StatusFailed || got.Failure.Message != "rate limited" || got.Attempts != 2 {
		t.Fatalf("after the last attempt: %+v", got)
	}
}

func TestNonRetryableErrorFailsAtOnce(t *testing.T) {
	f := newFixture(t, Config{})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: errs.ReasonAgentError, Message: "bad input"}})
	if got := f.get(tk.ID); got.Status != task.StatusFailed || got.Attempts != 1 {
		t.Fatalf("task = %+v", got)
	}
}

func TestBackoffCapDoublesUpToMax(t *testing.T) {
	tk := &task.Task{InitialBackoff: time.Second, MaxBackoff: 5 * time.Second}
	for attempts, want := range map[int32]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 10: 5 * time.Second} {
		tk.Attempts = attempts
		if got := backoffCap(tk); got != want {
			t.Errorf("backoff after %d attempts = %v, want %v", attempts, got, want)
		}
	}
}

func TestBackoffHasFullJitterWithinTheCap(t *testing.T) {
	tk := &task.Task{InitialBackoff: time.Second, MaxBackoff: 8 * time.Second, Attempts: 3} // cap 4s
	lowest := newFixtureWith(t, Config{}, Deps{Store: store.NewMemory(), Rand: func(int64) int64 { return 0 }})
	highest := newFixtureWith(t, Config{}, Deps{Store: store.NewMemory(), Rand: func(n int64) int64 { return n - 1 }})
	if got := lowest.s.backoff(tk); got != 0 {
		t.Fatalf("lowest draw = %v, want 0", got)
	}
	if got := highest.s.backoff(tk); got != 4*time.Second {
		t.Fatalf("highest draw = %v, want the 4s cap", got)
	}
	random := newFixture(t, Config{})
	seen := map[time.Duration]bool{}
	for range 200 {
		d := random.s.backoff(tk)
		if d < 0 || d > 4*time.Second {
			t.Fatalf("backoff %v outside [0, 4s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct backoffs in 200 draws: no jitter", len(seen))
	}
}

func TestWorkerReportedDeadlineTimesOutWithoutRetry(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 3, InitialBackoff: time.Millisecond})
	tk := f.submit(task.Spec{Agent: "echo", Timeout: time.Minute})
	w := f.worker(2)
	a := onlyAssignment(t, w)
	// The worker stopped the attempt at the deadline and said so before a tick
	// noticed; today it marks the failure retryable.
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{
		Reason: errs.ReasonDeadlineExceeded, Message: "deadline exceeded after 60s", Retryable: true,
	}})
	got := f.get(tk.ID)
	if got.Status != task.StatusTimedOut || got.Failure.Reason != errs.ReasonDeadlineExceeded || got.Failure.Retryable || got.Attempts != 1 {
		t.Fatalf("task = %+v (failure %+v)", got, got.Failure)
	}
	f.advance(time.Hour)
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("a timed-out task was retried: %+v", msgs)
	}
}

func TestFailureArrivingAfterTheDeadlineTimesOut(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 3, LeaseTTL: time.Hour})
	tk := f.submit(task.Spec{Agent: "echo", Timeout: 5 * time.Second})
	w := f.worker(2)
	a := onlyAssignment(t, w)
	f.mu.Lock()
	f.now = f.now.Add(5 * time.Second) // at the deadline; no tick has run
	f.mu.Unlock()
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: errs.ReasonAgentError, Message: "cancelled", Retryable: true}})
	if got := f.get(tk.ID); got.Status != task.StatusTimedOut || got.Failure.Reason != errs.ReasonDeadlineExceeded {
		t.Fatalf("task = %+v", got)
	}
}

func TestRecoverWaitsOutTheBackoffOfARetry(t *testing.T) {
	m := store.NewMemory()
	full := func(n int64) int64 { return n - 1 } // the whole backoff cap
	f := newFixtureWith(t, Config{InitialBackoff: 10 * time.Second}, Deps{Store: m, Rand: full}, task.AgentInfo{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: errs.ReasonAgentError, Message: "rate limited", Retryable: true}})
	if st := f.get(tk.ID); st.Status != task.StatusQueued || !st.NotBefore.Equal(f.now.Add(10*time.Second)) {
		t.Fatalf("backing-off task = %+v", st)
	}
	f.s.Shutdown()

	g := newFixtureWith(t, Config{}, Deps{Store: m}, task.AgentInfo{Name: "echo"})
	if err := g.s.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	w2 := g.worker(1)
	g.advance(9 * time.Second)
	if msgs := pending(t, w2); len(msgs) != 0 {
		t.Fatalf("recovered retry ran before its backoff ended: %+v", msgs)
	}
	g.advance(time.Second)
	if a2 := onlyAssignment(t, w2); a2.Task.ID != tk.ID || a2.Attempt != 2 || !a2.Task.NotBefore.IsZero() {
		t.Fatalf("retry after the backoff = %+v", a2)
	}
}
