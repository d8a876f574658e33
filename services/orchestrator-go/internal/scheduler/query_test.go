package scheduler

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestWatcherGetsReplayedChunksThenDoneLast(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Chunk(w, tk.ID, a.LeaseID, 0, "hel")
	f.s.Chunk(w, tk.ID, "stale-lease", 1, "IGNORED")
	f.s.Chunk(w, tk.ID, a.LeaseID, 1, "lo")

	sub, err := f.s.Watch(ctx, tk.ID, nil) // a late watcher
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	f.s.Chunk(w, tk.ID, a.LeaseID, 2, "!")
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: json.RawMessage(`"hello!"`)})

	got := drain(t, sub)
	want := "status:running chunk:hel chunk:lo chunk:! status:succeeded done:succeeded"
	if got != want {
		t.Fatalf("events = %q\nwant     %q", got, want)
	}

	// A watch on the finished task: its status, its retained chunks, then done.
	late, _ := f.s.Watch(ctx, tk.ID, nil)
	defer late.Close()
	if got := drain(t, late); got != "status:succeeded chunk:hel chunk:lo chunk:! done:succeeded" {
		t.Fatalf("finished-task events = %q", got)
	}
}

func drain(t *testing.T, sub *events.Subscription) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out string
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if err != events.ErrDone {
				t.Fatalf("subscription ended with %v after %q", err, out)
			}
			return out[1:]
		}
		switch ev.Kind {
		case events.KindStatus:
			out += " status:" + ev.Status.String()
		case events.KindChunk:
			out += " chunk:" + ev.Chunk
		case events.KindDone:
			out += " done:" + ev.Task.Status.String()
		}
	}
}

func TestWatchOfAFinishedTaskReadsTheStoreOutsideTheLock(t *testing.T) {
	st := newFlakyStore()
	f := newFixtureWith(t, Config{}, Deps{Store: st}, task.AgentInfo{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo"})
	if _, err := f.s.Cancel(context.Background(), tk.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.s.waitDurable(); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.getGate, st.getEntered = make(chan struct{}), make(chan struct{})
	gate, entered := st.getGate, st.getEntered
	st.mu.Unlock()
	subc := make(chan *events.Subscription, 1)
	go func() {
		sub, err := f.s.Watch(context.Background(), tk.ID, nil)
		if err != nil {
			t.Error(err)
		}
		subc <- sub
	}()
	<-entered // Watch is reading the store; the scheduler must still serve
	f.submit(task.Spec{Agent: "echo"})
	close(gate)
	sub := <-subc
	if sub == nil {
		return
	}
	defer sub.Close()
	if got := drain(t, sub); got != "status:cancelled done:cancelled" {
		t.Fatalf("events = %q", got)
	}
}
