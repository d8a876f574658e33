package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

func TestWorkerReportedDeadlineTimesOutWithoutRetry(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 3, InitialBackoff: time.Millisecond})
	tk := f.submit(task.Spec{Agent: "echo", Timeout: time.Minute})
	w := f.worker(2)
	a := onlyAssignment(t, w)
	// The worker stopped the attempt at the deadline and said so before a tick
	// noticed; today it marks the failure retryable.
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{
		Reason: task.ReasonDeadlineExceeded, Message: "deadline exceeded after 60s", Retryable: true,
	}})
	got := f.get(tk.ID)
	if got.Status != task.StatusTimedOut || got.Failure.Reason != task.ReasonDeadlineExceeded || got.Failure.Retryable || got.Attempts != 1 {
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
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: task.ReasonAgentError, Message: "cancelled", Retryable: true}})
	if got := f.get(tk.ID); got.Status != task.StatusTimedOut || got.Failure.Reason != task.ReasonDeadlineExceeded {
		t.Fatalf("task = %+v", got)
	}
}

// flakyStore refuses Put while failing > 0 (counting down) or while down is set,
// and reports each refused attempt on refused (if not full).
type flakyStore struct {
	*store.Memory
	mu       sync.Mutex
	failing  int
	down     bool
	refusals int
	refused  chan struct{}
	// lookupGate, if set, holds the next FindByIdempotencyKeys after it has read
	// the store, until closed; lookupEntered is closed once it holds.
	lookupGate, lookupEntered chan struct{}
	getGate, getEntered       chan struct{}
}

var errStoreDown = errors.New("store unavailable")

func newFlakyStore() *flakyStore {
	return &flakyStore{Memory: store.NewMemory(), refused: make(chan struct{}, 100)}
}

func (s *flakyStore) Put(ctx context.Context, tasks ...*task.Task) error {
	s.mu.Lock()
	fail := s.down || s.failing > 0
	if s.failing > 0 {
		s.failing--
	}
	if fail {
		s.refusals++
	}
	s.mu.Unlock()
	if fail {
		select {
		case s.refused <- struct{}{}:
		default:
		}
		return errStoreDown
	}
	return s.Memory.Put(ctx, tasks...)
}

func (s *flakyStore) set(failing int, down bool) {
	s.mu.Lock()
	s.failing, s.down = failing, down
	s.mu.Unlock()
}

func (s *flakyStore) FindByIdempotencyKeys(ctx context.Context, keys []store.IdempotencyKey) (map[store.IdempotencyKey]*task.Task, error) {
	found, err := s.Memory.FindByIdempotencyKeys(ctx, keys)
	s.mu.Lock()
	gate, entered := s.lookupGate, s.lookupEntered
	s.lookupGate = nil
	s.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return found, err
}

func (s *flakyStore) Get(ctx context.Context, id string) (*task.Task, error) {
	s.mu.Lock()
	gate, entered := s.getGate, s.getEntered
	s.getGate = nil
	s.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return s.Memory.Get(ctx, id)
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

func TestFailedResultWriteIsRetriedAndReportedOnceDurable(t *testing.T) {
	st := newFlakyStore()
	steps := make(chan *task.Task, 10)
	f := newFixtureWith(t, Config{}, Deps{Store: st, OnStepFinished: func(t *task.Task) { steps <- t }}, workers.Agent{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo", WorkflowID: "wf", StepID: "a"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	sub, err := f.s.Watch(context.Background(), tk.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	st.set(3, false) // the result's write fails three times
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`"ok"`)})
	for {
		ev := nextEvent(t, sub)
		if ev.Kind != events.KindDone {
			continue
		}
		stored, err := st.Memory.Get(context.Background(), tk.ID)
		if err != nil || stored.Status != task.StatusSucceeded {
			t.Fatalf("Done was sent before the result was stored: %+v, %v", stored, err)
		}
		break
	}
	step := <-steps
	if step.ID != tk.ID || step.Status != task.StatusSucceeded {
		t.Fatalf("step hook = %+v", step)
	}
	if err := f.s.Sync(); err != nil {
		t.Fatal(err)
	}
	select {
	case again := <-steps:
		t.Fatalf("the step was reported finished twice: %+v", again)
	default:
	}
	if got := f.get(tk.ID); got.Status != task.StatusSucceeded || string(got.Result) != `"ok"` {
		t.Fatalf("task = %+v", got)
	}
	if n := testutil.ToFloat64(f.metrics.StoreCommitFailures); n != 3 {
		t.Fatalf("commit failures metric = %v, want 3", n)
	}
	f.s.mu.Lock()
	live := len(f.s.live)
	f.s.mu.Unlock()
	if live != 0 {
		t.Fatalf("%d tasks still live after their result was stored", live)
	}
}

