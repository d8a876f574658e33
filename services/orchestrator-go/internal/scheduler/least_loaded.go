package scheduler

// The least-loaded order dispatch hands tasks out in: a min-heap of the workers
// that can take work, by running leases per unit of concurrency.

import (
	"container/heap"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// loadPool is a min-heap of workers by load; its root is the least-loaded worker.
// Only the root changes between operations, so each assignment costs O(log n).
type loadPool []*workers.Worker

// newLoadPool returns the workers of all that can take work, least-loaded first.
// It filters all in place (the registry hands out a fresh slice), so a dispatch
// pass allocates one slice, not two.
func newLoadPool(all []*workers.Worker) *loadPool {
	p := loadPool(all[:0])
	for _, w := range all {
		if w.CanTake() {
			p = append(p, w)
		}
	}
	heap.Init(&p)
	return &p
}

// least is the least-loaded worker; the pool is not empty.
func (p *loadPool) least() *workers.Worker { return (*p)[0] }

// fixLeast restores the order after the root's load changed.
func (p *loadPool) fixLeast() { heap.Fix(p, 0) }

// dropLeast removes the root.
func (p *loadPool) dropLeast() { heap.Pop(p) }

func (p loadPool) Len() int { return len(p) }

// Less orders by running leases per concurrency (compared as cross products, so
// workers of different sizes fill in proportion), then by more free credits,
// then by id so equal workers are taken in a stable order.
func (p loadPool) Less(i, j int) bool {
	a, b := p[i], p[j]
	la, lb := len(a.Leases)*capacity(b), len(b.Leases)*capacity(a)
	if la != lb {
		return la < lb
	}
	if a.Credits != b.Credits {
		return a.Credits > b.Credits
	}
	return a.ID < b.ID
}

func (p loadPool) Swap(i, j int) { p[i], p[j] = p[j], p[i] }

func (p *loadPool) Push(x any) { *p = append(*p, x.(*workers.Worker)) }

func (p *loadPool) Pop() any {
	old := *p
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*p = old[:len(old)-1]
	return w
}

// capacity is the worker's declared concurrency, at least 1 (a worker that
// declared none still counts as able to run one task).
func capacity(w *workers.Worker) int { return max(int(w.Concurrency), 1) }
