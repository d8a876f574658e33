package workflow

import "testing"

func TestExitIf(t *testing.T) {
	out := `{"done":true,"label":"spam","n":2,"empty":"","list":[],"obj":{"a":1}}`
	cases := []struct {
		cond string
		want bool
	}{
		{`{{ output.done }} == true`, true},
		{`{{ output.done }} == false`, false},
		{`{{ output.label }} == "spam"`, true},
		{`{{ output.label }} != "spam"`, false},
		{`"spam" == {{ output.label }}`, true},
		{`{{ output.n }} == 2`, true},
		{`{{ output.n }} == 2.0`, true},
		{`{{ output.n }} != 3`, true},
		{`{{ output.obj }} == {"a": 1}`, true},
		{`{{ output.done }}`, true},
		{`!{{ output.done }}`, false},
		{`{{ output.empty }}`, false},
		{`{{ output.list }}`, false},
		{`{{ output.missing }}`, false},
		{`{{ output.missing }} == null`, true},
		{`{{ output.label }} == "a == b"`, false},
		{`{{ input.stop }} == {{ output.done }}`, true},
	}
	for _, tc := range cases {
		c, err := parseCondition(tc.cond)
		if err != nil {
			t.Fatalf("parseCondition(%q): %v", tc.cond, err)
		}
		sc := &scope{input: mustDecode(t, `{"stop":true}`), output: mustDecode(t, out), hasOutput: true}
		if got := c.eval(sc); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.cond, got, tc.want)
		}
	}
}

func TestExitIfSyntaxErrors(t *testing.T) {
	for _, s := range []string{"", "{{ output.label }} == spam", "== true", "{{ output.x }} ==", "{{ output.x", "x{{ output.x }}"} {
		if _, err := parseCondition(s); err == nil {
			t.Errorf("parseCondition(%q) accepted", s)
		}
	}
}
