// Package scheduler is the orchestrator's core: it owns every task state transition.
// It queues tasks by priority with per-tenant fair share, hands them to workers as
// their credits and the per-agent/per-provider limits allow, tracks the lease of each
// running attempt (heartbeats, expiry, deadlines), retries with jittered backoff,
// cancels, and publishes task events.
//
// One lock orders all of it; it is never held while waiting for the disk. Writes go
// to the store through a group Committer: a submit is acknowledged, and a task
// reported finished, only once its write has committed.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Config tunes scheduling; zero values are replaced by DefaultConfig's.
type Config struct {
	// MaxQueue bounds tasks waiting for a worker (queued, backing off or being stored).
	MaxQueue int
	// DefaultTimeout is the time allowed for one attempt when the spec gives none.
	DefaultTimeout time.Duration
	// LeaseTTL: a lease not renewed by a heartbeat within it expires.
	LeaseTTL time.Duration
	// HeartbeatInterval is how often workers are told to heartbeat.
	HeartbeatInterval time.Duration
	// MaxAttempts is the default number of attempts, the first included.
	MaxAttempts int32
	// InitialBackoff and MaxBackoff bound the wait before a retry when the spec gives none.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// TickInterval is how often leases, deadlines and backoffs are checked (and the
	// queue-depth gauges refreshed). Assignment never waits for a tick.
	TickInterval time.Duration
	// QueueFullRetryAfter is the hint given to clients refused with QUEUE_FULL.
	QueueFullRetryAfter time.Duration
	// MaxCredits caps the credits one worker may hold.
	MaxCredits int
	// AgentLimits and ProviderLimits cap the tasks running at once per agent and per
	// LLM provider (the agent's provider in the catalog). Absent: no cap.
	AgentLimits    map[string]int
	ProviderLimits map[string]int
	// TenantLabels caps the tenant label values of the queue-depth gauge: the
	// tenants with the most queued tasks get their own series, the rest "other".
	TenantLabels int
}

