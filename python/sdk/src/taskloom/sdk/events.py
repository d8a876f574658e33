"""The events of a task's or a workflow's stream, decoded from Server-Sent Events, and what
a client must remember to resume a broken stream: the last event id, sent back as
`Last-Event-ID` so that the gateway replays only the chunks after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from taskloom.sdk.errors import TaskloomError
from taskloom.sdk.models import Task, Workflow


@dataclass(frozen=True)
class Event:
    """One event: `status`, `chunk` (tasks), `step` (workflows), `done` or `error`. `id` is
    the SSE id a chunk carries (`<attempt>.<seq>`), empty for the others."""

    event: str
    data: Any
    id: str = ""

    def task(self) -> Task:
        """The final task a task stream's `done` event carries."""
        return Task.model_validate(self.data)

    def workflow(self) -> Workflow:
        """The final workflow a workflow stream's `done` event carries."""
        return Workflow.model_validate(self.data)


@dataclass
class SseDecoder:
    """Server-Sent Events (the WHATWG event-stream format), one line at a time."""

    _name: str = "message"
    _data: list[str] = field(default_factory=list)
    _id: str = ""

    def feed(self, line: str) -> Event | None:
        """The event a blank line completes, else None."""
        if not line:
            event = None
            if self._data:
                event = Event(self._name, orjson.loads("\n".join(self._data)), self._id)
            self._name, self._data, self._id = "message", [], ""
            return event
        if line.startswith(":"):
            return None  # a comment, e.g. a keep-alive ping
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


@dataclass
class ResumableStream:
    """One logical stream over as many HTTP connections as it takes: each connection starts
    a fresh decoder and sends the last id seen."""

    last_event_id: str = ""
    finished: bool = False
    _decoder: SseDecoder = field(default_factory=SseDecoder)

    def headers(self) -> dict[str, str]:
        self._decoder = SseDecoder()
        return {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}

    def feed(self, line: str) -> Event | None:
        """The event the line completes; an `error` event raises TaskloomError."""
        event = self._decoder.feed(line)
        if event is None:
            return None
        if event.id:
            self.last_event_id = event.id
        if event.event == "error":
            self.finished = True
            raise TaskloomError(event.data.get("status"), event.data)
        self.finished = event.event == "done"
        return event


def broken_stream(url: str, cause: Exception | None) -> TaskloomError:
    """The error when a stream keeps breaking before `done`, however often it is reopened."""
    detail = f"The event stream {url} broke before its end: {cause or 'closed by the server'}"
    return TaskloomError(None, {"reason": "UNREACHABLE", "detail": detail})
