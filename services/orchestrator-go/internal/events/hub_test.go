package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newHub(opts Options) *Hub { return NewHub(opts, telemetry.NewTestMetrics()) }

func running(id string) *task.Task {
	return &task.Task{ID: id, Status: task.StatusRunning, Attempts: 1}
}

func next(t *testing.T, s *Subscription) (Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Next(ctx)
}

func TestSlowWatcherNeverBlocksPublisherAndResumesFromCursor(t *testing.T) {
	h := newHub(Options{SubscriberBuffer: 2, ReplayChunks: 100, ReplayBytes: 1 << 20, FinishedTasks: 4})
	tk := running("t")
	h.Chunk("t", 1, 0, "a", t0)
	sub := h.Subscribe(tk, nil, t0) // status + replayed "a", beyond the live bound
	// Nobody reads: publishing far past the buffer must return at once.
	for i := int64(1); i < 50; i++ {
		h.Chunk("t", 1, i, "x", t0)
	}
	var cur Cursor
	var got []Event
	for {
		ev, err := next(t, sub)
		if errors.Is(err, ErrLagged) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		cur.Advance(ev)
		got = append(got, ev)
	}
	if len(got) != 4 || got[0].Kind != KindStatus || got[1].Chunk != "a" || got[3].Seq != 2 {
		t.Fatalf("events before lag = %+v", got)
	}
	sub.Close()
	// Resubscribing from the cursor replays exactly the chunks not yet delivered, no repeat status.
	again := h.Subscribe(tk, &cur, t0)
	defer again.Close()
	ev, err := next(t, again)
	if err != nil || ev.Kind != KindChunk || ev.Seq != 3 {
		t.Fatalf("first event after resubscribe = %+v, %v", ev, err)
	}
}

func TestDoneIsLastAndEndsSubscription(t *testing.T) {
	h := newHub(DefaultOptions())
	tk := running("t")
	sub := h.Subscribe(tk, nil, t0)
	h.Chunk("t", 1, 0, "hi", t0)
	final := tk.Clone()
	final.Status = task.StatusSucceeded
	h.Done(final, t0)
	h.Chunk("t", 1, 1, "after done", t0) // from a stale attempt: never seen by sub
	var kinds []Kind
	for {
		ev, err := next(t, sub)
		if errors.Is(err, ErrDone) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.Kind)
	}
	want := []Kind{KindStatus, KindChunk, KindStatus, KindDone}
	if len(kinds) != len(want) {
		t.Fatalf("kinds = %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds = %v, want %v", kinds, want)
		}
	}
}

func TestNewAttemptResetsReplay(t *testing.T) {
	h := newHub(DefaultOptions())
	h.Chunk("t", 1, 0, "old", t0)
	h.Status("t", task.StatusQueued, 1, t0)
	h.Status("t", task.StatusRunning, 2, t0)
	h.Chunk("t", 2, 0, "new", t0)
	tk := &task.Task{ID: "t", Status: task.StatusRunning, Attempts: 2}
	sub := h.Subscribe(tk, nil, t0)
	defer sub.Close()
	_, _ = next(t, sub) // status
	ev, err := next(t, sub)
	if err != nil || ev.Chunk != "new" || ev.Attempt != 2 {
		t.Fatalf("replayed = %+v, %v", ev, err)
	}
}

func TestReplayBufferAndFinishedRingAreBounded(t *testing.T) {
	h := newHub(Options{SubscriberBuffer: 8, ReplayChunks: 3, ReplayBytes: 1 << 20, FinishedTasks: 1})
	for i := int64(0); i < 10; i++ {
		h.Chunk("a", 1, i, "x", t0)
	}
	if n := len(h.active["a"].chunks); n != 3 || h.active["a"].chunks[0].Seq != 7 {
		t.Fatalf("kept %d chunks starting at %d", n, h.active["a"].chunks[0].Seq)
	}
	h.Done(&task.Task{ID: "a", Status: task.StatusSucceeded}, t0)
	h.Chunk("b", 1, 0, "y", t0)
	h.Done(&task.Task{ID: "b", Status: task.StatusSucceeded}, t0)
	if _, ok := h.finished["a"]; ok || len(h.finished) != 1 {
		t.Fatalf("finished ring holds %d tasks (a kept: %v)", len(h.finished), ok)
	}
}
