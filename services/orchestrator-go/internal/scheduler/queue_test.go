package scheduler

import (
	"testing"
	"time"
)

func TestQueuePriorityThenFIFO(t *testing.T) {
	q := newQueue()
	now := time.Now()
	q.Push("low", "echo", 1, now)
	q.Push("high1", "echo", 9, now)
	q.Push("mid", "echo", 5, now)
	q.Push("high2", "other", 9, now)
	q.Push("high3", "echo", 9, now)

	var got []string
	for {
		item, ok := q.Peek([]string{"echo", "other"})
		if !ok {
			break
		}
		q.Remove(item.id)
		got = append(got, item.id)
	}
	want := []string{"high1", "high2", "high3", "mid", "low"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestQueueOnlyOffersRegisteredAgents(t *testing.T) {
	q := newQueue()
	q.Push("a", "summarize", 9, time.Now())
	if _, ok := q.Peek([]string{"echo"}); ok {
		t.Fatal("a worker without the agent was offered its task")
	}
	if item, ok := q.Peek([]string{"summarize"}); !ok || item.id != "a" {
		t.Fatalf("Peek = %v, %v", item, ok)
	}
}

func TestQueueRemoveKeepsDepth(t *testing.T) {
	q := newQueue()
	q.Push("a", "echo", 3, time.Now())
	q.Push("b", "echo", 3, time.Now())
	if !q.Remove("a") || q.Remove("a") {
		t.Fatal("Remove should succeed once")
	}
	if q.Len() != 1 || q.Depth(3) != 1 {
		t.Fatalf("Len=%d Depth(3)=%d", q.Len(), q.Depth(3))
	}
}
