package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// assignments returns the ids of the tasks assigned to w so far (not blocking).
func assignments(t *testing.T, w *workers.Worker) []*workers.Assignment {
	t.Helper()
	var out []*workers.Assignment
	for _, m := range pending(t, w) {
		if m.Assignment != nil {
			out = append(out, m.Assignment)
		}
	}
	return out
}

func TestFairShareABusyTenantCannotStarveAnother(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	specs := make([]task.Spec, 500)
	for i := range specs {
		specs[i] = task.Spec{Agent: "echo", Tenant: "busy"}
	}
	if _, err := f.s.Submit(ctx, specs); err != nil {
		t.Fatal(err)
	}
	lonely := f.submit(task.Spec{Agent: "echo", Tenant: "lonely"})
	w := f.worker(2)
	got := assignments(t, w)
	if len(got) != 2 || (got[0].Task.ID != lonely.ID && got[1].Task.ID != lonely.ID) {
		ids := []string{}
		for _, a := range got {
			ids = append(ids, a.Task.Tenant)
		}
		t.Fatalf("the lonely tenant's only task was not among the first 2 assignments: %v", ids)
	}
}

func TestAgentLimitCapsRunningTasksAndFreesOnCompletion(t *testing.T) {
	f := newFixture(t, Config{AgentLimits: map[string]int{"echo": 2}})
	for range 4 {
		f.submit(task.Spec{Agent: "echo"})
	}
	w1, w2 := f.worker(5), f.worker(5)
	a := append(assignments(t, w1), assignments(t, w2)...)
	if len(a) != 2 {
		t.Fatalf("%d tasks of a capped agent run at once, limit 2", len(a))
	}
	// Finishing one frees a slot for any worker, without waiting for a tick.
	first := a[0]
	owner := w1
	if first.Task.WorkerID == w2.ID {
		owner = w2
	}
	f.s.Complete(owner, Result{TaskID: first.Task.ID, LeaseID: first.LeaseID, Output: json.RawMessage(`1`)})
	if more := append(assignments(t, w1), assignments(t, w2)...); len(more) != 1 {
		t.Fatalf("after one finished, %d new assignments, want 1", len(more))
	}
}

func TestProviderLimitSpansTheProvidersAgents(t *testing.T) {
	f := newFixtureWith(t, Config{ProviderLimits: map[string]int{"simulated": 3}}, Deps{Store: store.NewMemory()},
		workers.Agent{Name: "writer", Provider: "simulated"}, workers.Agent{Name: "coder", Provider: "simulated"},
		workers.Agent{Name: "local", Provider: "ollama"})
	for _, agent := range []string{"writer", "writer", "coder", "coder", "local", "local"} {
		f.submit(task.Spec{Agent: agent})
	}
	w, err := f.s.Connect(Registration{Agents: []workers.Agent{{Name: "writer", Provider: "simulated"}, {Name: "coder", Provider: "simulated"}, {Name: "local", Provider: "ollama"}}, Concurrency: 10})
	if err != nil {
		t.Fatal(err)
	}
	f.s.Credit(w, 10)
	byProvider := map[string]int{}
	for _, a := range assignments(t, w) {
		byProvider[f.catalog.Provider(a.Task.Agent)]++
	}
	if byProvider["simulated"] != 3 || byProvider["ollama"] != 2 {
		t.Fatalf("running by provider = %v, want simulated 3 (its limit), ollama 2", byProvider)
	}
}

