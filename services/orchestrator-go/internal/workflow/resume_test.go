package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/redistest"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// durableStores open a real store and reopen the same data as a new process would.
func durableStores() map[string]func(t *testing.T) (open func() store.Store) {
	return map[string]func(t *testing.T) func() store.Store{
		"bolt": func(t *testing.T) func() store.Store {
			path := filepath.Join(t.TempDir(), store.BoltFileName)
			return func() store.Store {
				b, err := store.OpenBolt(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close() })
				return b
			}
		},
		"redis": func(t *testing.T) func() store.Store {
			srv := redistest.Start(t)
			return func() store.Store {
				r, err := store.OpenRedis(context.Background(), srv.URL, "")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = r.Close() })
				return r
			}
		},
	}
}

// An unfinished workflow stored in bolt or Redis resumes under a new engine over
// the reopened store; retention never prunes the step result it still needs, and
// prunes the workflow and its tasks once it is done and old.
func TestResumeFromDurableStoreAndPruneAfterwards(t *testing.T) {
	for name, backend := range durableStores() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			open := backend(t)
			st := open()

			// First life: no worker, so step 1's task waits in the queue.
			h1 := newHarness(t, st)
			spec := Spec{Mode: ModeSequential, Tenant: "acme", IdempotencyKey: "nightly", Input: js(`{"x":"hello"}`), Steps: []Step{
				{ID: "s1", Agent: "echo", Input: js(`{"x":"{{ input.x }}"}`)},
				{ID: "s2", Agent: "echo", Input: js(`"{{ steps.s1.output.x }} again"`)},
				{ID: "s3", Agent: "echo", Input: js(`{"final":"{{ steps.s2.output }}"}`)},
			}}
			wf := h1.submit(spec)
			s1 := h1.waitRunning(wf.ID, "s1")
			h1.close()
			// While it was down, step 1's task finished long ago (recorded; the engine never told).
			tk := h1.task(s1.TaskIDs[0])
			tk.Status, tk.Result, tk.Attempts = task.StatusSucceeded, js(`{"x":"hello"}`), 1
			tk.FinishedAt = time.Now().Add(-48 * time.Hour)
			if err := st.Put(ctx, tk); err != nil {
				t.Fatal(err)
			}
			// Retention runs before the restart: the finished step task of a running
			// workflow stays, or the workflow could never read its result.
			pruner := &store.Pruner{Store: st, Retention: time.Hour}
			if n, err := pruner.PruneOnce(ctx); err != nil || n != 0 {
				t.Fatalf("pruned %d step tasks of a running workflow (%v)", n, err)
			}
			if n, err := pruner.PruneWorkflowsOnce(ctx); err != nil || n != 0 {
				t.Fatalf("pruned %d running workflows (%v)", n, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			// Second life: a new engine over the reopened store resumes at step 2.
			st = open()
			h2 := newHarness(t, st)
			h2.worker(4)
			done := h2.wait(wf.ID)
			if done.Status != StatusSucceeded {
				t.Fatalf("resumed workflow = %+v", done)
			}
			jsonEq(t, done.Output, `{"final":"hello again"}`)
			all, _, err := st.List(ctx, store.Filter{}, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			perStep := map[string]int{}
			for _, tk := range all {
				perStep[tk.StepID]++
			}
			if len(all) != 3 || perStep["s1"] != 1 || perStep["s2"] != 1 || perStep["s3"] != 1 {
				t.Fatalf("tasks per step = %v (want one each)", perStep)
			}
			if again, existing, err := h2.eng.Submit(ctx, spec); err != nil || !existing || again.ID != wf.ID {
				t.Fatalf("idempotent resubmit after the restart = %+v, %v, %v", again, existing, err)
			}

			// Once done and older than the retention, the workflow and its tasks go.
			h2.close()
			later := &store.Pruner{Store: st, Retention: time.Hour, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
			if n, err := later.PruneOnce(ctx); err != nil || n != 3 {
				t.Fatalf("pruned %d tasks of the finished workflow (%v), want 3", n, err)
			}
			if n, err := later.PruneWorkflowsOnce(ctx); err != nil || n != 1 {
				t.Fatalf("pruned %d finished workflows (%v), want 1", n, err)
			}
			if _, err := st.GetWorkflow(ctx, wf.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the pruned workflow is still stored: %v", err)
			}
		})
	}
}

// A resumed step whose task is missing from the store is submitted again; the same
// idempotency key finds the task that does exist, so nothing runs twice.
func TestResumeResubmitsAStepWhoseTaskCannotBeRead(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	h1 := newHarness(t, st)
	wf := h1.submit(Spec{Steps: []Step{{ID: "only", Agent: "echo", Input: js(`{"n":1}`)}}})
	stored := h1.waitRunning(wf.ID, "only").TaskIDs[0]
	h1.close()
	stale, _ := h1.eng.Get(ctx, wf.ID)
	stale.Steps[0].TaskIDs = []string{"ghost"} // a task id the store does not have
	if err := h1.eng.write(ctx, stale); err != nil {
		t.Fatal(err)
	}

	h2 := newHarness(t, st)
	h2.worker(2)
	done := h2.wait(wf.ID)
	if done.Status != StatusSucceeded || len(done.Steps[0].TaskIDs) != 1 || done.Steps[0].TaskIDs[0] != stored {
		t.Fatalf("workflow = %+v (want it finished by task %s)", done, stored)
	}
	jsonEq(t, done.Output, `{"n":1}`)
	if all, _, _ := st.List(ctx, store.Filter{}, "", 10); len(all) != 1 {
		t.Fatalf("%d tasks for one step", len(all))
	}
}

// A workflow stopped mid-pipeline resumes from its step tasks alone: its stored
// record still holds the submitted state (the states in between are not written),
// yet every step that had started gets back the same tasks, results and times,
// and no step task is created twice.
func TestResumeMidPipelineFindsEveryStepTaskAgain(t *testing.T) {
	for name, backend := range durableStores() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			open := backend(t)
			st := open()

			// First life: s1 and the map step finish; s3 (1 s) is running at the stop.
			h1 := newHarness(t, st)
			h1.worker(8)
			wf := h1.submit(Spec{Mode: ModeSequential, Input: js(`{"items":[1,2,3,4]}`), Steps: []Step{
				{ID: "s1", Agent: "echo", Input: js(`{"items":"{{ input.items }}"}`)},
				{ID: "m", Agent: "echo", MapOver: "{{ steps.s1.output.items }}", Input: js(`{"n":"{{ item }}","i":"{{ index }}"}`)},
				{ID: "s3", Agent: "slow", Input: js(`{"all":"{{ steps.m.output }}"}`)},
			}})
			h1.waitRunning(wf.ID, "s3")
			before, err := h1.eng.Get(ctx, wf.ID)
			if err != nil {
				t.Fatal(err)
			}
			h1.close()
			sw, err := st.GetWorkflow(ctx, wf.ID)
			if err != nil {
				t.Fatal(err)
			}
			var stored Workflow
			if err := json.Unmarshal(sw.State, &stored); err != nil {
				t.Fatal(err)
			}
			for _, s := range stored.Steps {
				if s.Status != task.StatusUnspecified || len(s.TaskIDs) != 0 {
					t.Fatalf("stored step %s = %+v (want the submitted state: nothing else is written before the end)", s.StepID, s)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			// Second life: every step is submitted again under its idempotency keys.
			st = open()
			h2 := newHarness(t, st)
			h2.worker(8)
			done := h2.wait(wf.ID)
			if done.Status != StatusSucceeded {
				t.Fatalf("resumed workflow = %+v", done)
			}
			jsonEq(t, done.Output, `{"all":[{"n":1,"i":0},{"n":2,"i":1},{"n":3,"i":2},{"n":4,"i":3}]}`)
			for i, was := range before.Steps {
				now := done.Steps[i]
				if fmt.Sprint(now.TaskIDs) != fmt.Sprint(was.TaskIDs) || !now.StartedAt.Equal(was.StartedAt) {
					t.Fatalf("step %s after the restart = %+v, before = %+v (want the same tasks and start)", was.StepID, now, was)
				}
				if was.Status == task.StatusSucceeded && (!now.FinishedAt.Equal(was.FinishedAt) || !bytes.Equal(now.Output, was.Output)) {
					t.Fatalf("finished step %s after the restart = %+v, before = %+v", was.StepID, now, was)
				}
			}
			all, _, err := st.List(ctx, store.Filter{}, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			perStep := map[string]int{}
			for _, tk := range all {
				perStep[tk.StepID]++
			}
			if len(all) != 6 || perStep["s1"] != 1 || perStep["m"] != 4 || perStep["s3"] != 1 {
				t.Fatalf("tasks per step = %v (want s1:1 m:4 s3:1)", perStep)
			}
		})
	}
}

// countingStore counts PutWorkflow calls.
type countingStore struct {
	store.Store
	puts atomic.Int64
}

func (s *countingStore) PutWorkflow(ctx context.Context, wf *store.Workflow) error {
	s.puts.Add(1)
	return s.Store.PutWorkflow(ctx, wf)
}

// A workflow is written twice, whatever its length: when submitted and when it
// finishes (its steps' progress is in the task store).
func TestWorkflowWrittenAtSubmitAndAtTheEndOnly(t *testing.T) {
	st := &countingStore{Store: store.NewMemory()}
	h := newHarness(t, st)
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeSequential, Steps: []Step{
		{ID: "a", Agent: "echo", Input: js(`1`)},
		{ID: "b", Agent: "echo", MapOver: "{{ input.list }}"},
		{ID: "c", Agent: "echo", Input: js(`3`)},
		{ID: "d", Agent: "echo", Input: js(`4`)},
	}, Input: js(`{"list":[1,2,3]}`)})
	done := h.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("workflow = %+v", done)
	}
	if n := st.puts.Load(); n != 2 {
		t.Fatalf("%d workflow writes, want 2", n)
	}
	sw, err := st.GetWorkflow(context.Background(), wf.ID)
	if err != nil || !sw.Done {
		t.Fatalf("stored workflow = %+v, %v (want done)", sw, err)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	// First life: no worker, so step 1's task just waits in the queue.
	h1 := newHarness(t, st)
	wf := h1.submit(Spec{Mode: ModeSequential, Input: js(`{"x":"hello"}`), Steps: []Step{
		{ID: "s1", Agent: "echo", Input: js(`{"x":"{{ input.x }}"}`)},
		{ID: "s2", Agent: "echo", Input: js(`"{{ steps.s1.output.x }} again"`)},
		{ID: "s3", Agent: "echo", Input: js(`"{{ steps.s2.output }}"`)},
	}})
	s1 := h1.waitRunning(wf.ID, "s1")
	h1.close()

	// While it was down, step 1's task finished (its result recorded, the engine never told).
	tk := h1.task(s1.TaskIDs[0])
	tk.Status, tk.Result, tk.FinishedAt = task.StatusSucceeded, js(`{"x":"hello"}`), time.Now()
	if err := st.Put(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if sw, _ := st.GetWorkflow(ctx, wf.ID); sw.Done {
		t.Fatal("the stored workflow is already done")
	}

	// Second life over the same store: the workflow resumes from step 2.
	h2 := newHarness(t, st)
	h2.worker(4)
	done := h2.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("resumed workflow = %+v", done)
	}
	jsonEq(t, done.Output, `"hello again"`)
	all, _, err := st.List(ctx, store.Filter{}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	perStep := map[string]int{}
	for _, tk := range all {
		perStep[tk.StepID]++
	}
	if len(all) != 3 || perStep["s1"] != 1 || perStep["s2"] != 1 || perStep["s3"] != 1 {
		t.Fatalf("tasks per step = %v (want one each)", perStep)
	}
	if sw, _ := st.GetWorkflow(ctx, wf.ID); !sw.Done {
		t.Fatal("the stored workflow is not marked done")
	}
}

func TestResubmittedStepReusesItsTask(t *testing.T) {
	// A crash between submitting a step's task and writing the workflow leaves the
	// step pending in the store; on resume the same idempotency key finds the task.
	st := store.NewMemory()
	ctx := context.Background()
	h1 := newHarness(t, st)
	wf := h1.submit(Spec{Steps: []Step{{ID: "only", Agent: "echo", Input: js(`1`)}}})
	h1.waitRunning(wf.ID, "only")
	h1.close()
	stale, _ := h1.eng.Get(ctx, wf.ID)
	stale.Steps[0] = StepState{StepID: "only"} // as if the write of "running" was lost
	if err := h1.eng.write(ctx, stale); err != nil {
		t.Fatal(err)
	}

	h2 := newHarness(t, st)
	h2.worker(2)
	done := h2.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("workflow = %+v", done)
	}
	if all, _, _ := st.List(ctx, store.Filter{}, "", 10); len(all) != 1 {
		t.Fatalf("%d tasks for one step", len(all))
	}
}

func TestStartCancelsStepTasksOfFinishedWorkflows(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	state, _ := json.Marshal(&Workflow{ID: "wf-done", Status: StatusSucceeded})
	if err := st.PutWorkflow(ctx, &store.Workflow{ID: "wf-done", Done: true, FinishedAt: time.Now(), State: state}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mk := func(id, wf string) *task.Task {
		return &task.Task{ID: id, Agent: "block", Status: task.StatusQueued, WorkflowID: wf, StepID: "a",
			MaxAttempts: 3, Timeout: time.Minute, CreatedAt: now}
	}
	// Left by a crash between the workflow's final write and the cancellation of its
	// steps; the pruned workflow's task likewise; a plain task is not touched.
	if err := st.Put(ctx, mk("orphan", "wf-done"), mk("pruned", "wf-gone"), mk("plain", "")); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, st) // Start returns once the cancellations are durable
	for _, id := range []string{"orphan", "pruned"} {
		if got := h.task(id); got.Status != task.StatusCancelled {
			t.Errorf("step task %s of a finished workflow = %v, want CANCELLED", id, got.Status)
		}
	}
	if got := h.task("plain"); got.Status != task.StatusQueued {
		t.Errorf("plain task = %v, want QUEUED", got.Status)
	}
}
