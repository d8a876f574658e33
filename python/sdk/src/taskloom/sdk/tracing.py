"""OpenTelemetry tracing of the Python services (gateway, worker), off unless
OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/tracing.md).

On, `setup` installs the SDK's tracer provider: a parent-based trace-id-ratio sampler
(OTEL_TRACES_SAMPLER_ARG, default 1.0), a batch processor exporting OTLP over gRPC, the
resource's service.name (OTEL_SERVICE_NAME, else the service's own). gRPC channels made with
`aio_channel` / `sync_channel` then carry client interceptors that make a CLIENT span
`<full.Service>/<Method>` per call and send its W3C `traceparent` in the call's metadata.
Off, `span` hands out one shared no-op span and channels carry no interceptors: the cost is
one check per span.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = structlog.get_logger(__name__)

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
RATIO_ENV = "OTEL_TRACES_SAMPLER_ARG"
SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"
DEFAULT_RATIO = 1.0  # the OTel spec's default argument of the traceidratio sampler

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})

_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SPAN: contextlib.nullcontext[Span] = contextlib.nullcontext(INVALID_SPAN)

# The provider installed by `setup` or `install`; None: tracing is off.
_provider: Any = None
_tracer: Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def sampler_ratio(environ: Mapping[str, str] = os.environ) -> float:
    """OTEL_TRACES_SAMPLER_ARG as a ratio in [0, 1], the default 1.0 when unset. A value that
    is not such a ratio is refused, naming the variable, as the orchestrator and the Rust
    services refuse it at start."""
    raw = environ.get(RATIO_ENV, "").strip()
    if not raw:
        return DEFAULT_RATIO
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{RATIO_ENV}={raw!r}: the sampler ratio must be a number from 0 to 1")
    return ratio


def setup(service_name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Installs the tracer provider and its OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is
    set (the exporter reads it and the other OTEL_EXPORTER_OTLP_* settings); whether it did.
    Imports the SDK only then."""
    endpoint = environ.get(ENDPOINT_ENV, "").strip()
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    ratio = sampler_ratio(environ)
    name = environ.get(SERVICE_NAME_ENV, "").strip() or service_name
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(ratio)),
        resource=Resource.create({SERVICE_NAME: name}),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Not the global provider: libraries that trace through it (FastAPI's own spans per
    # dependency and endpoint) stay no-ops, and the spans are the ones docs/tracing.md names.
    install(provider)
    log.info("tracing on", endpoint=endpoint, service_name=name, sampler_ratio=ratio)
    return True


def install(provider: Any) -> None:
    """Traces through `provider` (an SDK TracerProvider) from now on; `setup` and tests."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("taskloom")


def shutdown() -> None:
    """Exports the spans still queued and stops the exporter; tracing is off after it."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    context: Context | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """A span, current while the block runs (child of `context`, else of the current span);
    off, a shared no-op span. An exception leaving the block marks the span as failed."""
    if _tracer is None:
        return _NO_SPAN
    return _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


def context_from(carrier: Mapping[str, str]) -> Context | None:
    """The context a W3C `traceparent` (and `tracestate`) in `carrier` names; None when off."""
    if _tracer is None:
        return None
    return _PROPAGATOR.extract(carrier)


def current_traceparent() -> str | None:
    """The current span's W3C traceparent; None without one (or when off)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


# --- gRPC clients ---------------------------------------------------------------------


def _method_name(method: str | bytes) -> str:
    """`taskloom.v1.CacheService/Get` from the call's `/taskloom.v1.CacheService/Get`."""
    text = method.decode() if isinstance(method, bytes) else method
    return text.lstrip("/")


def _client_span(method: str | bytes) -> Span:
    assert _tracer is not None
    name = _method_name(method)
    service, _, rpc = name.partition("/")
    return _tracer.start_span(
        name,
        kind=SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
    )


def _with_trace(metadata: Any, span_: Span) -> list[tuple[str, str | bytes]]:
    """The call's metadata with the trace context of `span_` instead of any it had: the
    context travels once."""
    kept = [(k, v) for k, v in (metadata or ()) if k not in _TRACE_HEADERS]
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span_))
    return [*kept, *carrier.items()]


def _end(span_: Span, code: grpc.StatusCode | None) -> None:
    if code is not None:
        span_.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            span_.set_status(Status(StatusCode.ERROR, code.name))
    span_.end()


class _AioSpans:
    """A CLIENT span per call of an aio channel, its context in the call's metadata. Unary
    responses end the span before the caller sees them; streams end it when they finish.
    (Bidirectional streams, the worker's session, are not traced: they last hours.)"""

    def __init__(self) -> None:
        self._streams: set[asyncio.Task[None]] = set()

    @staticmethod
    def _details(details: Any, span_: Span) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*_with_trace(details.metadata, span_)),
            details.credentials,
            details.wait_for_ready,
        )

    async def _unary_response(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        span_ = _client_span(details.method)
        code = None
        try:
            call = await continuation(self._details(details, span_), request)
            code = await call.code()
            return call
        finally:
            _end(span_, code)

    async def _stream_response(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        span_ = _client_span(details.method)
        try:
            call = await continuation(self._details(details, span_), request)
        except BaseException:
            _end(span_, None)
            raise

        async def finish() -> None:
            code = None
            try:
                code = await call.code()
            finally:
                _end(span_, code)

        task = asyncio.get_running_loop().create_task(finish())
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        return call


# grpc.aio files an interceptor under the first kind it implements: one class per kind.
class _AioUnaryUnary(_AioSpans, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._unary_response(continuation, client_call_details, request)


class _AioUnaryStream(_AioSpans, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._stream_response(continuation, client_call_details, request)


class _AioStreamUnary(_AioSpans, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._unary_response(continuation, client_call_details, request_iterator)


class _SyncDetails(
    collections.namedtuple(
        "_SyncDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class _SyncClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    """The same spans on a blocking channel (the metrics client's flush thread)."""

    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        span_ = _client_span(details.method)
        code = None
        try:
            new = _SyncDetails(
                details.method,
                details.timeout,
                _with_trace(details.metadata, span_),
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )
            outcome = continuation(new, request)
            code = outcome.code()
            return outcome
        finally:
            _end(span_, code)

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._call(continuation, client_call_details, request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._call(continuation, client_call_details, request_iterator)


def aio_interceptors() -> list[grpc.aio.ClientInterceptor] | None:
    """The client interceptors of an aio channel: None when tracing is off."""
    if not enabled():
        return None
    return [_AioUnaryUnary(), _AioUnaryStream(), _AioStreamUnary()]


def aio_channel(target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """An insecure aio channel to another Taskloom service, traced when tracing is on."""
    return grpc.aio.insecure_channel(target, options=list(options), interceptors=aio_interceptors())


def sync_channel(target: str) -> grpc.Channel:
    """An insecure blocking channel to another Taskloom service, traced when tracing is on."""
    channel = grpc.insecure_channel(target)
    return grpc.intercept_channel(channel, _SyncClientInterceptor()) if enabled() else channel
