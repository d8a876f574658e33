package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// ErrCommitterClosed is the error of writes made after Close.
var ErrCommitterClosed = errors.New("store committer closed")

// ErrPermanent marks a store error that retrying cannot cure (a write the store
// can never take, e.g. one it cannot encode); wrap it with %w.
var ErrPermanent = errors.New("permanent store error")

// IsPermanent reports whether err is a store refusal that retrying cannot cure:
// a key or value bbolt cannot hold (too large, empty) or an error wrapping
// ErrPermanent. Other errors (I/O, a store that is down) are transient.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, berrors.ErrKeyTooLarge) ||
		errors.Is(err, berrors.ErrValueTooLarge) || errors.Is(err, berrors.ErrKeyRequired)
}

// Committer is group commit: writes from many goroutines accumulate in the current
// batch while the previous one is being committed; one writer goroutine then puts
// the whole batch in one Store.Put (one transaction, one fsync) and releases every
// waiter at once. Under load a batch holds hundreds of writes, so durability costs
// one disk flush per batch rather than per task.
//
// Write never blocks (callers hold the scheduler's lock when they call it), and
// writes are committed in the order they were made, so the last snapshot of a task
// wins.
//
// A batch the store refuses with a transient error is retried, with a backoff
// doubling from RetryMinBackoff to RetryMaxBackoff, until it commits: a batch is
// reported committed (OnCommitted with a nil error, waiters released with nil)
// only once it is durable, and later batches wait behind it, keeping the order.
// Only Close ends the retrying: from then on each batch (the failing one
// included) gets one more attempt and fails if the store refuses it.
//
// A permanent refusal (IsPermanent: a key too large, say) is never retried as
// is: the batch's writes are committed again one Write call at a time, in order,
// so that only the writes the store refuses fail (Batch.ErrFor tells each waiter)
// and the others, and every later batch, commit as usual.
type Committer struct {
	store       Store
	onCommitted func(tasks []*task.Task, err error)
	observe     func(tasks int, d time.Duration)
	onError     func(err error, attempt int)
	minBackoff  time.Duration
	maxBackoff  time.Duration

	mu       sync.Mutex
	cur      *Batch
	closed   bool
	wake     chan struct{}
	stopping chan struct{} // closed by Close: cuts a retry's wait short
	exited   chan struct{}

	commits atomic.Int64
}

// Batch is one group of writes committed together.
type Batch struct {
	tasks   []*task.Task
	journal []task.JournalRecord // committed before tasks (committer_journal.go)
	ends    []int                // end of each Write call's tasks in tasks
	writes  int
	done    chan struct{}
	err     error
	// rejected, set when the batch was committed one write at a time, holds the
	// error of each task whose write the store refused.
	rejected map[string]error
}

// Wait blocks until the batch is committed and returns the commit's error.
func (b *Batch) Wait() error {
	<-b.done
	return b.err
}

// Done is closed once the batch is committed; Err and ErrFor are valid after.
func (b *Batch) Done() <-chan struct{} { return b.done }

// Err is the batch's commit error (after Done): non-nil if any of its writes
// failed. See ErrFor for one writer's outcome.
func (b *Batch) Err() error { return b.err }

// ErrFor is the commit error of the writes of the tasks with the ids (after
// Done): nil when they are durable, even if the store refused another write of
// the batch.
func (b *Batch) ErrFor(ids ...string) error {
	if b.rejected == nil {
		return b.err
	}
	for _, id := range ids {
		if err := b.rejected[id]; err != nil {
			return err
		}
	}
	return nil
}

// CommitterOptions are the committer's hooks; both may be nil.
type CommitterOptions struct {
	// OnCommitted is called once per batch, in commit order, from the writer
	// goroutine, after the batch is durable (err nil) or failed, and before its
	// waiters are released. tasks holds the last snapshot of each task written.
	// When the store refused some writes of a batch permanently, it is called
	// twice: with the tasks committed (err nil), then with those refused (err the
	// permanent error).
	OnCommitted func(tasks []*task.Task, err error)
	// Observe reports each commit's size and duration (metrics).
	Observe func(tasks int, d time.Duration)
	// OnError reports each failed attempt to commit a batch (attempt counts from
	// 1); the batch is retried.
	OnError func(err error, attempt int)
	// RetryMinBackoff and RetryMaxBackoff bound the wait before retrying a failed
	// commit (defaults 10ms and 1s).
	RetryMinBackoff, RetryMaxBackoff time.Duration
}

// Default bounds of the wait before a failed commit is retried.
const (
	DefaultRetryMinBackoff = 10 * time.Millisecond
	DefaultRetryMaxBackoff = time.Second
)

// NewCommitter starts the writer goroutine; Close stops it.
func NewCommitter(s Store, o CommitterOptions) *Committer {
	c := &Committer{
		store: s, onCommitted: o.OnCommitted, observe: o.Observe, onError: o.OnError,
		minBackoff: o.RetryMinBackoff, maxBackoff: o.RetryMaxBackoff,
		cur: newBatch(), wake: make(chan struct{}, 1), stopping: make(chan struct{}), exited: make(chan struct{}),
	}
	if c.minBackoff <= 0 {
		c.minBackoff = DefaultRetryMinBackoff
	}
	if c.maxBackoff < c.minBackoff {
		c.maxBackoff = max(DefaultRetryMaxBackoff, c.minBackoff)
	}
	go c.loop()
	return c
}

