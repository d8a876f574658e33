package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// MaxMapElements bounds the fan-out of one map step.
const MaxMapElements = 10_000

// reasonInvalid marks a step that failed before running: a template or map_over
// that does not resolve.
const reasonInvalid task.Reason = "INVALID_ARGUMENT"

// Deps are the engine's collaborators. Metrics, Log, Now and NewID may be nil.
type Deps struct {
	Store   store.Store
	Catalog *workers.Catalog
	Metrics *telemetry.WorkflowMetrics
	Log     *slog.Logger
	Now     func() time.Time
	NewID   func() string
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

// Engine runs workflows; all methods are safe for concurrent use. Create it before
// the scheduler (pass StepFinished as scheduler.Deps.OnStepFinished), then Start it.
type Engine struct {
	store      store.Store
	catalog    *workers.Catalog
	metrics    *telemetry.WorkflowMetrics
	log        *slog.Logger
	now        func() time.Time
	newID      func() string
	retryEvery time.Duration
	opTimeout  time.Duration

	submitMu sync.Mutex // orders the idempotency-key check with the insert (keyed submits only)

	mu    sync.Mutex // guards sched, runs and the loop's channels
	sched *scheduler.Scheduler
	runs  map[string]*run // unfinished workflows by id
	stop  chan struct{}
	done  chan struct{}
	// inflight counts StepFinished calls running; stopped refuses new ones, and
	// idle is closed when the last one ends after Stop (nil otherwise).
	inflight int
	stopped  bool
	idle     chan struct{}
}

// run is the live state of one unfinished workflow. Lock order: run.mu before
// Engine.mu; never the other way round.
type run struct {
	mu       runLock
	wf       *Workflow
	plan     *plan
	steps    []*stepRun
	outputs  map[string]any // decoded outputs of succeeded steps
	watchers map[*Watch]struct{}
	feed     *events.Feed // the step tasks' events, for the watchers
	stalled  bool         // a step could not be submitted: retry
	// unsaved: the workflow finished and its final state is not yet written. Only
	// the submitted and the final states are written (see "Durability" in doc.go).
	unsaved bool
	// A finished workflow's step tasks to cancel once its final state is written,
	// and why; settled once that is done and the run left e.runs.
	cancel    []string
	cancelWhy string
	settled   bool
}

// stepRun tracks the tasks of a started step (rebuilt from the task store on resume).
type stepRun struct {
	byTask  map[string]int // task id -> element index
	done    []bool
	results []json.RawMessage
	ndone   int
	failed  *task.Task // the first element that did not succeed
	failIdx int
	// lastEnd is the latest FinishedAt of the tasks applied: the step's end, also
	// when it is applied again after a restart.
	lastEnd time.Time
}

// New returns an engine; it accepts no work until Start.
func New(d Deps) *Engine {
	e := &Engine{
		store: d.Store, catalog: d.Catalog, metrics: d.Metrics, log: d.Log, now: d.Now, newID: d.NewID,
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

var errNotStarted = &errs.Error{Kind: errs.KindUnavailable, Reason: "UNAVAILABLE", Message: "the workflow engine is starting; retry shortly"}

// Start binds the scheduler, resumes every unfinished workflow in the store and
// starts the loop that retries stalled steps. Call it after the scheduler's Recover.
func (e *Engine) Start(ctx context.Context, sched *scheduler.Scheduler) error {
	stored, err := e.store.UnfinishedWorkflows(ctx)
	if err != nil {
		return fmt.Errorf("load unfinished workflows: %w", err)
	}
	var resumed []*run
	e.mu.Lock()
	e.sched = sched
	for _, sw := range stored {
		wf := &Workflow{}
		if err := json.Unmarshal(sw.State, wf); err != nil {
			e.log.Error("skip unreadable workflow", "workflow_id", sw.ID, "err", err)
			continue
		}
		p, err := compile(&wf.Spec)
		if err != nil {
			e.log.Error("skip invalid stored workflow", "workflow_id", sw.ID, "err", err)
			continue
		}
		r := newRun(wf, p)
		e.runs[wf.ID] = r
		resumed = append(resumed, r)
	}
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	e.mu.Unlock()
	e.metrics.Running.Add(float64(len(resumed)))

	// Registered first, reconciled second: a step task finishing meanwhile is
	// either already in the task store or delivered to StepFinished afterwards.
	for _, r := range resumed {
		r.mu.Lock()
		e.reconcile(ctx, r)
		for i, sr := range r.steps {
			if sr != nil && !r.wf.Status.Finished() {
				e.attach(ctx, r, r.wf.Steps[i].StepID, r.wf.Steps[i].TaskIDs)
			}
		}
		e.advance(ctx, r)
		e.flush(ctx, r)
		r.mu.Unlock()
	}
	if len(resumed) > 0 {
		e.log.Info("resumed unfinished workflows", "count", len(resumed))
	}
	e.cancelOrphanSteps(ctx, sched)
	go e.loop(e.stop, e.done)
	return nil
}

// cancelOrphanSteps cancels the unfinished step tasks of workflows that are done
// (or pruned): a crash between a workflow's final write and the cancellation of
// its running steps (settle) leaves them queued for nobody.
func (e *Engine) cancelOrphanSteps(ctx context.Context, sched *scheduler.Scheduler) {
	for wfID, ids := range sched.UnfinishedSteps() {
		if e.run(wfID) != nil {
			continue
		}
		sw, err := e.store.GetWorkflow(ctx, wfID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			e.log.Warn("cannot read the workflow of unfinished step tasks; leaving them", "workflow_id", wfID, "tasks", len(ids), "err", err)
			continue
		case !sw.Done:
			continue // stored unfinished but not resumed (unreadable): leave it alone
		}
		for _, id := range ids {
			cctx, cancel := context.WithTimeout(ctx, e.opTimeout)
			_, err := sched.Cancel(cctx, id, "workflow "+wfID+" already finished")
			cancel()
			if err != nil {
				e.log.Warn("cancel a step task of a finished workflow", "workflow_id", wfID, "task_id", id, "err", err)
			}
		}
		e.log.Info("cancelled the step tasks left running by a finished workflow", "workflow_id", wfID, "tasks", len(ids))
	}
}

// Stop ends the retry loop and every watch, and waits (up to a few seconds) for
// the step results being applied, so that nothing writes to the store once it
// returns. Later step results are ignored. Workflows stay as stored.
func (e *Engine) Stop() {
	e.mu.Lock()
	stop, done := e.stop, e.done
	e.stop = nil
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

func newRun(wf *Workflow, p *plan) *run {
	r := &run{wf: wf, plan: p, steps: make([]*stepRun, len(wf.Steps)), outputs: map[string]any{}, watchers: map[*Watch]struct{}{},
		feed: events.NewFeed(feedBuffer)}
	r.mu.init()
	for i, st := range wf.Steps {
		switch st.Status {
		case task.StatusRunning:
			r.steps[i] = newStepRun(st.TaskIDs)
		case task.StatusSucceeded:
			r.outputs[st.StepID], _ = decodeJSON(st.Output)
		}
	}
	return r
}

func newStepRun(ids []string) *stepRun {
	sr := &stepRun{byTask: make(map[string]int, len(ids)), done: make([]bool, len(ids)), results: make([]json.RawMessage, len(ids))}
	for k, id := range ids {
		sr.byTask[id] = k
	}
	return sr
}

// Submit validates, stores and starts a workflow. A tenant's idempotency key
// already used returns the workflow it created, with existing=true.
func (e *Engine) Submit(ctx context.Context, spec Spec) (*Workflow, bool, error) {
	spec = (&Workflow{Spec: spec}).Clone().Spec
	applyDefaults(&spec)
	p, err := validate(&spec, e.catalog)
	if err != nil {
		return nil, false, err
	}
	e.mu.Lock()
	started := e.sched != nil
	e.mu.Unlock()
	if !started {
		return nil, false, errNotStarted
	}

	unlock := func() {}
	if spec.IdempotencyKey != "" {
		e.submitMu.Lock()
		unlock = e.submitMu.Unlock
		sw, err := e.store.FindWorkflowByIdempotencyKey(ctx, spec.Tenant, spec.IdempotencyKey)
		if err == nil {
			unlock()
			wf, err := e.Get(ctx, sw.ID)
			return wf, err == nil, err
		}
		if !errors.Is(err, store.ErrNotFound) {
			unlock()
			return nil, false, fmt.Errorf("look up workflow idempotency key: %w", err)
		}
	}
	wf := &Workflow{ID: e.newID(), Spec: spec, Status: StatusRunning, Steps: make([]StepState, len(spec.Steps)), CreatedAt: e.now()}
	for i, s := range spec.Steps {
		wf.Steps[i].StepID = s.ID
	}
	if err := e.write(ctx, wf); err != nil {
		unlock()
		return nil, false, err
	}
	r := newRun(wf, p)
	e.mu.Lock()
	e.runs[wf.ID] = r
	e.mu.Unlock()
	unlock()
	e.metrics.Started.WithLabelValues(spec.Mode.String()).Inc()
	e.metrics.Running.Inc()
	e.log.Info("workflow submitted", "workflow_id", wf.ID, "tenant", spec.Tenant, "mode", spec.Mode.String(), "steps", len(spec.Steps))

	// The workflow is stored: from here on, failures to start steps are retried.
	ctx = context.WithoutCancel(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	e.advance(ctx, r)
	e.flush(ctx, r)
	return r.wf.Clone(), false, nil
}

// Get returns the workflow with the id.
func (e *Engine) Get(ctx context.Context, id string) (*Workflow, error) {
	if r := e.run(id); r != nil {
		if err := r.mu.LockCtx(ctx); err != nil {
			return nil, busy(id, err)
		}
		defer r.mu.Unlock()
		return r.wf.Clone(), nil
	}
	sw, err := e.store.GetWorkflow(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFound("WORKFLOW_NOT_FOUND", "no workflow has id %q", id)
	}
	if err != nil {
		return nil, err
	}
	wf := &Workflow{}
	if err := json.Unmarshal(sw.State, wf); err != nil {
		return nil, fmt.Errorf("decode stored workflow %s: %w", id, err)
	}
	return wf, nil
}

func (e *Engine) run(id string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id]
}

// Cancel cancels the workflow's running steps and ends it CANCELLED. A finished
// workflow is returned unchanged.
func (e *Engine) Cancel(ctx context.Context, id, reason string) (*Workflow, error) {
	r := e.run(id)
	if r == nil {
		return e.Get(ctx, id)
	}
	if reason == "" {
		reason = "cancelled by request"
	}
	if err := r.mu.LockCtx(ctx); err != nil {
		return nil, busy(id, err)
	}
	defer r.mu.Unlock()
	if !r.wf.Status.Finished() {
		// Not cut short by the caller leaving: each store call is bounded instead.
		e.finish(context.WithoutCancel(ctx), r, StatusCancelled, nil,
			&task.Failure{Reason: task.ReasonCancelled, Message: reason}, "", "workflow cancelled: "+reason)
	}
	if r.unsaved {
		// The loop keeps retrying the write; until it lands a restart would resume
		// the workflow, so the cancellation is not confirmed.
		return nil, &errs.Error{Kind: errs.KindUnavailable, Reason: "UNAVAILABLE",
			Message: fmt.Sprintf("workflow %s is cancelled, but the store has not confirmed it yet (it is retrying); retry the call to confirm", id)}
	}
	return r.wf.Clone(), nil
}

// StepFinished records a finished step task and starts what it unblocks. It is the
// scheduler's OnStepFinished hook; a task of a workflow it does not run is ignored.
func (e *Engine) StepFinished(t *task.Task) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return // the workflow resumes from the task store at the next start
	}
	e.inflight++
	r := e.runs[t.WorkflowID]
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.inflight--; e.inflight == 0 && e.idle != nil {
			close(e.idle)
			e.idle = nil
		}
		e.mu.Unlock()
	}()
	if r == nil {
		return
	}
	ctx := context.Background()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.apply(ctx, r, t) {
		e.advance(ctx, r)
	}
	e.flush(ctx, r)
}

// reconcile applies the results of a resumed workflow's step tasks that finished
// while nobody was listening. A step whose task cannot be read (missing from the
// store, or the store failed) goes back to pending: advance submits it again under
// the same idempotency keys, which return the tasks that exist (applying the
// finished ones) and recreate only what is gone, so the workflow cannot hang on it.
func (e *Engine) reconcile(ctx context.Context, r *run) {
	for i := range r.wf.Steps {
		st := &r.wf.Steps[i]
		if st.Status != task.StatusRunning {
			continue
		}
		for _, id := range st.TaskIDs {
			if r.wf.Status.Finished() {
				return
			}
			t, err := e.store.Get(ctx, id)
			if err != nil {
				e.log.Warn("cannot read a step task of a resumed workflow; submitting the step again",
					"workflow_id", r.wf.ID, "step_id", st.StepID, "task_id", id, "err", err)
				st.Status, st.TaskIDs, st.StartedAt = task.StatusUnspecified, nil, time.Time{}
				r.steps[i] = nil
				break
			}
			if t.Status.Finished() {
				e.apply(ctx, r, t)
			}
			if st.Status != task.StatusRunning {
				break // the step ended (e.g. a failed element under FAIL_FAST)
			}
		}
	}
}

// apply records a finished step task; it reports whether anything changed.
func (e *Engine) apply(ctx context.Context, r *run, t *task.Task) bool {
	if r.wf.Status.Finished() || !t.Status.Finished() {
		return false
	}
	i, ok := r.plan.index[t.StepID]
	if !ok || r.wf.Steps[i].Status != task.StatusRunning {
		return false
	}
	sr := r.steps[i]
	k, ok := sr.byTask[t.ID]
	if !ok || sr.done[k] {
		return false
	}
	sr.done[k] = true
	sr.ndone++
	if t.FinishedAt.After(sr.lastEnd) {
		sr.lastEnd = t.FinishedAt
	}
	if t.Status == task.StatusSucceeded {
		sr.results[k] = t.Result
	} else if sr.failed == nil {
		sr.failed, sr.failIdx = t, k
	}
	all := sr.ndone == len(sr.done)
	switch {
	case sr.failed != nil && (all || r.wf.Spec.FailurePolicy == PolicyFailFast):
		e.failStep(ctx, r, i, sr.failed.Status, e.elementFailure(r, i, sr))
	case all:
		e.succeedStep(ctx, r, i)
	}
	return true
}

func (e *Engine) elementFailure(r *run, i int, sr *stepRun) *task.Failure {
	f := cloneFailure(sr.failed.Failure)
	if f == nil {
		f = &task.Failure{Reason: task.ReasonAgentError, Message: "the step's task " + sr.failed.Status.String()}
	}
	if r.plan.mapOver[i] != nil {
		f.Message = fmt.Sprintf("element %d (task %s): %s", sr.failIdx, sr.failed.ID, f.Message)
	}
	return f
}

// advance starts every step whose upstream steps succeeded, skips those that can no
// longer run, and ends the workflow once nothing is left to run.
func (e *Engine) advance(ctx context.Context, r *run) {
	for progress := true; progress; {
		progress = false
		for i := range r.wf.Steps {
			if r.wf.Status.Finished() {
				return
			}
			st := &r.wf.Steps[i]
			if st.Status != task.StatusUnspecified {
				continue
			}
			ready, blocker := true, ""
			for _, d := range r.plan.deps[i] {
				ds := r.wf.Steps[d].Status
				if ds.Finished() && ds != task.StatusSucceeded {
					blocker = r.wf.Steps[d].StepID
					break
				}
				ready = ready && ds == task.StatusSucceeded
			}
			switch {
			case blocker != "":
				st.Status, st.Skipped, st.FinishedAt = task.StatusCancelled, true, e.now()
				st.Failure = &task.Failure{Reason: task.ReasonSkipped, Message: fmt.Sprintf("skipped: upstream %s failed", blocker)}
				progress = true
			case ready:
				progress = e.startStep(ctx, r, i) || progress
			}
		}
	}
	e.completeIfDone(ctx, r)
}

// startStep renders the step's input and submits its task(s). It reports whether
// the step changed state (false: the submission failed and is retried later).
func (e *Engine) startStep(ctx context.Context, r *run, i int) bool {
	s := r.wf.Spec.Steps[i]
	st := &r.wf.Steps[i]
	sc := &scope{input: r.plan.input, steps: r.outputs}
	items := []any{nil}
	if ref := r.plan.mapOver[i]; ref != nil {
		v, err := sc.resolve(*ref)
		if err != nil {
			e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: reasonInvalid, Message: "map_over: " + err.Error()})
			return true
		}
		list, ok := v.([]any)
		switch {
		case !ok:
			e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: reasonInvalid,
				Message: fmt.Sprintf("map_over {{ %s }} is %s, not a list", ref.raw, kindOf(v))})
			return true
		case len(list) > MaxMapElements:
			e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: reasonInvalid,
				Message: fmt.Sprintf("map_over {{ %s }} has %d elements; a map step runs at most %d", ref.raw, len(list), MaxMapElements)})
			return true
		}
		items = list
		sc.hasItem = true
	}
	specs := make([]task.Spec, len(items))
	for k, item := range items {
		sc.item, sc.index = item, k
		var input json.RawMessage
		if s.Input != nil {
			v, err := render(r.plan.inputs[i], sc)
			if err != nil {
				e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: reasonInvalid, Message: "input: " + err.Error()})
				return true
			}
			if input, err = json.Marshal(v); err != nil {
				e.failStep(ctx, r, i, task.StatusFailed, &task.Failure{Reason: reasonInvalid, Message: "input: " + err.Error()})
				return true
			}
		}
		specs[k] = task.Spec{
			Agent: s.Agent, Input: input, Tenant: r.wf.Spec.Tenant, Priority: s.Priority, Labels: r.wf.Spec.Labels,
			IdempotencyKey: stepTaskKey(r.wf.ID, s.ID, k), Timeout: s.Timeout, MaxAttempts: s.MaxAttempts,
			InitialBackoff: s.InitialBackoff, MaxBackoff: s.MaxBackoff, WorkflowID: r.wf.ID, StepID: s.ID,
		}
	}
	var out []scheduler.Submitted
	if len(specs) > 0 {
		sctx, cancel := context.WithTimeout(ctx, e.opTimeout)
		var err error
		out, err = e.sched.Submit(sctx, specs)
		cancel()
		if err != nil {
			e.log.Warn("cannot submit step tasks yet; will retry", "workflow_id", r.wf.ID, "step_id", s.ID, "err", err)
			r.stalled = true
			return false
		}
	}
	// The step started when its tasks were created, the same after a restart
	// (resubmitted, the tasks already exist).
	now := e.now()
	ids := make([]string, len(out))
	startedAt, resumed := now, len(out) > 0
	for k, o := range out {
		ids[k] = o.Task.ID
		resumed = resumed && o.Existing
		if c := o.Task.CreatedAt; !c.IsZero() && c.Before(startedAt) {
			startedAt = c
		}
	}
	if !resumed {
		e.metrics.StepOverhead.Observe(now.Sub(e.readyAt(r, i)).Seconds())
	}
	st.Status, st.TaskIDs, st.StartedAt = task.StatusRunning, ids, startedAt
	r.steps[i] = newStepRun(ids)
	e.attach(ctx, r, s.ID, ids)
	if len(ids) == 0 {
		e.succeedStep(ctx, r, i)
		return true
	}
	for _, o := range out {
		if o.Task.Status.Finished() { // re-submitted after a restart: already done
			e.apply(ctx, r, o.Task)
		}
	}
	return true
}

