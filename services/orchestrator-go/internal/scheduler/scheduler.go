// Package scheduler is the orchestrator's core: it owns every task state transition.
// It queues tasks by priority, hands them to workers as their credits allow, tracks
// the lease of each running attempt (heartbeats, expiry, deadlines), retries, cancels,
// and publishes task events. One lock orders all of it; the store persists it.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Config tunes scheduling; zero values are replaced by DefaultConfig's.
type Config struct {
	// MaxQueue bounds tasks waiting for a worker (queued or backing off).
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
	// TickInterval is how often leases, deadlines and backoffs are checked.
	TickInterval time.Duration
	// QueueFullRetryAfter is the hint given to clients refused with QUEUE_FULL.
	QueueFullRetryAfter time.Duration
	// MaxCredits caps the credits one worker may hold.
	MaxCredits int
}

// DefaultConfig returns the defaults documented on the command line.
func DefaultConfig() Config {
	return Config{
		MaxQueue: 100_000, DefaultTimeout: 300 * time.Second, LeaseTTL: 15 * time.Second,
		HeartbeatInterval: 2 * time.Second, MaxAttempts: 3,
		InitialBackoff: time.Second, MaxBackoff: 30 * time.Second,
		TickInterval: 250 * time.Millisecond, QueueFullRetryAfter: time.Second, MaxCredits: 4096,
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
	return c
}

// Deps are the scheduler's collaborators. Now and NewID may be nil (wall clock, UUIDs).
type Deps struct {
	Store   store.Store
	Catalog *workers.Catalog
	Hub     *events.Hub
	Metrics *telemetry.Metrics
	Log     *slog.Logger
	Now     func() time.Time
	NewID   func() string
	// OnStepFinished, if set, is called with a copy of every finished task that is a
	// workflow step, in its own goroutine and outside the scheduler's lock, so that
	// the workflow engine may submit the next steps from it.
	OnStepFinished func(*task.Task)
}

// Scheduler owns task state transitions; all methods are safe for concurrent use.
type Scheduler struct {
	cfg     Config
	store   store.Store
	catalog *workers.Catalog
	hub     *events.Hub
	metrics *telemetry.Metrics
	log     *slog.Logger
	now     func() time.Time
	newID   func() string

	onStepFinished func(*task.Task)

	mu      sync.Mutex
	queue   *queue
	workers *workers.Registry
	leases  map[string]*lease    // by lease id
	running map[string]*lease    // by task id
	delayed map[string]time.Time // task id -> when its retry may be queued
	closed  bool

	stopTick chan struct{}
	tickDone chan struct{}
}

// New returns a scheduler; call Recover, then Start.
func New(cfg Config, d Deps) *Scheduler {
	s := &Scheduler{
		cfg: cfg.withDefaults(), store: d.Store, catalog: d.Catalog, hub: d.Hub,
		metrics: d.Metrics, log: d.Log, now: d.Now, newID: d.NewID, onStepFinished: d.OnStepFinished,
		queue: newQueue(), workers: workers.NewRegistry(),
		leases: map[string]*lease{}, running: map[string]*lease{}, delayed: map[string]time.Time{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Config returns the effective configuration.
func (s *Scheduler) Config() Config { return s.cfg }

// Recover queues the unfinished tasks found in the store. Attempts that were running
// when the process stopped lost their lease: they count and are queued again.
func (s *Scheduler) Recover(ctx context.Context) error {
	tasks, err := s.store.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("recover unfinished tasks: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, t := range tasks {
		if t.Status == task.StatusRunning {
			t.Status, t.WorkerID = task.StatusQueued, ""
			if err := s.store.Put(ctx, t); err != nil {
				return fmt.Errorf("requeue recovered task %s: %w", t.ID, err)
			}
		}
		s.queue.Push(t.ID, t.Agent, t.Priority, now)
	}
	if len(tasks) > 0 {
		s.log.Info("recovered unfinished tasks", "count", len(tasks))
	}
	s.updateGaugesLocked()
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
				s.Tick()
			case <-s.stopTick:
				return
			}
		}
	}()
}

// Shutdown ends every worker session and watcher and stops the background loop.
// Leases are not requeued here: a durable store recovers them on the next start.
func (s *Scheduler) Shutdown() {
	s.mu.Lock()
	s.closed = true
	for _, w := range s.workers.All() {
		w.Gone = true
		w.Outbox.Close(ErrShuttingDown)
	}
	s.mu.Unlock()
	s.hub.Close()
	if s.stopTick != nil {
		close(s.stopTick)
		<-s.tickDone
		s.stopTick = nil
	}
}

// queuedLocked counts tasks waiting for a worker, backing-off retries included.
func (s *Scheduler) queuedLocked() int { return s.queue.Len() + len(s.delayed) }

func (s *Scheduler) updateGaugesLocked() {
	for p := task.MinPriority; p <= task.MaxPriority; p++ {
		s.metrics.QueueDepth.WithLabelValues(strconv.Itoa(p)).Set(float64(s.queue.Depth(int32(p))))
	}
	s.metrics.TasksRunning.Set(float64(len(s.running)))
	s.metrics.WorkersConnected.Set(float64(s.workers.Len()))
	s.metrics.WorkerCreditsFree.Set(float64(s.workers.FreeCredits()))
}

// finishLocked moves t to a terminal status, persists it and ends its watches.
func (s *Scheduler) finishLocked(ctx context.Context, t *task.Task, status task.Status, failure *task.Failure, now time.Time) error {
	t.Status, t.Failure, t.FinishedAt = status, failure, now
	if err := s.store.Put(ctx, t); err != nil {
		return fmt.Errorf("store finished task %s: %w", t.ID, err)
	}
	s.metrics.TasksFinished.WithLabelValues(t.Agent, status.String()).Inc()
	if !t.StartedAt.IsZero() {
		s.metrics.TaskDuration.WithLabelValues(t.Agent, status.String()).Observe(now.Sub(t.StartedAt).Seconds())
	}
	s.hub.Done(t.Clone(), now)
	if t.WorkflowID != "" && s.onStepFinished != nil {
		go s.onStepFinished(t.Clone())
	}
	s.log.Info("task finished", "task_id", t.ID, "agent", t.Agent, "status", status.String(), "attempts", t.Attempts)
	return nil
}
