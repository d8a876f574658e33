package scheduler

import (
	"container/list"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// queued is one waiting task as the queue sees it.
type queued struct {
	id         string
	agent      string
	priority   int32
	seq        uint64    // global enqueue order: FIFO within a tenant
	enqueuedAt time.Time // for the scheduling-latency metric and the task.queue_wait span
	line       *tenantLine
}

// level is one agent's tasks of one priority: a FIFO line per tenant, served
// round-robin over the tenants with queued work (fair share: a tenant with 10,000
// queued tasks takes one turn in the ring like a tenant with one).
type level struct {
	tenants map[string]*tenantLine
	ring    *list.List    // *tenantLine with queued work, in turn order
	turn    *list.Element // whose turn it is; nil means the ring's front
}

type tenantLine struct {
	tenant string
	items  *list.List // *queued, oldest first
	inRing *list.Element
	lvl    *level
}

// queue holds queued tasks by agent, priority and tenant. A worker can only take
// tasks for the agents it registered, so picking looks at one candidate per
// (agent, priority): O(agents x priorities) per pick, whatever the queue length.
// Removal by id is O(1) (cancel). Not safe for concurrent use; the Scheduler's lock
// guards it.
type queue struct {
	byAgent map[string]*[task.MaxPriority + 1]*level
	byID    map[string]*list.Element
	depth   map[string]*[task.MaxPriority + 1]int // by tenant
	nextSeq uint64
}

func newQueue() *queue {
	return &queue{
		byAgent: map[string]*[task.MaxPriority + 1]*level{},
		byID:    map[string]*list.Element{}, depth: map[string]*[task.MaxPriority + 1]int{},
	}
}

func (q *queue) Len() int { return len(q.byID) }

// Depth returns the number of queued tasks with priority p.
func (q *queue) Depth(p int32) int {
	n := 0
	for _, d := range q.depth {
		n += d[p]
	}
	return n
}

// DepthByTenant returns the queued tasks of each tenant by priority; the caller must
// not modify it.
func (q *queue) DepthByTenant() map[string]*[task.MaxPriority + 1]int { return q.depth }

// Push appends the task at the back of its agent's, priority's and tenant's line.
func (q *queue) Push(t *task.Task, now time.Time) {
	if _, ok := q.byID[t.ID]; ok {
		return
	}
	levels := q.byAgent[t.Agent]
	if levels == nil {
		levels = new([task.MaxPriority + 1]*level)
		for i := range levels {
			levels[i] = &level{tenants: map[string]*tenantLine{}, ring: list.New()}
		}
		q.byAgent[t.Agent] = levels
	}
	lvl := levels[t.Priority]
	line := lvl.tenants[t.Tenant]
	if line == nil {
		line = &tenantLine{tenant: t.Tenant, items: list.New(), lvl: lvl}
		lvl.tenants[t.Tenant] = line
		// A tenant joining the ring goes just before the one whose turn it is, so
		// it is served last in the current round.
		if lvl.turn != nil {
			line.inRing = lvl.ring.InsertBefore(line, lvl.turn)
		} else {
			line.inRing = lvl.ring.PushBack(line)
		}
	}
	q.nextSeq++
	q.byID[t.ID] = line.items.PushBack(&queued{
		id: t.ID, agent: t.Agent, priority: t.Priority, seq: q.nextSeq, enqueuedAt: now, line: line,
	})
	d := q.depth[t.Tenant]
	if d == nil {
		d = new([task.MaxPriority + 1]int)
		q.depth[t.Tenant] = d
	}
	d[t.Priority]++
}

// Remove takes the task out of the queue without affecting whose turn it is; it
// reports whether it was there.
func (q *queue) Remove(id string) bool {
	el, ok := q.byID[id]
	if !ok {
		return false
	}
	q.unlink(el)
	return true
}

// Pop takes the item Peek returned and passes the turn to the next tenant.
func (q *queue) Pop(item *queued) {
	el, ok := q.byID[item.id]
	if !ok {
		return
	}
	lvl := item.line.lvl
	if lvl.current() == item.line.inRing {
		lvl.turn = item.line.inRing.Next()
	}
	q.unlink(el)
}

func (q *queue) unlink(el *list.Element) {
	item := el.Value.(*queued)
	line := item.line
	line.items.Remove(el)
	delete(q.byID, item.id)
	if d := q.depth[line.tenant]; d != nil {
		d[item.priority]--
		if *d == ([task.MaxPriority + 1]int{}) {
			delete(q.depth, line.tenant)
		}
	}
	if line.items.Len() == 0 {
		lvl := line.lvl
		if lvl.turn == line.inRing {
			lvl.turn = line.inRing.Next()
		}
		lvl.ring.Remove(line.inRing)
		delete(lvl.tenants, line.tenant)
	}
}

// current is the ring element whose turn it is, or nil when the level is empty.
func (l *level) current() *list.Element {
	if l.turn != nil {
		return l.turn
	}
	return l.ring.Front()
}

// Peek returns the task a worker running agents should take next: highest priority
// first; within a priority, the head of the tenant whose turn it is (the oldest
// such head across the worker's agents). allowed, if not nil, skips agents that
// may not start more tasks now. ok is false when there is nothing to take.
func (q *queue) Peek(agents []string, allowed func(agent string) bool) (item *queued, ok bool) {
	if len(q.byID) == 0 {
		return nil, false
	}
	for p := task.MaxPriority; p >= task.MinPriority; p-- {
		var best *queued
		for _, a := range agents {
			levels := q.byAgent[a]
			if levels == nil {
				continue
			}
			cur := levels[p].current()
			if cur == nil {
				continue
			}
			if allowed != nil && !allowed(a) {
				continue
			}
			c := cur.Value.(*tenantLine).items.Front().Value.(*queued)
			if best == nil || c.seq < best.seq {
				best = c
			}
		}
		if best != nil {
			return best, true
		}
	}
	return nil, false
}
