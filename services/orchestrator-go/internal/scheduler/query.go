package scheduler

// Reads: a task by id, pages of tasks, watches of a task's events, and the
// unfinished step tasks of workflows. Live tasks are read from memory, others from the store.

import (
	"context"
	"errors"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Get returns the task with the id: live tasks from memory, finished ones from the store.
func (s *Scheduler) Get(ctx context.Context, id string) (*task.Task, error) {
	s.mu.Lock()
	if e := s.live[id]; e != nil {
		t := e.t.Clone()
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	return s.getStored(ctx, id)
}

func (s *Scheduler) getStored(ctx context.Context, id string) (*task.Task, error) {
	t, err := s.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, taskNotFound(id)
	}
	return t, err
}

// List returns a page of tasks, newest first, from the store; see store.Store.List.
// A task appears once its submission is durable; live state may be a moment newer.
func (s *Scheduler) List(ctx context.Context, f store.Filter, cursor string, limit int) ([]*task.Task, string, error) {
	tasks, next, err := s.store.List(ctx, f, cursor, limit)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", errs.InvalidArgument("page_token", "the page token was not issued by this orchestrator")
	}
	return tasks, next, err
}

// Watch subscribes to the task's events from cur (nil for the start): see
// events.Hub.Subscribe. The caller must Close the subscription.
//
// A live task is subscribed under the lock, so no event falls between its state
// and the subscription. A task not live has finished (its Done already published)
// and is read from the store outside the lock.
func (s *Scheduler) Watch(ctx context.Context, id string, cur *events.Cursor) (*events.Subscription, error) {
	s.mu.Lock()
	if e := s.live[id]; e != nil {
		defer s.mu.Unlock()
		return s.hub.Subscribe(e.t.Clone(), cur, s.now()), nil
	}
	s.mu.Unlock()
	t, err := s.getStored(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.hub.Subscribe(t, cur, s.now()), nil
}

// UnfinishedSteps returns the unfinished workflow step tasks (neither finished
// nor finishing), their ids by workflow id.
func (s *Scheduler) UnfinishedSteps() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for id, e := range s.live {
		if e.t.WorkflowID != "" && !e.finishing {
			out[e.t.WorkflowID] = append(out[e.t.WorkflowID], id)
		}
	}
	return out
}
