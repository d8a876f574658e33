package workflow

// A run is the live state of one unfinished workflow, guarded by its own lock.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

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
	// the submitted and the final states are written (see "Durability" in docs/workflows.md).
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

func (e *Engine) run(id string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id]
}

// busy is the error of a call that gave up waiting for a workflow another call
// holds (a step submission waiting for the store, say).
func busy(id string, err error) error {
	return &errs.Error{Kind: errs.KindUnavailable, Reason: errs.ReasonUnavailable,
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
