"""MCP servers (the `mcp` package): each server an agent declares is started on first use,
over stdio (`command`) or streamable HTTP (`url`), and its session is shared by every task
of the worker. A server that dies is started again: the call that found it dead is sent
once more on the new session. Its tools join the agent's registry as `<server>__<tool>`,
with the schemas the server gives.

The MCP client's transports are anyio context managers that must be entered and left in
one task, so each connection owns a background task that holds them open until closed.
The `mcp` package is imported on first use: it takes seconds to import, and most workers
never start an MCP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from taskloom.agents.catalog.spec import MCP_SEPARATOR, McpServerDecl, check_json_schema
from taskloom.agents.tools.base import ANY_OBJECT, Tool, ToolContext, ToolError, ToolPolicy

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp import types as mcp_types

log = structlog.get_logger(__name__)

_REQUEST_TIMEOUT = 408
# mcp.types.CONNECTION_CLOSED: the session's stream ended under a pending request.
_CONNECTION_CLOSED = -32000
# The streamable HTTP client's code when the server answers 404 to our session id (it
# restarted and forgot the session): a new session is needed, like after a crash.
_SESSION_TERMINATED = 32600
_GONE_CODES = frozenset({_CONNECTION_CLOSED, _SESSION_TERMINATED})


class _ServerGone(Exception):
    """The session ended under a call (the server died or forgot the session)."""


class McpConnection:
    """One server's session, started lazily and restarted after it dies."""

    def __init__(self, decl: McpServerDecl) -> None:
        self.decl = decl
        self.starts = 0
        self._session: ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self.tools: list[mcp_types.Tool] = []

    async def _open(self, stack: AsyncExitStack) -> ClientSession:
        from mcp import ClientSession, StdioServerParameters, stdio_client
        from mcp import types as mcp_types
        from mcp.client.streamable_http import streamable_http_client

        decl = self.decl
        # Start-up requests (initialize, tools/list) get the start timeout; calls their own.
        timeout = timedelta(seconds=decl.start_timeout_s)
        if decl.command is not None:
            params = StdioServerParameters(
                command=decl.command[0], args=list(decl.command[1:]), env=dict(decl.env) or None
            )
            read, write = await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
        else:
            assert decl.url is not None
            read, write, _ = await stack.enter_async_context(streamable_http_client(decl.url))
        session = await stack.enter_async_context(ClientSession(read, write, timeout))
        await session.initialize()
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            page = await session.list_tools(params=mcp_types.PaginatedRequestParams(cursor=cursor))
            tools.extend(page.tools)
            if not (cursor := page.nextCursor):
                break
        self.tools = tools
        return session

    async def _run(self, ready: asyncio.Future[ClientSession]) -> None:
        try:
            async with AsyncExitStack() as stack:
                session = await self._open(stack)
                ready.set_result(session)
                await self._stop.wait()
        except BaseException as err:
            if not ready.done():
                ready.set_exception(err if isinstance(err, Exception) else _ServerGone(str(err)))
            if not isinstance(err, Exception):
                raise

    async def session(self) -> tuple[ClientSession, asyncio.Task[None]]:
        """The live session (started if needed) and the task that holds it open."""
        async with self._lock:
            if self._session is not None and self._runner is not None and not self._runner.done():
                return self._session, self._runner
            await self._close_locked()
            self._stop = asyncio.Event()
            ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
            self._runner = asyncio.create_task(self._run(ready), name=f"mcp-{self.decl.name}")
            try:
                async with asyncio.timeout(self.decl.start_timeout_s):
                    self._session = await ready
            except Exception as err:
                await self._close_locked()
                raise ToolError(
                    f"MCP server {self.decl.name!r} could not start: {_describe(err)}"
                ) from None
            self.starts += 1
            if self.starts > 1:
                log.warning("MCP server restarted", server=self.decl.name, starts=self.starts)
            else:
                log.info("MCP server started", server=self.decl.name, tools=len(self.tools))
            return self._session, self._runner

    async def call(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        from mcp import McpError

        for attempt in range(2):
            session, runner = await self.session()
            call = asyncio.ensure_future(
                session.call_tool(name, arguments, timedelta(seconds=self.decl.timeout_s))
            )
            try:
                await asyncio.wait({call, runner}, return_when=asyncio.FIRST_COMPLETED)
                if not call.done():
                    raise _ServerGone("the session ended")
                return call.result()
            except McpError as err:
                if err.error.code == _REQUEST_TIMEOUT:
                    raise ToolError(
                        f"MCP tool {name!r} did not answer within {self.decl.timeout_s:g} s"
                    ) from None
                if err.error.code not in _GONE_CODES:
                    raise ToolError(f"MCP tool {name!r} failed: {err.error.message}") from None
                gone = err.error.message
            except (_ServerGone, anyio.ClosedResourceError, anyio.BrokenResourceError) as err:
                gone = _describe(err)
            finally:
                call.cancel()
            log.warning("MCP server died", server=self.decl.name, error=gone, attempt=attempt + 1)
            async with self._lock:
                if self._runner is runner:
                    await self._close_locked()
        raise ToolError(f"MCP server {self.decl.name!r} died while handling {name!r}")

    async def _close_locked(self) -> None:
        runner, self._runner, self._session = self._runner, None, None
        if runner is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(5):
                await asyncio.gather(runner, return_exceptions=True)
        except TimeoutError:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def aclose(self) -> None:
        async with self._lock:
            await self._close_locked()


def _describe(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in err.exceptions)
    return str(err) or type(err).__name__


def _content_text(result: mcp_types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


class McpTool:
    """One tool of an MCP server, as the registry sees it."""

    def __init__(self, connection: McpConnection, tool: mcp_types.Tool) -> None:
        decl = connection.decl
        self._connection = connection
        self._remote_name = tool.name
        self.name = f"{decl.name}{MCP_SEPARATOR}{tool.name}"
        self.description = tool.description or f"{tool.name} (MCP server {decl.name})"
        self.parameters: Mapping[str, Any] = tool.inputSchema
        try:
            check_json_schema(tool.inputSchema)
        except ValueError:
            log.warning("MCP tool has an unusable schema", tool=self.name)
            self.parameters = ANY_OBJECT
        hints = tool.annotations
        # Replaying a recorded result is safe only for tools that say they change nothing.
        replayable = bool(hints and (hints.readOnlyHint or hints.idempotentHint))
        self.policy = ToolPolicy(timeout_s=decl.timeout_s + 1, replayable=replayable)

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        result = await self._connection.call(self._remote_name, arguments)
        if result.isError:
            raise ToolError(_content_text(result) or f"MCP tool {self.name!r} failed")
        if result.structuredContent is not None:
            return result.structuredContent
        return _content_text(result)


class McpServers:
    """The worker's MCP connections, one per distinct server declaration."""

    def __init__(self) -> None:
        self._connections: dict[str, McpConnection] = {}

    def connection(self, decl: McpServerDecl) -> McpConnection:
        key = decl.model_dump_json()
        if key not in self._connections:
            self._connections[key] = McpConnection(decl)
        return self._connections[key]

    async def tools(self, server: McpServerDecl) -> list[Tool]:
        connection = self.connection(server)
        await connection.session()
        wanted = set(server.tools) if server.tools is not None else None
        return [
            McpTool(connection, t) for t in connection.tools if wanted is None or t.name in wanted
        ]

    async def aclose(self) -> None:
        for connection in self._connections.values():
            with contextlib.suppress(Exception):
                await connection.aclose()
