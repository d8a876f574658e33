package scheduler

// Stores that fail or hold their calls on demand, for the durability tests.

import (
	"context"
	"errors"
	"sync"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// flakyStore refuses Put while failing > 0 (counting down) or while down is set,
// and reports each refused attempt on refused (if not full).
type flakyStore struct {
	*store.Memory
	mu       sync.Mutex
	failing  int
	down     bool
	refusals int
	refused  chan struct{}
	// lookupGate, if set, holds the next FindByIdempotencyKeys after it has read
	// the store, until closed; lookupEntered is closed once it holds.
	lookupGate, lookupEntered chan struct{}
	getGate, getEntered       chan struct{}
}

var errStoreDown = errors.New("store unavailable")

func newFlakyStore() *flakyStore {
	return &flakyStore{Memory: store.NewMemory(), refused: make(chan struct{}, 100)}
}

func (s *flakyStore) Put(ctx context.Context, tasks ...*task.Task) error {
	s.mu.Lock()
	fail := s.down || s.failing > 0
	if s.failing > 0 {
		s.failing--
	}
	if fail {
		s.refusals++
	}
	s.mu.Unlock()
	if fail {
		select {
		case s.refused <- struct{}{}:
		default:
		}
		return errStoreDown
	}
	return s.Memory.Put(ctx, tasks...)
}

func (s *flakyStore) set(failing int, down bool) {
	s.mu.Lock()
	s.failing, s.down = failing, down
	s.mu.Unlock()
}

func (s *flakyStore) FindByIdempotencyKeys(ctx context.Context, keys []store.IdempotencyKey) (map[store.IdempotencyKey]*task.Task, error) {
	found, err := s.Memory.FindByIdempotencyKeys(ctx, keys)
	s.mu.Lock()
	gate, entered := s.lookupGate, s.lookupEntered
	s.lookupGate = nil
	s.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return found, err
}

func (s *flakyStore) Get(ctx context.Context, id string) (*task.Task, error) {
	s.mu.Lock()
	gate, entered := s.getGate, s.getEntered
	s.getGate = nil
	s.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return s.Memory.Get(ctx, id)
}
