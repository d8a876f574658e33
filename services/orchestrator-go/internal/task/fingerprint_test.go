package task

import "testing"

func TestStreamOptionsCountInTheFingerprintOnlyWhenSet(t *testing.T) {
	zero, forty := int32(0), int32(40)
	base := Spec{Agent: "a", Input: []byte(`{"q":1}`)}
	with := base
	with.Stream = &StreamOptions{BufferSize: &zero}
	other := base
	other.Stream = &StreamOptions{FlushIntervalMs: &zero}
	textOnly := base
	textOnly.Stream = &StreamOptions{TextOnly: true, FlushIntervalMs: &forty}
	seen := map[Fingerprint]string{}
	for name, s := range map[string]Spec{"none": base, "buffer 0": with, "interval 0": other, "text only": textOnly} {
		if prev, dup := seen[s.Fingerprint()]; dup {
			t.Fatalf("%s and %s have one fingerprint", name, prev)
		}
		seen[s.Fingerprint()] = name
	}
	// A spec without options digests as before the field existed (stored fingerprints stay valid).
	f := NewFingerprinter()
	f.String(base.Agent)
	f.JSON(base.Input)
	f.Int(0)      // priority
	f.Int(0)      // no labels
	for range 4 { // timeout, attempts, backoffs
		f.Int(0)
	}
	f.String("")
	f.String("")
	if f.Sum() != base.Fingerprint() {
		t.Fatal("a spec without stream options digests differently")
	}
}
