"""The `calculator` tool: arithmetic on numbers, parsed with `ast` and evaluated node by
node (never `eval`), with bounds so that an expression cannot eat the worker's CPU or
memory (`9**9**9`)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from taskloom.agents.catalog.spec import AgentSpec, ToolDecl
from taskloom.agents.tools.base import FunctionTool, ToolContext, ToolError, declared_policy

MAX_EXPRESSION = 1000
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300

_BINARY: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: Mapping[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS: Mapping[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

PARAMETERS = {
    "type": "object",
    "properties": {
        "expression": {
            "type": "string",
            "maxLength": MAX_EXPRESSION,
            "description": "e.g. (2 + 3) * sqrt(16) / 2; + - * / // % **, "
            + ", ".join(sorted(_FUNCTIONS))
            + ", pi, e",
        }
    },
    "required": ["expression"],
    "additionalProperties": False,
}


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression; ToolError says what is not allowed."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ToolError(f"not an arithmetic expression: {err.msg}") from None
    try:
        value = _eval(tree.body)
    except (ArithmeticError, ValueError, TypeError) as err:
        raise ToolError(f"cannot compute {expression!r}: {err}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("the expression must give a number")
    return value


def _eval(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is beyond the limit of {MAX_EXPONENT}")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, complex) or abs(result) > MAX_MAGNITUDE:
            raise ToolError("the result is out of range")
        return result
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args))
    raise ToolError(
        f"{ast.unparse(node)!r} is not allowed: only numbers, arithmetic and "
        f"the functions {', '.join(sorted(_FUNCTIONS))}"
    )


async def _calculate(arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
    return {"result": evaluate(arguments["expression"])}


def calculator_tool(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
    return FunctionTool(
        name=decl.name,
        description=decl.description or "Evaluate an arithmetic expression exactly and safely.",
        parameters=PARAMETERS,
        run=_calculate,
        policy=declared_policy(decl),
    )
