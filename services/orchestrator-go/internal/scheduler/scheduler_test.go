package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// fixture is a scheduler on a fake clock with one known agent, "echo".
type fixture struct {
	t       *testing.T
	s       *Scheduler
	store   *store.Memory
	catalog *workers.Catalog
	metrics *telemetry.Metrics
	mu      sync.Mutex
	now     time.Time
	ids     int
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	m := store.NewMemory()
	f := newFixtureWith(t, cfg, Deps{Store: m}, workers.Agent{Name: "echo"})
	f.store = m
	return f
}

// newFixtureWith builds a fixture on d (Store, Log, Rand as given) knowing agents.
func newFixtureWith(t *testing.T, cfg Config, d Deps, agents ...workers.Agent) *fixture {
	t.Helper()
	f := &fixture{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.catalog = workers.NewCatalog()
	f.catalog.Add(agents...)
	f.metrics = telemetry.NewTestMetrics()
	d.Catalog, d.Metrics, d.Hub = f.catalog, f.metrics, events.NewHub(events.DefaultOptions(), f.metrics)
	d.Now = func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
	d.NewID = func() string { f.mu.Lock(); defer f.mu.Unlock(); f.ids++; return fmt.Sprintf("id-%03d", f.ids) }
	f.s = New(cfg, d)
	t.Cleanup(f.s.Shutdown)
	return f
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
	f.s.Tick()
}

func (f *fixture) submit(spec task.Spec) *task.Task {
	f.t.Helper()
	out, err := f.s.Submit(context.Background(), []task.Spec{spec})
	if err != nil {
		f.t.Fatalf("Submit: %v", err)
	}
	return out[0].Task
}

// get returns the task once every state change so far is durable.
func (f *fixture) get(id string) *task.Task {
	f.t.Helper()
	if err := f.s.Sync(); err != nil {
		f.t.Fatalf("Sync: %v", err)
	}
	t, err := f.s.Get(context.Background(), id)
	if err != nil {
		f.t.Fatalf("Get(%s): %v", id, err)
	}
	return t
}

func (f *fixture) worker(credits int32) *workers.Worker {
	f.t.Helper()
	w, err := f.s.Connect(Registration{Agents: []workers.Agent{{Name: "echo"}}, Concurrency: credits})
	if err != nil {
		f.t.Fatal(err)
	}
	f.s.Credit(w, credits)
	return w
}

// pending returns the messages queued for w without blocking.
func pending(t *testing.T, w *workers.Worker) []workers.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	msgs, _, _ := w.Outbox.Next(ctx)
	return msgs
}

func onlyAssignment(t *testing.T, w *workers.Worker) *workers.Assignment {
	t.Helper()
	msgs := pending(t, w)
	if len(msgs) != 1 || msgs[0].Assignment == nil {
		t.Fatalf("want one assignment, got %+v", msgs)
	}
	return msgs[0].Assignment
}

func reasonOf(err error) string {
	if e, ok := errs.As(err); ok {
		return e.Reason
	}
	return ""
}

func TestSubmitAppliesDefaults(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 4, DefaultTimeout: time.Minute})
	got := f.submit(task.Spec{Agent: "echo"})
	if got.Status != task.StatusQueued || got.Priority != task.DefaultPriority || got.MaxAttempts != 4 ||
		got.Timeout != time.Minute || !got.CreatedAt.Equal(f.now) {
		t.Fatalf("task = %+v", got)
	}
}

func TestSubmitUnknownAgentIsNotFound(t *testing.T) {
	f := newFixture(t, Config{})
	_, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo"}, {Agent: "nope"}})
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindNotFound || e.Reason != "AGENT_NOT_FOUND" {
		t.Fatalf("err = %v", err)
	}
	if page, _, _ := f.s.List(context.Background(), store.Filter{}, "", 10); len(page) != 0 {
		t.Fatalf("a rejected batch stored %d tasks", len(page))
	}
}

