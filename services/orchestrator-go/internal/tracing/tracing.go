// Package tracing is the orchestrator's OpenTelemetry tracing (docs/tracing.md): the
// SDK tracer provider, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set, the gRPC
// server spans (server.go) and the spans of an assignment (assign.go). Off, nothing
// here is installed and the callers skip every span: the global provider stays the
// no-op one.
package tracing

import (
	"context"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is service.name when OTEL_SERVICE_NAME is not set.
const DefaultServiceName = "taskloom-orchestrator"

// Settings come from the standard OpenTelemetry variables.
type Settings struct {
	// Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over gRPC); empty: tracing is off.
	Endpoint string
	// Ratio is OTEL_TRACES_SAMPLER_ARG: the share of new traces sampled, 0 to 1
	// (default 1, the OpenTelemetry default for traceidratio). A trace begun
	// elsewhere keeps its caller's decision (parent-based).
	Ratio float64
	// ServiceName is OTEL_SERVICE_NAME, else DefaultServiceName.
	ServiceName string
}

// SettingsFromEnv reads the settings with getenv; a ratio that is not a number
// from 0 to 1 is an error.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{Endpoint: getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), Ratio: 1, ServiceName: getenv("OTEL_SERVICE_NAME")}
	if s.ServiceName == "" {
		s.ServiceName = DefaultServiceName
	}
	if arg := getenv("OTEL_TRACES_SAMPLER_ARG"); arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return s, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
		}
		s.Ratio = r
	}
	return s, nil
}

// Tracing is the installed tracer provider; a nil *Tracing is tracing off.
type Tracing struct {
	provider *sdktrace.TracerProvider
}

// Start installs the SDK tracer provider (batched OTLP/gRPC export, parent-based
// ratio sampler) and the W3C trace-context propagator as the globals, or returns
// nil when s.Endpoint is empty. The exporter reads the other OTEL_EXPORTER_OTLP_*
// variables itself; it connects lazily, so a collector that is down costs dropped
// spans, not a failed start.
func Start(ctx context.Context, s Settings) (*Tracing, error) {
	if s.Endpoint == "" {
		return nil, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", s.ServiceName)), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(NewSampler(s.Ratio)),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return &Tracing{provider: tp}, nil
}

// NewSampler is the sampler of every service of Taskloom: parent-based, a root
// sampled at ratio.
func NewSampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

// Provider is the tracer provider to hand to the server handler and the assignment
// spans; nil when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.provider
}

// Shutdown exports the spans still buffered and stops the exporter, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Every attribute of the orchestrator's spans, named as in every Taskloom service.
const (
	// A gRPC call's (the RPC semantic conventions).
	attrRPCSystem     = attribute.Key("rpc.system")
	attrRPCService    = attribute.Key("rpc.service")
	attrRPCMethod     = attribute.Key("rpc.method")
	attrRPCStatusCode = attribute.Key("rpc.grpc.status_code")
	// A task's.
	attrTaskID   = attribute.Key("taskloom.task_id")
	attrWorkerID = attribute.Key("taskloom.worker_id")
	attrAttempt  = attribute.Key("taskloom.attempt")
)

// instrumentation names the tracer of this package's spans.
const instrumentation = "github.com/taskloom/taskloom/services/orchestrator-go/internal/tracing"

// Traceparent is the W3C traceparent of ctx's span when it is one of ours (a server
// span started here), else "" (tracing off: no span).
func Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || sc.IsRemote() {
		return ""
	}
	return formatTraceparent(sc)
}

func formatTraceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
