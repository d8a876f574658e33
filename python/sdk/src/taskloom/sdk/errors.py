"""The one exception the SDK raises for a failed call, carrying the gateway's problem."""

from __future__ import annotations

from typing import Any

import httpx


class TaskloomError(Exception):
    """A request failed; `problem` is the gateway's RFC 9457 body, `status` its HTTP status
    (None when the gateway could not be reached)."""

    def __init__(self, status: int | None, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.reason: str = problem.get("reason", "")
        self.detail: str = problem.get("detail", "")
        super().__init__(f"{status} {self.reason}: {self.detail}" if status else self.detail)

    @classmethod
    def unreachable(cls, url: object, err: Exception) -> TaskloomError:
        return cls(None, {"reason": "UNREACHABLE", "detail": f"Cannot reach {url}: {err}"})


def problem_of(resp: httpx.Response) -> TaskloomError:
    """The error an unsuccessful (and already read) response stands for."""
    try:
        problem = resp.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"status": resp.status_code, "title": resp.reason_phrase, "detail": resp.text}
    return TaskloomError(resp.status_code, problem)
