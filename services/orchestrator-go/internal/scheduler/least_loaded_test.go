package scheduler

import (
	"context"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Two idle workers of 16 credits and 20 tasks: 10 each, whether the tasks come in one
// batch or one by one (before least-loaded dispatch: 16 and 4).
func TestDispatchSpreadsTasksOverTwoIdleWorkers(t *testing.T) {
	for _, batch := range []bool{true, false} {
		f := newFixture(t, Config{})
		w1, w2 := f.worker(16), f.worker(16)
		specs := make([]task.Spec, 20)
		for i := range specs {
			specs[i] = task.Spec{Agent: "echo"}
		}
		if batch {
			if _, err := f.s.Submit(context.Background(), specs); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, spec := range specs {
				f.submit(spec)
			}
		}
		if n1, n2 := len(assignments(t, w1)), len(assignments(t, w2)); n1 != 10 || n2 != 10 {
			t.Fatalf("batch %v: 20 tasks over two idle workers of 16 credits went %d and %d, want 10 and 10", batch, n1, n2)
		}
	}
}

func TestDispatchFillsWorkersInProportionToTheirConcurrency(t *testing.T) {
	f := newFixture(t, Config{})
	small, big := f.worker(4), f.worker(12)
	for range 8 {
		f.submit(task.Spec{Agent: "echo"})
	}
	if ns, nb := len(assignments(t, small)), len(assignments(t, big)); ns != 2 || nb != 6 {
		t.Fatalf("8 tasks over workers of 4 and 12 went %d and %d, want 2 and 6 (a quarter each)", ns, nb)
	}
}

func TestDispatchSkipsTheLeastLoadedWorkerWhenItLacksTheAgent(t *testing.T) {
	f := newFixtureWith(t, Config{}, Deps{Store: store.NewMemory()}, task.AgentInfo{Name: "echo"}, task.AgentInfo{Name: "other"})
	idle, err := f.s.Connect(Registration{Agents: []task.AgentInfo{{Name: "other"}}, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	f.s.Credit(idle, 8)
	busy := f.worker(8)
	for range 3 {
		f.submit(task.Spec{Agent: "echo"})
	}
	if n := len(assignments(t, busy)); n != 3 {
		t.Fatalf("the worker running echo got %d of 3 echo tasks", n)
	}
	if got := assignments(t, idle); len(got) != 0 {
		t.Fatalf("a worker without the agent got %d of its tasks", len(got))
	}
}

// The pool's order, apart from the scheduler: load first, then free credits.
func TestLoadPoolOrdersByLoadThenFreeCredits(t *testing.T) {
	mk := func(id string, leases, credits int) *workers.Worker {
		w := workers.NewWorker(id, "", "", nil, 10)
		for i := range leases {
			w.Leases[string(rune('a'+i))] = struct{}{}
		}
		w.Credits = credits
		return w
	}
	full := mk("full", 0, 0) // cannot take: left out
	p := newLoadPool([]*workers.Worker{mk("busy", 5, 5), full, mk("idle-few", 0, 2), mk("idle-many", 0, 9)})
	var order []string
	for p.Len() > 0 {
		order = append(order, p.least().ID)
		p.dropLeast()
	}
	want := []string{"idle-many", "idle-few", "busy"}
	if len(order) != len(want) || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("pool order = %v, want %v", order, want)
	}
}
