package workflow

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

func catalogOf(agents ...string) *workers.Catalog {
	c := workers.NewCatalog()
	for _, a := range agents {
		c.Add(task.AgentInfo{Name: a})
	}
	return c
}

func step(id string, deps ...string) Step { return Step{ID: id, Agent: "echo", DependsOn: deps} }

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		spec   Spec
		kind   errs.Kind
		reason string
		field  string
		msg    string
	}{
		{"no steps", Spec{}, errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps", "at least one step"},
		{"empty id", Spec{Steps: []Step{step("a"), step("")}}, errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[1].id", "no id"},
		{"duplicate id", Spec{Steps: []Step{step("a"), step("a")}}, errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[1].id", "same id"},
		{"bad id", Spec{Steps: []Step{step("a b")}}, errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[0].id", "letters"},
		{"unknown step", Spec{Mode: ModeDAG, Steps: []Step{step("a"), step("b", "a", "zz")}}, errs.KindInvalidArgument, "UNKNOWN_STEP", "steps[1].depends_on", `"zz"`},
		{"cycle", Spec{Mode: ModeDAG, Steps: []Step{step("a", "c"), step("b", "a"), step("c", "b"), step("d")}},
			errs.KindInvalidArgument, "WORKFLOW_CYCLE", "steps[0].depends_on", "a -> c -> b -> a"},
		{"self cycle", Spec{Mode: ModeDAG, Steps: []Step{step("a"), step("b", "b")}}, errs.KindInvalidArgument, "WORKFLOW_CYCLE", "steps[1].depends_on", "b -> b"},
		{"depends_on outside DAG", Spec{Mode: ModeParallel, Steps: []Step{step("a"), step("b", "a")}}, errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[1].depends_on", "only DAG"},
		{"unknown agent", Spec{Steps: []Step{step("a"), {ID: "b", Agent: "nope"}}}, errs.KindNotFound, "AGENT_NOT_FOUND", "steps[1].agent", `"nope"`},
		{"reads a step not upstream", Spec{Mode: ModeDAG, Steps: []Step{step("a"), step("b"), {ID: "c", Agent: "echo", DependsOn: []string{"a"}, Input: json.RawMessage(`{"x":"{{ steps.b.output }}"}`)}}},
			errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[2].input", `step "b" is not upstream`},
		{"reads a later step in sequence", Spec{Steps: []Step{{ID: "a", Agent: "echo", Input: json.RawMessage(`"{{ steps.b.output }}"`)}, step("b")}},
			errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[0].input", "not upstream"},
		{"reads an unknown step", Spec{Steps: []Step{{ID: "a", Agent: "echo", Input: json.RawMessage(`"{{ steps.q.output }}"`)}}},
			errs.KindInvalidArgument, "UNKNOWN_STEP", "steps[0].input", `no step "q"`},
		{"item outside a map step", Spec{Steps: []Step{{ID: "a", Agent: "echo", Input: json.RawMessage(`"{{ item }}"`)}}},
			errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[0].input", "map step"},
		{"map_over not one template", Spec{Steps: []Step{{ID: "a", Agent: "echo", MapOver: "items"}}},
			errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[0].map_over", "one template"},
		{"bad exit_if", Spec{Steps: []Step{{ID: "a", Agent: "echo", ExitIf: "{{ output.x }} == spam"}}},
			errs.KindInvalidArgument, "INVALID_ARGUMENT", "steps[0].exit_if", "JSON literal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			applyDefaults(&spec)
			_, err := validate(&spec, catalogOf("echo"))
			e, ok := errs.As(err)
			if !ok || e.Kind != tc.kind || errs.ReasonName(e.Reason) != tc.reason || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("err = %+v, want kind %v reason %s field %s message containing %q", e, tc.kind, tc.reason, tc.field, tc.msg)
			}
		})
	}
}

func TestValidateCycleMetadataAndAccepts(t *testing.T) {
	spec := Spec{Mode: ModeDAG, Steps: []Step{step("a", "b"), step("b", "a")}}
	applyDefaults(&spec)
	_, err := validate(&spec, catalogOf("echo"))
	if e, _ := errs.As(err); e == nil || e.Metadata["cycle"] != "a -> b -> a" || e.Message != "the steps' depends_on form a cycle: a -> b -> a" {
		t.Fatalf("cycle error = %+v", e)
	}

	ok := Spec{Steps: []Step{
		{ID: "a", Agent: "echo", DependsOn: nil, Input: json.RawMessage(`{"q":"{{ input.q }}"}`)},
		{ID: "b", Agent: "echo", DependsOn: []string{"a"}, MapOver: "{{ steps.a.output.items }}", Input: json.RawMessage(`{"i":"{{ item }}","n":"{{ index }}"}`)},
		{ID: "c", Agent: "echo", DependsOn: []string{"b"}, Input: json.RawMessage(`"{{ steps.a.output }}"`), ExitIf: "{{ output.ok }}"},
	}}
	applyDefaults(&ok)
	if ok.Mode != ModeDAG || ok.FailurePolicy != PolicyFailFast {
		t.Fatalf("defaults = %v %v", ok.Mode, ok.FailurePolicy)
	}
	p, err := validate(&ok, catalogOf("echo"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.sinks) != 1 || p.sinks[0] != 2 || !p.upstream(0, 2) || p.upstream(2, 0) {
		t.Fatalf("plan = %+v", p)
	}
}
