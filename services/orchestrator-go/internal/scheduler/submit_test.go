package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestSubmitAppliesDefaults(t *testing.T) {
	f := newFixture(t, Config{MaxAttempts: 4, DefaultTimeout: time.Minute})
	got := f.submit(task.Spec{Agent: "echo"})
	if got.Status != task.StatusQueued || got.Priority != 0 || got.MaxAttempts != 4 ||
		got.Timeout != time.Minute || !got.CreatedAt.Equal(f.now) {
		t.Fatalf("task = %+v", got)
	}
}

func TestSubmitUnknownAgentIsNotFound(t *testing.T) {
	f := newFixture(t, Config{})
	_, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo"}, {Agent: "nope"}})
	if e, ok := errs.As(err); !ok || e.Kind != errs.KindNotFound || e.Reason != errs.ReasonAgentNotFound {
		t.Fatalf("err = %v", err)
	}
	if page, _, _ := f.s.List(context.Background(), store.Filter{}, "", 10); len(page) != 0 {
		t.Fatalf("a rejected batch stored %d tasks", len(page))
	}
}

func TestQueueFullIsResourceExhaustedWithRetryHint(t *testing.T) {
	f := newFixture(t, Config{MaxQueue: 2})
	f.submit(task.Spec{Agent: "echo"})
	_, err := f.s.Submit(context.Background(), []task.Spec{{Agent: "echo"}, {Agent: "echo"}})
	e, ok := errs.As(err)
	if !ok || e.Kind != errs.KindResourceExhausted || e.Reason != errs.ReasonQueueFull || e.Metadata["retry_after_ms"] == "" {
		t.Fatalf("err = %#v", err)
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
	f := newFixtureWith(t, Config{}, Deps{Store: g}, task.AgentInfo{Name: "echo"})
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

func TestFailedSubmitWriteIsRetriedBeforeTheAck(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, task.AgentInfo{Name: "echo"})
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
	f := newFixtureWith(t, Config{}, Deps{Store: st}, task.AgentInfo{Name: "echo"})
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

func TestSubmitTheStoreRefusesFailsAloneAndLaterSubmitsCommit(t *testing.T) {
	b, err := store.OpenBolt(t.TempDir() + "/tasks.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() }) // after the scheduler's shutdown
	f := newFixtureWith(t, Config{}, Deps{Store: b}, task.AgentInfo{Name: "echo"})
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
