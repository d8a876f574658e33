package workflow

import (
	"encoding/json"
	"strings"
	"testing"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/limits"
)

func mustDecode(t *testing.T, s string) any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func TestRender(t *testing.T) {
	sc := &scope{
		input: mustDecode(t, `{"topic":"go","n":3,"tags":["a","b"],"deep":{"x":{"y":true}}}`),
		steps: map[string]any{"fetch": mustDecode(t, `{"text":"hello","items":[{"id":7}],"score":0.5}`)},
	}
	mapped := &scope{input: sc.input, steps: sc.steps, item: mustDecode(t, `{"z":"zed"}`), index: 4, hasItem: true}
	cases := []struct {
		name, in, want string
		sc             *scope
	}{
		{"no template", `"plain {text}"`, `"plain {text}"`, sc},
		{"whole string takes the value's type", `"{{ input.n }}"`, `3`, sc},
		{"object value", `"{{input.deep}}"`, `{"x":{"y":true}}`, sc},
		{"nested path", `"{{ input.deep.x.y }}"`, `true`, sc},
		{"list index", `"{{ steps.fetch.output.items.0.id }}"`, `7`, sc},
		{"embedded string", `"about {{ input.topic }}!"`, `"about go!"`, sc},
		{"embedded non-string is JSON", `"tags={{ input.tags }} n={{input.n}}"`, `"tags=[\"a\",\"b\"] n=3"`, sc},
		{"inside objects and lists", `{"q":["{{ steps.fetch.output.text }}", 1, null],"k":"{{ steps.fetch.output.score }}"}`, `{"k":0.5,"q":["hello",1,null]}`, sc},
		{"item and index", `{"v":"{{ item.z }}","i":"{{ index }}","s":"#{{ index }}"}`, `{"i":4,"s":"#4","v":"zed"}`, mapped},
		{"whole item", `"{{ item }}"`, `{"z":"zed"}`, mapped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := render(mustDecode(t, tc.in), tc.sc)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tc.want {
				t.Fatalf("render(%s) = %s, want %s", tc.in, b, tc.want)
			}
		})
	}
}

func TestRenderErrorsNameThePath(t *testing.T) {
	sc := &scope{input: mustDecode(t, `{"a":{"b":1},"l":[1]}`), steps: map[string]any{"s": mustDecode(t, `"text"`)}}
	cases := []struct{ in, want string }{
		{`"{{ input.a.c }}"`, `input.a has no field "c"`},
		{`"{{ input.l.3 }}"`, `input.l is a list of 1`},
		{`"{{ input.a.b.c }}"`, `input.a.b is a number`},
		{`"{{ steps.s.output.x }}"`, `steps.s.output is a string`},
		{`"{{ steps.other.output }}"`, `step "other" has no output`},
		{`"{{ item }}"`, `only defined in a map step`},
		{`"{{ input.a "`, `unclosed template`},
	}
	for _, tc := range cases {
		_, err := render(mustDecode(t, tc.in), sc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("render(%s) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestParseRefRejectsBadTemplates(t *testing.T) {
	for _, s := range []string{"{{ }}", "{{ foo.x }}", "{{ steps.a }}", "{{ steps.a.result }}", "{{ index.x }}", "{{ input..x }}", "{{ input.a b }}"} {
		if _, err := parseString(s); err == nil {
			t.Errorf("parseString(%q) accepted", s)
		}
	}
	parts, err := parseString("a {{ input.x }} b {{steps.s-1.output}}")
	if err != nil || len(parts) != 4 || parts[1].ref.raw != "input.x" || parts[3].ref.stepID() != "s-1" {
		t.Fatalf("parts = %+v, %v", parts, err)
	}
}

// Step ids follow the pattern the contracts declare on Step.id, which the transport
// checks first; the engine's own rule (names in templates) must be the same.
func TestValidNameIsTheStepIDPatternOfTheContracts(t *testing.T) {
	re := limits.Pattern(limits.Field(&pb.Step{}, "id"))
	if re == nil {
		t.Fatal("Step.id declares no pattern")
	}
	for _, s := range []string{"a", "step-1", "A_b-9", "", "a b", "é", "a.b", "a/b", "{{x}}", "-", "_"} {
		if validName(s) != re.MatchString(s) {
			t.Errorf("%q: validName %v, pattern %v", s, validName(s), re.MatchString(s))
		}
	}
}
