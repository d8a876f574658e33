package task

// Fingerprints tell a retry of a request from another request that reuses its
// idempotency key.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
)

// Fingerprint is a digest of a request: equal requests have equal fingerprints.
type Fingerprint [16]byte

// IsZero reports whether the fingerprint is unknown.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// MarshalText writes the fingerprint as hex (the workflow state is JSON).
func (f Fingerprint) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(f[:])), nil
}

// UnmarshalText reads what MarshalText wrote.
func (f *Fingerprint) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*f = Fingerprint{}
		return nil
	}
	if hex.DecodedLen(len(b)) != len(f) {
		return fmt.Errorf("fingerprint %q is not %d hex bytes", b, len(f))
	}
	_, err := hex.Decode(f[:], b)
	return err
}

// Fingerprinter digests the fields of a request, in order, into a Fingerprint.
type Fingerprinter struct {
	h   hash.Hash
	num [binary.MaxVarintLen64]byte
}

// NewFingerprinter returns an empty digest.
func NewFingerprinter() *Fingerprinter { return &Fingerprinter{h: sha256.New()} }

// Bytes adds a length-prefixed field.
func (f *Fingerprinter) Bytes(b []byte) {
	f.Int(int64(len(b)))
	f.h.Write(b)
}

// String adds a length-prefixed field.
func (f *Fingerprinter) String(s string) { f.Bytes([]byte(s)) }

// Int adds a number.
func (f *Fingerprinter) Int(v int64) { f.h.Write(f.num[:binary.PutVarint(f.num[:], v)]) }

// JSON adds a JSON value, compacted first, so one value sent twice digests alike
// whatever its spacing.
func (f *Fingerprinter) JSON(b json.RawMessage) { f.Bytes(CompactJSON(b)) }

// Labels adds labels in key order, leaving out the traceparent label (each call
// carries its own trace).
func (f *Fingerprinter) Labels(labels map[string]string) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != LabelTraceparent {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	f.Int(int64(len(keys)))
	for _, k := range keys {
		f.String(k)
		f.String(labels[k])
	}
}

// Sum returns the fingerprint of what was added.
func (f *Fingerprinter) Sum() Fingerprint {
	var out Fingerprint
	copy(out[:], f.h.Sum(nil))
	return out
}

// Fingerprint digests what the client asked for: every field of the spec but its
// identity (tenant and idempotency key) and the traceparent label.
func (s *Spec) Fingerprint() Fingerprint {
	f := NewFingerprinter()
	f.String(s.Agent)
	f.JSON(s.Input)
	f.Int(int64(s.Priority))
	f.Labels(s.Labels)
	f.Int(int64(s.Timeout))
	f.Int(int64(s.MaxAttempts))
	f.Int(int64(s.InitialBackoff))
	f.Int(int64(s.MaxBackoff))
	f.String(s.WorkflowID)
	f.String(s.StepID)
	return f.Sum()
}

// CompactJSON returns b without insignificant whitespace (b itself if it is not
// valid JSON).
func CompactJSON(b json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
