package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/events"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/scheduler"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/telemetry"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// Agents of the fake worker: echo returns its input; slow does so after 1 s; fail
// fails (not retryable); block never answers (it waits to be cancelled).
var testAgents = []string{"echo", "slow", "fail", "block"}

// harness is a real scheduler and engine over a store, with an optional fake worker.
type harness struct {
	t     *testing.T
	store store.Store
	sched *scheduler.Scheduler
	eng   *Engine
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

func newHarness(t *testing.T, st store.Store) *harness {
	t.Helper()
	return newHarnessWith(t, st, 0)
}

// newHarnessWith is newHarness with the engine's StoreTimeout (0: the default).
func newHarnessWith(t *testing.T, st store.Store, storeTimeout time.Duration) *harness {
	t.Helper()
	m := telemetry.NewTestMetrics()
	catalog := workers.NewCatalog()
	for _, a := range testAgents {
		catalog.Add(workers.Agent{Name: a})
	}
	h := &harness{t: t, store: st}
	h.eng = New(Deps{Store: st, Catalog: catalog, RetryInterval: 20 * time.Millisecond, StoreTimeout: storeTimeout})
	h.sched = scheduler.New(scheduler.Config{TickInterval: 20 * time.Millisecond}, scheduler.Deps{
		Store: st, Catalog: catalog, Hub: events.NewHub(events.DefaultOptions(), m), Metrics: m,
		OnStepFinished: h.eng.StepFinished,
	})
	ctx := context.Background()
	if err := h.sched.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	h.sched.Start()
	if err := h.eng.Start(ctx, h.sched); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	if h.stop != nil {
		h.stop()
		h.wg.Wait()
		h.stop = nil
	}
	h.eng.Stop()
	h.sched.Shutdown()
}

// worker connects a fake worker running up to concurrency tasks at once.
func (h *harness) worker(concurrency int32) {
	h.t.Helper()
	w, err := h.sched.Connect(scheduler.Registration{Agents: agentList(), Concurrency: concurrency})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	h.sched.Credit(w, concurrency)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			msgs, closed, err := w.Outbox.Next(ctx)
			if closed || err != nil {
				return
			}
			for _, m := range msgs {
				if a := m.Assignment; a != nil {
					h.wg.Add(1)
					go func() {
						defer h.wg.Done()
						h.run(ctx, w, a)
					}()
				}
			}
		}
	}()
}

func agentList() []workers.Agent {
	out := make([]workers.Agent, len(testAgents))
	for i, a := range testAgents {
		out[i] = workers.Agent{Name: a}
	}
	return out
}

func (h *harness) run(ctx context.Context, w *workers.Worker, a *workers.Assignment) {
	res := scheduler.Result{TaskID: a.Task.ID, LeaseID: a.LeaseID, Output: a.Task.Input}
	if len(res.Output) == 0 {
		res.Output = json.RawMessage("null")
	}
	switch a.Task.Agent {
	case "slow":
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
	case "fail":
		res.Output, res.Failure = nil, &task.Failure{Reason: task.ReasonAgentError, Message: "boom"}
	case "block":
		<-ctx.Done()
		return
	}
	h.sched.Complete(w, res)
	h.sched.Credit(w, 1)
}

func (h *harness) submit(spec Spec) *Workflow {
	h.t.Helper()
	wf, _, err := h.eng.Submit(context.Background(), spec)
	if err != nil {
		h.t.Fatalf("Submit: %v", err)
	}
	return wf
}

