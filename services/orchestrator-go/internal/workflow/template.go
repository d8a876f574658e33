package workflow

// The template language of step inputs, map_over and exit_if: `{{ path }}`, where
// path is a root (input, steps, item, index, output) followed by dot-separated
// field names or list indexes. Values are decoded JSON (json.Number for numbers).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Template roots.
const (
	rootInput  = "input"
	rootSteps  = "steps"
	rootItem   = "item"
	rootIndex  = "index"
	rootOutput = "output"
)

// ref is one parsed `{{ path }}`.
type ref struct {
	raw  string   // the expression as written, e.g. "steps.a.output.x"
	path []string // raw split on '.'
}

func (r ref) root() string { return r.path[0] }

// stepID is the step a `steps.ID.output` reference names, or "".
func (r ref) stepID() string {
	if r.root() == rootSteps {
		return r.path[1]
	}
	return ""
}

// part is a literal run of text or a template.
type part struct {
	text string
	ref  *ref
}

// parseString splits s into literal text and templates.
func parseString(s string) ([]part, error) {
	var parts []part
	for {
		open := strings.Index(s, "{{")
		if open < 0 {
			if s != "" {
				parts = append(parts, part{text: s})
			}
			return parts, nil
		}
		end := strings.Index(s[open+2:], "}}")
		if end < 0 {
			return nil, fmt.Errorf("unclosed template %q: a `{{` has no matching `}}`", s[open:])
		}
		if open > 0 {
			parts = append(parts, part{text: s[:open]})
		}
		r, err := parseRef(s[open+2 : open+2+end])
		if err != nil {
			return nil, err
		}
		parts = append(parts, part{ref: &r})
		s = s[open+2+end+2:]
	}
}

// parseRef parses the inside of `{{ }}`.
func parseRef(expr string) (ref, error) {
	raw := strings.TrimSpace(expr)
	if raw == "" {
		return ref{}, fmt.Errorf("empty template `{{%s}}`", expr)
	}
	r := ref{raw: raw, path: strings.Split(raw, ".")}
	for _, seg := range r.path {
		if !validName(seg) {
			return ref{}, fmt.Errorf("template {{ %s }}: %q is not a field name or list index (letters, digits, '_' and '-')", raw, seg)
		}
	}
	switch r.root() {
	case rootInput, rootItem, rootOutput:
	case rootIndex:
		if len(r.path) > 1 {
			return ref{}, fmt.Errorf("template {{ %s }}: index is a number and has no fields", raw)
		}
	case rootSteps:
		if len(r.path) < 3 || r.path[2] != "output" {
			return ref{}, fmt.Errorf("template {{ %s }}: a step reference reads steps.<id>.output", raw)
		}
	default:
		return ref{}, fmt.Errorf("template {{ %s }}: unknown root %q (use input, steps, item, index or output)", raw, r.root())
	}
	return r, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// scope holds the values templates may read.
type scope struct {
	input     any
	steps     map[string]any // step id -> output of a succeeded step
	item      any
	index     int
	hasItem   bool
	output    any
	hasOutput bool
}

// resolve returns the value r names in sc.
func (sc *scope) resolve(r ref) (any, error) {
	var v any
	rest := r.path[1:]
	switch r.root() {
	case rootInput:
		v = sc.input
	case rootItem:
		if !sc.hasItem {
			return nil, fmt.Errorf("template {{ %s }}: item is only defined in a map step's input", r.raw)
		}
		v = sc.item
	case rootIndex:
		if !sc.hasItem {
			return nil, fmt.Errorf("template {{ %s }}: index is only defined in a map step's input", r.raw)
		}
		return sc.index, nil
	case rootOutput:
		if !sc.hasOutput {
			return nil, fmt.Errorf("template {{ %s }}: output is only defined in exit_if", r.raw)
		}
		v = sc.output
	case rootSteps:
		out, ok := sc.steps[r.path[1]]
		if !ok {
			return nil, fmt.Errorf("template {{ %s }}: step %q has no output here (it must be upstream and have succeeded)", r.raw, r.path[1])
		}
		v, rest = out, r.path[3:]
	}
	walked := strings.Join(r.path[:len(r.path)-len(rest)], ".")
	for _, seg := range rest {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, fmt.Errorf("template {{ %s }}: %s has no field %q", r.raw, walked, seg)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("template {{ %s }}: %s is a list of %d and %q is not an index in it", r.raw, walked, len(c), seg)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("template {{ %s }}: %s is %s, not an object or list", r.raw, walked, kindOf(v))
		}
		walked += "." + seg
	}
	return v, nil
}

// render returns a copy of v with every template in its strings replaced: a string
// that is exactly one template takes the referenced value (of any type); templates
// inside longer strings are replaced by their text (strings as they are, other
// values as JSON). Object keys are not templated.
func render(v any, sc *scope) (any, error) {
	switch c := v.(type) {
	case string:
		return renderString(c, sc)
	case map[string]any:
		out := make(map[string]any, len(c))
		for k, e := range c {
			r, err := render(e, sc)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(c))
		for i, e := range c {
			r, err := render(e, sc)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

func renderString(s string, sc *scope) (any, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	parts, err := parseString(s)
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 && parts[0].ref != nil {
		return sc.resolve(*parts[0].ref)
	}
	var b strings.Builder
	for _, p := range parts {
		if p.ref == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := sc.resolve(*p.ref)
		if err != nil {
			return nil, err
		}
		if str, ok := v.(string); ok {
			b.WriteString(str)
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("template {{ %s }}: %w", p.ref.raw, err)
		}
		b.Write(j)
	}
	return b.String(), nil
}

// refsIn lists the templates in every string of v.
func refsIn(v any) ([]ref, error) {
	var refs []ref
	var walk func(any) error
	walk = func(v any) error {
		switch c := v.(type) {
		case string:
			parts, err := parseString(c)
			if err != nil {
				return err
			}
			for _, p := range parts {
				if p.ref != nil {
					refs = append(refs, *p.ref)
				}
			}
		case map[string]any:
			for _, e := range c {
				if err := walk(e); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range c {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return refs, walk(v)
}

// decodeJSON decodes b (nil or empty: null), keeping numbers exact.
func decodeJSON(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, int, float64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}