// DefaultConfig returns the defaults documented on the command line.
func DefaultConfig() Config {
	return Config{
		MaxQueue: 100_000, DefaultTimeout: 300 * time.Second, LeaseTTL: 15 * time.Second,
		HeartbeatInterval: 2 * time.Second, MaxAttempts: 3,
		InitialBackoff: time.Second, MaxBackoff: 30 * time.Second,
		TickInterval: 250 * time.Millisecond, QueueFullRetryAfter: time.Second, MaxCredits: 4096,
		TenantLabels: 20,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxQueue <= 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = d.DefaultTimeout
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = d.LeaseTTL
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = d.InitialBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.TickInterval <= 0 {
		c.TickInterval = d.TickInterval
	}
	if c.QueueFullRetryAfter <= 0 {
		c.QueueFullRetryAfter = d.QueueFullRetryAfter
	}
	if c.MaxCredits <= 0 {
		c.MaxCredits = d.MaxCredits
	}
	if c.TenantLabels <= 0 {
		c.TenantLabels = d.TenantLabels
	}
	return c
}

// Deps are the scheduler's collaborators. Now, NewID and Rand may be nil (wall
// clock, UUIDv7s, math/rand).
type Deps struct {
	Store   store.Store
	Catalog *workers.Catalog
	Hub     *events.Hub
	Metrics *telemetry.Metrics
	Log     *slog.Logger
	Now     func() time.Time
	NewID   func() string
	// Rand returns a uniform random number in [0, n) (backoff jitter).
	Rand func(n int64) int64
}

// liveTask is an unfinished task: the scheduler's memory is its authority, the
// store its durable copy (written through the committer, in order).
type liveTask struct {
	t *task.Task
	// submitted is the batch committing the submission; nil once it is durable.
	submitted *store.Batch
	// finishing is set once a terminal status is being written; the task leaves
	// the live set when that write commits (until then Get shows the state before).
	finishing bool
	// final is the durable terminal snapshot of a finished task whose idempotency
	// key the map keeps a while longer (see retireIdemLocked).
	final *task.Task
}

// Scheduler owns task state transitions; all methods are safe for concurrent use.
type Scheduler struct {
	cfg     Config
	store   store.Store
	commit  *store.Committer
	catalog *workers.Catalog
	hub     *events.Hub
	metrics *telemetry.Metrics
	log     *slog.Logger
	now     func() time.Time
	newID   func() string
	rand    func(int64) int64

	// finishedSteps holds the finished workflow step tasks until the workflow
	// engine takes them (NextFinishedStep).
	finishedSteps stepQueue

	mu             sync.Mutex
	live           map[string]*liveTask // unfinished tasks by id
	idem           map[idemKey]*liveTask
	queue          *queue
	workers        *workers.Registry
	leases         map[string]*lease    // by lease id
	running        map[string]*lease    // by task id
	delayed        map[string]time.Time // task id -> when its retry may be queued
	leaseChecks    leaseHeap            // running leases by next expiry/deadline check
	retries        retryHeap            // backed-off tasks by the end of their backoff
	runningAgent   map[string]int
	runningProv    map[string]int
	limitFreed     bool // a capped agent/provider got room: every worker may take work
	pendingSubmits int  // tasks whose submission is being written
	// Attempts started since the last tick, and between the last two ticks, whose
	// running state is not yet written (see saveRunningLocked).
	unsavedRunning, agingRunning []runningMark
	agentSeries                  map[string]*telemetry.AgentSeries
	// closed: shutting down, nothing new is accepted or assigned; stopped: the
	// worker sessions are ended too. drained, while set, is closed when the last
	// running attempt ends (GracefulShutdown waits for it).
	closed, stopped bool
	drained         chan struct{}
	shutdownOnce    sync.Once
	// Idempotency-key lookups in flight outside the lock (see idemLookup):
	// lookupSeq numbers them, lookups counts those in flight by number, and
	// retiredIdem holds finished tasks' keys that one of them may still need.
	lookupSeq   uint64
	lookups     map[uint64]int
	retiredIdem []retiredIdem

	stopTick chan struct{}
	tickDone chan struct{}
}

// New returns a scheduler; call Recover, then Start.
func New(cfg Config, d Deps) *Scheduler {
	s := &Scheduler{
		cfg: cfg.withDefaults(), store: d.Store, catalog: d.Catalog, hub: d.Hub,
		metrics: d.Metrics, log: d.Log, now: d.Now, newID: d.NewID, rand: d.Rand,
		live: map[string]*liveTask{}, idem: map[idemKey]*liveTask{}, lookups: map[uint64]int{},
		queue: newQueue(), workers: workers.NewRegistry(),
		leases: map[string]*lease{}, running: map[string]*lease{}, delayed: map[string]time.Time{},
		runningAgent: map[string]int{}, runningProv: map[string]int{},
		agentSeries: map[string]*telemetry.AgentSeries{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if s.rand == nil {
		s.rand = rand.Int64N
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.commit = store.NewCommitter(d.Store, store.CommitterOptions{
		OnCommitted: s.committed,
		Observe: func(n int, took time.Duration) {
			s.metrics.StoreCommits.Inc()
			s.metrics.StoreCommitTasks.Observe(float64(n))
			s.metrics.StoreCommitDuration.Observe(took.Seconds())
		},
		OnError: func(err error, attempt int) {
			s.metrics.StoreCommitFailures.Inc()
			s.log.Error("store commit failed; retrying", "attempt", attempt, "permanent", store.IsPermanent(err), "err", err)
		},
	})
	return s
}

// Config returns the effective configuration.
func (s *Scheduler) Config() Config { return s.cfg }

// waitDurable waits until every state change made so far is durable.
func (s *Scheduler) waitDurable() error { return s.commit.Sync() }

// Recover loads the unfinished tasks found in the store and queues them. Attempts
// that were running when the process stopped lost their lease: they count, and the
// task is queued again while attempts remain (else it fails with LEASE_LOST). A
// task that was backing off before a retry waits out the rest of its backoff.
func (s *Scheduler) Recover(ctx context.Context) error {
	tasks, err := s.store.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("recover unfinished tasks: %w", err)
	}
	s.mu.Lock()
	now := s.now()
	requeued := 0
	for _, t := range tasks {
		e := &liveTask{t: t}
		s.live[t.ID] = e
		if t.IdempotencyKey != "" {
			s.idem[idemKey{t.Tenant, t.IdempotencyKey}] = e
		}
		if t.Status == task.StatusRunning {
			failure := &task.Failure{Reason: errs.ReasonLeaseLost, Message: "the orchestrator restarted while the attempt ran", Retryable: true}
			if t.Attempts >= t.MaxAttempts {
				s.finishLocked(e, task.StatusFailed, failure, now)
				continue
			}
			t.Status, t.WorkerID, t.Failure = task.StatusQueued, "", failure
			s.commit.Write(t.Clone())
			requeued++
		}
		if t.NotBefore.After(now) {
			s.delayLocked(t, t.NotBefore)
			continue
		}
		s.queue.Push(t, now)
	}
	s.metrics.TasksRecovered.Add(float64(len(tasks)))
	s.updateGaugesLocked()
	s.updateQueueDepthLocked()
	s.mu.Unlock()
	if len(tasks) > 0 {
		s.log.Info("recovered unfinished tasks", "count", len(tasks), "were_running", requeued)
	}
	if err := s.commit.Sync(); err != nil {
		return fmt.Errorf("store recovered tasks: %w", err)
	}
	return nil
}

// Start runs the background loop that expires leases, times out attempts and
// queues retries whose backoff has passed.
func (s *Scheduler) Start() {
	s.stopTick, s.tickDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.tickDone)
		t := time.NewTicker(s.cfg.TickInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.tick()
			case <-s.stopTick:
				return
			}
		}
	}()
}

