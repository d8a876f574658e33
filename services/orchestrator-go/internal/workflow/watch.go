package workflow

// WatchWorkflow's fan-in. Every run has one events.Feed: when a step starts, the
// engine attaches each of its tasks to the feed (one hub subscription per task,
// whatever the number of watchers), and the hub forwards the tasks' events to the
// feed under its own lock, without blocking. A watch holds one feed subscription
// and one goroutine; when it falls behind its bound it resubscribes from its
// cursor. The engine never waits for a watcher: at the end it only sets each
// watch's final workflow and ends the feed.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
)

const (
	watchBuffer = 64
	// feedBuffer bounds the step task events a watch may have undelivered before
	// it is cut off and resubscribes from its cursor.
	feedBuffer = 1024
	// endGrace bounds how long the final event waits for step task events still
	// in flight (the Done events of the tasks cancelled at the end).
	endGrace = 5 * time.Second
)

// Event is one thing a workflow watcher sees: a workflow-level event (StepID
// empty: Status set, and on the last one Done with the final Workflow), or a step
// task's event (StepID and Task set).
type Event struct {
	WorkflowID string
	StepID     string
	Task       *events.Event
	Status     Status
	Workflow   *Workflow
	Done       bool
	Time       time.Time
}

// Watch is one watcher of a workflow. Read it with Next; Close it when done.
type Watch struct {
	e      *Engine
	r      *run
	id     string
	out    chan Event
	ctx    context.Context
	cancel context.CancelFunc
	err    error // why out was closed; read after out is closed

	sub *events.Subscription // the run's feed; owned by loop once started
	cur events.FeedCursor

	mu    sync.Mutex
	final *Workflow
}

// Watch starts watching the workflow: its status now, then its step task events,
// then a final Done event.
func (e *Engine) Watch(ctx context.Context, id string) (*Watch, error) {
	wctx, cancel := context.WithCancel(ctx)
	w := &Watch{e: e, id: id, out: make(chan Event, watchBuffer), ctx: wctx, cancel: cancel}
	if r := e.run(id); r != nil {
		if err := r.mu.LockCtx(ctx); err != nil {
			cancel()
			return nil, busy(id, err)
		}
		if !r.wf.Status.Finished() {
			w.r = r
			w.out <- Event{WorkflowID: id, Status: r.wf.Status, Time: e.now()}
			w.sub = r.feed.Subscribe(nil, e.now())
			r.watchers[w] = struct{}{}
			r.mu.Unlock()
			go w.loop()
			return w, nil
		}
		r.mu.Unlock()
	}
	wf, err := e.Get(ctx, id)
	if err != nil {
		cancel()
		return nil, err
	}
	if !wf.Status.Finished() {
		cancel()
		return nil, errNotStarted // stored but not resumed yet
	}
	w.out <- Event{WorkflowID: id, Status: wf.Status, Time: e.now()}
	w.out <- Event{WorkflowID: id, Status: wf.Status, Workflow: wf, Done: true, Time: e.now()}
	w.err = events.ErrDone
	close(w.out)
	return w, nil
}

// Next returns the next event. After the Done event it returns events.ErrDone; if
// the orchestrator shuts down, events.ErrShutdown; if ctx ends, ctx.Err().
func (w *Watch) Next(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-w.out:
		if !ok {
			return Event{}, w.err
		}
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close stops the watch and its goroutine.
func (w *Watch) Close() {
	w.cancel()
	if w.r != nil {
		w.r.mu.Lock()
		delete(w.r.watchers, w)
		w.r.mu.Unlock()
	}
}

// setFinal hands the watch the finished workflow; the engine calls it under the
// run's lock before it ends the feed, so it is there when the feed's end is read.
func (w *Watch) setFinal(wf *Workflow) {
	w.mu.Lock()
	w.final = wf
	w.mu.Unlock()
}

func (w *Watch) loop() {
	defer func() { w.sub.Close() }()
	for {
		ev, err := w.sub.Next(w.ctx)
		if err == nil {
			w.cur.Advance(ev)
			select {
			case w.out <- Event{WorkflowID: w.id, StepID: ev.StepID, Task: &ev, Time: ev.Time}:
				continue
			case <-w.ctx.Done():
				err = w.ctx.Err()
			}
		}
		switch {
		case errors.Is(err, events.ErrLagged):
			w.sub.Close()
			w.sub = w.r.feed.Subscribe(&w.cur, w.e.now())
			continue
		case errors.Is(err, events.ErrDone):
			w.mu.Lock()
			final := w.final
			w.mu.Unlock()
			if final == nil { // not expected: the engine sets it before ending the feed
				if final, err = w.e.Get(w.ctx, w.id); err != nil {
					break
				}
			}
			ev := Event{WorkflowID: w.id, Status: final.Status, Workflow: final, Done: true, Time: w.e.now()}
			select {
			case w.out <- ev:
				err = events.ErrDone
			case <-w.ctx.Done():
				err = w.ctx.Err()
			}
		}
		w.err = err
		close(w.out)
		return
	}
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
