package scheduler

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func push(q *queue, id, agent, tenant string, priority int32) {
	q.Push(&task.Task{ID: id, Agent: agent, Tenant: tenant, Priority: priority}, time.Now())
}

// popAll takes every task a worker of agents would take, in order.
func popAll(q *queue, agents ...string) string {
	var got []string
	for {
		item, ok := q.Peek(agents, nil)
		if !ok {
			return strings.Join(got, " ")
		}
		q.Pop(item)
		got = append(got, item.id)
	}
}

func TestQueuePriorityThenFIFO(t *testing.T) {
	q := newQueue()
	push(q, "low", "echo", "", 1)
	push(q, "high1", "echo", "", 9)
	push(q, "mid", "echo", "", 5)
	push(q, "high2", "other", "", 9)
	push(q, "high3", "echo", "", 9)
	if got := popAll(q, "echo", "other"); got != "high1 high2 high3 mid low" {
		t.Fatalf("order = %s", got)
	}
}

func TestQueueRoundRobinsTenantsWithinAPriority(t *testing.T) {
	q := newQueue()
	for i := range 5 {
		push(q, "big"+string(rune('0'+i)), "echo", "big", 5)
	}
	push(q, "small0", "echo", "small", 5)
	push(q, "small1", "echo", "small", 5)
	push(q, "urgent", "echo", "big", 9)
	// Priority first; then the tenants take turns whatever their backlog.
	if got := popAll(q, "echo"); got != "urgent big0 small0 big1 small1 big2 big3 big4" {
		t.Fatalf("order = %s", got)
	}
}

func TestQueueTenantJoiningLateIsServedWithinOneRound(t *testing.T) {
	q := newQueue()
	for i := range 100 {
		push(q, "busy-"+itoa(i), "echo", "busy", 5)
	}
	item, _ := q.Peek([]string{"echo"}, nil)
	q.Pop(item) // busy-0
	push(q, "one", "echo", "lonely", 5)
	item, _ = q.Peek([]string{"echo"}, nil)
	q.Pop(item)
	next, _ := q.Peek([]string{"echo"}, nil)
	if item.id != "one" && next.id != "one" {
		t.Fatalf("the lonely tenant waited behind the busy one: took %s then %s", item.id, next.id)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestQueueOnlyOffersRegisteredAndAllowedAgents(t *testing.T) {
	q := newQueue()
	push(q, "a", "summarize", "", 9)
	push(q, "b", "echo", "", 1)
	if _, ok := q.Peek([]string{"other"}, nil); ok {
		t.Fatal("a worker without the agent was offered its task")
	}
	if item, ok := q.Peek([]string{"summarize", "echo"}, nil); !ok || item.id != "a" {
		t.Fatalf("Peek = %v, %v", item, ok)
	}
	notSummarize := func(a string) bool { return a != "summarize" }
	if item, ok := q.Peek([]string{"summarize", "echo"}, notSummarize); !ok || item.id != "b" {
		t.Fatalf("Peek with a capped agent = %v, %v", item, ok)
	}
}

func TestQueueRemoveKeepsDepth(t *testing.T) {
	q := newQueue()
	push(q, "a", "echo", "acme", 3)
	push(q, "b", "echo", "acme", 3)
	push(q, "c", "echo", "globex", 3)
	if !q.Remove("a") || q.Remove("a") {
		t.Fatal("Remove should succeed once")
	}
	if q.Len() != 2 || q.Depth(3) != 2 || q.DepthByTenant()["acme"][3] != 1 {
		t.Fatalf("Len=%d Depth(3)=%d", q.Len(), q.Depth(3))
	}
	q.Remove("b")
	if _, ok := q.DepthByTenant()["acme"]; ok {
		t.Fatal("an empty tenant stays in the depth map")
	}
	if got := popAll(q, "echo"); got != "c" {
		t.Fatalf("left = %s", got)
	}
}
