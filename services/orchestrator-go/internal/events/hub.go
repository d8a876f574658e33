// Package events fans task events out to watchers. Publishing never blocks: each
// watcher has a bounded queue, and one that falls behind is cut off ("lagged") and
// resubscribes from its cursor, so a slow watcher never holds up the scheduler.
// Chunks of the current attempt are kept in a bounded per-task buffer so a late
// watcher gets them replayed; finished tasks keep theirs in a bounded ring.
package events

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
)

// Kind is the type of a task event.
type Kind int

// Event kinds, in the order a watcher sees them: Status first, then chunks and
// status changes, Done last.
const (
	KindStatus Kind = iota + 1
	KindChunk
	KindDone
)

// Event is one thing that happened to a task.
type Event struct {
	TaskID string
	// StepID is the task's step on a Feed subscription (workflow watches).
	StepID string
	Kind   Kind
	Status task.Status
	Chunk  string
	// ChunkKind and ChunkData: a typed chunk's kind (taskloom.v1.ChunkKind) and
	// payload, passed through as the worker sent them (typed_chunk.go).
	ChunkKind int32
	ChunkData *structpb.Struct
	Seq       int64
	Attempt   int32
	// Task is the final task on Done; shared between watchers, never mutate it.
	Task *task.Task
	Time time.Time
}

// Errors returned by Subscription.Next.
var (
	// ErrDone: the Done event was delivered; nothing follows.
	ErrDone = errors.New("task finished")
	// ErrLagged: the watcher fell behind and was cut off; resubscribe with its cursor.
	ErrLagged = errors.New("watcher fell behind")
	// ErrShutdown: the hub is closing.
	ErrShutdown = errors.New("orchestrator shutting down")
)

// Options bound the hub's memory.
type Options struct {
	// SubscriberBuffer is how many live events a watcher may have undelivered.
	SubscriberBuffer int
	// ReplayChunks and ReplayBytes bound the chunks kept per task; the oldest go first.
	ReplayChunks int
	ReplayBytes  int
	// FinishedTasks is how many finished tasks keep their chunks for late watchers.
	FinishedTasks int
}

// DefaultOptions suits a single orchestrator process.
func DefaultOptions() Options {
	return Options{SubscriberBuffer: 1024, ReplayChunks: 4096, ReplayBytes: 1 << 20, FinishedTasks: 1024}
}

type topic struct {
	attempt int32
	chunks  []Event
	bytes   int
	subs    map[*Subscription]struct{}
}

// Hub routes events of every task to its watchers. The scheduler publishes under its
// own lock, which orders events with the snapshot a new watcher starts from.
type Hub struct {
	opts    Options
	metrics *telemetry.Metrics

	mu       sync.Mutex
	active   map[string]*topic // tasks not finished that have chunks or watchers
	finished map[string]*topic // finished tasks' retained chunks
	ring     []string          // finished ids, oldest evicted first
	ringNext int
	closed   bool
}

// NewHub returns an empty hub.
func NewHub(opts Options, metrics *telemetry.Metrics) *Hub {
	return &Hub{
		opts: opts, metrics: metrics,
		active: map[string]*topic{}, finished: map[string]*topic{},
		ring: make([]string, 0, opts.FinishedTasks),
	}
}

// Status publishes a status change. A non-terminal change starts a new attempt's
// stream (running) or leaves it (queued), so the replay buffer is reset.
func (h *Hub) Status(taskID string, status task.Status, attempt int32, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := h.active[taskID]
	if tp == nil {
		return
	}
	if !status.Finished() {
		tp.attempt, tp.chunks, tp.bytes = attempt, nil, 0
	}
	h.publish(tp, Event{TaskID: taskID, Kind: KindStatus, Status: status, Attempt: attempt, Time: now})
}

// Chunk publishes a piece of output of the given attempt and keeps it for replay.
func (h *Hub) Chunk(taskID string, attempt int32, seq int64, text string, now time.Time) {
	h.ChunkPiece(taskID, attempt, seq, Piece{Text: text}, now)
}

// ChunkPiece is Chunk for a piece of any kind (typed_chunk.go).
func (h *Hub) ChunkPiece(taskID string, attempt int32, seq int64, p Piece, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := h.topic(taskID)
	if tp.attempt != attempt {
		tp.attempt, tp.chunks, tp.bytes = attempt, nil, 0
	}
	ev := Event{
		TaskID: taskID, Kind: KindChunk, Status: task.StatusRunning, Chunk: p.Text,
		ChunkKind: p.Kind, ChunkData: p.Data, Seq: seq, Attempt: attempt, Time: now,
	}
	tp.chunks = append(tp.chunks, ev)
	tp.bytes += p.size()
	for len(tp.chunks) > 1 && (len(tp.chunks) > h.opts.ReplayChunks || tp.bytes > h.opts.ReplayBytes) {
		tp.bytes -= tp.chunks[0].piece().size()
		tp.chunks[0] = Event{}
		tp.chunks = tp.chunks[1:]
	}
	h.publish(tp, ev)
}

// Done publishes the final status and the Done event, ends every subscription of
// the task and moves its chunks to the finished ring.
func (h *Hub) Done(final *task.Task, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := h.active[final.ID]
	if tp == nil {
		return
	}
	delete(h.active, final.ID)
	h.publish(tp, Event{TaskID: final.ID, Kind: KindStatus, Status: final.Status, Attempt: final.Attempts, Time: now})
	h.publish(tp, Event{TaskID: final.ID, Kind: KindDone, Status: final.Status, Attempt: final.Attempts, Task: final, Time: now})
	for s := range tp.subs {
		s.end(ErrDone)
	}
	tp.subs = nil
	if len(tp.chunks) > 0 && h.opts.FinishedTasks > 0 {
		h.retain(final.ID, tp)
	}
}