// stepTaskKey is the idempotency key of a step's task: the same on every submission.
func stepTaskKey(workflowID, stepID string, index int) string {
	return fmt.Sprintf("taskloom.workflow/%s/%s/%d", workflowID, stepID, index)
}

// readyAt is when the step could start: its last upstream step's end, or the
// workflow's creation.
func (e *Engine) readyAt(r *run, i int) time.Time {
	at := r.wf.CreatedAt
	for _, d := range r.plan.deps[i] {
		if f := r.wf.Steps[d].FinishedAt; f.After(at) {
			at = f
		}
	}
	return at
}

func (e *Engine) succeedStep(ctx context.Context, r *run, i int) {
	st := &r.wf.Steps[i]
	sr := r.steps[i]
	if r.plan.mapOver[i] != nil {
		var b bytes.Buffer
		b.WriteByte('[')
		for k, res := range sr.results {
			if k > 0 {
				b.WriteByte(',')
			}
			if len(res) == 0 {
				res = json.RawMessage("null")
			}
			b.Write(res)
		}
		b.WriteByte(']')
		st.Output = b.Bytes()
	} else {
		st.Output = sr.results[0]
	}
	st.Status, st.FinishedAt = task.StatusSucceeded, e.stepEnd(sr)
	r.steps[i] = nil
	out, _ := decodeJSON(st.Output)
	r.outputs[st.StepID] = out
	if c := r.plan.exitIf[i]; c != nil {
		sc := &scope{input: r.plan.input, steps: r.outputs, output: out, hasOutput: true}
		if c.eval(sc) {
			e.finish(ctx, r, StatusSucceeded, st.Output, nil, st.StepID, "workflow exited early at step "+st.StepID)
		}
	}
}

