package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
	f := newFixtureWith(t, cfg, Deps{Store: m}, task.AgentInfo{Name: "echo"})
	f.store = m
	return f
}

// newFixtureWith builds a fixture on d (Store, Log, Rand as given) knowing agents.
func newFixtureWith(t *testing.T, cfg Config, d Deps, agents ...task.AgentInfo) *fixture {
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
	f.s.tick()
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
	if err := f.s.waitDurable(); err != nil {
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
	w, err := f.s.Connect(Registration{Agents: []task.AgentInfo{{Name: "echo"}}, Concurrency: credits})
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
		return errs.ReasonName(e.Reason)
	}
	return ""
}

func TestRecoverRequeuesUnfinishedAndKeepsResults(t *testing.T) {
	m := store.NewMemory()
	f := newFixtureWith(t, Config{}, Deps{Store: m}, task.AgentInfo{Name: "echo"})
	done := f.submit(task.Spec{Agent: "echo", Priority: 9})
	running := f.submit(task.Spec{Agent: "echo", Priority: 8})
	queued := f.submit(task.Spec{Agent: "echo", Priority: 1, IdempotencyKey: "k"})
	w := f.worker(2)
	got := assignments(t, w)
	f.s.Complete(w, Result{TaskID: done.ID, LeaseID: got[0].LeaseID, Output: json.RawMessage(`"kept"`)})
	f.s.tick() // the running attempt outlives two ticks: its state is written
	f.s.tick()
	if err := f.s.waitDurable(); err != nil {
		t.Fatal(err)
	}
	// The process dies: a new scheduler on the same store.
	g := newFixtureWith(t, Config{}, Deps{Store: m}, task.AgentInfo{Name: "echo"})
	if err := g.s.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := g.get(done.ID); r.Status != task.StatusSucceeded || string(r.Result) != `"kept"` {
		t.Fatalf("finished task after restart = %+v", r)
	}
	r := g.get(running.ID)
	if r.Status != task.StatusQueued || r.Attempts != 1 || r.Failure == nil || r.Failure.Reason != errs.ReasonLeaseLost {
		t.Fatalf("running task after restart = %+v", r)
	}
	again, err := g.s.Submit(context.Background(), []task.Spec{{Agent: "echo", Priority: 1, IdempotencyKey: "k"}})
	if err != nil || !again[0].Existing || again[0].Task.ID != queued.ID {
		t.Fatalf("idempotent repeat after restart = %+v, %v", again, err)
	}
	w2 := g.worker(5)
	a := assignments(t, w2)
	if len(a) != 2 || a[0].Task.ID != running.ID || a[0].Attempt != 2 || a[1].Task.ID != queued.ID {
		t.Fatalf("after restart the worker got %+v", a)
	}
}