func (h *Hub) retain(id string, tp *topic) {
	if len(h.ring) < h.opts.FinishedTasks {
		h.ring = append(h.ring, id)
	} else {
		delete(h.finished, h.ring[h.ringNext])
		h.ring[h.ringNext] = id
		h.ringNext = (h.ringNext + 1) % len(h.ring)
	}
	h.finished[id] = tp
}

// Cursor is how far a watcher got; a resubscription continues from it.
type Cursor struct {
	Status  task.Status
	Attempt int32
	NextSeq int64
}

// Advance records that ev was delivered.
func (c *Cursor) Advance(ev Event) {
	switch ev.Kind {
	case KindStatus, KindDone:
		c.Status = ev.Status
	case KindChunk:
		c.Attempt, c.NextSeq = ev.Attempt, ev.Seq+1
	}
}

// Subscribe starts a watch of t, whose state must be current: the caller holds the
// lock under which events of t are published. The subscription first yields Status
// (unless cur already saw it), then the retained chunks of the current attempt not
// yet seen, then, for a finished task, Done. cur may be nil.
func (h *Hub) Subscribe(t *task.Task, cur *Cursor, now time.Time) *Subscription {
	if cur == nil {
		cur = &Cursor{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &Subscription{hub: h, taskID: t.ID, limit: h.opts.SubscriberBuffer, notify: make(chan struct{}, 1)}
	if h.closed {
		s.end(ErrShutdown)
		return s
	}
	if cur.Status != t.Status {
		s.queue = append(s.queue, Event{TaskID: t.ID, Kind: KindStatus, Status: t.Status, Attempt: t.Attempts, Time: now})
	}
	tp := h.active[t.ID]
	if t.Status.Finished() {
		tp = h.finished[t.ID]
	}
	if tp != nil {
		for _, c := range tp.chunks {
			if c.Attempt != cur.Attempt || c.Seq >= cur.NextSeq {
				s.queue = append(s.queue, c)
			}
		}
	}
	if t.Status.Finished() {
		s.queue = append(s.queue, Event{TaskID: t.ID, Kind: KindDone, Status: t.Status, Attempt: t.Attempts, Task: t.Clone(), Time: now})
		s.end(ErrDone)
		return s
	}
	s.limit += len(s.queue) // the replay does not eat into the live buffer
	tp = h.topic(t.ID)
	tp.subs[s] = struct{}{}
	s.subscribed = true
	h.metrics.WatchersActive.Inc()
	return s
}

// Close ends every subscription with ErrShutdown and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, tp := range h.active {
		for s := range tp.subs {
			h.drop(tp, s, ErrShutdown)
		}
	}
}

func (h *Hub) topic(id string) *topic {
	tp := h.active[id]
	if tp == nil {
		tp = &topic{subs: map[*Subscription]struct{}{}}
		h.active[id] = tp
	}
	return tp
}

// publish hands ev to every watcher without blocking; h.mu is held.
func (h *Hub) publish(tp *topic, ev Event) {
	for s := range tp.subs {
		if !s.offer(ev) {
			h.metrics.WatchersLagged.Inc()
			h.drop(tp, s, ErrLagged)
		}
	}
}

// drop removes s from tp and ends it with err; h.mu is held.
func (h *Hub) drop(tp *topic, s *Subscription, err error) {
	if _, ok := tp.subs[s]; !ok {
		return
	}
	delete(tp.subs, s)
	s.end(err)
	h.unsubscribed(s)
}

func (h *Hub) unsubscribed(s *Subscription) {
	if s.subscribed {
		s.subscribed = false
		h.metrics.WatchersActive.Dec()
	}
}

func (h *Hub) cancel(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if tp := h.active[s.taskID]; tp != nil {
		delete(tp.subs, s)
		if len(tp.subs) == 0 && len(tp.chunks) == 0 {
			delete(h.active, s.taskID)
		}
	}
	h.unsubscribed(s)
}

// Subscription is one watcher's queue of events.
type Subscription struct {
	hub        *Hub  // a task subscription's hub
	feed       *Feed // a feed subscription's feed
	taskID     string
	fwd        *Feed  // set (under hub.mu) once attached to a feed: events go there
	step       string // the step tag of a forwarder's events
	limit      int
	notify     chan struct{}
	subscribed bool // guarded by hub.mu

	mu    sync.Mutex
	queue []Event
	err   error // set once no more events will be queued
}

// offer queues ev unless the live queue is full.
func (s *Subscription) offer(ev Event) bool {
	if s.fwd != nil {
		s.fwd.forward(s.taskID, ev)
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return true
	}
	if len(s.queue) >= s.limit {
		return false
	}
	s.queue = append(s.queue, ev)
	s.wake()
	return true
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	s.wake()
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next returns the next event. Once the queue is drained after the subscription
// ended it returns ErrDone, ErrLagged or ErrShutdown; it returns ctx.Err() if ctx ends.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return ev, nil
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return Event{}, err
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Close stops the subscription; call it when the watcher goes away.
func (s *Subscription) Close() {
	if s.feed != nil {
		s.feed.cancel(s)
	} else {
		s.hub.cancel(s)
	}
	s.end(ErrShutdown)
}