func (e *Engine) failStep(ctx context.Context, r *run, i int, status task.Status, f *task.Failure) {
	st := &r.wf.Steps[i]
	st.Status, st.Failure, st.FinishedAt = status, f, e.stepEnd(r.steps[i])
	// r.steps[i] stays: finish cancels the elements still running.
	if r.wf.Spec.FailurePolicy == PolicyFailFast {
		e.finish(ctx, r, StatusFailed, nil, stepFailure(st), "", fmt.Sprintf("workflow failed: step %s %s", st.StepID, status))
	}
}

// stepEnd is when a step ended: when its last task finished, or now (a step that
// ends without its tasks: no tasks, or its input could not be rendered).
func (e *Engine) stepEnd(sr *stepRun) time.Time {
	if sr != nil && !sr.lastEnd.IsZero() {
		return sr.lastEnd
	}
	return e.now()
}

func stepFailure(st *StepState) *task.Failure {
	f := &task.Failure{Reason: task.ReasonAgentError, Message: fmt.Sprintf("step %s %s", st.StepID, st.Status)}
	if st.Failure != nil {
		f.Reason = st.Failure.Reason
		f.Message += ": " + st.Failure.Message
	}
	return f
}

// completeIfDone ends the workflow once every step has finished.
func (e *Engine) completeIfDone(ctx context.Context, r *run) {
	if r.wf.Status.Finished() {
		return
	}
	var failed *StepState
	for i := range r.wf.Steps {
		st := &r.wf.Steps[i]
		if !st.Status.Finished() {
			return
		}
		if st.Status != task.StatusSucceeded && !st.Skipped && failed == nil {
			failed = st
		}
	}
	output := e.output(r)
	if failed != nil {
		e.finish(ctx, r, StatusFailed, output, stepFailure(failed), "", "")
		return
	}
	e.finish(ctx, r, StatusSucceeded, output, nil, "", "")
}

