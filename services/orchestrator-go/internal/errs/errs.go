// Package errs is the orchestrator's domain error: a kind (mapped to a gRPC code by
// internal/api), a machine-readable reason (the proto enum taskloom.v1.ErrorReason
// itself, so a reason that does not exist does not compile), a human message and,
// for bad input, the offending field.
package errs

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
)

// Reason is the machine-readable cause of an error or a failed task: the proto enum.
type Reason = pb.ErrorReason

// The reasons the orchestrator gives, by their proto names.
const (
	ReasonInvalidArgument     = pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT
	ReasonAgentNotFound       = pb.ErrorReason_ERROR_REASON_AGENT_NOT_FOUND
	ReasonTaskNotFound        = pb.ErrorReason_ERROR_REASON_TASK_NOT_FOUND
	ReasonWorkflowNotFound    = pb.ErrorReason_ERROR_REASON_WORKFLOW_NOT_FOUND
	ReasonQueueFull           = pb.ErrorReason_ERROR_REASON_QUEUE_FULL
	ReasonTaskFinished        = pb.ErrorReason_ERROR_REASON_TASK_FINISHED
	ReasonWorkflowCycle       = pb.ErrorReason_ERROR_REASON_WORKFLOW_CYCLE
	ReasonUnknownStep         = pb.ErrorReason_ERROR_REASON_UNKNOWN_STEP
	ReasonLeaseLost           = pb.ErrorReason_ERROR_REASON_LEASE_LOST
	ReasonUnavailable         = pb.ErrorReason_ERROR_REASON_UNAVAILABLE
	ReasonInternal            = pb.ErrorReason_ERROR_REASON_INTERNAL
	ReasonDeadlineExceeded    = pb.ErrorReason_ERROR_REASON_DEADLINE_EXCEEDED
	ReasonAgentError          = pb.ErrorReason_ERROR_REASON_AGENT_ERROR
	ReasonCancelled           = pb.ErrorReason_ERROR_REASON_CANCELLED
	ReasonSkipped             = pb.ErrorReason_ERROR_REASON_SKIPPED
	ReasonIdempotencyConflict = pb.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT
	ReasonRequestTooLarge     = pb.ErrorReason_ERROR_REASON_REQUEST_TOO_LARGE
)

const (
	reasonPrefix   = "ERROR_REASON_"
	maxEchoedBytes = 64
	truncationMark = "…"
)

// ReasonName is the reason as the wire and the metrics spell it: the enum name
// without its ERROR_REASON_ prefix ("QUEUE_FULL"), as in google.rpc.ErrorInfo.reason.
func ReasonName(r Reason) string {
	return strings.TrimPrefix(r.String(), reasonPrefix)
}

// Kind classifies an error the way a caller must react to it.
type Kind int

// Kinds of domain errors.
const (
	KindInternal Kind = iota
	KindInvalidArgument
	KindNotFound
	KindFailedPrecondition
	KindResourceExhausted
	KindUnimplemented
	KindUnavailable
	KindAlreadyExists
)

// Error is a domain error with everything the transport needs to report it.
type Error struct {
	Kind     Kind
	Reason   Reason
	Message  string
	Field    string
	Metadata map[string]string
}

func (e *Error) Error() string { return e.Message }

// InvalidArgument names the offending field (e.g. "task.agent").
func InvalidArgument(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalidArgument, Reason: ReasonInvalidArgument, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound carries a specific reason such as TASK_NOT_FOUND or AGENT_NOT_FOUND.
func NotFound(reason Reason, format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// FailedPrecondition reports a valid request that the current state forbids.
func FailedPrecondition(reason Reason, format string, args ...any) *Error {
	return &Error{Kind: KindFailedPrecondition, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Unavailable reports a call that may succeed when retried later.
func Unavailable(format string, args ...any) *Error {
	return &Error{Kind: KindUnavailable, Reason: ReasonUnavailable, Message: fmt.Sprintf(format, args...)}
}

// As extracts an *Error from err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Clip bounds a client's string before an error message or its metadata echoes
// it: at most 64 bytes, cut at a rune boundary and marked. Error details travel in
// gRPC headers, which clients cap (an echoed 7,000-byte id broke the stream).
func Clip(s string) string {
	if len(s) <= maxEchoedBytes {
		return s
	}
	cut := maxEchoedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncationMark
}
