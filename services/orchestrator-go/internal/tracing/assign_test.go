package tracing

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recording returns a provider whose ended spans the recorder keeps.
func recording(ratio float64) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(NewSampler(ratio))), sr
}

const (
	storedTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	storedSpan  = "00f067aa0ba902b7"
)

func TestAssignmentSpansAreChildrenOfTheStoredContext(t *testing.T) {
	tp, sr := recording(1)
	enq := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	got := NewAssignments(tp).Record(Assignment{
		Traceparent: "00-" + storedTrace + "-" + storedSpan + "-01", TaskID: "t1", WorkerID: "w1", Attempt: 2,
		EnqueuedAt: enq, AssignedAt: enq.Add(time.Second),
	})
	spans := sr.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want task.queue_wait and task.assign", len(spans))
	}
	wait, assign := spans[0], spans[1]
	if wait.Name() != "task.queue_wait" || assign.Name() != "task.assign" {
		t.Fatalf("spans %q, %q", wait.Name(), assign.Name())
	}
	for _, s := range spans {
		if s.Parent().TraceID().String() != storedTrace || s.Parent().SpanID().String() != storedSpan || s.SpanKind() != trace.SpanKindInternal {
			t.Errorf("%s: parent %v, kind %v", s.Name(), s.Parent(), s.SpanKind())
		}
		if attr(s, "taskloom.task_id") != "t1" {
			t.Errorf("%s: attributes %v", s.Name(), s.Attributes())
		}
	}
	if !wait.StartTime().Equal(enq) || !wait.EndTime().Equal(enq.Add(time.Second)) || !assign.StartTime().Equal(enq.Add(time.Second)) {
		t.Errorf("queue wait %v–%v, assign from %v", wait.StartTime(), wait.EndTime(), assign.StartTime())
	}
	if attr(assign, "taskloom.worker_id") != "w1" || attr(assign, "taskloom.attempt") != "2" {
		t.Errorf("assign attributes %v", assign.Attributes())
	}
	if want := "00-" + storedTrace + "-" + assign.SpanContext().SpanID().String() + "-01"; got != want {
		t.Errorf("the worker's traceparent = %q, want task.assign's %q", got, want)
	}
}

func TestANotSampledParentRecordsNoAssignmentSpans(t *testing.T) {
	tp, sr := recording(1)
	for _, parent := range []string{"00-" + storedTrace + "-" + storedSpan + "-00", "", "garbage"} {
		if got := NewAssignments(tp).Record(Assignment{Traceparent: parent, TaskID: "t1"}); got != "" {
			t.Errorf("parent %q: the worker's traceparent = %q, want the stored one kept", parent, got)
		}
	}
	if n := len(sr.Started()); n != 0 {
		t.Errorf("%d spans started", n)
	}
}

func TestTracingOffRecordsNothing(t *testing.T) {
	off := NewAssignments(nil)
	if off != nil {
		t.Fatal("a nil provider gave a recorder")
	}
	if got := off.Record(Assignment{Traceparent: "00-" + storedTrace + "-" + storedSpan + "-01"}); got != "" {
		t.Errorf("off: %q", got)
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	set := attribute.NewSet(s.Attributes()...)
	v, ok := set.Value(attribute.Key(key))
	if !ok {
		return ""
	}
	return v.String()
}
