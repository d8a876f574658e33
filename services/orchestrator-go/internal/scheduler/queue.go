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
	seq        uint64    // global enqueue order: FIFO within a priority
	enqueuedAt time.Time // for the scheduling-latency metric
}

// queue holds queued tasks by agent and priority. A worker can only take tasks for
// the agents it registered, so popping looks at the heads of those agents' lists
// only: O(agents x priorities) per pop, whatever the queue length. Removal by id is
// O(1) (cancel). Per-tenant fair share belongs here, as a level between priority and
// FIFO. Not safe for concurrent use; the Scheduler's lock guards it.
type queue struct {
	byAgent map[string]*[task.MaxPriority + 1]*list.List
	byID    map[string]*list.Element
	depth   [task.MaxPriority + 1]int
	nextSeq uint64
}

func newQueue() *queue {
	return &queue{byAgent: map[string]*[task.MaxPriority + 1]*list.List{}, byID: map[string]*list.Element{}}
}

func (q *queue) Len() int { return len(q.byID) }

// Depth returns the number of queued tasks with priority p.
func (q *queue) Depth(p int32) int { return q.depth[p] }

// Push appends the task at the back of its agent's and priority's line.
func (q *queue) Push(id, agent string, priority int32, now time.Time) {
	if _, ok := q.byID[id]; ok {
		return
	}
	lines := q.byAgent[agent]
	if lines == nil {
		lines = new([task.MaxPriority + 1]*list.List)
		for i := range lines {
			lines[i] = list.New()
		}
		q.byAgent[agent] = lines
	}
	q.nextSeq++
	q.byID[id] = lines[priority].PushBack(&queued{id: id, agent: agent, priority: priority, seq: q.nextSeq, enqueuedAt: now})
	q.depth[priority]++
}

// Remove takes the task out of the queue; it reports whether it was there.
func (q *queue) Remove(id string) bool {
	el, ok := q.byID[id]
	if !ok {
		return false
	}
	item := el.Value.(*queued)
	q.byAgent[item.agent][item.priority].Remove(el)
	delete(q.byID, id)
	q.depth[item.priority]--
	return true
}

// Peek returns the task a worker running agents should take next: highest priority
// first, then the oldest. ok is false when none of those agents has work.
func (q *queue) Peek(agents []string) (item *queued, ok bool) {
	for p := task.MaxPriority; p >= task.MinPriority; p-- {
		var best *queued
		for _, a := range agents {
			lines := q.byAgent[a]
			if lines == nil {
				continue
			}
			if front := lines[p].Front(); front != nil {
				if c := front.Value.(*queued); best == nil || c.seq < best.seq {
					best = c
				}
			}
		}
		if best != nil {
			return best, true
		}
	}
	return nil, false
}
