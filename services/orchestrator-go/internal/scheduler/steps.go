package scheduler

// Finished workflow step tasks, handed to the workflow engine: the scheduler queues
// each one once its result is durable and never waits for the engine to take it.

import (
	"context"
	"sync"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// NextFinishedStep waits for the next finished task that is a workflow step and
// returns a copy of it, in the order their results became durable, or ctx's error.
// The workflow engine calls it in a loop; steps it never takes are found again in
// the store when it resumes its workflows.
func (s *Scheduler) NextFinishedStep(ctx context.Context) (*task.Task, error) {
	return s.finishedSteps.next(ctx)
}

// stepQueue is an unbounded FIFO: push never blocks (it runs under the scheduler's
// lock), next waits until there is something to take.
type stepQueue struct {
	mu    sync.Mutex
	tasks []*task.Task
	ready chan struct{} // holds a token while tasks is not empty
}

func (q *stepQueue) push(t *task.Task) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tasks = append(q.tasks, t)
	q.signalLocked()
}

func (q *stepQueue) next(ctx context.Context) (*task.Task, error) {
	for {
		q.mu.Lock()
		if q.ready == nil {
			q.ready = make(chan struct{}, 1)
		}
		if len(q.tasks) > 0 {
			t := q.tasks[0]
			q.tasks[0] = nil
			q.tasks = q.tasks[1:]
			q.signalLocked()
			q.mu.Unlock()
			return t, nil
		}
		ready := q.ready
		q.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// signalLocked leaves a token in ready while there are tasks to take.
func (q *stepQueue) signalLocked() {
	if q.ready == nil {
		q.ready = make(chan struct{}, 1)
	}
	if len(q.tasks) > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
}
