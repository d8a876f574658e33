package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// gatedStore blocks its first Put until the gate opens, so the test can pile up
// writes behind a commit in progress.
type gatedStore struct {
	*Memory
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
	puts    int
	mu      sync.Mutex
}

func (g *gatedStore) Put(ctx context.Context, tasks ...*task.Task) error {
	g.once.Do(func() {
		close(g.entered)
		<-g.gate
	})
	g.mu.Lock()
	g.puts++
	g.mu.Unlock()
	return g.Memory.Put(ctx, tasks...)
}

func TestCommitterBatchesConcurrentWritesIntoFewTransactions(t *testing.T) {
	g := &gatedStore{Memory: NewMemory(), entered: make(chan struct{}), gate: make(chan struct{})}
	var committed int
	c := NewCommitter(g, CommitterOptions{OnCommitted: func(ts []*task.Task, _ error) { committed += len(ts) }})
	defer c.Close()

	first := c.Write(&task.Task{ID: "first", Status: task.StatusQueued})
	<-g.entered // the writer is now inside the first commit

	const writers = 1000
	var wrote, waited sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wrote.Add(1)
		waited.Add(1)
		go func() {
			defer waited.Done()
			b := c.Write(&task.Task{ID: fmt.Sprintf("t%d", i), Status: task.StatusQueued})
			wrote.Done()
			errs <- b.Wait()
		}()
	}
	wrote.Wait() // every write is queued behind the first commit
	close(g.gate)
	waited.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := c.Commits(); got != 2 {
		t.Fatalf("%d writes took %d commits, want 2 (the first, then one batch)", writers+1, got)
	}
	if committed != writers+1 {
		t.Fatalf("OnCommitted saw %d tasks", committed)
	}
	un, _ := g.Unfinished(context.Background())
	if len(un) != writers+1 {
		t.Fatalf("store holds %d tasks, want %d", len(un), writers+1)
	}
}

func TestCommitterKeepsLastSnapshotAndSyncIsABarrier(t *testing.T) {
	m := NewMemory()
	c := NewCommitter(m, CommitterOptions{})
	for i := range 50 {
		c.Write(&task.Task{ID: "a", Attempts: int32(i)})
	}
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get(context.Background(), "a"); got.Attempts != 49 {
		t.Fatalf("Attempts = %d, want the last write's 49", got.Attempts)
	}
	c.Close()
	if err := c.Write(&task.Task{ID: "late"}).Wait(); err != ErrCommitterClosed {
		t.Fatalf("write after close err = %v", err)
	}
}