// output is the workflow's result: the last step's output (SEQUENTIAL) or an
// object of the succeeded sink steps' outputs (PARALLEL, DAG).
func (e *Engine) output(r *run) json.RawMessage {
	if r.wf.Spec.Mode == ModeSequential {
		last := r.wf.Steps[len(r.wf.Steps)-1]
		if last.Status != task.StatusSucceeded {
			return nil
		}
		return last.Output
	}
	obj := map[string]json.RawMessage{}
	for _, i := range r.plan.sinks {
		if st := r.wf.Steps[i]; st.Status == task.StatusSucceeded {
			out := st.Output
			if len(out) == 0 {
				out = json.RawMessage("null")
			}
			obj[st.StepID] = out
		}
	}
	b, _ := json.Marshal(obj)
	return b
}

// finish ends the workflow: steps not yet finished are cancelled (their tasks
// through the scheduler), the final state is written, then watchers are told.
func (e *Engine) finish(ctx context.Context, r *run, status Status, output json.RawMessage, f *task.Failure, exitedAt, why string) {
	now := e.now()
	var cancel []string
	for i := range r.wf.Steps {
		st := &r.wf.Steps[i]
		switch st.Status {
		case task.StatusUnspecified:
			st.Status, st.FinishedAt = task.StatusCancelled, now
			st.Failure = &task.Failure{Reason: task.ReasonCancelled, Message: "not run: " + why}
		case task.StatusRunning:
			st.Status, st.FinishedAt = task.StatusCancelled, now
			st.Failure = &task.Failure{Reason: task.ReasonCancelled, Message: why}
		}
		if sr := r.steps[i]; sr != nil {
			for k, id := range st.TaskIDs {
				if !sr.done[k] {
					cancel = append(cancel, id)
				}
			}
			r.steps[i] = nil
		}
	}
	r.wf.Status, r.wf.Output, r.wf.Failure, r.wf.ExitedAtStep, r.wf.FinishedAt = status, output, f, exitedAt, now
	r.cancel, r.cancelWhy = cancel, why
	r.unsaved = true
	e.metrics.Running.Dec()
	e.metrics.Finished.WithLabelValues(status.String()).Inc()
	e.log.Info("workflow finished", "workflow_id", r.wf.ID, "status", status.String(), "exited_at_step", exitedAt)
	e.flush(ctx, r) // settles the run once the outcome is durable; else the loop retries
}

