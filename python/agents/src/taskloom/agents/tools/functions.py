"""Tools written as plain Python functions, named `module:function` or by an entry point of
the `taskloom.tools` group, imported on first use.

The function takes the tool's arguments as keyword arguments, and the `ToolContext` as
`context` if it has a parameter of that name. It may be sync (run in a thread, so it
does not block the worker; a timeout then abandons the thread rather than stopping it)
or async. Its description and argument schema come from the agent file; without them,
from the docstring and from a `parameters` attribute of the function.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from taskloom.agents.catalog.spec import ToolDecl, check_json_schema
from taskloom.agents.tools.base import ANY_OBJECT, ToolContext, ToolError, declared_policy

ENTRY_POINT_GROUP = "taskloom.tools"


def resolve(decl: ToolDecl) -> Callable[..., Any]:
    """Import the function a declaration names."""
    if decl.function:
        module_name, _, attr = decl.function.partition(":")
        where = decl.function
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as err:
            raise ToolError(f"tool {decl.name!r}: cannot import {where}: {err}") from err
    else:
        found = entry_points(group=ENTRY_POINT_GROUP, name=decl.entry_point or "")
        if not found:
            raise ToolError(
                f"tool {decl.name!r}: no entry point {decl.entry_point!r} in group "
                f"{ENTRY_POINT_GROUP!r} (is its package installed?)"
            )
        try:
            target = next(iter(found)).load()
        except (ImportError, AttributeError) as err:
            raise ToolError(f"tool {decl.name!r}: cannot load its entry point: {err}") from err
    if not callable(target):
        raise ToolError(f"tool {decl.name!r}: {decl.function or decl.entry_point} is not callable")
    return target  # type: ignore[no-any-return]


class PythonFunctionTool:
    """Imports its function on first use (or when its schema is needed)."""

    def __init__(self, decl: ToolDecl) -> None:
        self.name = decl.name
        self._decl = decl
        self._fn: Callable[..., Any] | None = None
        self._wants_context = False
        self._is_async = False
        self.policy = declared_policy(decl)
        self.description = decl.description
        self.parameters: Mapping[str, Any] = decl.parameters or ANY_OBJECT
        if not decl.description or decl.parameters is None:
            self._import()  # the model needs the description and schema now

    def _import(self) -> Callable[..., Any]:
        if self._fn is None:
            fn = resolve(self._decl)
            if not self._decl.description:
                self.description = inspect.getdoc(fn) or f"the {self.name} tool"
            if self._decl.parameters is None:
                schema = getattr(fn, "parameters", None)
                if isinstance(schema, Mapping):
                    try:
                        check_json_schema(schema)
                    except ValueError as err:
                        raise ToolError(f"tool {self.name!r}: parameters: {err}") from err
                    self.parameters = schema
            self._wants_context = "context" in inspect.signature(fn).parameters
            self._is_async = inspect.iscoroutinefunction(fn)
            self._fn = fn
        return self._fn

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        fn = self._import()
        kwargs = {**arguments, "context": context} if self._wants_context else arguments
        if self._is_async:
            return await fn(**kwargs)
        result = await asyncio.to_thread(fn, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


def function_tool(decl: ToolDecl) -> PythonFunctionTool:
    return PythonFunctionTool(decl)
