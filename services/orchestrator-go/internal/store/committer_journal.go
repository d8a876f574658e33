package store

// Journal records go through the Committer too: appended to the current batch and
// group-committed with it (one store call for the batch's records, before its task
// writes), retried like task writes. Nobody waits for them: the worker's loop goes on
// while they commit, and a record lost with a crash only means its step runs again.

import (
	"context"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// WriteJournal queues journal records, which the caller must not modify afterwards.
func (c *Committer) WriteJournal(records ...task.JournalRecord) {
	if len(records) == 0 {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return // shutting down: the records are lost, their steps run again if needed
	}
	c.cur.journal = append(c.cur.journal, records...)
	c.cur.writes++
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// commitJournal appends the batch's journal records. The journal is an optimisation:
// records the store refuses for good are dropped (reported through OnError), never
// holding back the task writes.
func (c *Committer) commitJournal(b *Batch) {
	if len(b.journal) == 0 {
		return
	}
	records := b.journal
	_ = c.retry(func() error { return c.store.AppendJournal(context.Background(), records...) }, 0)
}
