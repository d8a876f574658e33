"""Relays an orchestrator event stream to an HTTP client as Server-Sent Events or WebSocket
messages. Each event becomes `(name, data)`; a stream error becomes a final `error` event
carrying the problem+json body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import grpc
import orjson
from fastapi import WebSocket
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.websockets import WebSocketDisconnect

from taskloom.gateway.errors import ProblemError, close_code_for, problem_from_grpc
from taskloom.gateway.orchestrator import EventStream
from taskloom.gateway.telemetry import STREAMS_ACTIVE

Converter = Callable[[Any], tuple[str, dict[str, Any]] | None]
# The SSE `id` of an event, by its name and data (None: the event has none).
EventId = Callable[[str, dict[str, Any]], str | None]


async def _named_events(
    stream: EventStream, convert: Converter, instance: str
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    try:
        async for event in stream.events():
            item = convert(event)
            if item is None:
                continue
            yield item
            if item[0] == "done":
                return
    except grpc.aio.AioRpcError as err:
        yield "error", problem_from_grpc(err).body(instance)


def sse_response(
    stream: EventStream, convert: Converter, instance: str, event_id: EventId | None = None
) -> EventSourceResponse:
    async def frames() -> AsyncIterator[ServerSentEvent]:
        STREAMS_ACTIVE.labels("sse").inc()
        try:
            async for name, data in _named_events(stream, convert, instance):
                ident = event_id(name, data) if event_id else None
                yield ServerSentEvent(data=orjson.dumps(data).decode(), event=name, id=ident)
        finally:
            STREAMS_ACTIVE.labels("sse").dec()
            stream.cancel()

    return EventSourceResponse(frames(), headers={"Cache-Control": "no-store"})


async def websocket_refusal(websocket: WebSocket, problem: ProblemError) -> None:
    """Refuse a WebSocket at the handshake, before it opens: the problem's status and
    problem+json body as the HTTP answer (where the server offers the denial response
    extension, as uvicorn does), else a bare 403."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(problem.response(websocket.url.path))
    else:
        await websocket.close(code=close_code_for(problem), reason=problem.reason)


async def websocket_relay(websocket: WebSocket, stream: EventStream, convert: Converter) -> None:
    """Send the stream's events until it ends or the client goes away. The client is read at
    the same time, so a disconnect (or the server closing the socket at shutdown) ends the
    relay at once instead of at the task's next event."""
    await websocket.accept()
    STREAMS_ACTIVE.labels("websocket").inc()
    try:
        async with anyio.create_task_group() as group:

            async def end_on_disconnect() -> None:
                await _until_disconnect(websocket)
                group.cancel_scope.cancel()

            group.start_soon(end_on_disconnect)
            await _send_events(websocket, stream, convert)
            group.cancel_scope.cancel()
    finally:
        STREAMS_ACTIVE.labels("websocket").dec()
        stream.cancel()


async def _send_events(websocket: WebSocket, stream: EventStream, convert: Converter) -> None:
    code = 1000
    try:
        async for name, data in _named_events(stream, convert, websocket.url.path):
            await websocket.send_text(orjson.dumps({"event": name, "data": data}).decode())
            if name == "error":
                code = 1011
        await websocket.close(code=code)
    except WebSocketDisconnect:
        pass


async def _until_disconnect(websocket: WebSocket) -> None:
    """Return once the client disconnects; messages from the client are ignored."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
