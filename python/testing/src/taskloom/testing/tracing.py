"""Spans for tests: `captured_spans` turns tracing on in this process with an in-memory
exporter; `OtlpReceiver` is a small OTLP/gRPC trace receiver on a loopback port that
collects what real processes export (tests/e2e/test_tracing.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskloom.sdk import tracing

# An agent whose run makes every kind of worker span: it calls the calculator, then answers
# (SCRIPTED_INPUT scripts the simulated provider so), and its LLM turns ask the cache.
TRACED_AGENT = """\
name: traced
model: sim-1
cache: true
tools: [calculator]
"""
SCRIPTED_INPUT = {
    "prompt": "6*7?",
    "simulate": {
        "script": [
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
            {"text": "The answer is 42.", "completion_tokens": 5},
        ]
    },
}


@contextmanager
def captured_spans(service_name: str = "test") -> Iterator[InMemorySpanExporter]:
    """Tracing on, every span sampled and kept in the exporter yielded; off again after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def named(spans: Any, name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: Any, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in spans]}"
    return found[0]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened: ids as hex, the service.name of its resource."""

    service: str
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects the spans of every ExportTraceServiceRequest sent to `endpoint`; with
    `discard`, only counts them (`received`), as a sink for benchmarks."""

    def __init__(self, *, discard: bool = False) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._discard = discard
        self.requests = 0
        self.received = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        # The generated module carries no type hints.
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        """For OTEL_EXPORTER_OTLP_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(None)

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        if self._discard:
            count = sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
            with self._lock:
                self.received += count
                self.requests += 1
            return trace_service_pb2.ExportTraceServiceResponse()
        got = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(attrs.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    got.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self._spans.extend(got)
            self.received += len(got)
            self.requests += 1
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans() if s.trace_id == trace_id]

    def wait_for(
        self, trace_id: str, wanted: set[tuple[str, str, int]], timeout_s: float
    ) -> list[ReceivedSpan]:
        """The spans of `trace_id` once each (service, name, kind) in `wanted` is among
        them, or at the timeout (what arrived by then: the test's assertions say what is
        missing)."""

        def arrived(spans: list[ReceivedSpan]) -> bool:
            return wanted <= {(s.service, s.name, s.kind) for s in spans}

        self.wait_until(arrived, timeout_s, trace_id)
        return self.trace(trace_id)

    def wait_until(
        self,
        done: Callable[[list[ReceivedSpan]], bool],
        timeout_s: float,
        trace_id: str | None = None,
    ) -> bool:
        """Whether `done` held of the spans received (of `trace_id` only, if given) before
        the timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans() if trace_id is None else self.trace(trace_id)
            if done(spans):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
