package crash

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

const (
	// workflowAgent echoes its input object with the run's lease id added; the fake
	// workers hold (never answer) its tasks whose input has "hold": true until the
	// kill, so the kill always lands with every workflow mid-flight.
	workflowAgent  = "wf-echo"
	workflowTenant = "crash-wf" // apart from the tenant of the 1,000 tasks
	mapElements    = 50
)

// crashWorkflow is one workflow of the scenario and what it must end with.
type crashWorkflow struct {
	name string
	spec *pb.WorkflowSpec
	// steps and their task counts (a map step has one task per element).
	steps map[string]int
	// doneBeforeKill: step tasks that succeed before the kill; heldAtKill: those held.
	doneBeforeKill, heldAtKill int
	// check verifies the output of the finished workflow given each step's recorded
	// results (by step id, element order).
	check func(t *testing.T, wf *pb.Workflow, results map[string][]*structpb.Value)
}

func mustValue(t *testing.T, v any) *structpb.Value {
	t.Helper()
	pv, err := structpb.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

func str(v *structpb.Value, field string) string {
	return v.GetStructValue().GetFields()[field].GetStringValue()
}

// crashWorkflows: a 3-step sequential pipeline, a DAG a -> (b, c) -> d, and a map
// step over 50 elements between two steps. Every step's input is templated from
// the workflow input and upstream outputs (values and the lease ids of the runs
// whose results were recorded).
func crashWorkflows(t *testing.T) []*crashWorkflow {
	retry := &pb.RetryPolicy{MaxAttempts: 5}
	items := make([]any, mapElements)
	for k := range items {
		items[k] = map[string]any{"n": k, "hold": k%2 == 1}
	}
	return []*crashWorkflow{
		{
			name: "sequential",
			spec: &pb.WorkflowSpec{
				Name: "sequential", Mode: pb.WorkflowMode_WORKFLOW_MODE_SEQUENTIAL, Tenant: workflowTenant, IdempotencyKey: "wf-sequential",
				Input: mustValue(t, map[string]any{"seed": "s"}),
				Steps: []*pb.Step{
					{Id: "s1", Agent: workflowAgent, Retry: retry, Input: mustValue(t, map[string]any{"v": "{{ input.seed }}-1"})},
					{Id: "s2", Agent: workflowAgent, Retry: retry, Input: mustValue(t, map[string]any{"v": "{{ steps.s1.output.v }}-2", "from": "{{ steps.s1.output.lease }}", "hold": true})},
					{Id: "s3", Agent: workflowAgent, Retry: retry, Input: mustValue(t, map[string]any{"v": "{{ steps.s2.output.v }}-3", "from": "{{ steps.s2.output.lease }}"})},
				},
			},
			steps: map[string]int{"s1": 1, "s2": 1, "s3": 1}, doneBeforeKill: 1, heldAtKill: 1,
			check: func(t *testing.T, wf *pb.Workflow, res map[string][]*structpb.Value) {
				out := wf.GetOutput()
				if str(out, "v") != "s-1-2-3" || str(out, "from") != str(res["s2"][0], "lease") || str(out, "lease") != str(res["s3"][0], "lease") {
					t.Fatalf("sequential output = %v", out)
				}
				if str(res["s2"][0], "from") != str(res["s1"][0], "lease") {
					t.Fatalf("s2 read a result of s1 (%s) other than the recorded one (%s)", str(res["s2"][0], "from"), str(res["s1"][0], "lease"))
				}
			},
		},
		{
			name: "dag",
			spec: &pb.WorkflowSpec{
				Name: "dag", Mode: pb.WorkflowMode_WORKFLOW_MODE_DAG, Tenant: workflowTenant, IdempotencyKey: "wf-dag",
				Input: mustValue(t, map[string]any{"seed": "d"}),
				Steps: []*pb.Step{
					{Id: "a", Agent: workflowAgent, Retry: retry, Input: mustValue(t, map[string]any{"v": "{{ input.seed }}-a"})},
					{Id: "b", Agent: workflowAgent, Retry: retry, DependsOn: []string{"a"}, Input: mustValue(t, map[string]any{"v": "{{ steps.a.output.v }}-b", "from": "{{ steps.a.output.lease }}"})},
					{Id: "c", Agent: workflowAgent, Retry: retry, DependsOn: []string{"a"}, Input: mustValue(t, map[string]any{"v": "{{ steps.a.output.v }}-c", "from": "{{ steps.a.output.lease }}", "hold": true})},
					{Id: "d", Agent: workflowAgent, Retry: retry, DependsOn: []string{"b", "c"}, Input: mustValue(t, map[string]any{
						"v": "{{ steps.b.output.v }}+{{ steps.c.output.v }}-d", "from": "{{ steps.b.output.lease }},{{ steps.c.output.lease }}",
					})},
				},
			},
			steps: map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}, doneBeforeKill: 2, heldAtKill: 1,
			check: func(t *testing.T, wf *pb.Workflow, res map[string][]*structpb.Value) {
				d := wf.GetOutput().GetStructValue().GetFields()["d"]
				if str(d, "v") != "d-a-b+d-a-c-d" || str(d, "lease") != str(res["d"][0], "lease") ||
					str(d, "from") != str(res["b"][0], "lease")+","+str(res["c"][0], "lease") {
					t.Fatalf("dag output = %v", wf.GetOutput())
				}
				for _, s := range []string{"b", "c"} {
					if str(res[s][0], "from") != str(res["a"][0], "lease") {
						t.Fatalf("%s read a result of a other than the recorded one", s)
					}
				}
			},
		},
		{
			name: "map",
			spec: &pb.WorkflowSpec{
				Name: "map", Mode: pb.WorkflowMode_WORKFLOW_MODE_SEQUENTIAL, Tenant: workflowTenant, IdempotencyKey: "wf-map",
				Input: mustValue(t, map[string]any{"items": items}),
				Steps: []*pb.Step{
					{Id: "list", Agent: workflowAgent, Retry: retry, Input: mustValue(t, map[string]any{"items": "{{ input.items }}"})},
					{Id: "fan", Agent: workflowAgent, Retry: retry, MapOver: "{{ steps.list.output.items }}",
						Input: mustValue(t, map[string]any{"v": "m{{ item.n }}", "i": "{{ index }}", "hold": "{{ item.hold }}"})},
					{Id: "sum", Agent: workflowAgent, Retry: retry, Input: mustValue(t, map[string]any{"all": "{{ steps.fan.output }}"})},
				},
			},
			steps: map[string]int{"list": 1, "fan": mapElements, "sum": 1}, doneBeforeKill: 1 + mapElements/2, heldAtKill: mapElements / 2,
			check: func(t *testing.T, wf *pb.Workflow, res map[string][]*structpb.Value) {
				all := wf.GetOutput().GetStructValue().GetFields()["all"].GetListValue().GetValues()
				if len(all) != mapElements {
					t.Fatalf("map output has %d elements, want %d", len(all), mapElements)
				}
				for k, el := range all {
					f := el.GetStructValue().GetFields()
					if f["v"].GetStringValue() != fmt.Sprintf("m%d", k) || int(f["i"].GetNumberValue()) != k || f["hold"].GetBoolValue() != (k%2 == 1) {
						t.Fatalf("map element %d = %v", k, el)
					}
					if !proto.Equal(el, res["fan"][k]) {
						t.Fatalf("map element %d in the output %v is not the recorded result %v", k, el, res["fan"][k])
					}
				}
			},
		},
	}
}

