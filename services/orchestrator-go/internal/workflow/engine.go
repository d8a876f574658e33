package workflow

// The engine: its collaborators, its lifecycle (Start, Stop) and the loop that
// retries stalled workflows.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Scheduler is what the engine needs of the task scheduler (*scheduler.Scheduler is
// one): to submit, cancel and watch step tasks, and to hear of those that finished.
type Scheduler interface {
	Submit(ctx context.Context, specs []task.Spec) ([]scheduler.Submitted, error)
	Cancel(ctx context.Context, id, reason string) (*task.Task, error)
	Watch(ctx context.Context, id string, cur *events.Cursor) (*events.Subscription, error)
	// UnfinishedSteps returns the ids of the unfinished step tasks by workflow id.
	UnfinishedSteps() map[string][]string
	// NextFinishedStep waits for the next step task whose result is durable.
	NextFinishedStep(ctx context.Context) (*task.Task, error)
}

// Deps are the engine's collaborators. Metrics, Log, Now and NewID may be nil.
type Deps struct {
	Scheduler Scheduler
	Store     store.Store
	Catalog   *workers.Catalog
	Metrics   *telemetry.WorkflowMetrics
	Log       *slog.Logger
	Now       func() time.Time
	NewID     func() string
	// RetryInterval is how often steps whose tasks could not be submitted are
	// retried (default 1 s).
	RetryInterval time.Duration
	// StoreTimeout bounds each call the engine makes to the scheduler or the store
	// while it holds a workflow (submitting step tasks, cancelling them, writing
	// the workflow), so that a store that is down stalls the workflow, which is
	// retried every RetryInterval, rather than the engine (default 5 s).
	StoreTimeout time.Duration
}

// DefaultStoreTimeout is the default of Deps.StoreTimeout.
const DefaultStoreTimeout = 5 * time.Second

// stopWait bounds how long Stop waits for step results being applied.
const stopWait = 5 * time.Second

// Engine runs workflows; all methods are safe for concurrent use. Create it once the
// scheduler has recovered its tasks, then Start it.
type Engine struct {
	sched      Scheduler
	store      store.Store
	catalog    *workers.Catalog
	metrics    *telemetry.WorkflowMetrics
	log        *slog.Logger
	now        func() time.Time
	newID      func() string
	retryEvery time.Duration
	opTimeout  time.Duration

	submitMu sync.Mutex // orders the idempotency-key check with the insert (keyed submits only)

	mu      sync.Mutex // guards started, runs and the loops' channels
	started bool
	runs    map[string]*run // unfinished workflows by id
	stop    chan struct{}
	done    chan struct{}
	// stopTaking ends the loop taking finished steps; takerDone closes when it has.
	stopTaking context.CancelFunc
	takerDone  chan struct{}
	// inflight counts stepFinished calls running; stopped refuses new ones, and
	// idle is closed when the last one ends after Stop (nil otherwise).
	inflight int
	stopped  bool
	idle     chan struct{}
}

// New returns an engine; it accepts no work until Start.
func New(d Deps) *Engine {
	e := &Engine{
		sched: d.Scheduler, store: d.Store, catalog: d.Catalog, metrics: d.Metrics, log: d.Log, now: d.Now, newID: d.NewID,
		retryEvery: d.RetryInterval, opTimeout: d.StoreTimeout, runs: map[string]*run{},
	}
	if e.metrics == nil {
		e.metrics = telemetry.NewWorkflowMetrics(prometheus.NewRegistry())
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.newID == nil {
		e.newID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if e.retryEvery <= 0 {
		e.retryEvery = time.Second
	}
	if e.opTimeout <= 0 {
		e.opTimeout = DefaultStoreTimeout
	}
	return e
}

var errNotStarted = &errs.Error{Kind: errs.KindUnavailable, Reason: errs.ReasonUnavailable, Message: "the workflow engine is starting; retry shortly"}

// Start resumes every unfinished workflow in the store and starts the loops that
// apply finished steps and retry stalled ones. Call it after the scheduler's Recover.
func (e *Engine) Start(ctx context.Context) error {
	stored, err := e.store.UnfinishedWorkflows(ctx)
	if err != nil {
		return fmt.Errorf("load unfinished workflows: %w", err)
	}
	takeCtx, stopTaking := context.WithCancel(context.WithoutCancel(ctx))
	e.mu.Lock()
	e.started = true
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	e.stopTaking, e.takerDone = stopTaking, make(chan struct{})
	e.mu.Unlock()
	e.resume(ctx, stored)
	e.cancelOrphanSteps(ctx)
	go e.takeFinishedSteps(takeCtx, e.takerDone)
	go e.loop(e.stop, e.done)
	return nil
}

// takeFinishedSteps applies the step tasks the scheduler reports finished, each in
// its own goroutine (a workflow waiting for the store holds up no other), until Stop.
func (e *Engine) takeFinishedSteps(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for {
		t, err := e.sched.NextFinishedStep(ctx)
		if err != nil {
			return
		}
		go e.stepFinished(t)
	}
}

// Stop ends the loops and every watch, and waits (up to a few seconds) for the
// step results being applied, so that nothing writes to the store once it
// returns. Later step results are ignored. Workflows stay as stored.
func (e *Engine) Stop() {
	e.mu.Lock()
	stop, done := e.stop, e.done
	stopTaking, takerDone := e.stopTaking, e.takerDone
	e.stop, e.stopTaking = nil, nil
	e.stopped = true
	var idle chan struct{}
	if e.inflight > 0 {
		idle = make(chan struct{})
		e.idle = idle
	}
	runs := e.snapshotLocked()
	e.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	if stopTaking != nil {
		stopTaking()
		<-takerDone
	}
	if idle != nil {
		t := time.NewTimer(stopWait)
		select {
		case <-idle:
		case <-t.C:
			e.log.Warn("stopping: step results still being applied; they resume from the store at the next start")
		}
		t.Stop()
	}
	for _, r := range runs {
		r.mu.Lock()
		r.feed.Shutdown()
		r.watchers = map[*Watch]struct{}{}
		r.mu.Unlock()
	}
}

func (e *Engine) snapshotLocked() []*run {
	out := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		out = append(out, r)
	}
	return out
}

func (e *Engine) loop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(e.retryEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		e.mu.Lock()
		runs := e.snapshotLocked()
		e.mu.Unlock()
		ctx := context.Background()
		for _, r := range runs {
			r.mu.Lock()
			if r.stalled || r.unsaved {
				r.stalled = false
				e.advance(ctx, r)
				e.flush(ctx, r)
			}
			r.mu.Unlock()
		}
	}
}
