// Package api is the gRPC transport of the orchestrator: OrchestratorService and
// WorkerHubService handlers that validate requests, translate between protobuf and
// the domain types, and map domain errors to gRPC statuses. No scheduling logic here.
package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every Taskloom error.
const ErrorDomain = "taskloom.dev"

var kindCodes = map[errs.Kind]codes.Code{
	errs.KindInternal:           codes.Internal,
	errs.KindInvalidArgument:    codes.InvalidArgument,
	errs.KindNotFound:           codes.NotFound,
	errs.KindFailedPrecondition: codes.FailedPrecondition,
	errs.KindResourceExhausted:  codes.ResourceExhausted,
	errs.KindUnimplemented:      codes.Unimplemented,
	errs.KindUnavailable:        codes.Unavailable,
	errs.KindAlreadyExists:      codes.AlreadyExists,
}

// toStatus turns a domain error into a gRPC status error carrying ErrorInfo (and
// BadRequest naming the field for INVALID_ARGUMENT). Unknown errors become INTERNAL
// and are logged, their text not shown to the client.
func toStatus(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	e, ok := errs.As(err)
	if !ok {
		log.Error("internal error", "err", err)
		e = &errs.Error{Kind: errs.KindInternal, Reason: errs.ReasonInternal, Message: "internal error in the orchestrator"}
	}
	st := status.New(kindCodes[e.Kind], e.Message)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: errs.ReasonName(e.Reason), Domain: ErrorDomain, Metadata: e.Metadata}}
	if e.Kind == errs.KindInvalidArgument && e.Field != "" {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: e.Field, Description: e.Message},
		}})
	}
	withDetails, derr := st.WithDetails(details...)
	if derr != nil {
		return st.Err()
	}
	return withDetails.Err()
}

// invalid is a shorthand for an INVALID_ARGUMENT domain error naming field.
func invalid(field, format string, args ...any) error {
	return errs.InvalidArgument(field, format, args...)
}

// prefixField qualifies the field of an INVALID_ARGUMENT error, e.g. "agent" → "task.agent".
func prefixField(err error, prefix string) error {
	if e, ok := errs.As(err); ok && e.Field != "" {
		c := *e
		c.Field = prefix + "." + e.Field
		return &c
	}
	return err
}