// workflowsExtra submits the workflows before the kill and, once every held step is
// assigned (so the kill lands with each workflow mid-flight: some steps done, one
// running, some pending), lets the scenario go on; after the restart it checks them.
func workflowsExtra() Extra {
	return Extra{Name: "workflows", Submit: func(ctx context.Context, t *testing.T, h *Harness) func(context.Context, *testing.T, *Harness) {
		wfs := crashWorkflows(t)
		ids := map[string]string{}
		done, held := 0, 0
		for _, w := range wfs {
			resp, err := h.Client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: w.spec})
			if err != nil {
				t.Fatalf("submit the %s workflow: %v", w.name, err)
			}
			ids[w.name] = resp.GetWorkflow().GetId()
			done, held = done+w.doneBeforeKill, held+w.heldAtKill
		}
		for countWorkflowTasks(ctx, t, h, pb.TaskStatus_TASK_STATUS_SUCCEEDED) < done || h.Workers.Held() < held {
			if ctx.Err() != nil {
				t.Fatalf("workflows did not reach their held steps: %d step tasks succeeded (want %d), %d held (want %d)",
					countWorkflowTasks(ctx, t, h, pb.TaskStatus_TASK_STATUS_SUCCEEDED), done, h.Workers.Held(), held)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, w := range wfs {
			resp, err := h.Client.GetWorkflow(ctx, &pb.GetWorkflowRequest{Id: ids[w.name]})
			if err != nil || resp.GetWorkflow().GetStatus() != pb.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
				t.Fatalf("the %s workflow before the kill = %v, %v (want running)", w.name, resp.GetWorkflow(), err)
			}
		}
		t.Logf("workflows mid-flight at the kill: %d step tasks succeeded, %d held running", done, held)

		return func(ctx context.Context, t *testing.T, h *Harness) {
			for _, w := range wfs {
				waitWorkflow(ctx, t, h, ids[w.name])
			}
			tasks, want := listWorkflowTasks(ctx, t, h), 0
			for _, w := range wfs {
				checkWorkflow(ctx, t, h, w, ids[w.name], tasks)
				for _, n := range w.steps {
					want += n
				}
			}
			if len(tasks) != want {
				t.Fatalf("the workflows created tasks under %d idempotency keys, want %d", len(tasks), want)
			}
			// The same idempotency key still returns the same workflow.
			resp, err := h.Client.SubmitWorkflow(ctx, &pb.SubmitWorkflowRequest{Workflow: wfs[0].spec})
			if err != nil || !resp.GetExisting() || resp.GetWorkflow().GetId() != ids[wfs[0].name] {
				t.Fatalf("resubmitting the sequential workflow after the crash = %v, %v", resp, err)
			}
			t.Logf("all %d workflows succeeded with one task per step element and consistent results", len(wfs))
		}
	}}
}