func TestQueueDepthGaugeByPriorityAndCappedTenants(t *testing.T) {
	f := newFixture(t, Config{TenantLabels: 1})
	for range 3 {
		f.submit(task.Spec{Agent: "echo", Tenant: "big", Priority: 7})
	}
	f.submit(task.Spec{Agent: "echo", Tenant: "small", Priority: 7})
	f.submit(task.Spec{Agent: "echo", Tenant: "tiny", Priority: 2})
	f.s.tick()
	for _, c := range []struct {
		priority, tenant string
		want             float64
	}{{"7", "big", 3}, {"7", "other", 1}, {"2", "other", 1}, {"9", "other", 0}} {
		if got := testutil.ToFloat64(f.metrics.QueueDepth.WithLabelValues(c.priority, c.tenant)); got != c.want {
			t.Errorf("queue_depth{priority=%s,tenant=%s} = %v, want %v", c.priority, c.tenant, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(f.metrics.QueueDepth); n != 11 { // 10 "other" + big at 7
		t.Errorf("%d queue_depth series, want 11", n)
	}
}

func TestTaskLogLinesCarryTraceAndTaskIDs(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	f := newFixtureWith(t, Config{}, Deps{Store: store.NewMemory(), Log: log}, task.AgentInfo{Name: "echo"})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tk := f.submit(task.Spec{Agent: "echo", Labels: map[string]string{task.LabelTraceparent: tp}})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)})
	f.get(tk.ID) // waits for the commit that logs "task finished"
	mu.Lock()
	defer mu.Unlock()
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %s", line)
		}
		if rec["msg"] == "task finished" {
			if rec["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || rec["task_id"] != tk.ID {
				t.Fatalf("log line = %s", line)
			}
			return
		}
	}
	t.Fatalf("no task finished line in %s", buf.String())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestNextFinishedStepSeesDurableWorkflowSteps(t *testing.T) {
	m := store.NewMemory()
	f := newFixtureWith(t, Config{}, Deps{Store: m}, task.AgentInfo{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo", WorkflowID: "wf-1", StepID: "a"})
	plain := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(2)
	for _, a := range assignments(t, w) {
		f.s.Complete(w, Result{TaskID: a.Task.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`2`)})
	}
	if err := f.s.waitDurable(); err != nil {
		t.Fatal(err)
	}
	step, ok := pollFinishedStep(f.s)
	if !ok {
		t.Fatal("no finished step was handed over")
	}
	if step.ID != tk.ID || step.Status != task.StatusSucceeded || step.WorkflowID != "wf-1" || step.StepID != "a" {
		t.Fatalf("step = %+v", step)
	}
	if stored, err := m.Get(context.Background(), tk.ID); err != nil || stored.Status != task.StatusSucceeded {
		t.Fatalf("the step was handed over before its result was durable: %+v, %v", stored, err)
	}
	// Only workflow steps are handed over: nothing else is waiting.
	if other, ok := pollFinishedStep(f.s); ok {
		t.Fatalf("a task that is no step was handed over (%s; plain task %s)", other.ID, plain.ID)
	}
}

// pollFinishedStep takes the next finished step if one is waiting, without waiting.
func pollFinishedStep(s *Scheduler) (*task.Task, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t, err := s.NextFinishedStep(ctx)
	return t, err == nil
}

func TestGracefulShutdownLetsRunningAttemptsFinishAndStoresTheirResults(t *testing.T) {
	f := newFixture(t, Config{})
	one := f.submit(task.Spec{Agent: "echo"})
	two := f.submit(task.Spec{Agent: "echo"})
	waiting := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(2)
	as := assignments(t, w)
	if len(as) != 2 {
		t.Fatalf("assignments = %+v", as)
	}
	done := make(chan struct{})
	go func() {
		f.s.GracefulShutdown(context.Background())
		close(done)
	}()
	// Once the shutdown began, nothing is accepted or assigned.
	for {
		_, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo"}})
		if errors.Is(err, ErrShuttingDown) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := f.s.Connect(Registration{Agents: []task.AgentInfo{{Name: "late-agent"}}, Concurrency: 1}); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Connect while shutting down = %v", err)
	}
	if f.catalog.Has("late-agent") {
		t.Fatal("a registration refused at shutdown was added to the catalog")
	}
	f.s.Complete(w, Result{TaskID: as[0].Task.ID, LeaseID: as[0].LeaseID, Output: json.RawMessage(`1`)})
	f.s.Credit(w, 5)
	for _, m := range pending(t, w) {
		if m.Assignment != nil {
			t.Fatalf("assigned while shutting down: %+v", m.Assignment)
		}
	}
	select {
	case <-done:
		t.Fatal("shutdown returned while an attempt still ran")
	default:
	}
	f.s.Chunk(w, as[1].Task.ID, as[1].LeaseID, 0, "still working")
	f.s.Complete(w, Result{TaskID: as[1].Task.ID, LeaseID: as[1].LeaseID, Output: json.RawMessage(`2`)})
	<-done
	for _, tk := range []*task.Task{one, two} {
		if st, err := f.store.Get(context.Background(), tk.ID); err != nil || st.Status != task.StatusSucceeded {
			t.Fatalf("result of %s after shutdown = %+v, %v", tk.ID, st, err)
		}
	}
	if st, _ := f.store.Get(context.Background(), waiting.ID); st.Status != task.StatusQueued {
		t.Fatalf("queued task after shutdown = %+v", st)
	}
	if _, closed, err := w.Outbox.Next(context.Background()); !closed || !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("worker session after shutdown: closed=%v err=%v", closed, err)
	}
}

func TestGracefulShutdownAbandonsAttemptsStillRunningAtTheTimeout(t *testing.T) {
	f := newFixture(t, Config{})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		f.s.GracefulShutdown(ctx)
		close(done)
	}()
	cancel()
	<-done
	// A late result is ignored: the task stays unfinished in the store, for Recover.
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)})
	if st, _ := f.store.Get(context.Background(), tk.ID); st.Status.Finished() {
		t.Fatalf("an abandoned attempt finished the task: %+v", st)
	}
}

func nextEvent(t *testing.T, sub *events.Subscription) events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil && !errors.Is(err, events.ErrDone) {
		t.Fatalf("subscription: %v", err)
	}
	return ev
}
