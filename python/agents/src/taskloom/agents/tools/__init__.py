"""Tools agents call: the registry (registry.py), plain Python functions (functions.py),
the built-ins (calculator, http_fetch, python, agent, handoff) and MCP servers."""

from __future__ import annotations

import httpx

from taskloom.agents.tools.agent_call import ChildTasks, agent_tool, handoff_tool
from taskloom.agents.tools.base import (
    FunctionTool,
    Handoff,
    TaskInfo,
    Tool,
    ToolContext,
    ToolError,
    ToolPolicy,
)
from taskloom.agents.tools.calculator import calculator_tool
from taskloom.agents.tools.http_fetch import http_fetch_tool
from taskloom.agents.tools.python_tool import python_tool
from taskloom.agents.tools.registry import (
    AgentToolset,
    BuiltinFactory,
    ToolOutcome,
    ToolRegistry,
)
from taskloom.agents.tools.sandbox import SandboxPool

__all__ = [
    "AgentToolset",
    "FunctionTool",
    "Handoff",
    "TaskInfo",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "ToolPolicy",
    "ToolRegistry",
    "builtin_factories",
]


def builtin_factories(
    *,
    sandbox: SandboxPool | None = None,
    http: httpx.AsyncClient | None = None,
    children: ChildTasks | None = None,
) -> dict[str, BuiltinFactory]:
    """The built-in tools this worker can offer, given the resources it has."""
    factories: dict[str, BuiltinFactory] = {"calculator": calculator_tool}
    if sandbox is not None:
        factories["python"] = python_tool(sandbox)
    if http is not None:
        factories["http_fetch"] = http_fetch_tool(http)
    if children is not None:
        factories["agent"] = agent_tool(children)
        factories["handoff"] = handoff_tool(children)
    return factories