// checkWorkflow waits for the workflow to end and checks it SUCCEEDED with the
// expected output, that each step element has exactly one task (by its idempotency
// key) and that the step outputs are the tasks' recorded results, each from one of
// its runs.
func checkWorkflow(ctx context.Context, t *testing.T, h *Harness, w *crashWorkflow, id string, byKey map[string][]*pb.Task) {
	t.Helper()
	wf := waitWorkflow(ctx, t, h, id)
	if wf.GetStatus() != pb.WorkflowStatus_WORKFLOW_STATUS_SUCCEEDED {
		t.Fatalf("the %s workflow ended %v: %v", w.name, wf.GetStatus(), wf.GetError())
	}
	results := map[string][]*structpb.Value{}
	for _, st := range wf.GetSteps() {
		n := w.steps[st.GetStepId()]
		if st.GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED || len(st.GetTaskIds()) != n {
			t.Fatalf("%s step %s: status %v with %d tasks, want succeeded with %d", w.name, st.GetStepId(), st.GetStatus(), len(st.GetTaskIds()), n)
		}
		for k := range n {
			key := fmt.Sprintf("taskloom.workflow/%s/%s/%d", id, st.GetStepId(), k)
			tasks := byKey[key]
			if len(tasks) != 1 {
				t.Fatalf("%s: %d tasks have idempotency key %s, want exactly 1", w.name, len(tasks), key)
			}
			tk := tasks[0]
			if tk.GetId() != st.GetTaskIds()[k] || tk.GetWorkflowId() != id || tk.GetStepId() != st.GetStepId() || tk.GetStatus() != pb.TaskStatus_TASK_STATUS_SUCCEEDED {
				t.Fatalf("%s: task %s for %s = %v (step lists %s)", w.name, tk.GetId(), key, tk, st.GetTaskIds()[k])
			}
			runs := h.Workers.WorkflowTaskLeases(tk.GetId())
			if lease := str(tk.GetResult(), "lease"); !runs[lease] {
				t.Fatalf("%s: task %s recorded result of lease %q, not one of its runs %v", w.name, tk.GetId(), lease, runs)
			}
			if tk.GetInput().GetStructValue().GetFields()["hold"].GetBoolValue() && len(runs) < 2 {
				t.Fatalf("%s: task %s was held at the kill yet ran only %d time(s)", w.name, tk.GetId(), len(runs))
			}
			results[st.GetStepId()] = append(results[st.GetStepId()], tk.GetResult())
		}
		if n == 1 && !proto.Equal(st.GetOutput(), results[st.GetStepId()][0]) {
			t.Fatalf("%s step %s output %v is not its task's recorded result %v", w.name, st.GetStepId(), st.GetOutput(), results[st.GetStepId()][0])
		}
	}
	w.check(t, wf, results)
}

func waitWorkflow(ctx context.Context, t *testing.T, h *Harness, id string) *pb.Workflow {
	t.Helper()
	for {
		resp, err := h.Client.GetWorkflow(ctx, &pb.GetWorkflowRequest{Id: id})
		if err == nil && resp.GetWorkflow().GetStatus() != pb.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
			return resp.GetWorkflow()
		}
		if ctx.Err() != nil {
			t.Fatalf("workflow %s did not finish: %v, %v", id, resp.GetWorkflow(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listWorkflowTasks returns every task of the workflow tenant by idempotency key.
func listWorkflowTasks(ctx context.Context, t *testing.T, h *Harness) map[string][]*pb.Task {
	t.Helper()
	out := map[string][]*pb.Task{}
	token := ""
	for {
		resp, err := h.Client.ListTasks(ctx, &pb.ListTasksRequest{Tenant: workflowTenant, PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatalf("list workflow tasks: %v", err)
		}
		for _, tk := range resp.GetTasks() {
			if !strings.HasPrefix(tk.GetIdempotencyKey(), "taskloom.workflow/") {
				t.Fatalf("workflow tenant task %s has idempotency key %q", tk.GetId(), tk.GetIdempotencyKey())
			}
			out[tk.GetIdempotencyKey()] = append(out[tk.GetIdempotencyKey()], tk)
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func countWorkflowTasks(ctx context.Context, t *testing.T, h *Harness, status pb.TaskStatus) int {
	t.Helper()
	resp, err := h.Client.ListTasks(ctx, &pb.ListTasksRequest{Tenant: workflowTenant, Status: status, PageSize: 1000})
	if err != nil {
		t.Fatalf("list workflow tasks: %v", err)
	}
	return len(resp.GetTasks())
}