func TestFailedSubmitWriteIsRetriedBeforeTheAck(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, workers.Agent{Name: "echo"})
	w := f.worker(1)
	st.set(2, false)
	tk := f.submit(task.Spec{Agent: "echo"}) // acknowledged only once durable
	if _, err := st.Memory.Get(context.Background(), tk.ID); err != nil {
		t.Fatalf("an acknowledged task is not in the store: %v", err)
	}
	if a := onlyAssignment(t, w); a.Task.ID != tk.ID {
		t.Fatalf("assignment = %+v", a)
	}
}

func TestSubmitGivingUpOnASlowStoreIsUnavailableAndRunsOnceStored(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, workers.Agent{Name: "echo"})
	w := f.worker(1)
	st.set(0, true)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := f.s.Submit(ctx, []task.Spec{{Agent: "echo", IdempotencyKey: "k"}})
		res <- err
	}()
	<-st.refused // the write is being retried
	cancel()
	err := <-res
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindUnavailable {
		t.Fatalf("Submit = %v, want UNAVAILABLE", err)
	}
	if msgs := pending(t, w); len(msgs) != 0 {
		t.Fatalf("a task not yet stored was assigned: %+v", msgs)
	}
	st.set(0, false) // the store is back: the task is stored, then queued and run
	waitCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	msgs, _, err := w.Outbox.Next(waitCtx)
	if err != nil || len(msgs) != 1 || msgs[0].Assignment == nil {
		t.Fatalf("after the store came back: %+v, %v", msgs, err)
	}
	id := msgs[0].Assignment.Task.ID
	if _, err := st.Memory.Get(context.Background(), id); err != nil {
		t.Fatalf("assigned task not stored: %v", err)
	}
	again, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo", IdempotencyKey: "k"}})
	if err != nil || !again[0].Existing || again[0].Task.ID != id {
		t.Fatalf("resubmitting the key = %+v, %v; want task %s", again, err, id)
	}
}

func TestIdempotentSubmitRacingTheKeysTaskFinishingMakesNoDuplicate(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, workers.Agent{Name: "echo"})
	w := f.worker(1)
	st.mu.Lock()
	st.lookupGate, st.lookupEntered = make(chan struct{}), make(chan struct{})
	gate, entered := st.lookupGate, st.lookupEntered
	st.mu.Unlock()

	type outcome struct {
		out []Submitted
		err error
	}
	late := make(chan outcome, 1)
	go func() { // its store lookup finds nothing, then stalls outside the lock
		out, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo", Tenant: "acme", IdempotencyKey: "k"}})
		late <- outcome{out, err}
	}()
	<-entered
	// Meanwhile (the lock is free) the same key is submitted, run and finished.
	first := f.submit(task.Spec{Agent: "echo", Tenant: "acme", IdempotencyKey: "k"})
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: first.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`1`)})
	if got := f.get(first.ID); got.Status != task.StatusSucceeded {
		t.Fatalf("first = %+v", got)
	}
	close(gate)
	o := <-late
	if o.err != nil || !o.out[0].Existing || o.out[0].Task.ID != first.ID || o.out[0].Task.Status != task.StatusSucceeded {
		t.Fatalf("the racing submit = %+v, %v; want the finished task %s", o.out, o.err, first.ID)
	}
	page, _, _ := f.s.List(context.Background(), store.Filter{Tenant: "acme"}, "", 10)
	if len(page) != 1 {
		t.Fatalf("%d tasks stored for one idempotency key", len(page))
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if len(f.s.idem) != 0 || len(f.s.retiredIdem) != 0 || len(f.s.lookups) != 0 {
		t.Fatalf("idempotency bookkeeping left behind: idem %d retired %d lookups %d", len(f.s.idem), len(f.s.retiredIdem), len(f.s.lookups))
	}
}