// settle completes a finished workflow whose final state is durable: it cancels
// the step tasks still running (only now, so that a crash before the write resumes
// a workflow whose tasks were left alone), forgets the run and tells the watchers.
// Until then the run stays in e.runs, so Get serves the finished state and the
// loop retries the write.
func (e *Engine) settle(ctx context.Context, r *run) {
	if r.settled || r.unsaved || !r.wf.Status.Finished() {
		return
	}
	r.settled = true
	for _, id := range r.cancel {
		// A cancellation the store has not confirmed in time still commits (the
		// committer retries it).
		cctx, cancel := context.WithTimeout(ctx, e.opTimeout)
		_, err := e.sched.Cancel(cctx, id, r.cancelWhy)
		cancel()
		if err != nil {
			e.log.Debug("cancel step task", "workflow_id", r.wf.ID, "task_id", id, "err", err)
		}
	}
	r.cancel = nil
	e.mu.Lock()
	if e.runs[r.wf.ID] == r {
		delete(e.runs, r.wf.ID)
	}
	e.mu.Unlock()
	final := r.wf.Clone()
	for w := range r.watchers {
		w.setFinal(final)
	}
	r.watchers = map[*Watch]struct{}{}
	r.feed.End(endGrace)
}

// attach feeds the events of a step's tasks to the run's watchers: each task's
// hub subscription, opened from its current state under the scheduler's lock,
// becomes a forwarder into the run's feed. r.mu is held, so a watcher subscribing
// to the feed sees each task either in its replay or live.
func (e *Engine) attach(ctx context.Context, r *run, stepID string, taskIDs []string) {
	for _, id := range taskIDs {
		var err error
		for range 3 { // a subscription cut off before it is attached is reopened
			var sub *events.Subscription
			wctx, cancel := context.WithTimeout(ctx, e.opTimeout)
			sub, err = e.sched.Watch(wctx, id, nil)
			cancel()
			if err != nil {
				break
			}
			if err = r.feed.Attach(sub, stepID); !errors.Is(err, events.ErrLagged) {
				break
			}
		}
		if err != nil {
			e.log.Warn("cannot watch a step task; its events are not streamed to workflow watchers",
				"workflow_id", r.wf.ID, "step_id", stepID, "task_id", id, "err", err)
		}
	}
}

