package scheduler

// Worker sessions: registration, credits, heartbeats, chunks and results of the
// workers connected to the hub.

import (
	"encoding/json"
	"errors"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Registration is what a worker says about itself when its session opens.
type Registration struct {
	WorkerID    string // empty: the hub assigns one
	Agents      []task.AgentInfo
	Concurrency int32
	Hostname    string
	Version     string
}

// Connect registers a worker session and adds its agents to the catalog. A session
// already registered under the same worker id is ended and its leases requeued.
// It is refused with UNAVAILABLE while shutting down (before anything is stored),
// and with RESOURCE_EXHAUSTED when its new agents would overflow the catalog.
func (s *Scheduler) Connect(reg Registration) (*workers.Worker, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrShuttingDown
	}
	// Outside the lock: a persistent catalog writes new agents to the store first.
	if err := s.catalog.Register(reg.Agents...); err != nil {
		var full *workers.ErrCatalogFull
		if errors.As(err, &full) {
			s.log.Warn("worker registration refused: agent catalog full", "worker_id", reg.WorkerID, "limit", full.Limit, "new_agents", full.New)
			return nil, catalogFull(full)
		}
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrShuttingDown
	}
	if reg.WorkerID == "" {
		reg.WorkerID = s.newID()
	}
	names := make([]string, len(reg.Agents))
	for i, a := range reg.Agents {
		names[i] = a.Name
	}
	w := workers.NewWorker(reg.WorkerID, reg.Hostname, reg.Version, names, reg.Concurrency)
	if old := s.workers.Add(w); old != nil {
		s.log.Warn("worker reconnected; ending its previous session", "worker_id", w.ID)
		s.endSessionLocked(old, ErrReplaced)
	}
	s.metrics.WorkerSessionsOpen.Inc()
	s.updateGaugesLocked()
	s.log.Info("worker registered", "worker_id", w.ID, "agents", names, "concurrency", reg.Concurrency, "hostname", reg.Hostname, "version", reg.Version)
	return w, nil
}

// Disconnect ends the worker's session (its stream closed): every lease it still
// holds is requeued at once. Calling it again is harmless.
func (s *Scheduler) Disconnect(w *workers.Worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.Gone {
		return
	}
	s.endSessionLocked(w, nil)
	s.workers.Remove(w)
	s.limitFreed = false
	s.dispatchLocked(nil)
	s.updateGaugesLocked()
	s.log.Info("worker disconnected", "worker_id", w.ID)
}

func (s *Scheduler) endSessionLocked(w *workers.Worker, err error) {
	w.Gone = true
	w.Outbox.Close(err)
	now := s.now()
	for id := range w.Leases {
		if l := s.leases[id]; l != nil {
			s.loseLeaseLocked(l, "the worker running it disconnected", now)
		}
	}
}

// Credit adds credits: the worker may be sent that many more assignments.
func (s *Scheduler) Credit(w *workers.Worker, n int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creditLocked(w, n)
}

func (s *Scheduler) creditLocked(w *workers.Worker, n int32) {
	if w.Gone || n <= 0 {
		return
	}
	w.Credits = min(w.Credits+int(n), s.cfg.MaxCredits)
	s.dispatchLocked(w)
}

// Heartbeat renews the worker's leases among leaseIDs; others are ignored.
func (s *Scheduler) Heartbeat(w *workers.Worker, leaseIDs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	expires := s.now().Add(s.cfg.LeaseTTL)
	for _, id := range leaseIDs {
		if l := s.leases[id]; l != nil && l.worker == w {
			l.expires = expires
		}
	}
}

// Drain stops assignments to the worker; it finishes what it runs, then closes.
func (s *Scheduler) Drain(w *workers.Worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Draining = true
	s.updateGaugesLocked()
	s.log.Info("worker draining", "worker_id", w.ID, "running", len(w.Leases))
}

