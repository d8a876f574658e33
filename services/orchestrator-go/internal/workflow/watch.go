package workflow

// WatchWorkflow's fan-in: one watch merges the workflow's own events (status,
// the end) with the events of every step task, read from the scheduler's event
// hub. The engine only appends a message per started step and one at the end to a
// watch's control list, so it never waits for a watcher; the step task events are
// pulled by the watch's own goroutines, which resubscribe from their cursor when
// the hub cuts them off for lagging.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
)

const (
	watchBuffer = 64
	// pumpGrace bounds how long the final event waits for step task events still in flight.
	pumpGrace = 5 * time.Second
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

type control struct {
	stepID   string
	taskIDs  []string
	final    *Workflow
	shutdown bool
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

	mu     sync.Mutex
	ctl    []control
	notify chan struct{}
}

// Watch starts watching the workflow: its status now, then its step task events,
// then a final Done event.
func (e *Engine) Watch(ctx context.Context, id string) (*Watch, error) {
	wctx, cancel := context.WithCancel(ctx)
	w := &Watch{e: e, id: id, out: make(chan Event, watchBuffer), ctx: wctx, cancel: cancel, notify: make(chan struct{}, 1)}
	if r := e.run(id); r != nil {
		r.mu.Lock()
		if !r.wf.Status.Finished() {
			w.r = r
			w.out <- Event{WorkflowID: id, Status: r.wf.Status, Time: e.now()}
			for _, st := range r.wf.Steps {
				if len(st.TaskIDs) > 0 && r.steps[indexOf(r, st.StepID)] != nil {
					w.ctl = append(w.ctl, control{stepID: st.StepID, taskIDs: st.TaskIDs})
				}
			}
			r.watchers[w] = struct{}{}
			r.mu.Unlock()
			w.wake()
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

func indexOf(r *run, stepID string) int { return r.plan.index[stepID] }

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

// Close stops the watch and its goroutines.
func (w *Watch) Close() {
	w.cancel()
	if w.r != nil {
		w.r.mu.Lock()
		delete(w.r.watchers, w)
		w.r.mu.Unlock()
	}
}

// push hands the watch a control message; it never blocks (the engine calls it
// under the run's lock, at most once per step and once at the end).
func (w *Watch) push(c control) {
	w.mu.Lock()
	w.ctl = append(w.ctl, c)
	w.mu.Unlock()
	w.wake()
}

func (w *Watch) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *Watch) loop() {
	pctx, stopPumps := context.WithCancel(w.ctx)
	defer stopPumps()
	var pumps sync.WaitGroup
	end := func(err error) {
		stopPumps()
		pumps.Wait()
		w.err = err
		close(w.out)
	}
	for {
		select {
		case <-w.notify:
		case <-w.ctx.Done():
			end(w.ctx.Err())
			return
		}
		w.mu.Lock()
		batch := w.ctl
		w.ctl = nil
		w.mu.Unlock()
		for _, c := range batch {
			switch {
			case c.shutdown:
				end(events.ErrShutdown)
				return
			case c.final != nil:
				waitFor(&pumps, pumpGrace)
				stopPumps()
				pumps.Wait()
				ev := Event{WorkflowID: w.id, Status: c.final.Status, Workflow: c.final, Done: true, Time: w.e.now()}
				select {
				case w.out <- ev:
					w.err = events.ErrDone
				case <-w.ctx.Done():
					w.err = w.ctx.Err()
				}
				close(w.out)
				return
			}
			for _, id := range c.taskIDs {
				pumps.Add(1)
				go func() {
					defer pumps.Done()
					w.pump(pctx, c.stepID, id)
				}()
			}
		}
	}
}

// waitFor waits for wg up to d.
func waitFor(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// pump forwards one step task's events until its Done event.
func (w *Watch) pump(ctx context.Context, stepID, taskID string) {
	var cur events.Cursor
	sub, err := w.e.sched.Watch(ctx, taskID, nil)
	for err == nil {
		var ev events.Event
		ev, err = sub.Next(ctx)
		if err == nil {
			select {
			case w.out <- Event{WorkflowID: w.id, StepID: stepID, Task: &ev, Time: ev.Time}:
				cur.Advance(ev)
			case <-ctx.Done():
				err = ctx.Err()
			}
			continue
		}
		sub.Close()
		if errors.Is(err, events.ErrLagged) {
			sub, err = w.e.sched.Watch(ctx, taskID, &cur)
		}
	}
	if sub != nil {
		sub.Close()
	}
}
