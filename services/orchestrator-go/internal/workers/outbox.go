package workers

import (
	"context"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Assignment hands one attempt of a task to a worker.
type Assignment struct {
	Task     *task.Task
	LeaseID  string
	Attempt  int32
	Deadline time.Time
	// Journal is the task's journal so far, for the attempt to replay (read only).
	Journal []task.JournalRecord
	// EnqueuedAt is when the task last joined the queue, AssignedAt when it left it
	// for this attempt (the task.queue_wait span, internal/tracing).
	EnqueuedAt, AssignedAt time.Time
}

// Cancel tells a worker to stop the attempt holding the lease.
type Cancel struct {
	TaskID  string
	LeaseID string
	Reason  string
}

// Message is one hub-to-worker message; exactly one field is set.
type Message struct {
	Assignment *Assignment
	Cancel     *Cancel
}

// Outbox queues messages for one worker's stream. Posting never blocks, so the
// scheduler can post while holding its lock; the session's sender goroutine drains
// it. Its length is bounded in practice by the worker's credits (assignments) and
// running tasks (cancels).
type Outbox struct {
	mu      sync.Mutex
	pending []Message
	notify  chan struct{}
	closed  bool
	err     error
}

// NewOutbox returns an open, empty outbox.
func NewOutbox() *Outbox { return &Outbox{notify: make(chan struct{}, 1)} }

// Post queues m; it is dropped if the outbox is closed.
func (o *Outbox) Post(m Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.pending = append(o.pending, m)
	o.signal()
}

// Close ends the outbox: Next returns err (nil for a clean end) once drained of
// nothing further. Later posts are dropped.
func (o *Outbox) Close(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.closed, o.err = true, err
	o.pending = nil
	o.signal()
}

func (o *Outbox) signal() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Next blocks until messages are queued and returns all of them. When the outbox is
// closed it returns closed=true and the close error; when ctx ends, ctx.Err().
func (o *Outbox) Next(ctx context.Context) (msgs []Message, closed bool, err error) {
	for {
		o.mu.Lock()
		if o.closed {
			err := o.err
			o.mu.Unlock()
			return nil, true, err
		}
		if len(o.pending) > 0 {
			msgs, o.pending = o.pending, nil
			o.mu.Unlock()
			return msgs, false, nil
		}
		o.mu.Unlock()
		select {
		case <-o.notify:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}
