package workflow

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

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
