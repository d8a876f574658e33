package workers

import "slices"

// Worker is one connected worker session. Its mutable fields are guarded by the
// scheduler's lock, which owns every state transition.
type Worker struct {
	ID          string
	Hostname    string
	Version     string
	Agents      []string
	Concurrency int32

	Credits  int
	Draining bool
	// Gone is set once the session ended; later messages from it are ignored.
	Gone bool
	// Leases the worker holds now, by lease id.
	Leases map[string]struct{}
	Outbox *Outbox
}

// NewWorker returns a worker with no credits and an open outbox.
func NewWorker(id, hostname, version string, agents []string, concurrency int32) *Worker {
	return &Worker{
		ID: id, Hostname: hostname, Version: version,
		Agents: slices.Clone(agents), Concurrency: concurrency,
		Leases: map[string]struct{}{}, Outbox: NewOutbox(),
	}
}

// CanTake reports whether the worker may be sent another assignment now.
func (w *Worker) CanTake() bool { return w.Credits > 0 && !w.Draining && !w.Gone }

// Registry is the set of connected workers. Not safe for concurrent use: the
// scheduler's lock guards it.
type Registry struct {
	byID map[string]*Worker
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byID: map[string]*Worker{}} }

// Add registers w, returning the worker it replaces (same id reconnecting), if any.
func (r *Registry) Add(w *Worker) (replaced *Worker) {
	replaced = r.byID[w.ID]
	r.byID[w.ID] = w
	return replaced
}

// Remove unregisters w if it is still the registered session for its id.
func (r *Registry) Remove(w *Worker) bool {
	if r.byID[w.ID] != w {
		return false
	}
	delete(r.byID, w.ID)
	return true
}

// Get returns the connected worker with the id.
func (r *Registry) Get(id string) (*Worker, bool) {
	w, ok := r.byID[id]
	return w, ok
}

// Len is the number of connected workers.
func (r *Registry) Len() int { return len(r.byID) }

// All returns the connected workers in no particular order.
func (r *Registry) All() []*Worker {
	out := make([]*Worker, 0, len(r.byID))
	for _, w := range r.byID {
		out = append(out, w)
	}
	return out
}

// FreeCredits is the sum of credits of workers that are not draining.
func (r *Registry) FreeCredits() int {
	n := 0
	for _, w := range r.byID {
		if !w.Draining {
			n += w.Credits
		}
	}
	return n
}
