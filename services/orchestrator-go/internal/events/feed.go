package events

import (
	"sort"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Feed merges the events of many tasks (a workflow's step tasks) into one stream,
// so that a watcher of all of them holds one subscription and no goroutine per
// task. Each task joins with Attach, which turns the task's hub subscription into
// a forwarder: the hub hands its events to the feed under its own lock, and the
// feed queues them for each of its subscribers without blocking. A subscriber that
// falls behind its bound is cut off (ErrLagged) and resubscribes from its
// FeedCursor: it gets each task's current status, the retained chunks it missed
// and the Done events it has not seen. The feed keeps the final task of every
// finished member until it is dropped, so its memory is that of its tasks.
//
// Every event the feed publishes gets the next FeedSeq, so a watcher that reconnects
// can say how far it got (CursorAt). The sequence starts at the feed's creation time in
// microseconds: a feed made again for the same workflow (after a restart) starts above
// every seq of the one before, so an old seq is never mistaken for a newer position.
//
// Lock order: Hub.mu, then Feed.mu, then Subscription.mu.
type Feed struct {
	limit int
	base  int64 // FeedSeq of the first event, less one
	seq   int64 // FeedSeq of the last event published

	mu      sync.Mutex
	hub     *Hub // set by the first Attach
	members map[string]*member
	order   []*member // in the order they joined
	subs    map[*Subscription]struct{}
	pending int   // members not finished
	ending  bool  // End was called: end the subscriptions once pending is 0
	ended   error // set once the subscriptions are ended: nothing follows
	timer   *time.Timer
}

type member struct {
	taskID, step string
	status       task.Status
	attempt      int32
	final        *task.Task // set once the Done event went through
	statusSeq    int64      // FeedSeq of the event that set status
	doneSeq      int64      // FeedSeq of Done; 0 before
	// chunks: the FeedSeq of each chunk forwarded, in order (so also by attempt and
	// seq): where a chunk replayed from the hub stood, and how far a FeedSeq reached.
	// At most twice the hub's ReplayChunks: older marks are of chunks it dropped.
	chunks []chunkMark
}

type chunkMark struct {
	feedSeq int64
	attempt int32
	seq     int64
}

// NewFeed returns an empty feed whose subscribers may each have up to buffer
// live events undelivered; now numbers its events (see Feed).
func NewFeed(buffer int, now time.Time) *Feed {
	if buffer <= 0 {
		buffer = DefaultOptions().SubscriberBuffer
	}
	base := now.UnixMicro()
	return &Feed{limit: buffer, base: base, seq: base, members: map[string]*member{}, subs: map[*Subscription]struct{}{}}
}

// Attach makes sub, a task subscription just opened from the task's current state
// (Hub.Subscribe with a nil cursor), forward to the feed, its events tagged with
// step; sub is consumed and must not be read. A task already attached is left
// as it is. It returns ErrLagged if sub was cut off before it was attached (open
// a new one and retry) and ErrShutdown if the hub is closing.
func (f *Feed) Attach(sub *Subscription, step string) error {
	h := sub.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	sub.mu.Lock()
	queued, err := sub.queue, sub.err
	sub.queue = nil
	if sub.err == nil {
		sub.err = ErrShutdown // nobody reads it
	}
	sub.mu.Unlock()
	if f.hub == nil {
		f.hub = h
	}
	tp := h.active[sub.taskID]
	forwarding := sub.subscribed && tp != nil && tp.subs != nil
	leave := func() {
		if forwarding {
			delete(tp.subs, sub)
		}
		h.unsubscribed(sub)
	}
	switch {
	case err == ErrLagged || err == ErrShutdown:
		leave()
		return err
	case f.members[sub.taskID] != nil:
		leave()
		return nil
	}
	m := &member{taskID: sub.taskID, step: step}
	f.members[m.taskID] = m
	f.order = append(f.order, m)
	f.pending++
	if forwarding {
		h.unsubscribed(sub) // internal: not counted as a watcher
		sub.fwd, sub.step = f, step
	}
	for _, ev := range queued {
		f.publishLocked(m, ev)
	}
	return nil
}

// forward is called by the hub, under its lock, with an event of an attached task.
func (f *Feed) forward(taskID string, ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.members[taskID]; m != nil {
		f.publishLocked(m, ev)
	}
}

func (f *Feed) publishLocked(m *member, ev Event) {
	if m.final != nil {
		return
	}
	ev.StepID = m.step
	f.seq++
	ev.FeedSeq = f.seq
	switch ev.Kind {
	case KindStatus:
		m.status, m.attempt, m.statusSeq = ev.Status, ev.Attempt, ev.FeedSeq
	case KindChunk:
		m.chunks = append(m.chunks, chunkMark{feedSeq: ev.FeedSeq, attempt: ev.Attempt, seq: ev.Seq})
		// The hub keeps at most ReplayChunks of a task's chunks, the newest: marks
		// older than those are never looked up, so they go (in amortised batches).
		if keep := f.hub.opts.ReplayChunks; keep > 0 && len(m.chunks) >= 2*keep {
			m.chunks = append(m.chunks[:0], m.chunks[len(m.chunks)-keep:]...)
		}
	case KindDone:
		// The status came in the event before (Hub.Done sends both): statusSeq stays.
		m.status, m.attempt, m.final, m.doneSeq = ev.Status, ev.Attempt, ev.Task, ev.FeedSeq
		if m.final == nil {
			m.final = &task.Task{ID: m.taskID, Status: ev.Status, Attempts: ev.Attempt}
		}
		f.pending--
	}
	for s := range f.subs {
		if !s.offer(ev) {
			f.dropLocked(s, ErrLagged)
		}
	}
	if f.ending && f.pending == 0 {
		f.endLocked(ErrDone)
	}
}

// FeedCursor is how far a feed subscriber got, task by task.
type FeedCursor struct {
	tasks map[string]Cursor
	done  map[string]bool
}

// Advance records that ev was delivered.
func (c *FeedCursor) Advance(ev Event) {
	if c.tasks == nil {
		c.tasks, c.done = map[string]Cursor{}, map[string]bool{}
	}
	cur := c.tasks[ev.TaskID]
	cur.Advance(ev)
	c.tasks[ev.TaskID] = cur
	if ev.Kind == KindDone {
		c.done[ev.TaskID] = true
	}
}

// CursorAt is the cursor of a watcher that has every event up to and including
// FeedSeq seq: members finished by then are done, the others' chunks up to there
// are had, and a status is had only if nothing changed it since. A seq the feed
// never gave (before its first event or after its last) is the start: nil.
func (f *Feed) CursorAt(seq int64) *FeedCursor {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq <= f.base || seq > f.seq {
		return nil
	}
	cur := &FeedCursor{tasks: map[string]Cursor{}, done: map[string]bool{}}
	for _, m := range f.order {
		if m.doneSeq != 0 && m.doneSeq <= seq {
			cur.done[m.taskID] = true
			continue
		}
		var c Cursor
		if m.statusSeq <= seq {
			c.Status = m.status
		}
		// The last chunk at or before seq: the marks are in FeedSeq order.
		if n := sort.Search(len(m.chunks), func(i int) bool { return m.chunks[i].feedSeq > seq }); n > 0 {
			last := m.chunks[n-1]
			c.Attempt, c.NextSeq = last.attempt, last.seq+1
		}
		cur.tasks[m.taskID] = c
	}
	return cur
}

// feedSeqOf is the FeedSeq a retained chunk of m was forwarded with (0 if unknown).
func (m *member) feedSeqOf(ch Event) int64 {
	i := sort.Search(len(m.chunks), func(i int) bool {
		c := m.chunks[i]
		return c.attempt > ch.Attempt || (c.attempt == ch.Attempt && c.seq >= ch.Seq)
	})
	if i < len(m.chunks) && m.chunks[i].attempt == ch.Attempt && m.chunks[i].seq == ch.Seq {
		return m.chunks[i].feedSeq
	}
	return 0
}

// Subscribe starts a watch of the feed from cur (nil for the start): for every
// member not yet seen finished, its status (unless cur saw it), its retained
// chunks not yet seen and, if it has finished, Done, all in FeedSeq order (the
// order they happened in, so a watcher's last FeedSeq is how far it got); then the
// live events. Once the feed ended the subscription ends after that replay.
func (f *Feed) Subscribe(cur *FeedCursor, now time.Time) *Subscription {
	if cur == nil {
		cur = &FeedCursor{}
	}
	for {
		f.mu.Lock()
		h := f.hub
		f.mu.Unlock()
		if h != nil {
			h.mu.Lock()
		}
		f.mu.Lock()
		if f.hub != h { // attached meanwhile: take the hub's lock too
			f.mu.Unlock()
			if h != nil {
				h.mu.Unlock()
			}
			continue
		}
		s := f.subscribeLocked(cur, now)
		f.mu.Unlock()
		if h != nil {
			h.mu.Unlock()
		}
		return s
	}
}

func (f *Feed) subscribeLocked(cur *FeedCursor, now time.Time) *Subscription {
	s := &Subscription{feed: f, limit: f.limit, notify: make(chan struct{}, 1)}
	for _, m := range f.order {
		if cur.done[m.taskID] {
			continue
		}
		c := cur.tasks[m.taskID]
		if c.Status != m.status {
			s.queue = append(s.queue, Event{TaskID: m.taskID, StepID: m.step, Kind: KindStatus, Status: m.status, Attempt: m.attempt, Time: now, FeedSeq: m.statusSeq})
		}
		var tp *topic
		if f.hub != nil {
			if tp = f.hub.active[m.taskID]; m.final != nil {
				tp = f.hub.finished[m.taskID]
			}
		}
		if tp != nil {
			for _, ch := range tp.chunks {
				if ch.Attempt != c.Attempt || ch.Seq >= c.NextSeq {
					ch.StepID, ch.FeedSeq = m.step, m.feedSeqOf(ch)
					s.queue = append(s.queue, ch)
				}
			}
		}
		if m.final != nil {
			s.queue = append(s.queue, Event{TaskID: m.taskID, StepID: m.step, Kind: KindDone, Status: m.status, Attempt: m.attempt, Task: m.final, Time: now, FeedSeq: m.doneSeq})
		}
	}
	// Stable: a member's status, chunks and Done keep their order where seqs tie.
	sort.SliceStable(s.queue, func(i, j int) bool { return s.queue[i].FeedSeq < s.queue[j].FeedSeq })
	if f.ended != nil {
		s.end(f.ended)
		return s
	}
	s.limit += len(s.queue) // the replay does not eat into the live buffer
	f.subs[s] = struct{}{}
	return s
}

// End ends the feed: its subscriptions end (ErrDone) once every member has
// finished, or after grace, whichever comes first.
func (f *Feed) End(grace time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ending || f.ended != nil {
		return
	}
	f.ending = true
	if f.pending == 0 {
		f.endLocked(ErrDone)
		return
	}
	f.timer = time.AfterFunc(grace, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.endLocked(ErrDone)
	})
}

// Shutdown ends the feed's subscriptions at once with ErrShutdown.
func (f *Feed) Shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endLocked(ErrShutdown)
}

func (f *Feed) endLocked(err error) {
	if f.ended != nil {
		return
	}
	f.ended = err
	if f.timer != nil {
		f.timer.Stop()
	}
	for s := range f.subs {
		s.end(err)
	}
	f.subs = map[*Subscription]struct{}{}
}

func (f *Feed) dropLocked(s *Subscription, err error) {
	if _, ok := f.subs[s]; !ok {
		return
	}
	delete(f.subs, s)
	s.end(err)
}

func (f *Feed) cancel(s *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, s)
}