// tick expires unrenewed leases, times out attempts past their deadline, queues
// retries whose backoff has passed and refreshes the queue-depth gauges. Start
// calls it periodically; tests call it directly with a fake clock.
func (s *Scheduler) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped { // while draining, running leases are still checked
		return
	}
	now := s.now()
	s.expireLeasesLocked(now)
	s.queueDueRetriesLocked(now)
	s.limitFreed = false
	s.dispatchLocked(nil)
	s.saveRunningLocked()
	s.updateGaugesLocked()
	s.updateQueueDepthLocked()
}

// Shutdown stops at once: GracefulShutdown with no time to drain.
func (s *Scheduler) Shutdown() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.GracefulShutdown(ctx)
}

// GracefulShutdown stops the scheduler. At once it refuses submissions and worker
// registrations and stops assigning work. Attempts already running keep their
// worker sessions (heartbeats, chunks, results, deadline checks) until they all
// end, their results written to the store, or until ctx ends. Then it ends every
// worker session and watcher, commits pending writes and stops the background
// loop. Attempts still running then are abandoned, not requeued here: their
// results are ignored, and Recover queues them again at the next start. Later
// calls wait for the first to finish.
func (s *Scheduler) GracefulShutdown(ctx context.Context) {
	s.shutdownOnce.Do(func() { s.shutdown(ctx) })
}

func (s *Scheduler) shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	var drained chan struct{}
	if n := len(s.running); n > 0 && ctx.Err() == nil {
		drained = make(chan struct{})
		s.drained = drained
		s.log.Info("shutting down: waiting for running attempts to finish", "running", n)
	}
	s.mu.Unlock()
	if drained != nil {
		select {
		case <-drained:
			s.log.Info("shutting down: every running attempt finished")
		case <-ctx.Done():
			s.mu.Lock()
			n := len(s.running)
			s.mu.Unlock()
			s.log.Warn("shutting down: drain timed out; abandoning running attempts (queued again at next start)", "running", n)
		}
	}
	s.mu.Lock()
	s.stopped, s.drained = true, nil
	for _, w := range s.workers.All() {
		w.Gone = true
		w.Outbox.Close(ErrShuttingDown)
	}
	s.mu.Unlock()
	if s.stopTick != nil {
		close(s.stopTick)
		<-s.tickDone
		s.stopTick = nil
	}
	s.commit.Close()
	s.hub.Close()
}

// queuedLocked counts tasks waiting for a worker: queued, backing off or being stored.
func (s *Scheduler) queuedLocked() int { return s.queue.Len() + len(s.delayed) + s.pendingSubmits }