// wait polls until the workflow has finished.
func (h *harness) wait(id string) *Workflow {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		wf, err := h.eng.Get(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if wf.Status.Finished() {
			return wf
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("workflow %s did not finish", id)
	return nil
}

// waitRunning polls until the step has started.
func (h *harness) waitRunning(id, stepID string) *StepState {
	h.t.Helper()
	for range 2000 {
		wf, _ := h.eng.Get(context.Background(), id)
		for _, st := range wf.Steps {
			if st.StepID == stepID && st.Status == task.StatusRunning {
				return &st
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("step %s never ran", stepID)
	return nil
}

func (h *harness) task(id string) *task.Task {
	h.t.Helper()
	tk, err := h.store.Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return tk
}

func stepOf(wf *Workflow, id string) StepState {
	for _, st := range wf.Steps {
		if st.StepID == id {
			return st
		}
	}
	return StepState{}
}

func js(s string) json.RawMessage { return json.RawMessage(s) }

// jsonEq compares JSON texts semantically.
func jsonEq(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	g, err := decodeJSON(got)
	if err != nil {
		t.Fatalf("bad JSON %s: %v", got, err)
	}
	if !jsonEqual(g, mustDecode(t, want)) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestSequentialTemplatedInputs(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{
		Mode: ModeSequential, Tenant: "acme", Labels: map[string]string{"team": "x"}, Input: js(`{"name":"ada","n":2}`),
		Steps: []Step{
			{ID: "s1", Agent: "echo", Input: js(`{"greeting":"hi {{ input.name }}","n":"{{ input.n }}"}`), Priority: 7, MaxAttempts: 2, Timeout: time.Minute},
			{ID: "s2", Agent: "echo", Input: js(`{"prev":"{{ steps.s1.output.greeting }}","whole":"{{ steps.s1.output }}"}`)},
			{ID: "s3", Agent: "echo", Input: js(`"{{ steps.s2.output.prev }}!"`)},
		},
	})
	done := h.wait(wf.ID)
	if done.Status != StatusSucceeded || done.Failure != nil {
		t.Fatalf("workflow = %+v", done)
	}
	jsonEq(t, done.Output, `"hi ada!"`)
	s2 := h.task(stepOf(done, "s2").TaskIDs[0])
	jsonEq(t, s2.Input, `{"prev":"hi ada","whole":{"greeting":"hi ada","n":2}}`)
	s1 := h.task(stepOf(done, "s1").TaskIDs[0])
	if s1.Tenant != "acme" || s1.Labels["team"] != "x" || s1.Priority != 7 || s1.MaxAttempts != 2 || s1.Timeout != time.Minute ||
		s1.WorkflowID != wf.ID || s1.StepID != "s1" {
		t.Fatalf("step task = %+v", s1)
	}
	for i := 1; i < 3; i++ {
		if done.Steps[i].StartedAt.Before(done.Steps[i-1].FinishedAt) {
			t.Fatalf("step %d started before step %d finished", i, i-1)
		}
	}
}

func TestParallelStepsRunConcurrently(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeParallel, Input: js(`{"x":1}`), Steps: []Step{
		{ID: "a", Agent: "slow", Input: js(`"a"`)}, {ID: "b", Agent: "slow", Input: js(`"b"`)}, {ID: "c", Agent: "slow", Input: js(`"{{ input.x }}"`)},
	}})
	done := h.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("workflow = %+v", done)
	}
	jsonEq(t, done.Output, `{"a":"a","b":"b","c":1}`)
	// Concurrent, not one after another: every step's task was running on the
	// worker before the first of them finished.
	var tasks []*task.Task
	for _, st := range done.Steps {
		tasks = append(tasks, h.task(st.TaskIDs[0]))
	}
	firstEnd := tasks[0].FinishedAt
	for _, tk := range tasks {
		if tk.FinishedAt.Before(firstEnd) {
			firstEnd = tk.FinishedAt
		}
	}
	for _, tk := range tasks {
		if tk.StartedAt.IsZero() || !tk.StartedAt.Before(firstEnd) {
			t.Fatalf("step %s's task started at %v, not before the first step task finished (%v)", tk.StepID, tk.StartedAt, firstEnd)
		}
	}
}

func TestDAGDiamond(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeDAG, Input: js(`{"q":"go"}`), Steps: []Step{
		{ID: "d", Agent: "echo", DependsOn: []string{"b", "c"}, Input: js(`{"b":"{{ steps.b.output }}","c":"{{ steps.c.output.from }}","a":"{{ steps.a.output }}"}`)},
		{ID: "b", Agent: "echo", DependsOn: []string{"a"}, Input: js(`{"from":"b","a":"{{ steps.a.output }}"}`)},
		{ID: "c", Agent: "echo", DependsOn: []string{"a"}, Input: js(`{"from":"c"}`)},
		{ID: "a", Agent: "echo", Input: js(`"{{ input.q }}"`)},
	}})
	done := h.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("workflow = %+v", done)
	}
	jsonEq(t, done.Output, `{"d":{"b":{"from":"b","a":"go"},"c":"c","a":"go"}}`)
	d, b, c := stepOf(done, "d"), stepOf(done, "b"), stepOf(done, "c")
	if d.StartedAt.Before(b.FinishedAt) || d.StartedAt.Before(c.FinishedAt) {
		t.Fatal("d started before b and c finished")
	}
}

