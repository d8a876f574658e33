"""Bounds every request body by the orchestrator's own request bound (`limits.py`): a larger
body gets 413 problem+json with reason REQUEST_TOO_LARGE before it is read whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskloom.gateway.errors import ProblemError, ProblemHTTPException


def too_large(max_bytes: int) -> ProblemError:
    return ProblemError(
        413,
        "REQUEST_TOO_LARGE",
        f"The request body is larger than the {max_bytes} bytes this API accepts.",
        extra={"limit_bytes": str(max_bytes)},
    )


class BodySizeLimit:
    """ASGI middleware: refuses a declared Content-Length over the bound at once, and a
    body that grows past it while it is read (chunked, or a lying Content-Length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await too_large(self.max_bytes).response(scope["path"])(scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ProblemHTTPException(too_large(self.max_bytes))
            return message

        await self.app(scope, bounded_receive, send)
