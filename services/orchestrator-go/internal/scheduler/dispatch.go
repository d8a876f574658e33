package scheduler

// Dispatch: handing queued tasks to workers as their credits and the agent and
// provider limits allow.

import (
	"context"
	"log/slog"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// dispatchLocked hands queued tasks to workers with free credits: to only if given
// (it just granted credits), else to every connected worker, each task to the
// least-loaded worker that can run it (so two idle workers share a burst instead
// of one filling up first). It runs on every event that may make an assignment
// possible, so assignment never waits for a tick.
func (s *Scheduler) dispatchLocked(only *workers.Worker) {
	if s.queue.Len() == 0 || s.closed { // nothing starts once shutting down
		return
	}
	var allowed func(string) bool
	if len(s.cfg.AgentLimits) > 0 || len(s.cfg.ProviderLimits) > 0 {
		allowed = s.mayStartLocked
	}
	if only != nil {
		for only.CanTake() {
			item, ok := s.queue.Peek(only.Agents, allowed)
			if !ok {
				return
			}
			s.assignLocked(only, item)
		}
		return
	}
	pool := newLoadPool(s.workers.All())
	for pool.Len() > 0 {
		w := pool.least()
		item, ok := s.queue.Peek(w.Agents, allowed)
		// Assigning only shrinks the queue and tightens the limits, so a worker
		// with nothing to take now has nothing later in this pass either.
		if !ok {
			pool.dropLeast()
			continue
		}
		s.assignLocked(w, item)
		if w.CanTake() {
			pool.fixLeast()
		} else {
			pool.dropLeast()
		}
	}
}

// mayStartLocked reports whether the agent and its provider are under their limits.
func (s *Scheduler) mayStartLocked(agent string) bool {
	if limit, ok := s.cfg.AgentLimits[agent]; ok && s.runningAgent[agent] >= limit {
		return false
	}
	if len(s.cfg.ProviderLimits) > 0 {
		p := s.catalog.Provider(agent)
		if limit, ok := s.cfg.ProviderLimits[p]; ok && s.runningProv[p] >= limit {
			return false
		}
	}
	return true
}

// assignLocked starts the next attempt of the queued task on w: the task turns
// running, a fresh lease is taken and the assignment is posted to the worker. The
// running state is not written now: most attempts end sooner than a tick, and their
// terminal write says all. Attempts still running a full tick later are written
// then (saveRunningLocked). If the running state is lost in a crash, the task is
// simply queued again at restart, that attempt uncounted.
func (s *Scheduler) assignLocked(w *workers.Worker, item *queued) {
	e := s.live[item.id]
	if e == nil || e.finishing || e.t.Status != task.StatusQueued {
		s.queue.Remove(item.id) // nothing to run: drop it rather than spin on it
		return
	}
	s.queue.Pop(item)
	now := s.now()
	t := e.t
	t.Status, t.WorkerID, t.StartedAt, t.NotBefore = task.StatusRunning, w.ID, now, time.Time{}
	t.Attempts++
	snap := t.Snapshot()
	s.unsavedRunning = append(s.unsavedRunning, runningMark{e: e, attempt: t.Attempts})
	l := &lease{
		id: s.newID(), taskID: t.ID, agent: t.Agent, worker: w, attempt: t.Attempts,
		expires: now.Add(s.cfg.LeaseTTL), deadline: now.Add(t.Timeout),
	}
	if len(s.cfg.ProviderLimits) > 0 {
		l.provider = s.catalog.Provider(t.Agent)
	}
	s.leases[l.id], s.running[t.ID] = l, l
	s.runningAgent[l.agent]++
	s.runningProv[l.provider]++
	s.leaseChecks.add(l)
	w.Leases[l.id] = struct{}{}
	w.Credits--
	// The snapshot is read by the worker's stream, outside the lock.
	w.Outbox.Post(workers.Message{Assignment: &workers.Assignment{
		Task: snap, LeaseID: l.id, Attempt: l.attempt, Deadline: l.deadline, Journal: e.journal.records,
		EnqueuedAt: item.enqueuedAt, AssignedAt: now,
	}})
	s.metrics.AssignmentsSent.Inc()
	s.metrics.SchedulingLatency.Observe(now.Sub(item.enqueuedAt).Seconds())
	s.hub.Status(t.ID, task.StatusRunning, t.Attempts, now)
	if s.log.Enabled(context.Background(), slog.LevelDebug) { // skip building the attributes
		s.log.Debug("task assigned", append(taskAttrs(t), "worker_id", w.ID, "attempt", t.Attempts, "lease_id", l.id)...)
	}
}

// runningMark is an attempt whose running state is not yet written.
type runningMark struct {
	e       *liveTask
	attempt int32
}

// saveRunningLocked writes the running state of the attempts started before the
// previous tick that still run, and ages those started since. So an attempt is
// written running once it has run between one and two ticks, and a short one
// never is.
func (s *Scheduler) saveRunningLocked() {
	for i, m := range s.agingRunning {
		t := m.e.t
		if !m.e.finishing && t.Status == task.StatusRunning && t.Attempts == m.attempt && s.live[t.ID] == m.e {
			s.commit.Write(t.Snapshot())
		}
		s.agingRunning[i] = runningMark{}
	}
	s.agingRunning, s.unsavedRunning = s.unsavedRunning, s.agingRunning[:0]
}
