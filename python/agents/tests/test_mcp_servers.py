"""MCP servers as tool sources: a small server (FastMCP from the `mcp` package, written
below) run over stdio and over streamable HTTP, each a real process; round trips, a
crashed or killed server started again, and the tools' schemas in the registry."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from taskloom.agents.catalog.spec import AgentSpec
from taskloom.agents.providers import ToolCall
from taskloom.agents.tools import TaskInfo, ToolContext, ToolRegistry
from taskloom.agents.tools.mcp_servers import McpServers

pytestmark = pytest.mark.asyncio

WAIT_S = 20.0

SERVER = '''\
import asyncio, os, sys
from mcp.server.fastmcp import FastMCP

server = FastMCP("testkit", host="127.0.0.1", port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@server.tool()
def whoami() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool()
def crash() -> str:
    """Ends the server process at once."""
    os._exit(3)


@server.tool()
async def slow(seconds: float) -> str:
    """Answers after a while."""
    await asyncio.sleep(seconds)
    return "done"


server.run(transport=sys.argv[1])
'''


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    path = tmp_path / "mcp_testkit.py"
    path.write_text(SERVER)
    return path


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[McpServers]:
    connections = McpServers()
    yield connections
    await connections.aclose()


class Agent:
    """An agent whose only tools come from one MCP server."""

    def __init__(self, servers: McpServers, server: dict[str, Any]) -> None:
        spec = AgentSpec.model_validate({"name": "mcp-user", "model": "m", "mcp_servers": [server]})
        self.toolset = ToolRegistry(mcp=servers).toolset(spec)
        self.connection = servers.connection(spec.mcp_servers[0])

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        call = ToolCall("c", f"testkit__{name}", orjson.dumps(arguments).decode())
        [outcome] = await self.toolset.execute([call], ToolContext(TaskInfo("t", "mcp-user")))
        return {"ok": outcome.ok, "value": orjson.loads(outcome.content)}


def stdio_server(script: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "testkit", "command": [sys.executable, str(script), "stdio"], **extra}


async def test_stdio_server_tools_join_the_registry_with_their_schemas(
    servers, server_script
) -> None:
    agent = Agent(servers, stdio_server(server_script))
    definitions = {d.name: d for d in await agent.toolset.definitions()}
    assert set(definitions) == {
        "testkit__echo",
        "testkit__whoami",
        "testkit__crash",
        "testkit__slow",
    }
    echo = definitions["testkit__echo"]
    assert echo.description == "Echo the text back."
    assert echo.parameters["properties"]["text"]["type"] == "string"
    assert echo.parameters["required"] == ["text"]

    assert await agent.call("echo", text="hi") == {"ok": True, "value": {"result": "echo: hi"}}
    bad = await agent.call("echo", text=3)
    assert bad["ok"] is False and "$.text: 3 is not of type 'string'" in bad["value"]["error"]


async def test_one_session_is_shared_by_the_worker_tasks(servers, server_script) -> None:
    first = Agent(servers, stdio_server(server_script))
    second = Agent(servers, stdio_server(server_script))
    pids = {(await a.call("whoami"))["value"]["result"] for a in (first, second, first)}
    assert len(pids) == 1
    assert first.connection is second.connection and first.connection.starts == 1


async def test_a_killed_stdio_server_is_started_again(servers, server_script) -> None:
    agent = Agent(servers, stdio_server(server_script))
    pid = int((await agent.call("whoami"))["value"]["result"])
    os.kill(pid, signal.SIGKILL)
    again = await agent.call("whoami")
    assert again["ok"] is True
    assert int(again["value"]["result"]) != pid
    assert agent.connection.starts == 2


async def test_a_server_that_crashes_on_a_call_is_a_tool_error_then_serves_again(
    servers, server_script
) -> None:
    agent = Agent(servers, stdio_server(server_script))
    crashed = await agent.call("crash")
    assert crashed["ok"] is False
    assert "MCP server 'testkit' died while handling 'crash'" in crashed["value"]["error"]
    assert (await agent.call("echo", text="back"))["value"] == {"result": "echo: back"}


async def test_the_server_timeout_applies_to_calls(servers, server_script) -> None:
    agent = Agent(servers, stdio_server(server_script, timeout_s=0.5))
    result = await agent.call("slow", seconds=30)
    assert result["ok"] is False
    assert "did not answer within 0.5 s" in result["value"]["error"]


async def test_a_server_that_cannot_start_fails_the_task_retryably(servers, tmp_path) -> None:
    agent = Agent(servers, {"name": "testkit", "command": [str(tmp_path / "missing")]})
    with pytest.raises(Exception, match="MCP server 'testkit' could not start"):
        await agent.toolset.definitions()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServerProcess:
    def __init__(self, script: Path) -> None:
        self.script = script
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(self.script), "streamable-http", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise TimeoutError("the MCP HTTP server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def http_server(server_script: Path) -> Iterator[HttpServerProcess]:
    server = HttpServerProcess(server_script)
    server.start()
    yield server
    server.kill()


async def test_streamable_http_round_trip_and_a_restarted_server(servers, http_server) -> None:
    await http_server.ready()
    agent = Agent(servers, {"name": "testkit", "url": http_server.url})
    assert await agent.call("echo", text="over http") == {
        "ok": True,
        "value": {"result": "echo: over http"},
    }
    first_pid = (await agent.call("whoami"))["value"]["result"]

    http_server.kill()  # kill -9, then the same server comes back on its port
    http_server.start()
    await http_server.ready()
    again = await agent.call("whoami")
    assert again["ok"] is True and again["value"]["result"] != first_pid
    assert agent.connection.starts == 2
