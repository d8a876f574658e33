// Package storetest holds stores for tests of the store's users (never shipped
// in a binary): Recording is the memory store that logs its task writes.
package storetest

import (
	"context"
	"sync"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Recording is a memory store that logs each Put (one store transaction) with
// copies of the tasks it wrote, in order.
type Recording struct {
	*store.Memory
	mu   sync.Mutex
	puts [][]task.Task
}

// NewRecording returns an empty recording store.
func NewRecording() *Recording { return &Recording{Memory: store.NewMemory()} }

// Put implements store.Store and logs the write.
func (s *Recording) Put(ctx context.Context, tasks ...*task.Task) error {
	put := make([]task.Task, len(tasks))
	for i, t := range tasks {
		put[i] = *t.Clone()
	}
	s.mu.Lock()
	s.puts = append(s.puts, put)
	s.mu.Unlock()
	return s.Memory.Put(ctx, tasks...)
}

// PutOf returns the position of the first Put that wrote the task in the
// status, or -1.
func (s *Recording) PutOf(id string, status task.Status) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, put := range s.puts {
		for _, t := range put {
			if t.ID == id && t.Status == status {
				return i
			}
		}
	}
	return -1
}

// Writes counts the Puts that wrote the task in the status.
func (s *Recording) Writes(id string, status task.Status) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, put := range s.puts {
		for _, t := range put {
			if t.ID == id && t.Status == status {
				n++
			}
		}
	}
	return n
}