func TestEarlyExit(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeSequential, Steps: []Step{
		{ID: "classify", Agent: "echo", Input: js(`{"label":"spam"}`), ExitIf: `{{ output.label }} == "spam"`},
		{ID: "answer", Agent: "echo", Input: js(`"never"`)},
	}})
	done := h.wait(wf.ID)
	if done.Status != StatusSucceeded || done.ExitedAtStep != "classify" {
		t.Fatalf("workflow = %+v", done)
	}
	jsonEq(t, done.Output, `{"label":"spam"}`)
	if a := stepOf(done, "answer"); a.Status != task.StatusCancelled || len(a.TaskIDs) != 0 {
		t.Fatalf("answer step = %+v", a)
	}

	// A condition that does not hold lets the workflow go on.
	wf = h.submit(Spec{Mode: ModeSequential, Steps: []Step{
		{ID: "classify", Agent: "echo", Input: js(`{"label":"ham"}`), ExitIf: `{{ output.label }} == "spam"`},
		{ID: "answer", Agent: "echo", Input: js(`"yes"`)},
	}})
	if done = h.wait(wf.ID); done.Status != StatusSucceeded || done.ExitedAtStep != "" {
		t.Fatalf("workflow = %+v", done)
	}
	jsonEq(t, done.Output, `"yes"`)

	// An exit cancels a step still running in parallel.
	wf = h.submit(Spec{Mode: ModeParallel, Steps: []Step{
		{ID: "long", Agent: "block"},
		{ID: "quick", Agent: "echo", Input: js(`{"done":true}`), ExitIf: `{{ output.done }}`},
	}})
	done = h.wait(wf.ID)
	long := stepOf(done, "long")
	if done.Status != StatusSucceeded || done.ExitedAtStep != "quick" || long.Status != task.StatusCancelled {
		t.Fatalf("workflow = %+v", done)
	}
	if tk := h.task(long.TaskIDs[0]); tk.Status != task.StatusCancelled {
		t.Fatalf("running step's task = %v", tk.Status)
	}
}

