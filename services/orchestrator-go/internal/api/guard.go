package api

// The guard every request passes before a handler sees it: a message that cannot
// be decoded (not protobuf, a string that is not UTF-8) or is too large gets
// INVALID_ARGUMENT / RESOURCE_EXHAUSTED with a reason, and a decoded one is checked
// against the field limits the contracts declare (internal/limits).
//
// How: grpc-go decodes a request before any interceptor runs, and a decoding
// failure ends the call at once with a bare INTERNAL (a size over its bound with a
// bare RESOURCE_EXHAUSTED). So the server's codec never fails on a taskloom.v1
// message: it notes why the message is unusable (too large, undecodable) and
// hands on an empty one; the services are registered with a decode step (guarded)
// that reads that note, for unary calls and streams alike, and answers it with a
// reason. The transport's own bound sits well above the contracts' (transportSlack
// times), so that only a request beyond that gets grpc-go's bare answer.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/limits"
)

// maxRequestBytes is the largest request the services accept, as the contracts
// declare it (taskloom.v1.service_limits).
var maxRequestBytes = limits.MaxRequestBytes(
	pb.File_taskloom_v1_orchestrator_proto.Services().ByName("OrchestratorService"),
	pb.File_taskloom_v1_worker_hub_proto.Services().ByName("WorkerHubService"),
)

// transportSlack is how far above the contracts' request bound the transport's own
// bound is set: a request between the two is refused with a reason.
const transportSlack = 4

// ServerOptions are the options a gRPC server serving the API needs: the guard's
// codec and the transport's size bound.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(guardCodec{encoding.GetCodecV2("proto")}),
		grpc.MaxRecvMsgSize(transportSlack * maxRequestBytes),
	}
}

// guardCodec is the proto codec, except that a taskloom.v1 request it cannot use
// is not an error: the reason is noted for admit (see the top of this file).
type guardCodec struct{ encoding.CodecV2 }

// unusable holds, by message, why the codec could not fill it; admit takes it out.
var unusable sync.Map // proto.Message -> error

var errTooLarge = errors.New("request too large")

func (c guardCodec) Unmarshal(data mem.BufferSlice, v any) error {
	msg, ok := v.(proto.Message)
	if !ok || !strings.HasPrefix(string(msg.ProtoReflect().Descriptor().FullName()), "taskloom.v1.") {
		return c.CodecV2.Unmarshal(data, v)
	}
	if data.Len() > maxRequestBytes {
		unusable.Store(msg, errTooLarge)
		return nil
	}
	if err := c.CodecV2.Unmarshal(data, v); err != nil {
		proto.Reset(msg)
		unusable.Store(msg, err)
	}
	return nil
}

// guarded returns a copy of desc whose handlers decode through the guard.
func guarded(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	g := *desc
	g.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		handler := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			return handler(srv, ctx, func(v any) error { return admit(dec(v), v) }, in)
		}
		g.Methods[i] = m
	}
	g.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, s := range desc.Streams {
		handler := s.Handler
		s.Handler = func(srv any, stream grpc.ServerStream) error {
			return handler(srv, guardedStream{stream})
		}
		g.Streams[i] = s
	}
	return &g
}

// guardedStream checks every message a stream receives.
type guardedStream struct{ grpc.ServerStream }

func (s guardedStream) RecvMsg(m any) error { return admit(s.ServerStream.RecvMsg(m), m) }

// admit answers a request the codec could not use, or checks a decoded one
// against the field limits; err is the receive error, passed on as it is.
func admit(err error, m any) error {
	msg, ok := m.(proto.Message)
	if err != nil || !ok {
		return err
	}
	if why, found := unusable.LoadAndDelete(msg); found {
		return toStatus(nil, unusableError(why.(error), msg))
	}
	if err := limits.Check(msg); err != nil {
		return toStatus(nil, err)
	}
	return nil
}

// unusableError is the answer to a request too large (RESOURCE_EXHAUSTED) or not
// decodable (INVALID_ARGUMENT), with a reason.
func unusableError(why error, msg proto.Message) *errs.Error {
	if errors.Is(why, errTooLarge) {
		return &errs.Error{
			Kind: errs.KindResourceExhausted, Reason: errs.ReasonRequestTooLarge,
			Message:  "the request is larger than the " + strconv.Itoa(maxRequestBytes) + " bytes this service accepts",
			Metadata: map[string]string{"limit_bytes": strconv.Itoa(maxRequestBytes)},
		}
	}
	detail := strings.TrimPrefix(why.Error(), "proto: ")
	return &errs.Error{
		Kind: errs.KindInvalidArgument, Reason: errs.ReasonInvalidArgument,
		Message: "the request is not a valid " + string(msg.ProtoReflect().Descriptor().FullName()) + ": " + errs.Clip(detail),
	}
}
