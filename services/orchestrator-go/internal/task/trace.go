package task

// LabelTraceparent is the label carrying a task's W3C trace context (set by the
// gateway, or copied from the gRPC `traceparent` metadata of SubmitTask).
const LabelTraceparent = "traceparent"

// TraceID returns the 32-hex trace id of the task's traceparent label, or "".
func (t *Task) TraceID() string { return TraceIDFromParent(t.Labels[LabelTraceparent]) }

// TraceIDFromParent extracts the trace id from a W3C traceparent value
// ("<version>-<32 hex trace id>-<16 hex parent id>-<flags>"); "" when malformed.
func TraceIDFromParent(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	id := tp[3:35]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
		zero = zero && c == '0'
	}
	if zero {
		return ""
	}
	return id
}
