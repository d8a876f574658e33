package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// The durable stores write tasks in this compact binary form: a version byte, then
// every field in a fixed order as uvarints / varints / length-prefixed bytes. It is
// several times faster and smaller than JSON, which matters at tens of thousands of
// task writes per second. A new field is appended and the version bumped; decode
// accepts every older version. Version 2 appended NotBefore; version 3 writes a
// failure's reason as its taskloom.v1.ErrorReason number (older versions wrote its
// name) and appends the spec's fingerprint.
const codecVersion = 3

var errCorrupt = errors.New("corrupt task record")

// encodeTask appends t's record to dst (nil: a buffer of the record's size).
func encodeTask(dst []byte, t *task.Task) []byte {
	if dst == nil {
		dst = make([]byte, 0, taskSizeHint(t))
	}
	b := append(dst, codecVersion)
	b = appendString(b, t.ID)
	b = appendString(b, t.Agent)
	b = appendBytes(b, t.Input)
	b = binary.AppendUvarint(b, uint64(t.Status))
	b = appendBytes(b, t.Result)
	if f := t.Failure; f != nil {
		b = append(b, 1)
		b = binary.AppendUvarint(b, uint64(f.Reason))
		b = appendString(b, f.Message)
		b = appendBool(b, f.Retryable)
	} else {
		b = append(b, 0)
	}
	b = appendString(b, t.Tenant)
	b = binary.AppendVarint(b, int64(t.Priority))
	b = binary.AppendUvarint(b, uint64(len(t.Labels)))
	for k, v := range t.Labels {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	b = appendString(b, t.IdempotencyKey)
	b = binary.AppendVarint(b, int64(t.Attempts))
	b = binary.AppendVarint(b, int64(t.MaxAttempts))
	b = binary.AppendVarint(b, int64(t.Timeout))
	b = binary.AppendVarint(b, int64(t.InitialBackoff))
	b = binary.AppendVarint(b, int64(t.MaxBackoff))
	b = binary.AppendVarint(b, unixNano(t.CreatedAt))
	b = binary.AppendVarint(b, unixNano(t.StartedAt))
	b = binary.AppendVarint(b, unixNano(t.FinishedAt))
	b = appendString(b, t.WorkflowID)
	b = appendString(b, t.StepID)
	b = binary.AppendVarint(b, t.Usage.PromptTokens)
	b = binary.AppendVarint(b, t.Usage.CompletionTokens)
	b = binary.AppendVarint(b, t.Usage.CachedCompletions)
	b = appendString(b, t.WorkerID)
	b = binary.AppendVarint(b, unixNano(t.NotBefore))
	b = appendBytes(b, t.Fingerprint[:])
	return b
}

// taskSizeHint bounds the record's size from above, so encodeTask allocates once:
// the variable-length fields plus at most 10 bytes for each length and number.
func taskSizeHint(t *task.Task) int {
	n := len(t.ID) + len(t.Agent) + len(t.Input) + len(t.Result) + len(t.Tenant) +
		len(t.IdempotencyKey) + len(t.WorkflowID) + len(t.StepID) + len(t.WorkerID)
	if f := t.Failure; f != nil {
		n += len(f.Message) + 3*binary.MaxVarintLen64
	}
	for k, v := range t.Labels {
		n += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	return n + len(t.Fingerprint) + 32*binary.MaxVarintLen64
}

// decodeTask parses a record written by encodeTask. It copies what it keeps, so the
// caller may reuse or unmap src (bbolt's memory is only valid inside a transaction).
func decodeTask(src []byte) (*task.Task, error) {
	if len(src) == 0 || src[0] < 1 || src[0] > codecVersion {
		return nil, fmt.Errorf("%w: unknown version", errCorrupt)
	}
	r := reader{b: src[1:]}
	t := &task.Task{}
	t.ID = r.string()
	t.Agent = r.string()
	t.Input = r.bytes()
	t.Status = task.Status(r.uvarint())
	t.Result = r.bytes()
	if r.byte() == 1 {
		var reason errs.Reason
		if src[0] >= 3 {
			reason = errs.Reason(r.uvarint())
		} else {
			reason = errs.Reason(pb.ErrorReason_value["ERROR_REASON_"+r.string()])
		}
		t.Failure = &task.Failure{Reason: reason, Message: r.string(), Retryable: r.byte() == 1}
	}
	t.Tenant = r.string()
	t.Priority = int32(r.varint())
	if n := r.uvarint(); n > 0 && n <= uint64(len(r.b)) {
		t.Labels = make(map[string]string, n)
		for range n {
			k := r.string()
			t.Labels[k] = r.string()
		}
	}
	t.IdempotencyKey = r.string()
	t.Attempts = int32(r.varint())
	t.MaxAttempts = int32(r.varint())
	t.Timeout = time.Duration(r.varint())
	t.InitialBackoff = time.Duration(r.varint())
	t.MaxBackoff = time.Duration(r.varint())
	t.CreatedAt = fromUnixNano(r.varint())
	t.StartedAt = fromUnixNano(r.varint())
	t.FinishedAt = fromUnixNano(r.varint())
	t.WorkflowID = r.string()
	t.StepID = r.string()
	t.Usage.PromptTokens = r.varint()
	t.Usage.CompletionTokens = r.varint()
	t.Usage.CachedCompletions = r.varint()
	t.WorkerID = r.string()
	if src[0] >= 2 {
		t.NotBefore = fromUnixNano(r.varint())
	}
	if src[0] >= 3 {
		copy(t.Fingerprint[:], r.raw())
	}
	if r.err {
		return nil, fmt.Errorf("%w: truncated", errCorrupt)
	}
	return t, nil
}

// Workflow records have their own version: 1 had no finish time, 2 appends it.
const workflowCodecVersion = 2

// encodeWorkflow writes a workflow record: the indexed fields, then the engine's
// state, then (version 2) the finish time.
func encodeWorkflow(w *Workflow) []byte {
	b := []byte{workflowCodecVersion}
	b = appendString(b, w.ID)
	b = appendString(b, w.Tenant)
	b = appendString(b, w.IdempotencyKey)
	b = appendBool(b, w.Done)
	b = appendBytes(b, w.State)
	return binary.AppendVarint(b, unixNano(w.FinishedAt))
}

func decodeWorkflow(src []byte) (*Workflow, error) {
	if len(src) == 0 || src[0] < 1 || src[0] > workflowCodecVersion {
		return nil, fmt.Errorf("%w: unknown workflow version", errCorrupt)
	}
	r := reader{b: src[1:]}
	w := &Workflow{ID: r.string(), Tenant: r.string(), IdempotencyKey: r.string(), Done: r.byte() == 1}
	w.State = r.bytes()
	if src[0] >= 2 {
		w.FinishedAt = fromUnixNano(r.varint())
	}
	if r.err {
		return nil, fmt.Errorf("%w: truncated workflow", errCorrupt)
	}
	return w, nil
}

// Catalog agents are few and rarely written: JSON keeps them readable.
func encodeAgent(a task.AgentInfo) []byte {
	b, _ := json.Marshal(a) // a struct of strings always marshals
	return b
}

func decodeAgent(src []byte) (task.AgentInfo, error) {
	var a task.AgentInfo
	if err := json.Unmarshal(src, &a); err != nil {
		return task.AgentInfo{}, fmt.Errorf("%w: agent: %v", errCorrupt, err)
	}
	return a, nil
}

func sortAgents(agents []task.AgentInfo) {
	slices.SortFunc(agents, func(a, b task.AgentInfo) int { return strings.Compare(a.Name, b.Name) })
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendBytes distinguishes nil (length 0) from empty (never produced: JSON values
// are at least one byte), so a nil Input/Result stays nil.
func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// reader consumes a record; after the first error every read returns zero values.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) raw() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.raw()) }

func (r *reader) bytes() json.RawMessage {
	v := r.raw()
	if len(v) == 0 {
		return nil
	}
	return append(json.RawMessage(nil), v...)
}

func (r *reader) fail() { r.err, r.b = true, nil }