func TestIdempotencyKeyReturnsExistingTaskPerTenant(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	first := f.submit(task.Spec{Agent: "echo", Tenant: "acme", IdempotencyKey: "k1"})
	again, err := f.s.Submit(ctx, []task.Spec{{Agent: "echo", Tenant: "acme", IdempotencyKey: "k1"}})
	if err != nil || !again[0].Existing || again[0].Task.ID != first.ID {
		t.Fatalf("repeat = %+v, %v", again, err)
	}
	other := f.submit(task.Spec{Agent: "echo", Tenant: "globex", IdempotencyKey: "k1"})
	if other.ID == first.ID {
		t.Fatal("idempotency key shared across tenants")
	}
	batch, err := f.s.Submit(ctx, []task.Spec{
		{Agent: "echo", Tenant: "acme", IdempotencyKey: "k2"},
		{Agent: "echo", Tenant: "acme", IdempotencyKey: "k2"},
	})
	if err != nil || batch[0].Existing || !batch[1].Existing || batch[0].Task.ID != batch[1].Task.ID {
		t.Fatalf("duplicate key in one batch = %+v, %v", batch, err)
	}
}

func TestQueueFullIsResourceExhaustedWithRetryHint(t *testing.T) {
	f := newFixture(t, Config{MaxQueue: 2})
	f.submit(task.Spec{Agent: "echo"})
	_, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo"}, {Agent: "echo"}})
	e, ok := errs.As(err)
	if !ok || e.Kind != errs.KindResourceExhausted || e.Reason != "QUEUE_FULL" || e.Metadata["retry_after_ms"] == "" {
		t.Fatalf("err = %#v", err)
	}
}

func TestWorkerGetsHighestPriorityFirst(t *testing.T) {
	f := newFixture(t, Config{})
	low := f.submit(task.Spec{Agent: "echo", Priority: 1})
	high := f.submit(task.Spec{Agent: "echo", Priority: 9})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	if a.Task.ID != high.ID || a.Attempt != 1 || a.Task.Status != task.StatusRunning || a.Task.Attempts != 1 {
		t.Fatalf("assignment = %+v", a)
	}
	if !a.Deadline.Equal(f.now.Add(DefaultConfig().DefaultTimeout)) {
		t.Fatalf("deadline = %v", a.Deadline)
	}
	if f.get(low.ID).Status != task.StatusQueued {
		t.Fatal("a worker with one credit got two tasks")
	}
	f.s.Complete(w, Result{TaskID: high.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`"ok"`)})
	f.s.Credit(w, 1)
	if next := onlyAssignment(t, w); next.Task.ID != low.ID {
		t.Fatalf("second assignment = %s, want %s", next.Task.ID, low.ID)
	}
}

func TestResultSucceedsOnceAndStaleResultIsIgnored(t *testing.T) {
	f := newFixture(t, Config{})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: "stale", Output: json.RawMessage(`1`)})
	if got := f.get(tk.ID); got.Status != task.StatusRunning {
		t.Fatalf("a result with a wrong lease changed the task: %v", got.Status)
	}
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`{"x":1}`), Usage: task.Usage{PromptTokens: 3}})
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: "AGENT_ERROR", Message: "late"}})
	got := f.get(tk.ID)
	if got.Status != task.StatusSucceeded || string(got.Result) != `{"x":1}` || got.Failure != nil ||
		got.Usage.PromptTokens != 3 || got.WorkerID != w.ID || got.FinishedAt.IsZero() || got.StartedAt.IsZero() {
		t.Fatalf("task = %+v", got)
	}
}

func TestRetryableErrorRetriesAfterBackoffThenFails(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 2, InitialBackoff: time.Second})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(2)
	fail := &task.Failure{Reason: task.ReasonAgentError, Message: "rate limited", Retryable: true}
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
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: task.ReasonAgentError, Message: "bad input"}})
	if got := f.get(tk.ID); got.Status != task.StatusFailed || got.Attempts != 1 {
		t.Fatalf("task = %+v", got)
	}
}

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
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindFailedPrecondition || e.Reason != "TASK_FINISHED" {
		t.Fatalf("cancel finished err = %v", err)
	}
	if _, err := f.s.Cancel(ctx, "missing", ""); reasonOf(err) != "TASK_NOT_FOUND" {
		t.Fatalf("cancel missing err = %v", err)
	}
}

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
	if got.Status != task.StatusQueued || got.Attempts != 1 || got.Failure.Reason != task.ReasonLeaseLost {
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
	if got := f.get(tk.ID); got.Status != task.StatusFailed || got.Failure.Reason != task.ReasonLeaseLost {
		t.Fatalf("task = %+v", got)
	}
}