func newBatch() *Batch { return &Batch{done: make(chan struct{})} }

// Write queues snapshots of the tasks, which the caller must not modify afterwards,
// and returns the batch that will commit them. Write with no tasks returns the
// current batch: waiting on it waits for every earlier write (a barrier).
func (c *Committer) Write(tasks ...*task.Task) *Batch {
	return c.WriteEach(tasks)
}

// WriteEach queues several writes, each as if made by its own Write call (a
// permanent refusal of one fails that one only), into the same batch, so that
// they commit in one store transaction. Empty writes are skipped.
func (c *Committer) WriteEach(writes ...[]*task.Task) *Batch {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		b := newBatch()
		b.err = ErrCommitterClosed
		close(b.done)
		return b
	}
	b := c.cur
	for _, tasks := range writes {
		if len(tasks) > 0 {
			b.tasks = append(b.tasks, tasks...)
			b.ends = append(b.ends, len(b.tasks))
		}
	}
	b.writes++
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return b
}

// Sync waits until every write made before it is committed.
func (c *Committer) Sync() error { return c.Write().Wait() }

// Commits is the number of Store.Put transactions made so far.
func (c *Committer) Commits() int64 { return c.commits.Load() }

// Close commits what is pending, then stops the writer. Later writes fail. A batch
// the store keeps refusing gets one last attempt, then fails (with every later one).
func (c *Committer) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.exited
		return
	}
	c.closed = true
	close(c.stopping)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.exited
}

func (c *Committer) loop() {
	defer close(c.exited)
	for range c.wake {
		for {
			c.mu.Lock()
			b := c.cur
			if b.writes == 0 {
				closed := c.closed
				c.mu.Unlock()
				if closed {
					return
				}
				break
			}
			c.cur = newBatch()
			c.mu.Unlock()
			c.commit(b)
		}
	}
}

func (c *Committer) commit(b *Batch) {
	c.commitJournal(b)
	tasks := lastSnapshots(b.tasks)
	if len(tasks) > 0 {
		b.err = c.put(tasks)
	}
	if b.err != nil && IsPermanent(b.err) {
		c.commitEach(b)
	} else if c.onCommitted != nil {
		c.onCommitted(tasks, b.err)
	}
	b.tasks, b.ends, b.journal = nil, nil, nil
	close(b.done)
}

// commitEach commits a batch the store refused permanently one Write call at a
// time, in order, and records the tasks of the writes it refuses again.
func (c *Committer) commitEach(b *Batch) {
	b.err, b.rejected = nil, map[string]error{}
	var ok, bad []*task.Task
	var badErr error
	start := 0
	for _, end := range b.ends {
		group := lastSnapshots(b.tasks[start:end])
		start = end
		if err := c.put(group); err != nil {
			for _, t := range group {
				b.rejected[t.ID] = err
			}
			bad = append(bad, group...)
			if badErr == nil {
				badErr = err
			}
			continue
		}
		ok = append(ok, group...)
	}
	if badErr != nil {
		b.err = fmt.Errorf("the store refused %d of the batch's task writes: %w", len(bad), badErr)
	}
	if c.onCommitted == nil {
		return
	}
	// A task written again after a refused write may be in both lists; the
	// store holds its last write that committed.
	if len(ok) > 0 {
		c.onCommitted(lastSnapshots(ok), nil)
	}
	if len(bad) > 0 {
		c.onCommitted(lastSnapshots(bad), badErr)
	}
}

// lastSnapshots keeps the last write of each task, in first-write order.
func lastSnapshots(ts []*task.Task) []*task.Task {
	if len(ts) < 2 {
		return ts
	}
	pos := make(map[string]int, len(ts))
	out := ts[:0:0]
	for _, t := range ts {
		if i, ok := pos[t.ID]; ok {
			out[i] = t
			continue
		}
		pos[t.ID] = len(out)
		out = append(out, t)
	}
	return out
}

// put writes tasks in one Store.Put, retrying with backoff until it succeeds,
// the store refuses it permanently or, once Close was called, until one more
// attempt failed.
func (c *Committer) put(tasks []*task.Task) error {
	return c.retry(func() error { return c.store.Put(context.Background(), tasks...) }, len(tasks))
}

// retry runs one store write until it succeeds, the store refuses it permanently
// or, once Close was called, until one more attempt failed. A write of n > 0 tasks
// counts as a commit (Commits, Observe); a journal append (n 0) does not.
func (c *Committer) retry(write func() error, n int) error {
	wait := c.minBackoff
	for attempt := 1; ; attempt++ {
		stopping := c.isStopping()
		start := time.Now()
		err := write()
		if err == nil && n == 0 {
			return nil
		}
		if err == nil {
			c.commits.Add(1)
			if c.observe != nil {
				c.observe(n, time.Since(start))
			}
			return nil
		}
		if c.onError != nil {
			c.onError(err, attempt)
		}
		if stopping || IsPermanent(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.stopping:
			t.Stop()
		}
		wait = min(2*wait, c.maxBackoff)
	}
}

func (c *Committer) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}