func TestMapStepFansOutOverAThousandElements(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(256)
	items := make([]string, 1000)
	want := make([]string, 1000)
	for i := range items {
		items[i] = fmt.Sprintf(`{"v":%d}`, i*10)
		want[i] = fmt.Sprintf(`{"v":%d,"i":%d}`, i*10, i)
	}
	wf := h.submit(Spec{Mode: ModeDAG, Input: js(`{"items":[` + strings.Join(items, ",") + `]}`), Steps: []Step{
		{ID: "fan", Agent: "echo", MapOver: "{{ input.items }}", Input: js(`{"v":"{{ item.v }}","i":"{{ index }}"}`)},
		{ID: "count", Agent: "echo", DependsOn: []string{"fan"}, Input: js(`{"last":"{{ steps.fan.output.999.v }}"}`)},
		{ID: "empty", Agent: "echo", MapOver: "{{ input.none }}"},
	}})
	done := h.wait(wf.ID)
	if done.Status != StatusFailed {
		t.Fatalf("a map_over naming a missing list must fail the step: %+v", done)
	}
	if !strings.Contains(stepOf(done, "empty").Failure.Message, `input has no field "none"`) {
		t.Fatalf("empty step = %+v", stepOf(done, "empty"))
	}

	wf = h.submit(Spec{Mode: ModeDAG, Input: js(`{"items":[` + strings.Join(items, ",") + `],"none":[]}`), Steps: []Step{
		{ID: "fan", Agent: "echo", MapOver: "{{ input.items }}", Input: js(`{"v":"{{ item.v }}","i":"{{ index }}"}`)},
		{ID: "count", Agent: "echo", DependsOn: []string{"fan"}, Input: js(`{"last":"{{ steps.fan.output.999.v }}"}`)},
		{ID: "empty", Agent: "echo", MapOver: "{{ input.none }}"},
	}})
	done = h.wait(wf.ID)
	if done.Status != StatusSucceeded {
		t.Fatalf("workflow = %+v", done)
	}
	fan := stepOf(done, "fan")
	if len(fan.TaskIDs) != 1000 {
		t.Fatalf("fan-out ran %d tasks", len(fan.TaskIDs))
	}
	jsonEq(t, fan.Output, "["+strings.Join(want, ",")+"]")
	jsonEq(t, done.Output, `{"count":{"last":9990},"empty":[]}`)
}

func TestFailurePolicies(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(8)
	steps := func(sibling string) []Step {
		return []Step{
			{ID: "bad", Agent: "fail"},
			{ID: "sibling", Agent: sibling},
			{ID: "after-bad", Agent: "echo", DependsOn: []string{"bad"}},
			{ID: "after-after", Agent: "echo", DependsOn: []string{"after-bad"}},
			{ID: "after-sibling", Agent: "echo", DependsOn: []string{"sibling"}, Input: js(`"ok"`)},
		}
	}
	wf := h.submit(Spec{Mode: ModeDAG, FailurePolicy: PolicyFailFast, Steps: steps("block")})
	done := h.wait(wf.ID)
	if done.Status != StatusFailed || done.Failure == nil || !strings.Contains(done.Failure.Message, "step bad failed: boom") {
		t.Fatalf("fail-fast workflow = %+v", done)
	}
	sib := stepOf(done, "sibling")
	if sib.Status != task.StatusCancelled || h.task(sib.TaskIDs[0]).Status != task.StatusCancelled {
		t.Fatalf("running sibling = %+v", sib)
	}
	if st := stepOf(done, "after-sibling"); st.Status != task.StatusCancelled || len(st.TaskIDs) != 0 {
		t.Fatalf("pending step = %+v", st)
	}

	wf = h.submit(Spec{Mode: ModeDAG, FailurePolicy: PolicyContinue, Steps: steps("echo")})
	done = h.wait(wf.ID)
	if done.Status != StatusFailed || !strings.Contains(done.Failure.Message, "step bad failed") {
		t.Fatalf("continue workflow = %+v", done)
	}
	for id, want := range map[string]string{"after-bad": "skipped: upstream bad failed", "after-after": "skipped: upstream after-bad failed"} {
		if st := stepOf(done, id); st.Status != task.StatusCancelled || !st.Skipped || st.Failure.Message != want || len(st.TaskIDs) != 0 {
			t.Fatalf("step %s = %+v", id, st)
		}
	}
	if st := stepOf(done, "after-sibling"); st.Status != task.StatusSucceeded {
		t.Fatalf("independent step = %+v", st)
	}
	jsonEq(t, done.Output, `{"after-sibling":"ok"}`)
}

