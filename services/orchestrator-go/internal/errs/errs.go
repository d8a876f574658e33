// Package errs is the orchestrator's domain error: a kind (mapped to a gRPC code by
// internal/api), a machine-readable reason (a taskloom.v1.ErrorReason name without
// its prefix), a human message and, for bad input, the offending field.
package errs

import (
	"errors"
	"fmt"
)

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
)

// Error is a domain error with everything the transport needs to report it.
type Error struct {
	Kind     Kind
	Reason   string
	Message  string
	Field    string
	Metadata map[string]string
}

func (e *Error) Error() string { return e.Message }

// InvalidArgument names the offending field (e.g. "task.agent").
func InvalidArgument(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalidArgument, Reason: "INVALID_ARGUMENT", Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound carries a specific reason such as TASK_NOT_FOUND or AGENT_NOT_FOUND.
func NotFound(reason, format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// FailedPrecondition reports a valid request that the current state forbids.
func FailedPrecondition(reason, format string, args ...any) *Error {
	return &Error{Kind: KindFailedPrecondition, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// As extracts an *Error from err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
