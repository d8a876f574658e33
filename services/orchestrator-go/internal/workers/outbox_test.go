package workers

import (
	"context"
	"errors"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestOutboxDeliversInOrderThenCloseError(t *testing.T) {
	o := NewOutbox()
	o.Post(Message{Cancel: &Cancel{TaskID: "a"}})
	o.Post(Message{Cancel: &Cancel{TaskID: "b"}})
	msgs, closed, err := o.Next(context.Background())
	if closed || err != nil || len(msgs) != 2 || msgs[0].Cancel.TaskID != "a" || msgs[1].Cancel.TaskID != "b" {
		t.Fatalf("Next = %v %v %v", msgs, closed, err)
	}
	boom := errors.New("replaced")
	o.Close(boom)
	o.Post(Message{Cancel: &Cancel{TaskID: "c"}})
	if _, closed, err := o.Next(context.Background()); !closed || !errors.Is(err, boom) {
		t.Fatalf("after close: closed=%v err=%v", closed, err)
	}
}

func TestCatalogKeepsAgentsSorted(t *testing.T) {
	c := NewCatalog()
	c.Add(task.AgentInfo{Name: "b"}, task.AgentInfo{Name: "a", Tools: []string{"x"}})
	got := c.List()
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || !c.Has("b") || c.Has("z") {
		t.Fatalf("List = %+v", got)
	}
}
