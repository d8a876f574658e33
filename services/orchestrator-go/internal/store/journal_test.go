package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func rec(taskID string, seq int64, payload string) task.JournalRecord {
	return task.JournalRecord{TaskID: taskID, Seq: seq, Kind: int32(1 + seq%2), Payload: []byte(payload)}
}

func TestStoreKeepsJournalsInOrderPerTaskAndPrunesThemWithTheTask(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		if got, err := s.Journal(ctx, "a"); err != nil || len(got) != 0 {
			t.Fatalf("journal of a task without one = %v, %v", got, err)
		}
		// Out of order, in two writes, one seq written twice (a retried write), and a
		// task whose id starts with the other's.
		if err := s.AppendJournal(ctx, rec("a", 1, `{"t":1}`), rec("ab", 0, `{"x":0}`), rec("a", 0, `{"t":0}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendJournal(ctx, rec("a", 2, `{"t":2}`), rec("a", 1, `{"t":1}`)); err != nil {
			t.Fatal(err)
		}
		if reopen != nil {
			s = reopen()
		}
		want := []task.JournalRecord{rec("a", 0, `{"t":0}`), rec("a", 1, `{"t":1}`), rec("a", 2, `{"t":2}`)}
		if got, err := s.Journal(ctx, "a"); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("journal = %+v, %v\nwant %+v", got, err, want)
		}
		if got, _ := s.Journal(ctx, "ab"); !reflect.DeepEqual(got, []task.JournalRecord{rec("ab", 0, `{"x":0}`)}) {
			t.Fatalf("the other task's journal = %+v", got)
		}

		done := &task.Task{ID: "a", Agent: "echo", Status: task.StatusSucceeded, FinishedAt: t0}
		running := &task.Task{ID: "ab", Agent: "echo", Status: task.StatusRunning}
		if err := s.Put(ctx, done, running); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PruneFinished(ctx, t0.Add(time.Hour), 10); err != nil || n != 1 {
			t.Fatalf("pruned %d, %v", n, err)
		}
		if got, err := s.Journal(ctx, "a"); err != nil || len(got) != 0 {
			t.Fatalf("the pruned task's journal = %v, %v", got, err)
		}
		if got, _ := s.Journal(ctx, "ab"); len(got) != 1 {
			t.Fatalf("the running task's journal went with the other: %v", got)
		}
	})
}

func TestTheCommitterAppendsJournalRecordsWithoutCountingThemAsTaskCommits(t *testing.T) {
	s := NewMemory()
	c := NewCommitter(s, CommitterOptions{})
	defer c.Close()
	c.WriteJournal(rec("a", 0, "0"), rec("a", 1, "1"))
	c.WriteJournal(rec("a", 2, "2"))
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Journal(context.Background(), "a")
	if len(got) != 3 || c.Commits() != 0 {
		t.Fatalf("journal %v, commits %d", got, c.Commits())
	}
	c.Close()
	c.WriteJournal(rec("a", 3, "3")) // after Close: dropped, never a panic
}