func TestMapStepFailsFastOnAnElement(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Input: js(`{"agents":[1,2]}`), Steps: []Step{
		{ID: "m", Agent: "fail", MapOver: "{{ input.agents }}"},
	}})
	done := h.wait(wf.ID)
	m := stepOf(done, "m")
	if done.Status != StatusFailed || m.Status != task.StatusFailed || !strings.Contains(m.Failure.Message, "element ") {
		t.Fatalf("workflow = %+v", done)
	}
}

func TestCancelWorkflow(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeSequential, Steps: []Step{{ID: "wait", Agent: "block"}, {ID: "next", Agent: "echo"}}})
	st := h.waitRunning(wf.ID, "wait")
	got, err := h.eng.Cancel(context.Background(), wf.ID, "user asked")
	if err != nil || got.Status != StatusCancelled || got.Failure.Message != "user asked" {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	if tk := h.task(st.TaskIDs[0]); tk.Status != task.StatusCancelled {
		t.Fatalf("step task = %v", tk.Status)
	}
	if s := stepOf(got, "next"); s.Status != task.StatusCancelled || len(s.TaskIDs) != 0 {
		t.Fatalf("pending step = %+v", s)
	}
	again, err := h.eng.Cancel(context.Background(), wf.ID, "twice")
	if err != nil || again.Status != StatusCancelled || again.Failure.Message != "user asked" {
		t.Fatalf("second Cancel = %+v, %v", again, err)
	}
	if _, err := h.eng.Cancel(context.Background(), "nope", ""); err == nil {
		t.Fatal("cancel of an unknown workflow succeeded")
	}
}

func TestIdempotencyKeyPerTenant(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	spec := Spec{Tenant: "acme", IdempotencyKey: "run-1", Steps: []Step{{ID: "a", Agent: "echo"}}}
	first, existing, err := h.eng.Submit(context.Background(), spec)
	if err != nil || existing {
		t.Fatalf("first = %v, %v", existing, err)
	}
	again, existing, err := h.eng.Submit(context.Background(), spec)
	if err != nil || !existing || again.ID != first.ID {
		t.Fatalf("again = %+v, %v, %v", again, existing, err)
	}
	spec.Tenant = "globex"
	other, existing, err := h.eng.Submit(context.Background(), spec)
	if err != nil || existing || other.ID == first.ID {
		t.Fatalf("other tenant = %+v, %v, %v", other, existing, err)
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

func TestWatchSeesStatusStepEventsAndDone(t *testing.T) {
	h := newHarness(t, store.NewMemory())
	h.worker(4)
	wf := h.submit(Spec{Mode: ModeSequential, Steps: []Step{{ID: "wait", Agent: "block"}, {ID: "b", Agent: "echo"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := h.eng.Watch(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Next(ctx)
	if err != nil || first.Status != StatusRunning || first.StepID != "" {
		t.Fatalf("first = %+v, %v", first, err)
	}
	h.waitRunning(wf.ID, "wait")
	if _, err := h.eng.Cancel(ctx, wf.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	var stepDone, last Event
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			if err != events.ErrDone {
				t.Fatalf("Next: %v", err)
			}
			break
		}
		if ev.StepID == "wait" && ev.Task.Kind == events.KindDone {
			stepDone = ev
		}
		last = ev
	}
	if stepDone.Task == nil || stepDone.Task.Status != task.StatusCancelled {
		t.Fatalf("no DONE event of the step task: %+v", stepDone)
	}
	if !last.Done || last.Workflow == nil || last.Workflow.Status != StatusCancelled {
		t.Fatalf("last = %+v", last)
	}

	// A finished workflow: its status, then Done.
	w2, err := h.eng.Watch(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if ev, _ := w2.Next(ctx); ev.Status != StatusCancelled || ev.Done {
		t.Fatalf("first = %+v", ev)
	}
	if ev, _ := w2.Next(ctx); !ev.Done || ev.Workflow.Status != StatusCancelled {
		t.Fatalf("second = %+v", ev)
	}
}
