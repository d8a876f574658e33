"""Every error the gateway returns, as an RFC 9457 `application/problem+json` body.

gRPC statuses from the orchestrator (and the other backends) are mapped to HTTP codes here;
the `reason` member carries `google.rpc.ErrorInfo.reason` and `errors` the fields named by
`google.rpc.BadRequest`.
"""

from __future__ import annotations

import http
import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

import grpc
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from taskloom.gateway.convert import rest_field_name

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://taskloom.dev/problems/"

log = structlog.get_logger("taskloom.gateway")

# gRPC code -> (HTTP status, reason used when the status carries no ErrorInfo).
_GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.CANCELLED: 499,
}
# Reasons whose HTTP status is not the one of their gRPC code.
_REASON_TO_HTTP = {"REQUEST_TOO_LARGE": 413, "IDEMPOTENCY_CONFLICT": 409}
# ErrorInfo metadata a problem body carries on, by reason.
_REASON_MEMBERS = {"IDEMPOTENCY_CONFLICT": ("existing_id",), "REQUEST_TOO_LARGE": ("limit_bytes",)}
# Echoed client strings (field names holding map keys, paths) are cut to this.
_MAX_ECHO = 128
# How the problems of the gateway's own validation (its models, from the contracts'
# limits) begin, as against the orchestrator's (a step graph with a cycle, say).
VALIDATION_DETAIL = "The request is invalid: check "


class ProblemError(Exception):
    """An error that renders as one problem+json response."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, instance: str) -> dict[str, Any]:
        instance = clip(instance)
        try:
            title = http.HTTPStatus(self.status).phrase
        except ValueError:
            title = "Client Closed Request" if self.status == 499 else "Error"
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.reason.lower().replace("_", "-"),
            "title": title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "reason": self.reason,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def response(self, instance: str) -> Response:
        return Response(
            orjson.dumps(self.body(instance)),
            status_code=self.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=self.headers,
        )


class ProblemHTTPException(StarletteHTTPException):
    """A ProblemError raised where the framework lets only HTTPException through (while a
    request body is read); the handlers render the problem as it is."""

    def __init__(self, problem: ProblemError) -> None:
        super().__init__(problem.status, problem.detail)
        self.problem = problem


def _rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    # from_call reads only code(), details() and trailing_metadata(), which an AioRpcError
    # has too, though the typing stubs name only the synchronous grpc.Call.
    try:
        rich: status_pb2.Status | None = rpc_status.from_call(cast(grpc.Call, err))
    except ValueError:  # details disagree with the status line: trust the status line
        return None
    return rich


def problem_from_grpc(err: grpc.aio.AioRpcError, *, peer: str = "orchestrator") -> ProblemError:
    """Map a failed call to a backend to the problem the client sees; `peer` names the
    backend in the texts that replace the transport's (503, 504) or hide its error (500)."""
    code = err.code()
    status = _GRPC_TO_HTTP.get(code, 500)
    reason = code.name
    detail = err.details() or ""
    errors: list[dict[str, str]] = []
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    rich = _rich_status(err)
    for any_detail in rich.details if rich else ():
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if any_detail.Unpack(info):  # False when the detail is of another type
            reason = info.reason or reason
            status = _REASON_TO_HTTP.get(reason, status)
            extra.update(
                (k, info.metadata[k]) for k in _REASON_MEMBERS.get(reason, ()) if k in info.metadata
            )
            retry_ms = info.metadata.get("retry_after_ms", "")
            if retry_ms.isdigit():
                headers["Retry-After"] = str(max(1, math.ceil(int(retry_ms) / 1000)))
        elif any_detail.Unpack(bad):
            errors.extend(
                {"field": rest_field_name(v.field), "message": v.description}
                for v in bad.field_violations
            )
    if status == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = "1"
    if status == 503:
        # Without ErrorInfo the status came from the transport (e.g. connection refused),
        # whose message names internal addresses: say it plainly instead.
        if rich is None or not detail:
            detail = f"The {peer} is unreachable; try again later."
        headers.setdefault("Retry-After", "1")
    if status == 504 and rich is None:
        detail = f"The {peer} did not answer in time."
    if status == 500:
        log.error("orchestrator_error", peer=peer, grpc_code=code.name, details=err.details())
        detail, reason = f"The {peer} failed to handle the request; try again later.", "INTERNAL"
    return ProblemError(status, reason, detail, errors=errors, headers=headers, extra=extra)


def clip(text: str) -> str:
    """A client's string, bounded before a problem echoes it."""
    return text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "…"


def _validation_field(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if str(p)]  # an empty map key would leave "a..b"
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"} and len(parts) > 1:
        parts = parts[1:]
    return clip(".".join(parts))


def validation_problem(errors: Sequence[Any]) -> ProblemError:
    if any(e.get("type") == "json_invalid" for e in errors):
        # Not a request with a bad field but no request at all: 400, as for bad YAML.
        return ProblemError(400, "MALFORMED_BODY", "The request body is not valid JSON.")
    items = [
        {"field": _validation_field(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
        for e in errors
    ]
    fields = ", ".join(dict.fromkeys(i["field"] for i in items))
    return ProblemError(422, "INVALID_ARGUMENT", f"{VALIDATION_DETAIL}{fields}.", errors=items)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, ours or the framework's, as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return exc.response(request.url.path)

    async def on_grpc(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, grpc.aio.AioRpcError)
        return problem_from_grpc(exc).response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc.errors()).response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc, ProblemHTTPException):
            return exc.problem.response(request.url.path)
        reasons = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHENTICATED"}
        detail = (
            exc.detail if isinstance(exc.detail, str) else http.HTTPStatus(exc.status_code).phrase
        )
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {clip(request.url.path)}."
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {clip(request.url.path)}."
        problem = ProblemError(
            exc.status_code,
            reasons.get(exc.status_code, "HTTP_ERROR"),
            detail,
            headers=dict(exc.headers or {}),
        )
        return problem.response(request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.url.path)
        problem = ProblemError(500, "INTERNAL", "The gateway failed to handle the request.")
        return problem.response(request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(grpc.aio.AioRpcError, on_grpc)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def close_code_for(problem: ProblemError) -> int:
    """WebSocket close code for a problem: 4000 + its HTTP status (4404, 4401, ...)."""
    return 4000 + problem.status if 400 <= problem.status < 600 else 1011