// flush writes the final state of a finished workflow and then settles it. A
// failed write leaves the run unsaved: the loop retries it. The states in between
// are not written: the step tasks, found again by their idempotency keys, are the
// durable record of a running workflow's progress (see reconcile).
func (e *Engine) flush(ctx context.Context, r *run) {
	if r.unsaved {
		if err := e.write(ctx, r.wf); err != nil {
			e.log.Error("store workflow", "workflow_id", r.wf.ID, "err", err)
			return
		}
		r.unsaved = false
	}
	e.settle(ctx, r)
}

func (e *Engine) write(ctx context.Context, wf *Workflow) error {
	state, err := json.Marshal(wf)
	if err != nil {
		return fmt.Errorf("encode workflow %s: %w", wf.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.opTimeout)
	defer cancel()
	err = e.store.PutWorkflow(ctx, &store.Workflow{
		ID: wf.ID, Tenant: wf.Spec.Tenant, IdempotencyKey: wf.Spec.IdempotencyKey, Done: wf.Status.Finished(),
		FinishedAt: wf.FinishedAt, State: state,
	})
	if err != nil {
		return fmt.Errorf("store workflow %s: %w", wf.ID, err)
	}
	return nil
}

// busy is the error of a call that gave up waiting for a workflow another call
// holds (a step submission waiting for the store, say).
func busy(id string, err error) error {
	return &errs.Error{Kind: errs.KindUnavailable, Reason: "UNAVAILABLE",
		Message: fmt.Sprintf("workflow %s is busy (waiting for the store): %v; retry shortly", id, err)}
}

// runLock is a run's mutex whose callers may give up waiting when their
// context ends.
type runLock struct{ ch chan struct{} }

func (l *runLock) init() { l.ch = make(chan struct{}, 1) }

// Lock waits for the lock.
func (l *runLock) Lock() { l.ch <- struct{}{} }

// LockCtx waits for the lock until ctx ends.
func (l *runLock) LockCtx(ctx context.Context) error {
	select {
	case l.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases the lock.
func (l *runLock) Unlock() { <-l.ch }
