"""The `python` tool in its bubblewrap sandbox: each way out (network, files outside its
directory, the worker's environment and files) and each way to exhaust the machine (fork
bomb, memory hog, endless loop, flood of output) ends in a clear tool error."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from taskloom.agents.catalog.spec import AgentSpec
from taskloom.agents.providers import ToolCall
from taskloom.agents.tools import TaskInfo, ToolContext, ToolRegistry, builtin_factories
from taskloom.agents.tools.sandbox import SandboxConfig, SandboxPool, bwrap_argv, default_python

pytestmark = pytest.mark.asyncio

LIMITS = {"cpu_s": 1, "memory_mb": 64, "processes": 8, "wall_s": 20, "output_bytes": 4096}


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    sandboxes = SandboxPool(SandboxConfig(python=default_python(), pool_size=1))
    yield sandboxes
    await sandboxes.aclose()


async def run_code(pool: SandboxPool, code: str, **limits: Any) -> dict[str, Any]:
    """One `python` tool call through the registry, as the agent loop makes it."""
    spec = AgentSpec.model_validate(
        {"name": "coder", "model": "sim-1", "tools": ["python"], "sandbox": LIMITS | limits}
    )
    toolset = ToolRegistry(builtin_factories(sandbox=pool)).toolset(spec)
    call = ToolCall("c", "python", orjson.dumps({"code": code}).decode())
    [outcome] = await toolset.execute([call], ToolContext(TaskInfo("t", "coder")))
    return {"ok": outcome.ok, **orjson.loads(outcome.content)}


async def test_print_runs_and_returns_its_output(pool: SandboxPool) -> None:
    result = await run_code(pool, "print(6 * 7)")
    assert result == {"ok": True, "stdout": "42\n", "stderr": ""}


async def test_no_network_even_to_the_workers_loopback(pool: SandboxPool) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        result = await run_code(pool, code)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's port
    assert result["ok"] is False
    assert "the sandbox has no network" in result["error"]


async def test_no_network_outside(pool: SandboxPool) -> None:
    code = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"
    result = await run_code(pool, code)
    assert result["ok"] is False
    assert "Network is unreachable" in result["error"]


async def test_cannot_write_outside_its_directory(pool: SandboxPool, tmp_path: Path) -> None:
    result = await run_code(pool, "open('/usr/escaped', 'w')")
    assert result["ok"] is False
    assert "only the current directory and /tmp are writable" in result["error"]

    target = tmp_path / "escaped"
    result = await run_code(pool, f"open({str(target)!r}, 'w').write('x')")
    assert result["ok"] is False and "No such file or directory" in result["error"]
    assert not target.exists()

    result = await run_code(
        pool, "open('mine.txt', 'w').write('ok'); print(open('mine.txt').read())"
    )
    assert result["stdout"] == "ok\n"  # its own directory is writable


async def test_cannot_read_the_workers_environment_or_files(
    pool: SandboxPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKLOOM_TEST_SECRET", "s3cret-value")
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret-file")
    code = "import os; print(dict(os.environ)); print(open('/proc/1/environ').read())"
    result = await run_code(pool, code)
    assert result["ok"] is True
    assert "s3cret" not in result["stdout"]
    assert "TASKLOOM" not in result["stdout"]

    result = await run_code(pool, f"print(open({str(secret)!r}).read())")
    assert result["ok"] is False and "No such file or directory" in result["error"]
    here = __file__
    result = await run_code(pool, f"print(open({str(here)!r}).read())")
    assert result["ok"] is False and "No such file or directory" in result["error"]


async def test_fork_bomb_hits_the_process_limit(pool: SandboxPool) -> None:
    result = await run_code(pool, "import os\nwhile True:\n    os.fork()", processes=8)
    assert result["ok"] is False
    assert "it hit its limit of 8 processes" in result["error"]


async def test_memory_hog_hits_the_memory_limit(pool: SandboxPool) -> None:
    result = await run_code(pool, "x = bytearray(1 << 30)", memory_mb=64)
    assert result["ok"] is False
    assert "memory limit of 64 MB" in result["error"]


async def test_endless_loop_hits_the_cpu_limit(pool: SandboxPool) -> None:
    result = await run_code(pool, "while True:\n    pass", cpu_s=1)
    assert result["ok"] is False
    assert "CPU-time limit of 1 s" in result["error"]


async def test_sleeping_forever_hits_the_wall_time_limit(pool: SandboxPool) -> None:
    result = await run_code(pool, "import time\ntime.sleep(3600)", wall_s=0.5)
    assert result["ok"] is False
    assert "wall-time limit of 0.5 s" in result["error"]


async def test_a_flood_of_output_hits_the_output_limit(pool: SandboxPool) -> None:
    result = await run_code(pool, "while True:\n    print('x' * 1000)", output_bytes=4096)
    assert result["ok"] is False
    assert "output limit of 4096 bytes" in result["error"]


async def test_without_bubblewrap_the_tool_refuses_with_a_clear_message() -> None:
    missing = SandboxPool(SandboxConfig(bwrap="/nonexistent/bwrap"))
    result = await run_code(missing, "print(1)")
    assert result["ok"] is False
    assert "the python tool needs bubblewrap" in result["error"]
    assert "TASKLOOM_SANDBOX_UNSANDBOXED" in result["error"]


async def test_unsandboxed_development_mode_runs_and_warns(capsys) -> None:  # type: ignore[no-untyped-def]
    dev = SandboxPool(SandboxConfig(bwrap="/nonexistent/bwrap", unsandboxed=True, pool_size=0))
    try:
        result = await run_code(dev, "print('dev')")
    finally:
        await dev.aclose()
    assert result == {"ok": True, "stdout": "dev\n", "stderr": ""}
    assert "UNSANDBOXED python tool" in capsys.readouterr().out


async def test_the_sandbox_shows_only_usr_and_tmpfs_and_has_its_own_namespaces() -> None:
    argv = bwrap_argv(SandboxConfig(), "/usr/bin/python3")
    for flag in ("--unshare-all", "--clearenv", "--die-with-parent", "--disable-userns"):
        assert flag in argv
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert binds == ["/usr"]  # merged-usr: /bin, /lib... are links into it
    assert "--bind" not in argv  # nothing of the host is writable