func TestConcurrentSubmitsOfOneKeyMakeOneTask(t *testing.T) {
	f := newFixture(t, Config{})
	const n = 20
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := f.s.Submit(context.Background(), []task.Spec{
				{Agent: "echo", Tenant: "acme", IdempotencyKey: "same"},
				{Agent: "echo", Tenant: "acme", IdempotencyKey: fmt.Sprintf("own-%d", i)},
			})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = out[0].Task.ID
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("one key gave tasks %s and %s", got[0], got[i])
		}
	}
	if page, _, _ := f.s.List(context.Background(), store.Filter{}, "", 100); len(page) != n+1 {
		t.Fatalf("%d tasks stored, want %d", len(page), n+1)
	}
}

func TestWatchOfAFinishedTaskReadsTheStoreOutsideTheLock(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, workers.Agent{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo"})
	if _, err := f.s.Cancel(context.Background(), tk.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Sync(); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.getGate, st.getEntered = make(chan struct{}), make(chan struct{})
	gate, entered := st.getGate, st.getEntered
	st.mu.Unlock()
	subc := make(chan *events.Subscription, 1)
	go func() {
		sub, err := f.s.Watch(context.Background(), tk.ID, nil)
		if err != nil {
			t.Error(err)
		}
		subc <- sub
	}()
	<-entered // Watch is reading the store; the scheduler must still serve
	f.submit(task.Spec{Agent: "echo"})
	close(gate)
	sub := <-subc
	if sub == nil {
		return
	}
	defer sub.Close()
	if got := drain(t, sub); got != "status:cancelled done:cancelled" {
		t.Fatalf("events = %q", got)
	}
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
	if _, err := f.s.Connect(Registration{Agents: []workers.Agent{{Name: "late-agent"}}, Concurrency: 1}); !errors.Is(err, ErrShuttingDown) {
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

func TestRecoverWaitsOutTheBackoffOfARetry(t *testing.T) {
	m := store.NewMemory()
	full := func(n int64) int64 { return n - 1 } // the whole backoff cap
	f := newFixtureWith(t, Config{InitialBackoff: 10 * time.Second}, Deps{Store: m, Rand: full}, workers.Agent{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Failure: &task.Failure{Reason: task.ReasonAgentError, Message: "rate limited", Retryable: true}})
	if st := f.get(tk.ID); st.Status != task.StatusQueued || !st.NotBefore.Equal(f.now.Add(10*time.Second)) {
		t.Fatalf("backing-off task = %+v", st)
	}
	f.s.Shutdown()

	g := newFixtureWith(t, Config{}, Deps{Store: m}, workers.Agent{Name: "echo"})
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

func TestRegistrationBeyondTheCatalogLimitIsRefused(t *testing.T) {
	f := newFixture(t, Config{})
	f.catalog.SetLimit(2) // "echo" is known
	_, err := f.s.Connect(Registration{Agents: []workers.Agent{{Name: "a"}, {Name: "b"}}, Concurrency: 1})
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindResourceExhausted || e.Metadata["agent_limit"] != "2" {
		t.Fatalf("Connect over the limit = %#v", err)
	}
	if f.catalog.Has("a") || f.catalog.Has("b") {
		t.Fatal("a refused registration added agents")
	}
	if _, err := f.s.Connect(Registration{Agents: []workers.Agent{{Name: "echo"}, {Name: "a"}}, Concurrency: 1}); err != nil {
		t.Fatalf("Connect within the limit = %v", err)
	}
}

func TestSubmitTheStoreRefusesFailsAloneAndLaterSubmitsCommit(t *testing.T) {
	b, err := store.OpenBolt(t.TempDir() + "/tasks.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() }) // after the scheduler's shutdown
	f := newFixtureWith(t, Config{}, Deps{Store: b}, workers.Agent{Name: "echo"})
	ctx := context.Background()
	huge := string(make([]byte, 40_000)) // bbolt refuses keys over 32 KiB
	if _, err := f.s.Submit(ctx, []task.Spec{{Agent: "echo", IdempotencyKey: huge}}); !store.IsPermanent(err) {
		t.Fatalf("Submit with a huge key = %v, want the store's permanent error", err)
	}
	ok := f.submit(task.Spec{Agent: "echo", IdempotencyKey: "small"})
	if got := f.get(ok.ID); got.Status != task.StatusQueued {
		t.Fatalf("later task = %v", got.Status)
	}
	// The refused task was forgotten: nothing is queued for it.
	w := f.worker(10)
	if a := onlyAssignment(t, w); a.Task.ID != ok.ID {
		t.Fatalf("assigned %s, want %s", a.Task.ID, ok.ID)
	}
}
