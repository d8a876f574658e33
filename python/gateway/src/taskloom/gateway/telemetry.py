"""Every metric of the gateway, and the ASGI middleware that records requests and trace
context (and, when tracing is on, makes each HTTP request's SERVER span)."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import structlog
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskloom.sdk import tracing

REQUESTS = Counter(
    "taskloom_gateway_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "taskloom_gateway_request_duration_seconds",
    "Time from receiving a request to sending its response headers.",
    ["method", "route"],
)
STREAMS_ACTIVE = Gauge(
    "taskloom_gateway_streams_active",
    "Event streams (SSE and WebSocket) open right now.",
    ["kind"],
)
ORCHESTRATOR_ERRORS = Counter(
    "taskloom_gateway_orchestrator_errors_total",
    "Failed orchestrator calls, by gRPC status code.",
    ["code"],
)

TRACEPARENT = "traceparent"
_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def valid_traceparent(value: str | None) -> bool:
    match = _TRACEPARENT_RE.match(value or "")
    if not match:
        return False
    version, trace_id, parent_id, _ = match.groups()
    return version != "ff" and trace_id != "0" * 32 and parent_id != "0" * 16


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str) -> str:
    return traceparent.split("-")[1]


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def method_label(method: str) -> str:
    """The request method as a metric label: a known method, else "other" (bounded labels)."""
    return method if method in _METHODS else "other"


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class TelemetryMiddleware:
    """Accepts or creates a W3C `traceparent` (kept in `scope["state"]`, echoed in the
    response, bound to the logs) and counts and times every HTTP request by route template.
    With tracing on, each HTTP request is a SERVER span `<METHOD> <route template>`, child of
    the request's `traceparent`, and the traceparent kept and echoed is the span's.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(TRACEPARENT)
        if scope["type"] == "http" and tracing.enabled():
            await self._traced(scope, receive, send, incoming)
            return
        traceparent = incoming if valid_traceparent(incoming) else new_traceparent()
        assert traceparent is not None
        await self._serve(scope, receive, send, traceparent)

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, incoming: str | None
    ) -> None:
        carrier: dict[str, str] = {}
        if incoming is not None and valid_traceparent(incoming):
            carrier[TRACEPARENT] = incoming
        if carrier and (state := Headers(scope=scope).get(tracing.TRACESTATE)):
            carrier[tracing.TRACESTATE] = state
        method = method_label(scope["method"])
        with tracing.span(
            method,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            context=tracing.context_from(carrier),
        ) as span:
            traceparent = tracing.current_traceparent() or new_traceparent()
            try:
                await self._serve(scope, receive, send, traceparent, span)
            finally:
                route = _route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        traceparent: str,
        span: Span | None = None,
    ) -> None:
        scope.setdefault("state", {})[TRACEPARENT] = traceparent
        structlog.contextvars.bind_contextvars(trace_id=trace_id_of(traceparent))
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                structlog.contextvars.unbind_contextvars("trace_id")
            return

        started = time.perf_counter()
        method = method_label(scope["method"])
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[TRACEPARENT] = traceparent
                REQUEST_DURATION.labels(method, _route_template(scope)).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUESTS.labels(method, _route_template(scope), str(status)).inc()
            structlog.contextvars.unbind_contextvars("trace_id")
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
