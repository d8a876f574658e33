package scheduler

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func jrec(taskID string, seq int64, payload string) task.JournalRecord {
	return task.JournalRecord{TaskID: taskID, Seq: seq, Kind: 1, Payload: []byte(payload)}
}

func TestALaterAttemptIsAssignedTheJournalOfTheEarlierOnes(t *testing.T) {
	f := newFixture(t, Config{})
	tk := f.submit(task.Spec{Agent: "echo", MaxAttempts: 3})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	if len(a.Journal) != 0 {
		t.Fatalf("a first attempt got a journal: %v", a.Journal)
	}
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 0, "turn"))
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 0, "turn")) // resent: recorded once
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 2, "gap"))  // out of order: ignored
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 1, "result"))
	f.s.Journal(w, "stale-lease", jrec(tk.ID, 2, "stale"))
	want := []task.JournalRecord{jrec(tk.ID, 0, "turn"), jrec(tk.ID, 1, "result")}

	f.s.Disconnect(w) // the worker dies: the attempt is lost and the task queued again
	w2 := f.worker(1)
	b := onlyAssignment(t, w2)
	if b.Attempt != 2 || !reflect.DeepEqual(b.Journal, want) {
		t.Fatalf("second attempt %d got journal %v, want %v", b.Attempt, b.Journal, want)
	}
	// The records are in the store too (group-committed), for a restart.
	if err := f.s.waitDurable(); err != nil {
		t.Fatal(err)
	}
	if got, err := f.store.Journal(context.Background(), tk.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("stored journal = %v, %v", got, err)
	}
	if n := testutil.ToFloat64(f.metrics.JournalRecords); n != 2 {
		t.Fatalf("journal records metric = %v", n)
	}
}

func TestARestartedOrchestratorAssignsTheStoredJournal(t *testing.T) {
	m := store.NewMemory()
	f := newFixtureWith(t, Config{}, Deps{Store: m}, task.AgentInfo{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo", MaxAttempts: 3})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 0, "turn"))
	f.s.tick() // the running attempt outlives two ticks: its state is written
	f.s.tick()
	if err := f.s.waitDurable(); err != nil {
		t.Fatal(err)
	}
	g := newFixtureWith(t, Config{}, Deps{Store: m}, task.AgentInfo{Name: "echo"})
	if err := g.s.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := onlyAssignment(t, g.worker(1))
	if b.Attempt != 2 || !reflect.DeepEqual(b.Journal, []task.JournalRecord{jrec(tk.ID, 0, "turn")}) {
		t.Fatalf("after restart: attempt %d, journal %v", b.Attempt, b.Journal)
	}
}

func TestAFullJournalStopsRecordingAndTheTaskGoesOn(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	f := newFixtureWith(t, Config{}, Deps{Store: store.NewMemory(), Log: log}, task.AgentInfo{Name: "echo"})
	tk := f.submit(task.Spec{Agent: "echo"})
	w := f.worker(1)
	a := onlyAssignment(t, w)
	big := strings.Repeat("x", journalMaxBytes/2+1)
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 0, big))
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 1, big)) // past the bound: not recorded
	f.s.Journal(w, a.LeaseID, jrec(tk.ID, 2, "small"))
	f.s.Complete(w, Result{TaskID: tk.ID, LeaseID: a.LeaseID, Output: []byte(`"done"`)})
	if got := f.get(tk.ID); got.Status != task.StatusSucceeded {
		t.Fatalf("task = %v", got.Status)
	}
	stored, _ := f.s.store.Journal(context.Background(), tk.ID)
	if len(stored) != 1 || testutil.ToFloat64(f.metrics.JournalFull) != 1 {
		t.Fatalf("stored %d records, journal_full %v", len(stored), testutil.ToFloat64(f.metrics.JournalFull))
	}
	if !strings.Contains(logs.String(), "task journal full") {
		t.Fatalf("no log line says the journal is full:\n%s", logs.String())
	}
}

// syncBuffer is a log destination safe for the scheduler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
