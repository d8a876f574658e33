package workflow

// Submit-time validation: a spec is turned into a plan (resolved dependencies and
// parsed templates) or rejected with an error naming the offending field.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workers"
)

// plan is a validated spec in the form the engine runs it.
type plan struct {
	index   map[string]int // step id -> position
	deps    [][]int        // the steps each step waits for
	sinks   []int          // steps nothing depends on, in spec order
	input   any            // the workflow input, decoded
	inputs  []any          // each step's input, decoded (templates unrendered)
	mapOver []*ref         // nil for a plain step
	exitIf  []*condition   // nil without exit_if
}

// applyDefaults fills the defaults a stored spec carries explicitly.
func applyDefaults(spec *Spec) {
	if spec.Mode == ModeUnspecified {
		spec.Mode = ModeSequential
		for _, s := range spec.Steps {
			if len(s.DependsOn) > 0 {
				spec.Mode = ModeDAG
				break
			}
		}
	}
	if spec.FailurePolicy == PolicyUnspecified {
		spec.FailurePolicy = PolicyFailFast
	}
}

// validate checks a normalized spec against the catalog and compiles it. Field
// names in errors are relative to the spec ("steps[1].depends_on").
func validate(spec *Spec, catalog *workers.Catalog) (*plan, error) {
	p, err := compile(spec)
	if err != nil {
		return nil, err
	}
	for i, s := range spec.Steps {
		if !catalog.Has(s.Agent) {
			e := errs.NotFound(errs.ReasonAgentNotFound, "step %q uses agent %q, which no worker has registered", s.ID, s.Agent)
			e.Field = fmt.Sprintf("steps[%d].agent", i)
			e.Metadata = map[string]string{"agent": s.Agent, "step": s.ID}
			return nil, e
		}
	}
	return p, nil
}

