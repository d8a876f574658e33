package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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

// failingStore refuses the first fail Puts (all of them while fail < 0).
type failingStore struct {
	*Memory
	mu    sync.Mutex
	fail  int
	tries int
}

func (f *failingStore) Put(ctx context.Context, tasks ...*task.Task) error {
	f.mu.Lock()
	f.tries++
	refuse := f.fail != 0
	if f.fail > 0 {
		f.fail--
	}
	f.mu.Unlock()
	if refuse {
		return fmt.Errorf("disk full")
	}
	return f.Memory.Put(ctx, tasks...)
}

func TestCommitterRetriesAFailedBatchInOrderUntilItCommits(t *testing.T) {
	st := &failingStore{Memory: NewMemory(), fail: 3}
	var mu sync.Mutex
	var reports []error
	var errorsSeen int
	c := NewCommitter(st, CommitterOptions{
		RetryMinBackoff: time.Millisecond, RetryMaxBackoff: 2 * time.Millisecond,
		OnCommitted: func(_ []*task.Task, err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() },
		OnError:     func(error, int) { mu.Lock(); errorsSeen++; mu.Unlock() },
	})
	defer c.Close()
	first := c.Write(&task.Task{ID: "a", Status: task.StatusQueued})
	second := c.Write(&task.Task{ID: "a", Status: task.StatusSucceeded})
	if err := first.Wait(); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second batch: %v", err)
	}
	if got, _ := st.Get(context.Background(), "a"); got.Status != task.StatusSucceeded {
		t.Fatalf("stored %v: a retried batch overtook a later write", got.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	if errorsSeen != 3 {
		t.Fatalf("OnError called %d times, want 3", errorsSeen)
	}
	for _, err := range reports {
		if err != nil {
			t.Fatalf("a batch was reported failed: %v", err)
		}
	}
	if c.Commits() < 1 {
		t.Fatal("no commit counted")
	}
}

func TestCommitterCloseEndsTheRetryingOfAStoreThatStaysDown(t *testing.T) {
	st := &failingStore{Memory: NewMemory(), fail: -1}
	failed := make(chan struct{}, 1)
	c := NewCommitter(st, CommitterOptions{
		RetryMinBackoff: time.Hour, // only Close cuts the wait short
		OnError: func(error, int) {
			select {
			case failed <- struct{}{}:
			default:
			}
		},
	})
	b := c.Write(&task.Task{ID: "a", Status: task.StatusQueued})
	<-failed
	c.Close()
	if err := b.Wait(); err == nil {
		t.Fatal("a batch the store never took was reported committed")
	}
	if err := c.Write(&task.Task{ID: "b"}).Wait(); !errors.Is(err, ErrCommitterClosed) {
		t.Fatalf("write after Close = %v", err)
	}
}

// gateStore blocks its first Put until the gate opens.
type gateStore struct {
	Store
	entered, gate chan struct{}
	once          sync.Once
}

func (g *gateStore) Put(ctx context.Context, tasks ...*task.Task) error {
	g.once.Do(func() {
		close(g.entered)
		<-g.gate
	})
	return g.Store.Put(ctx, tasks...)
}

func TestCommitterIsolatesAWriteTheStoreRefusesPermanently(t *testing.T) {
	b, err := OpenBolt(t.TempDir() + "/tasks.db")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	g := &gateStore{Store: b, entered: make(chan struct{}), gate: make(chan struct{})}
	var mu sync.Mutex
	var refused []string
	c := NewCommitter(g, CommitterOptions{OnCommitted: func(ts []*task.Task, err error) {
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			for _, t := range ts {
				refused = append(refused, t.ID)
			}
		}
	}})
	defer c.Close()

	now := time.Now()
	mk := func(id, key string) *task.Task {
		return &task.Task{ID: id, Status: task.StatusQueued, Tenant: "t", IdempotencyKey: key, CreatedAt: now}
	}
	first := c.Write(mk("first", ""))
	<-g.entered // the next writes pile up in one batch
	good1 := c.Write(mk("good1", "k1"))
	bad := c.Write(mk("bad", string(make([]byte, 40_000))), mk("bad-sibling", "k2")) // one write: refused together
	good2 := c.Write(mk("good2", "k3"))
	if good1 != bad || bad != good2 {
		t.Fatal("the writes did not share a batch")
	}
	close(g.gate)
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	<-bad.Done()
	if err := bad.ErrFor("bad"); !IsPermanent(err) {
		t.Fatalf("ErrFor(bad) = %v, want a permanent error", err)
	}
	if err := bad.ErrFor("bad-sibling"); !IsPermanent(err) {
		t.Fatalf("ErrFor(bad-sibling) = %v, want a permanent error", err)
	}
	if err := bad.ErrFor("good1", "good2"); err != nil {
		t.Fatalf("ErrFor(good) = %v", err)
	}
	if bad.Err() == nil {
		t.Fatal("the batch reports no error though a write was refused")
	}
	for _, id := range []string{"first", "good1", "good2"} {
		if _, err := b.Get(context.Background(), id); err != nil {
			t.Fatalf("Get(%s) = %v", id, err)
		}
	}
	for _, id := range []string{"bad", "bad-sibling"} {
		if _, err := b.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%s) = %v, want not found", id, err)
		}
	}
	// Later batches are not held up.
	if err := c.Write(mk("later", "k4")).Wait(); err != nil {
		t.Fatalf("later write: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 2 || refused[0] != "bad" || refused[1] != "bad-sibling" {
		t.Fatalf("OnCommitted reported refused %v", refused)
	}
}

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("put: %w", errors.New("disk on fire")), false},
		{fmt.Errorf("encode: %w", ErrPermanent), true},
		{nil, false},
	} {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
