package events

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

func TestFeedMergesAttachedTasksAndResumesFromCursor(t *testing.T) {
	h := newHub(Options{SubscriberBuffer: 8, ReplayChunks: 100, ReplayBytes: 1 << 20, FinishedTasks: 4})
	f := NewFeed(3, time.Now())
	// "done" finished before it was attached: its snapshot ends with Done.
	doneTask := &task.Task{ID: "done", Status: task.StatusSucceeded, Attempts: 1}
	if err := f.Attach(h.Subscribe(doneTask, nil, t0), "a"); err != nil {
		t.Fatal(err)
	}
	h.Chunk("run", 1, 0, "x0", t0)
	if err := f.Attach(h.Subscribe(running("run"), nil, t0), "b"); err != nil {
		t.Fatal(err)
	}
	sub := f.Subscribe(nil, t0)
	// Publishing past the bound never blocks; the subscriber is cut off.
	for i := int64(1); i < 20; i++ {
		h.Chunk("run", 1, i, "x", t0)
	}
	var cur FeedCursor
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
	if got[0].TaskID != "done" || got[0].StepID != "a" || got[1].Kind != KindDone ||
		got[2].TaskID != "run" || got[2].StepID != "b" || got[2].Kind != KindStatus || got[3].Chunk != "x0" {
		t.Fatalf("events before lag = %+v", got)
	}
	sub.Close()
	h.Done(&task.Task{ID: "run", Status: task.StatusSucceeded, Attempts: 1}, t0)
	again := f.Subscribe(&cur, t0)
	defer again.Close()
	nextSeq := got[len(got)-1].Seq + 1
	var kinds []Kind
	for {
		ev, err := next(t, again)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if ev.TaskID != "run" || ev.StepID != "b" {
			t.Fatalf("replayed %+v (done's events were seen already)", ev)
		}
		if ev.Kind == KindChunk {
			if ev.Seq != nextSeq {
				t.Fatalf("chunk %d after %d", ev.Seq, nextSeq-1)
			}
			nextSeq++
		}
		kinds = append(kinds, ev.Kind)
		if ev.Kind == KindDone {
			break
		}
	}
	if nextSeq != 20 || kinds[len(kinds)-2] != KindStatus { // the final status, in the order it came
		t.Fatalf("after resubscribe: chunks up to %d, kinds %v", nextSeq, kinds)
	}
	// Every member finished: End ends the feed at once.
	f.End(time.Hour)
	if _, err := next(t, again); !errors.Is(err, ErrDone) {
		t.Fatalf("after End: %v", err)
	}
}

func TestFeedEndWaitsForPendingTasksUpToGrace(t *testing.T) {
	h := newHub(DefaultOptions())
	f := NewFeed(0, time.Now())
	if err := f.Attach(h.Subscribe(running("a"), nil, t0), "s"); err != nil {
		t.Fatal(err)
	}
	if err := f.Attach(h.Subscribe(running("b"), nil, t0), "s"); err != nil {
		t.Fatal(err)
	}
	sub := f.Subscribe(nil, t0)
	defer sub.Close()
	f.End(time.Hour)
	h.Done(&task.Task{ID: "a", Status: task.StatusCancelled, Attempts: 1}, t0)
	h.Done(&task.Task{ID: "b", Status: task.StatusCancelled, Attempts: 1}, t0)
	n := 0
	for {
		_, err := next(t, sub)
		if errors.Is(err, ErrDone) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		n++
	}
	if n != 6 { // per task: running, then cancelled status and Done
		t.Fatalf("%d events before the end", n)
	}

	stuck := NewFeed(0, time.Now())
	if err := stuck.Attach(h.Subscribe(running("c"), nil, t0), "s"); err != nil {
		t.Fatal(err)
	}
	s2 := stuck.Subscribe(nil, t0)
	defer s2.Close()
	stuck.End(10 * time.Millisecond) // "c" never finishes
	if ev, _ := next(t, s2); ev.TaskID != "c" {
		t.Fatalf("first = %+v", ev)
	}
	if _, err := next(t, s2); !errors.Is(err, ErrDone) {
		t.Fatalf("after the grace: %v", err)
	}
}

func TestAttachedTaskIsNotCountedAsAWatcherAndLeavesOnDone(t *testing.T) {
	h := newHub(DefaultOptions())
	f := NewFeed(0, time.Now())
	if err := f.Attach(h.Subscribe(running("a"), nil, t0), "s"); err != nil {
		t.Fatal(err)
	}
	if err := f.Attach(h.Subscribe(running("a"), nil, t0), "s"); err != nil { // again: ignored
		t.Fatal(err)
	}
	h.mu.Lock()
	subs := len(h.active["a"].subs)
	h.mu.Unlock()
	if subs != 1 {
		t.Fatalf("%d forwarders for one task", subs)
	}
	h.Done(&task.Task{ID: "a", Status: task.StatusSucceeded, Attempts: 1}, t0)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.active) != 0 {
		t.Fatalf("active topics after Done: %v", h.active)
	}
}