// compile checks the structure of a normalized spec (everything but the catalog)
// and returns its plan. It is also how a stored workflow is reloaded.
func compile(spec *Spec) (*plan, error) {
	n := len(spec.Steps)
	switch {
	case n == 0:
		return nil, errs.InvalidArgument("steps", "a workflow needs at least one step")
	case spec.Mode < ModeSequential || spec.Mode > ModeDAG:
		return nil, errs.InvalidArgument("mode", "unknown workflow mode %d", spec.Mode)
	case spec.FailurePolicy < PolicyFailFast || spec.FailurePolicy > PolicyContinue:
		return nil, errs.InvalidArgument("failure_policy", "unknown failure policy %d", spec.FailurePolicy)
	}
	p := &plan{index: make(map[string]int, n), deps: make([][]int, n), inputs: make([]any, n),
		mapOver: make([]*ref, n), exitIf: make([]*condition, n)}
	for i, s := range spec.Steps {
		field := fmt.Sprintf("steps[%d].id", i)
		switch {
		case s.ID == "":
			return nil, errs.InvalidArgument(field, "step %d has no id", i)
		case !validName(s.ID):
			return nil, errs.InvalidArgument(field, "step id %q must be made of letters, digits, '_' and '-'", errs.Clip(s.ID))
		case strings.TrimSpace(s.Agent) == "":
			return nil, errs.InvalidArgument(fmt.Sprintf("steps[%d].agent", i), "step %q has no agent", s.ID)
		}
		if j, dup := p.index[s.ID]; dup {
			return nil, errs.InvalidArgument(field, "steps %d and %d have the same id %q", j, i, s.ID)
		}
		p.index[s.ID] = i
	}
	if err := p.resolveDeps(spec); err != nil {
		return nil, err
	}
	var err error
	if p.input, err = decodeJSON(spec.Input); err != nil {
		return nil, errs.InvalidArgument("input", "the workflow input is not valid JSON: %v", err)
	}
	for i := range spec.Steps {
		if err := p.compileStep(spec, i); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *plan) resolveDeps(spec *Spec) error {
	depended := make([]bool, len(spec.Steps))
	for i, s := range spec.Steps {
		field := fmt.Sprintf("steps[%d].depends_on", i)
		switch {
		case spec.Mode == ModeSequential && i > 0:
			p.deps[i] = []int{i - 1}
		case spec.Mode != ModeDAG && len(s.DependsOn) > 0:
			return errs.InvalidArgument(field, "step %q has depends_on, which only DAG mode uses (mode is %s)", s.ID, spec.Mode)
		}
		for _, d := range s.DependsOn {
			j, ok := p.index[d]
			if !ok {
				e := errs.InvalidArgument(field, "step %q depends on %q, which is not a step of this workflow", s.ID, d)
				e.Reason, e.Metadata = errs.ReasonUnknownStep, map[string]string{"step": s.ID, "depends_on": d}
				return e
			}
			if !slices.Contains(p.deps[i], j) {
				p.deps[i] = append(p.deps[i], j)
			}
		}
		for _, j := range p.deps[i] {
			depended[j] = true
		}
	}
	if cycle := p.findCycle(); cycle != nil {
		names := make([]string, len(cycle))
		for k, i := range cycle {
			names[k] = spec.Steps[i].ID
		}
		text := strings.Join(names, " -> ")
		e := errs.InvalidArgument(fmt.Sprintf("steps[%d].depends_on", cycle[0]), "the steps' depends_on form a cycle: %s", text)
		e.Reason, e.Metadata = errs.ReasonWorkflowCycle, map[string]string{"cycle": text}
		return e
	}
	for i := range spec.Steps {
		if !depended[i] {
			p.sinks = append(p.sinks, i)
		}
	}
	return nil
}

// findCycle returns a cycle of the depends_on graph as a path that starts and ends
// at the same step (a, b, c, a: a depends on b, b on c, c on a), or nil.
func (p *plan) findCycle() []int {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(p.deps))
	var stack []int
	var visit func(int) []int
	visit = func(u int) []int {
		color[u] = grey
		stack = append(stack, u)
		for _, v := range p.deps[u] {
			switch color[v] {
			case grey:
				start := slices.Index(stack, v)
				return append(slices.Clone(stack[start:]), v)
			case white:
				if c := visit(v); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[u] = black
		return nil
	}
	for u := range p.deps {
		if color[u] == white {
			if c := visit(u); c != nil {
				return c
			}
		}
	}
	return nil
}

// upstream reports whether step j must finish before step i starts.
func (p *plan) upstream(j, i int) bool {
	seen := map[int]bool{}
	todo := slices.Clone(p.deps[i])
	for len(todo) > 0 {
		k := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if k == j {
			return true
		}
		if !seen[k] {
			seen[k] = true
			todo = append(todo, p.deps[k]...)
		}
	}
	return false
}

func (p *plan) compileStep(spec *Spec, i int) error {
	s := spec.Steps[i]
	prefix := fmt.Sprintf("steps[%d].", i)
	input, err := decodeJSON(s.Input)
	if err != nil {
		return errs.InvalidArgument(prefix+"input", "step %q: input is not valid JSON: %v", s.ID, err)
	}
	p.inputs[i] = input
	refs, err := refsIn(input)
	if err != nil {
		return errs.InvalidArgument(prefix+"input", "step %q: %v", s.ID, err)
	}
	allowed := map[string]bool{rootInput: true, rootSteps: true, rootItem: s.MapOver != "", rootIndex: s.MapOver != ""}
	if err := p.checkRefs(spec, i, refs, allowed, prefix+"input"); err != nil {
		return err
	}
	if s.MapOver != "" {
		parts, err := parseString(strings.TrimSpace(s.MapOver))
		if err != nil {
			return errs.InvalidArgument(prefix+"map_over", "step %q: map_over: %v", s.ID, err)
		}
		if len(parts) != 1 || parts[0].ref == nil {
			return errs.InvalidArgument(prefix+"map_over", "step %q: map_over must be one template naming a list, e.g. {{ input.items }}; got %q", s.ID, s.MapOver)
		}
		if err := p.checkRefs(spec, i, []ref{*parts[0].ref}, map[string]bool{rootInput: true, rootSteps: true}, prefix+"map_over"); err != nil {
			return err
		}
		p.mapOver[i] = parts[0].ref
	}
	if s.ExitIf != "" {
		c, err := parseCondition(s.ExitIf)
		if err != nil {
			return errs.InvalidArgument(prefix+"exit_if", "step %q: exit_if: %v", s.ID, err)
		}
		if err := p.checkRefs(spec, i, c.refs(), map[string]bool{rootInput: true, rootSteps: true, rootOutput: true}, prefix+"exit_if"); err != nil {
			return err
		}
		p.exitIf[i] = c
	}
	return nil
}

func (p *plan) checkRefs(spec *Spec, i int, refs []ref, allowed map[string]bool, field string) error {
	id := spec.Steps[i].ID
	for _, r := range refs {
		if !allowed[r.root()] {
			where := map[string]string{
				rootItem: "a map step's input", rootIndex: "a map step's input", rootOutput: "exit_if",
			}[r.root()]
			if where == "" {
				where = "a step's input, map_over or exit_if"
			}
			return errs.InvalidArgument(field, "step %q: {{ %s }} may only be used in %s", id, r.raw, where)
		}
		dep := r.stepID()
		if dep == "" {
			continue
		}
		j, ok := p.index[dep]
		if !ok {
			e := errs.InvalidArgument(field, "step %q reads {{ %s }}, but there is no step %q", id, r.raw, dep)
			e.Reason, e.Metadata = errs.ReasonUnknownStep, map[string]string{"step": id, "reference": dep}
			return e
		}
		if !p.upstream(j, i) {
			hint := map[Mode]string{
				ModeDAG:        "add it to depends_on",
				ModeSequential: "in sequential mode only earlier steps are upstream",
				ModeParallel:   "in parallel mode no step reads another's output",
			}[spec.Mode]
			return errs.InvalidArgument(field, "step %q reads {{ %s }}, but step %q is not upstream of it (%s)", id, r.raw, dep, hint)
		}
	}
	return nil
}