// currentLeaseLocked returns the lease if w holds it for taskID; a chunk or result
// with any other lease is stale (the attempt was cancelled, timed out or lost).
func (s *Scheduler) currentLeaseLocked(w *workers.Worker, taskID, leaseID, kind string) *lease {
	l := s.leases[leaseID]
	if l == nil || l.worker != w || l.taskID != taskID || w.Gone { // Gone: session ended at shutdown
		s.metrics.StaleMessages.WithLabelValues(kind).Inc()
		s.log.Debug("ignored stale "+kind, "task_id", taskID, "lease_id", leaseID, "worker_id", w.ID)
		return nil
	}
	return l
}

// Chunk is a piece of a running attempt's output; it renews the lease and goes to
// the task's watchers.
func (s *Scheduler) Chunk(w *workers.Worker, taskID, leaseID string, seq int64, text string) {
	s.ChunkPiece(w, taskID, leaseID, seq, events.Piece{Text: text})
}

// ChunkPiece is Chunk for a typed piece (a thought, a tool call or result, ...).
func (s *Scheduler) ChunkPiece(w *workers.Worker, taskID, leaseID string, seq int64, p events.Piece) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunkLocked(w, Chunk{TaskID: taskID, LeaseID: leaseID, Seq: seq, Piece: p})
}

// Chunk is a piece of an attempt's output as a worker reports it.
type Chunk struct {
	TaskID, LeaseID string
	Seq             int64
	Piece           events.Piece
}

func (s *Scheduler) chunkLocked(w *workers.Worker, c Chunk) {
	l := s.currentLeaseLocked(w, c.TaskID, c.LeaseID, "chunk")
	if l == nil {
		return
	}
	now := s.now()
	l.expires = now.Add(s.cfg.LeaseTTL)
	s.hub.ChunkPiece(c.TaskID, l.attempt, c.Seq, c.Piece, now)
}

// Result is the end of an attempt: success, or a failure retried after backoff
// while it is retryable and attempts remain. It is recorded once: the lease ends,
// so a second result of the same attempt is stale. The task is reported finished
// once the result is durable.
type Result struct {
	TaskID  string
	LeaseID string
	Output  json.RawMessage
	Failure *task.Failure // nil on success
	Usage   task.Usage
}

// Complete records the result of an attempt; stale results are ignored. A success
// is kept whenever it arrives; a failure is retried, times out or fails the task
// (see attemptFailedLocked).
func (s *Scheduler) Complete(w *workers.Worker, r Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.completeLocked(w, r)
	s.afterLeaseChangeLocked()
}

// Report applies what a worker reported at once (a ResultBatch) under one lock:
// its chunks, then its results, then its credits, each in order; tasks freed by
// the results and the credits are then dispatched together.
func (s *Scheduler) Report(w *workers.Worker, chunks []Chunk, results []Result, credits int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chunks {
		s.chunkLocked(w, c)
	}
	for _, r := range results {
		s.completeLocked(w, r)
	}
	s.creditLocked(w, credits)
	s.afterLeaseChangeLocked()
}

func (s *Scheduler) completeLocked(w *workers.Worker, r Result) {
	l := s.currentLeaseLocked(w, r.TaskID, r.LeaseID, "result")
	if l == nil {
		return
	}
	s.dropLeaseLocked(l)
	now := s.now()
	if e := s.live[r.TaskID]; e != nil && !e.finishing {
		t := e.t
		addUsage(&t.Usage, r.Usage)
		s.recordUsage(t, r.Usage.Models, now)
		if r.Failure == nil {
			t.Result = r.Output
			if !s.holdStepLocked(e, now) {
				s.finishLocked(e, task.StatusSucceeded, nil, now)
			}
		} else {
			s.attemptFailedLocked(e, l, r.Failure, now)
		}
	}
}

// addUsage sums usage over attempts: every attempt spent its tokens.
func addUsage(total *task.Usage, u task.Usage) {
	total.PromptTokens += u.PromptTokens
	total.CompletionTokens += u.CompletionTokens
	total.CachedCompletions += u.CachedCompletions
	total.CostNanoUSD += u.CostNanoUSD
	total.SavedTokens += u.SavedTokens
	total.SavedCostNanoUSD += u.SavedCostNanoUSD
	if len(u.Models) > 0 {
		total.Models = mergeUsageLines(total.Models, u.Models)
	}
}
