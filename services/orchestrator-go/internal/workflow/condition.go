package workflow

// exit_if conditions: `<operand>`, `!<operand>` (truthiness) or
// `<operand> == <operand>` / `<operand> != <operand>`, where an operand is one
// template (`{{ output.done }}`) or a JSON literal (true, 3, "spam", null).

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

type operand struct {
	ref *ref
	lit any
}

type condition struct {
	left, right operand
	op          string // "", "==" or "!="
	negate      bool   // "!" before a bare operand
}

// parseCondition parses an exit_if expression.
func parseCondition(s string) (*condition, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("the condition is empty")
	}
	c := &condition{}
	if i, op := findOperator(s); i >= 0 {
		c.op = op
		var err error
		if c.left, err = parseOperand(s[:i]); err != nil {
			return nil, err
		}
		if c.right, err = parseOperand(s[i+2:]); err != nil {
			return nil, err
		}
		return c, nil
	}
	if strings.HasPrefix(s, "!") {
		c.negate, s = true, s[1:]
	}
	var err error
	c.left, err = parseOperand(s)
	return c, err
}

// findOperator returns the position of the first == or != outside templates and
// string literals.
func findOperator(s string) (int, string) {
	inTmpl, inStr := false, false
	for i := 0; i+1 < len(s); i++ {
		switch {
		case inStr:
			switch s[i] {
			case '\\':
				i++
			case '"':
				inStr = false
			}
		case inTmpl:
			if s[i:i+2] == "}}" {
				inTmpl = false
				i++
			}
		case s[i:i+2] == "{{":
			inTmpl = true
			i++
		case s[i] == '"':
			inStr = true
		case s[i:i+2] == "==" || s[i:i+2] == "!=":
			return i, s[i : i+2]
		}
	}
	return -1, ""
}

func parseOperand(s string) (operand, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return operand{}, fmt.Errorf("a comparison is missing an operand")
	}
	if strings.HasPrefix(s, "{{") {
		parts, err := parseString(s)
		if err != nil {
			return operand{}, err
		}
		if len(parts) != 1 || parts[0].ref == nil {
			return operand{}, fmt.Errorf("%q is not a single template", s)
		}
		return operand{ref: parts[0].ref}, nil
	}
	v, err := decodeJSON([]byte(s))
	if err != nil {
		return operand{}, fmt.Errorf("%q is neither a template nor a JSON literal (quote strings: \"spam\")", s)
	}
	return operand{lit: v}, nil
}

// value resolves the operand; a missing path reads as null.
func (o operand) value(sc *scope) any {
	if o.ref == nil {
		return o.lit
	}
	v, err := sc.resolve(*o.ref)
	if err != nil {
		return nil
	}
	return v
}

func (c *condition) refs() []ref {
	var out []ref
	for _, o := range []operand{c.left, c.right} {
		if o.ref != nil {
			out = append(out, *o.ref)
		}
	}
	return out
}

// eval reports whether the condition holds in sc.
func (c *condition) eval(sc *scope) bool {
	l := c.left.value(sc)
	switch c.op {
	case "==":
		return jsonEqual(l, c.right.value(sc))
	case "!=":
		return !jsonEqual(l, c.right.value(sc))
	}
	return truthy(l) != c.negate
}

// truthy: false, null, 0, "" and empty lists and objects are false.
func truthy(v any) bool {
	switch c := normalize(v).(type) {
	case nil:
		return false
	case bool:
		return c
	case float64:
		return c != 0
	case string:
		return c != ""
	case []any:
		return len(c) > 0
	case map[string]any:
		return len(c) > 0
	}
	return true
}

// jsonEqual compares decoded JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// normalize turns every number into float64, recursively.
func normalize(v any) any {
	switch c := v.(type) {
	case json.Number:
		f, err := c.Float64()
		if err != nil {
			return c.String()
		}
		return f
	case int:
		return float64(c)
	case map[string]any:
		out := make(map[string]any, len(c))
		for k, e := range c {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(c))
		for i, e := range c {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}
