package workers

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// countingStore records every PutAgents call and can be made to fail.
type countingStore struct {
	*store.Memory
	puts [][]task.AgentInfo
	fail error
}

func (s *countingStore) PutAgents(ctx context.Context, agents ...task.AgentInfo) error {
	if s.fail != nil {
		return s.fail
	}
	s.puts = append(s.puts, agents)
	return s.Memory.PutAgents(ctx, agents...)
}

func TestCatalogWritesOnlyNewOrChangedAgents(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Memory: store.NewMemory()}
	c, err := LoadCatalog(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	writer := task.AgentInfo{Name: "writer", Provider: "simulated", Tools: []string{"search"}}
	c.Add(writer, task.AgentInfo{Name: "coder"})
	if len(st.puts) != 1 || len(st.puts[0]) != 2 {
		t.Fatalf("first registration wrote %v", st.puts)
	}
	c.Add(task.AgentInfo{Name: "coder"}, writer) // a worker reconnecting with the same agents
	if len(st.puts) != 1 {
		t.Fatalf("an unchanged registration was written: %v", st.puts)
	}
	writer.Tools = []string{"search", "calc"}
	c.Add(task.AgentInfo{Name: "coder"}, writer)
	if len(st.puts) != 2 || len(st.puts[1]) != 1 || st.puts[1][0].Name != "writer" {
		t.Fatalf("a changed agent was not written alone: %v", st.puts)
	}

	// A restarted orchestrator knows both agents before any worker registers.
	again, err := LoadCatalog(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Has("coder") || !again.Has("writer") || again.Provider("writer") != "simulated" {
		t.Fatalf("reloaded catalog = %+v", again.List())
	}
	if got := again.List(); !reflect.DeepEqual(got, []task.AgentInfo{{Name: "coder"}, writer}) {
		t.Fatalf("reloaded catalog = %+v", got)
	}
}

func TestCatalogRetriesAFailedWrite(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Memory: store.NewMemory(), fail: errors.New("disk full")}
	c, err := LoadCatalog(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(task.AgentInfo{Name: "coder"})
	if !c.Has("coder") {
		t.Fatal("an agent whose write failed is not served from memory")
	}
	st.fail = nil
	c.Add(task.AgentInfo{Name: "coder"})
	if stored, _ := st.Agents(ctx); len(stored) != 1 || stored[0].Name != "coder" {
		t.Fatalf("the failed write was not retried: %v", stored)
	}
}

func TestMemoryCatalogKeepsAgentsAfterWorkersLeave(t *testing.T) {
	c := NewCatalog()
	c.Add(task.AgentInfo{Name: "b", Tools: []string{"x"}}, task.AgentInfo{Name: "a"})
	if !c.Has("a") || c.Has("z") {
		t.Fatal("Has is wrong")
	}
	got := c.List()
	got[1].Tools[0] = "changed"
	if names := []string{got[0].Name, got[1].Name}; !reflect.DeepEqual(names, []string{"a", "b"}) || c.List()[1].Tools[0] != "x" {
		t.Fatalf("List = %+v", c.List())
	}
}

func TestRegisterRefusesAgentsBeyondTheLimitAndStoresNothing(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Memory: store.NewMemory()}
	c, err := LoadCatalog(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetLimit(3)
	if err := c.Register(task.AgentInfo{Name: "a"}, task.AgentInfo{Name: "b"}, task.AgentInfo{Name: "a"}); err != nil {
		t.Fatalf("two new agents under a limit of 3: %v", err)
	}
	err = c.Register(task.AgentInfo{Name: "a"}, task.AgentInfo{Name: "c"}, task.AgentInfo{Name: "d"})
	var full *ErrCatalogFull
	if !errors.As(err, &full) || full.Limit != 3 || full.New != 2 {
		t.Fatalf("Register past the limit = %v", err)
	}
	if c.Has("c") || c.Has("d") || c.Len() != 2 || len(st.puts) != 1 {
		t.Fatalf("a refused registration changed the catalog: %v, writes %v", c.List(), st.puts)
	}
	// Known agents (re-registration) and one more new one still fit.
	if err := c.Register(task.AgentInfo{Name: "b", Description: "new text"}, task.AgentInfo{Name: "c"}); err != nil {
		t.Fatalf("Register within the limit = %v", err)
	}
	if c.Len() != 3 {
		t.Fatalf("catalog = %v", c.List())
	}
}

func TestRegisterDefaultsToTheDefaultLimit(t *testing.T) {
	c := NewCatalog()
	agents := make([]task.AgentInfo, DefaultMaxAgents+1)
	for i := range agents {
		agents[i] = task.AgentInfo{Name: "agent-" + strconv.Itoa(i)}
	}
	if err := c.Register(agents[:DefaultMaxAgents]...); err != nil {
		t.Fatalf("filling the catalog to its limit: %v", err)
	}
	var full *ErrCatalogFull
	if err := c.Register(agents[DefaultMaxAgents]); !errors.As(err, &full) || full.Limit != DefaultMaxAgents {
		t.Fatalf("one past the default limit = %v", err)
	}
}