func TestQueueFullHintsRetryAfter(t *testing.T) {
	f := newFixture(t, Config{MaxQueue: 1, QueueFullRetryAfter: 1500 * time.Millisecond})
	f.submit(task.Spec{Agent: "echo"})
	_, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo"}})
	e, ok := errs.As(err)
	if !ok || e.Kind != errs.KindResourceExhausted || e.Metadata["retry_after_ms"] != "1500" {
		t.Fatalf("err = %#v", err)
	}
	if page, _, _ := f.s.List(context.Background(), store.Filter{}, "", 10); len(page) != 1 {
		t.Fatalf("a refused submit stored tasks: %d in the store", len(page))
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

func TestRecoverRequeuesUnfinishedAndKeepsResults(t *testing.T) {
	m := store.NewMemory()
	f := newFixtureWith(t, Config{}, Deps{Store: m}, workers.Agent{Name: "echo"})
	done := f.submit(task.Spec{Agent: "echo", Priority: 9})
	running := f.submit(task.Spec{Agent: "echo", Priority: 8})
	queued := f.submit(task.Spec{Agent: "echo", Priority: 1, IdempotencyKey: "k"})
	w := f.worker(2)
	got := assignments(t, w)
	f.s.Complete(w, Result{TaskID: done.ID, LeaseID: got[0].LeaseID, Output: json.RawMessage(`"kept"`)})
	f.s.Tick() // the running attempt outlives two ticks: its state is written
	f.s.Tick()
	if err := f.s.Sync(); err != nil {
		t.Fatal(err)
	}
	// The process dies: a new scheduler on the same store.
	g := newFixtureWith(t, Config{}, Deps{Store: m}, workers.Agent{Name: "echo"})
	if err := g.s.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := g.get(done.ID); r.Status != task.StatusSucceeded || string(r.Result) != `"kept"` {
		t.Fatalf("finished task after restart = %+v", r)
	}
	r := g.get(running.ID)
	if r.Status != task.StatusQueued || r.Attempts != 1 || r.Failure == nil || r.Failure.Reason != task.ReasonLeaseLost {
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

func TestRunningStateWrittenOnlyOnceAnAttemptOutlivesATick(t *testing.T) {
	f := newFixture(t, Config{})
	short := f.submit(task.Spec{Agent: "echo"})
	long := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(2)
	got := assignments(t, w)
	stored := func(id string) *task.Task {
		t.Helper()
		if err := f.s.Sync(); err != nil {
			t.Fatal(err)
		}
		st, err := f.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	f.s.Complete(w, Result{TaskID: short.ID, LeaseID: got[0].LeaseID})
	f.s.Tick()
	if st := stored(long.ID); st.Status != task.StatusQueued || st.Attempts != 0 {
		t.Fatalf("after one tick the store has %v attempts %d; want queued 0 (not yet written)", st.Status, st.Attempts)
	}
	f.s.Tick()
	if st := stored(long.ID); st.Status != task.StatusRunning || st.Attempts != 1 || st.WorkerID != w.ID {
		t.Fatalf("after two ticks the store has %v attempts %d worker %q; want running 1 %q", st.Status, st.Attempts, st.WorkerID, w.ID)
	}
	if st := stored(short.ID); st.Status != task.StatusSucceeded || st.Attempts != 1 || st.StartedAt.IsZero() {
		t.Fatalf("short task stored as %v attempts %d started %v; want succeeded 1 with a start time", st.Status, st.Attempts, st.StartedAt)
	}
}

// gateStore holds Put until the test opens the gate.
type gateStore struct {
	*store.Memory
	mu      sync.Mutex
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateStore) Put(ctx context.Context, tasks ...*task.Task) error {
	g.mu.Lock()
	entered, gate := g.entered, g.gate
	g.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return g.Memory.Put(ctx, tasks...)
}

func TestSubmitIsAckedOnlyOnceDurableAndRunsOnlyThen(t *testing.T) {
	g := &gateStore{Memory: store.NewMemory(), entered: make(chan struct{}), gate: make(chan struct{})}
	f := newFixtureWith(t, Config{}, Deps{Store: g}, workers.Agent{Name: "echo"})
	w := f.worker(1)
	type outcome struct {
		out []Submitted
		err error
	}
	res := make(chan outcome, 1)
	go func() {
		out, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo"}})
		res <- outcome{out, err}
	}()
	<-g.entered // the submission is being written
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("a task was assigned before it was durable: %+v", msgs)
	}
	select {
	case o := <-res:
		t.Fatalf("Submit returned before its write committed: %+v", o)
	default:
	}
	g.mu.Lock()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
	o := <-res
	if o.err != nil {
		t.Fatal(o.err)
	}
	if _, err := g.Get(context.Background(), o.out[0].Task.ID); err != nil {
		t.Fatalf("acknowledged task is not in the store: %v", err)
	}
	if a := onlyAssignment(t, w); a.Task.ID != o.out[0].Task.ID {
		t.Fatalf("assignment = %+v", a)
	}
}

func TestQueueDepthGaugeByPriorityAndCappedTenants(t *testing.T) {
	f := newFixture(t, Config{TenantLabels: 1})
	for range 3 {
		f.submit(task.Spec{Agent: "echo", Tenant: "big", Priority: 7})
	}
	f.submit(task.Spec{Agent: "echo", Tenant: "small", Priority: 7})
	f.submit(task.Spec{Agent: "echo", Tenant: "tiny", Priority: 2})
	f.s.Tick()
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
	f := newFixtureWith(t, Config{}, Deps{Store: store.NewMemory(), Log: log}, workers.Agent{Name: "echo"})
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

func TestOnStepFinishedSeesDurableWorkflowSteps(t *testing.T) {
	m := store.NewMemory()
	got := make(chan *task.Task, 1)
	f := newFixtureWith(t, Config{}, Deps{Store: m, OnStepFinished: func(t *task.Task) { got <- t }}, workers.Agent{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo", WorkflowID: "wf-1", StepID: "a"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`2`)})
	step := <-got
	if step.ID != tk.ID || step.Status != task.StatusSucceeded || step.WorkflowID != "wf-1" || step.StepID != "a" {
		t.Fatalf("step = %+v", step)
	}
	if stored, err := m.Get(context.Background(), tk.ID); err != nil || stored.Status != task.StatusSucceeded {
		t.Fatalf("the hook ran before the result was durable: %+v, %v", stored, err)
	}
}