func TestDisconnectRequeuesAtOnce(t *testing.T) {
	f := newFixture(t, Config{})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	onlyAssignment(t, w)
	f.s.Disconnect(w)
	if got := f.get(tk.ID); got.Status != task.StatusQueued {
		t.Fatalf("after disconnect: %v", got.Status)
	}
	if a := onlyAssignment(t, f.worker(1)); a.Task.ID != tk.ID || a.Attempt != 2 {
		t.Fatalf("reassignment = %+v", a)
	}
}

func TestDeadlineTimesOutAndCancelsWorker(t *testing.T) {
	f := newFixture(t, Config{LeaseTTL: time.Hour})
	tk := f.submit(task.Spec{Agent: "echo", Timeout: 5 * time.Second})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.advance(5 * time.Second)
	got := f.get(tk.ID)
	if got.Status != task.StatusTimedOut || got.Failure.Reason != task.ReasonDeadlineExceeded {
		t.Fatalf("task = %+v", got)
	}
	msgs := pending(t, w)
	if len(msgs) != 1 || msgs[0].Cancel == nil || msgs[0].Cancel.LeaseID != a.LeaseID {
		t.Fatalf("worker messages = %+v", msgs)
	}
}

func TestDrainingWorkerGetsNothing(t *testing.T) {
	f := newFixture(t, Config{})
	w := f.worker(0)
	f.s.Drain(w)
	f.s.Credit(w, 5)
	f.submit(task.Spec{Agent: "echo"})
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("draining worker got %+v", msgs)
	}
}

func TestWorkerOnlyGetsItsAgents(t *testing.T) {
	f := newFixture(t, Config{})
	w, _ := f.s.Connect(Registration{Agents: []workers.Agent{{Name: "summarize"}}, Concurrency: 1})
	f.s.Credit(w, 1)
	f.submit(task.Spec{Agent: "echo"})
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("worker got a task for an agent it did not register: %+v", msgs)
	}
}

func TestWatcherGetsReplayedChunksThenDoneLast(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Chunk(w, tk.ID, a.LeaseID, 0, "hel")
	f.s.Chunk(w, tk.ID, "stale-lease", 1, "IGNORED")
	f.s.Chunk(w, tk.ID, a.LeaseID, 1, "lo")

	sub, err := f.s.Watch(ctx, tk.ID, nil) // a late watcher
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	f.s.Chunk(w, tk.ID, a.LeaseID, 2, "!")
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`"hello!"`)})

	got := drain(t, sub)
	want := "status:running chunk:hel chunk:lo chunk:! status:succeeded done:succeeded"
	if got != want {
		t.Fatalf("events = %q\nwant     %q", got, want)
	}

	// A watch on the finished task: its status, its retained chunks, then done.
	late, _ := f.s.Watch(ctx, tk.ID, nil)
	defer late.Close()
	if got := drain(t, late); got != "status:succeeded chunk:hel chunk:lo chunk:! done:succeeded" {
		t.Fatalf("finished-task events = %q", got)
	}
}

func drain(t *testing.T, sub *events.Subscription) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out string
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if err != events.ErrDone {
				t.Fatalf("subscription ended with %v after %q", err, out)
			}
			return out[1:]
		}
		switch ev.Kind {
		case events.KindStatus:
			out += " status:" + ev.Status.String()
		case events.KindChunk:
			out += " chunk:" + ev.Chunk
		case events.KindDone:
			out += " done:" + ev.Task.Status.String()
		}
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
