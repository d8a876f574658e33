"""The `python` tool: runs the model's code in a sandbox (tools/sandbox.py) under the agent's
limits and returns its output; every way the code can fail or be stopped becomes a tool
error that says which limit it hit."""

from __future__ import annotations

from typing import Any

from taskloom.agents.catalog.spec import AgentSpec, SandboxLimits, ToolDecl
from taskloom.agents.tools.base import FunctionTool, ToolContext, ToolError, declared_policy
from taskloom.agents.tools.sandbox import (
    SIGKILL_EXIT,
    SIGXCPU_EXIT,
    SandboxPool,
    SandboxRun,
    SandboxUnavailable,
)

PARAMETERS = {
    "type": "object",
    "properties": {
        "code": {
            "type": "string",
            "maxLength": 100_000,
            "description": "Python 3 source; print what you want to see. Standard library "
            "only, no network, files only in the current directory.",
        }
    },
    "required": ["code"],
    "additionalProperties": False,
}
_TAIL = 2000


def explain(run: SandboxRun, limits: SandboxLimits) -> str | None:
    """Why a run failed, in the model's terms; None when it succeeded."""
    if run.timed_out:
        return f"the code ran past its wall-time limit of {limits.wall_s:g} s and was stopped"
    if run.output_exceeded:
        return f"the code printed more than its output limit of {limits.output_bytes} bytes"
    if run.exit_code == 0:
        return None
    if run.exit_code == SIGXCPU_EXIT:
        return f"the code used more than its CPU-time limit of {limits.cpu_s} s and was stopped"
    if run.exit_code == SIGKILL_EXIT:
        return "the code was killed (it went past its CPU-time or memory limit)"
    stderr = run.stderr.strip()
    if "MemoryError" in stderr:
        hint = f"it ran out of its memory limit of {limits.memory_mb} MB"
    elif "Resource temporarily unavailable" in stderr or "BlockingIOError" in stderr:
        hint = f"it hit its limit of {limits.processes} processes"
    elif "Read-only file system" in stderr:
        hint = "only the current directory and /tmp are writable"
    elif "Network is unreachable" in stderr or "Connection refused" in stderr:
        hint = "the sandbox has no network"
    else:
        hint = ""
    detail = f"the code exited with status {run.exit_code}" + (f" ({hint})" if hint else "")
    return f"{detail}: {stderr[-_TAIL:] or run.stdout[-_TAIL:]}"


def python_tool(pool: SandboxPool) -> Any:
    def factory(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
        limits = spec.sandbox

        async def run(arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
            try:
                result = await pool.run(arguments["code"], limits)
            except SandboxUnavailable as err:
                raise ToolError(str(err)) from None
            if (problem := explain(result, limits)) is not None:
                raise ToolError(problem)
            return {"stdout": result.stdout, "stderr": result.stderr}

        return FunctionTool(
            name=decl.name,
            description=decl.description
            or "Run Python 3 code in an isolated sandbox and return what it prints.",
            parameters=PARAMETERS,
            run=run,
            # The sandbox enforces wall time itself; this only bounds a stuck start.
            policy=declared_policy(decl, limits.wall_s + 5),
        )

    return factory
