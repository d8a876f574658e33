"""`/v1/sessions/{id}`: read and forget a session's conversation (the turns of the tasks
submitted with that `session_id`), in the caller's tenant only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.requests import HTTPConnection

from taskloom.gateway.deps import TenantDep
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.limits import TaskSpec, text
from taskloom.gateway.models import SessionMessageOut, SessionOut
from taskloom.gateway.openapi import problems
from taskloom.sdk.sessions import RedisSessions, SessionStoreError

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

SessionId = Annotated[str, Path(**text(TaskSpec, "session_id"))]


def _store(conn: HTTPConnection) -> RedisSessions:
    store: RedisSessions | None = conn.app.state.sessions
    if store is None:
        raise ProblemError(
            503, "UNAVAILABLE", "Sessions are off: the gateway has no sessions_redis_url."
        )
    return store


def _not_found(session_id: str) -> ProblemError:
    return ProblemError(404, "SESSION_NOT_FOUND", f"Session {session_id} does not exist.")


def _unreachable(err: SessionStoreError) -> ProblemError:
    return ProblemError(503, "UNAVAILABLE", f"The session store is unreachable: {err}")


@router.get("/{session_id}", response_model=SessionOut, responses=problems(404))
async def get_session(conn: HTTPConnection, session_id: SessionId, tenant: TenantDep) -> SessionOut:
    """The session's messages, oldest first (a sliding window of the newest)."""
    try:
        session = await _store(conn).load(tenant, session_id)
    except SessionStoreError as err:
        raise _unreachable(err) from err
    if session is None:
        raise _not_found(session_id)
    return SessionOut(
        session_id=session_id,
        messages=[
            SessionMessageOut(role=m["role"], content=m["content"]) for m in session.messages
        ],
        expires_in_seconds=session.ttl_s,
    )


@router.delete("/{session_id}", status_code=204, responses=problems(404))
async def delete_session(
    conn: HTTPConnection, session_id: SessionId, tenant: TenantDep
) -> Response:
    """Forget the session: the next task with this id starts a new conversation."""
    try:
        deleted = await _store(conn).delete(tenant, session_id)
    except SessionStoreError as err:
        raise _unreachable(err) from err
    if not deleted:
        raise _not_found(session_id)
    return Response(status_code=204)