// updateGaugesLocked refreshes the running, worker and credit gauges. The hot paths
// (submit, credit, result) leave it to the next tick; rarer changes call it at once.
func (s *Scheduler) updateGaugesLocked() {
	s.metrics.TasksRunning.Set(float64(len(s.running)))
	s.metrics.WorkersConnected.Set(float64(s.workers.Len()))
	s.metrics.WorkerCreditsFree.Set(float64(s.workers.FreeCredits()))
}

// updateQueueDepthLocked refreshes the queue-depth gauge by priority and tenant.
// It ranks tenants, so it runs on ticks rather than on every change.
func (s *Scheduler) updateQueueDepthLocked() {
	s.metrics.SetQueueDepth(s.queue.DepthByTenant(), s.cfg.TenantLabels)
}

// finishLocked writes t's terminal status. The task stays live (Get shows its state
// before) until the write commits; then committed reports it finished. It returns
// the final snapshot and the batch writing it.
func (s *Scheduler) finishLocked(e *liveTask, status task.Status, failure *task.Failure, now time.Time) (*task.Task, *store.Batch) {
	e.finishing = true
	s.queue.Remove(e.t.ID)
	delete(s.delayed, e.t.ID)
	fin := e.t.Snapshot()
	fin.Status, fin.Failure, fin.FinishedAt = status, failure, now
	return fin, s.commit.Write(fin)
}

// committed runs after each group commit: finished tasks whose terminal write is
// now durable leave the live set and are reported to watchers and the workflow
// engine. The committer retries a failed commit until it succeeds, so an error
// only comes at shutdown (the committer closed while the store refused the
// batch): then nothing is reported finished; the tasks stay live, and the store
// keeps their last durable state, which Recover resumes from at the next start.
func (s *Scheduler) committed(tasks []*task.Task, err error) {
	if err != nil && store.IsPermanent(err) {
		// Refused for good (e.g. a key the store cannot hold): the waiters of these
		// writes get the error (a submission is forgotten by enqueueSubmitted).
		ids := make([]string, 0, min(len(tasks), 10))
		for _, t := range tasks[:min(len(tasks), 10)] {
			ids = append(ids, t.ID)
		}
		s.log.Error("the task store refused these task writes permanently; they are not stored", "tasks", len(tasks), "task_ids", ids, "err", err)
		return
	}
	if err != nil {
		s.log.Error("store commit failed at shutdown; these task states were not stored and are resumed from the last stored ones at restart", "tasks", len(tasks), "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	infoLogs := s.log.Enabled(context.Background(), slog.LevelInfo) // skip building attributes
	for _, t := range tasks {
		if !t.Status.Finished() {
			continue
		}
		e := s.live[t.ID]
		if e == nil || !e.finishing {
			continue
		}
		delete(s.live, t.ID)
		if t.IdempotencyKey != "" {
			s.retireIdemLocked(idemKey{t.Tenant, t.IdempotencyKey}, e, t)
		}
		series := s.agentSeriesLocked(t.Agent)
		series.Finished(t.Status).Inc()
		if !t.StartedAt.IsZero() {
			series.Duration(t.Status).Observe(t.FinishedAt.Sub(t.StartedAt).Seconds())
		}
		s.hub.Done(t, now)
		if t.WorkflowID != "" {
			s.finishedSteps.push(t.Clone())
		}
		if infoLogs {
			s.log.Info("task finished", append(taskAttrs(t), "agent", t.Agent, "status", t.Status.String(), "attempts", t.Attempts)...)
		}
	}
}

// agentSeriesLocked returns the agent's metric series (agents are bounded by the catalog).
func (s *Scheduler) agentSeriesLocked(agent string) *telemetry.AgentSeries {
	a := s.agentSeries[agent]
	if a == nil {
		a = s.metrics.AgentSeries(agent)
		s.agentSeries[agent] = a
	}
	return a
}

// taskAttrs are the log attributes naming a task: its id and, when it carries a
// W3C traceparent label, its trace id.
func taskAttrs(t *task.Task) []any {
	if id := t.TraceID(); id != "" {
		return []any{"task_id", t.ID, "trace_id", id}
	}
	return []any{"task_id", t.ID}
}