// drain reads sub until it ends, after its Done events when the feed has ended.
func drain(t *testing.T, sub *Subscription, n int) []Event {
	t.Helper()
	var got []Event
	for len(got) < n {
		ev, err := next(t, sub)
		if err != nil {
			t.Fatalf("Next after %d events: %v", len(got), err)
		}
		got = append(got, ev)
	}
	return got
}

func TestFeedNumbersEventsAndResumesAfterAFeedSeq(t *testing.T) {
	h := newHub(Options{SubscriberBuffer: 64, ReplayChunks: 100, ReplayBytes: 1 << 20, FinishedTasks: 4})
	f := NewFeed(0, t0)
	for _, id := range []string{"a", "b"} {
		if err := f.Attach(h.Subscribe(running(id), nil, t0), "step-"+id); err != nil {
			t.Fatal(err)
		}
	}
	h.Chunk("a", 1, 0, "a0", t0)
	h.Chunk("b", 1, 0, "b0", t0)
	h.Chunk("a", 1, 1, "a1", t0)
	h.Done(&task.Task{ID: "b", Status: task.StatusSucceeded, Attempts: 1}, t0)
	h.Chunk("a", 1, 2, "a2", t0)

	// A first watcher, from the start: the tasks' state now (b's running status is
	// gone, its final one stands), in the order things happened.
	sub := f.Subscribe(nil, t0)
	defer sub.Close()
	all := drain(t, sub, 7) // a's status, a0 b0 a1, b's status and Done, a2
	for i, ev := range all {
		if ev.FeedSeq <= t0.UnixMicro() || (i > 0 && ev.FeedSeq <= all[i-1].FeedSeq) {
			t.Fatalf("event %d has FeedSeq %d after %d", i, ev.FeedSeq, all[max(i-1, 0)].FeedSeq)
		}
	}
	if all[0].Kind != KindStatus || all[1].Chunk != "a0" || all[2].Chunk != "b0" || all[5].Kind != KindDone || all[6].Chunk != "a2" {
		t.Fatalf("replay = %+v", all)
	}

	// Resumed after b0: a1, b's end and a2, then what comes live; nothing it had, and
	// not a's status, which did not change.
	resumed := f.Subscribe(f.CursorAt(all[2].FeedSeq), t0)
	defer resumed.Close()
	h.Chunk("a", 1, 3, "a3", t0)
	got := drain(t, resumed, 5)
	for i, ev := range all[3:] {
		if got[i].Kind != ev.Kind || got[i].Chunk != ev.Chunk || got[i].TaskID != ev.TaskID || got[i].FeedSeq != ev.FeedSeq {
			t.Fatalf("resumed event %d = %+v, first seen as %+v", i, got[i], ev)
		}
	}
	if got[4].Chunk != "a3" || got[4].FeedSeq <= all[6].FeedSeq {
		t.Fatalf("live event after the replay = %+v", got[4])
	}

	// A seq this feed never gave (before it, or of a feed made again later) is the start.
	if f.CursorAt(t0.UnixMicro()) != nil || f.CursorAt(all[6].FeedSeq+100) != nil {
		t.Fatal("CursorAt of a seq the feed never gave is not the start")
	}
	if again := NewFeed(0, t0.Add(time.Second)); again.seq <= f.seq {
		t.Fatalf("a feed made later starts at %d, below the earlier one's %d", again.seq, f.seq)
	}
}

// A long-streaming member keeps chunk marks only for the chunks the hub still
// retains (bounded by ReplayChunks), and a watcher resumed after a late chunk still
// gets exactly the chunks after it.
func TestFeedChunkMarksAreBoundedByTheHubsReplay(t *testing.T) {
	const replay = 4
	h := newHub(Options{SubscriberBuffer: 1024, ReplayChunks: replay, ReplayBytes: 1 << 20, FinishedTasks: 4})
	f := NewFeed(0, t0)
	if err := f.Attach(h.Subscribe(running("a"), nil, t0), "step-a"); err != nil {
		t.Fatal(err)
	}
	for seq := range int64(50) {
		h.Chunk("a", 1, seq, fmt.Sprint("c", seq), t0)
	}
	if n := len(f.members["a"].chunks); n >= 2*replay {
		t.Fatalf("%d chunk marks kept for a hub that retains %d chunks", n, replay)
	}
	sub := f.Subscribe(nil, t0)
	all := drain(t, sub, 1+replay) // a's status, then the retained chunks c46..c49
	sub.Close()
	resumed := f.Subscribe(f.CursorAt(all[2].FeedSeq), t0) // after c47
	defer resumed.Close()
	h.Chunk("a", 1, 50, "c50", t0)
	got := drain(t, resumed, 3)
	if got[0].Chunk != "c48" || got[1].Chunk != "c49" || got[2].Chunk != "c50" {
		t.Fatalf("resumed after c47 = %+v", got)
	}
}
