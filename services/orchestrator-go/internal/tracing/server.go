package tracing

// The server span of every taskloom.v1 call, as a gRPC stats handler installed only
// when tracing is on: named "<full.Service>/<Method>", kind SERVER, a child of the
// call's W3C traceparent metadata. Health checks and reflection are not traced.

import (
	"context"
	"strings"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// tracedPrefix is the package of the services traced.
const tracedPrefix = "/taskloom."

// NewServerHandler returns the stats handler (grpc.StatsHandler) that starts the
// server span of each call with tp.
func NewServerHandler(tp trace.TracerProvider) stats.Handler {
	return &serverHandler{tracer: tp.Tracer(instrumentation)}
}

type serverHandler struct {
	tracer trace.Tracer
}

// spanKey marks a context whose span this handler started, so HandleRPC ends only
// its own spans.
type spanKey struct{}

func (h *serverHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if !strings.HasPrefix(info.FullMethodName, tracedPrefix) {
		return ctx
	}
	name := info.FullMethodName[1:]
	service, method, _ := strings.Cut(name, "/")
	md, _ := metadata.FromIncomingContext(ctx)
	ctx = propagation.TraceContext{}.Extract(ctx, metadataCarrier(md))
	ctx, span := h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attrRPCSystem.String("grpc"), attrRPCService.String(service), attrRPCMethod.String(method),
	))
	return context.WithValue(ctx, spanKey{}, span)
}

func (h *serverHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok {
		return
	}
	span, ok := ctx.Value(spanKey{}).(trace.Span)
	if !ok {
		return
	}
	code := status.Code(end.Error)
	span.SetAttributes(attrRPCStatusCode.Int(int(code)))
	if serverFault(code) {
		span.SetStatus(otelcodes.Error, status.Convert(end.Error).Message())
	}
	span.End(trace.WithTimestamp(end.EndTime))
}

// serverFault reports whether code is an error of the server (the conventions'
// list); the others are the caller's and leave the server span's status unset.
func serverFault(code codes.Code) bool {
	switch code {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

func (h *serverHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (h *serverHandler) HandleConn(context.Context, stats.ConnStats) {}

// metadataCarrier reads the trace context from incoming gRPC metadata.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c metadataCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}
