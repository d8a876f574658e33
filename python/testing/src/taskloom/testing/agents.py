"""The agents of the test orchestrators, the fake one and the real one's echo worker alike.

`echo` answers at once: the input's words (or its JSON text) come back as chunks and the
result is `{"echo": input}`. `wait` runs until it is cancelled.
"""

from __future__ import annotations

import orjson
from google.protobuf import json_format, struct_pb2

from taskloom.v1 import common_pb2

ECHO = common_pb2.AgentInfo(
    name="echo",
    description="Repeats its input.",
    provider="simulated",
    model="sim-1",
    tools=["clock"],
)
WAIT = common_pb2.AgentInfo(
    name="wait", description="Runs until it is cancelled.", provider="simulated", model="sim-1"
)
AGENTS = (ECHO, WAIT)


def echo(task_input: struct_pb2.Value) -> tuple[list[str], struct_pb2.Value]:
    """The chunks and the result of the `echo` agent for an input."""
    value = json_format.MessageToDict(task_input) if task_input.WhichOneof("kind") else ""
    words = value.split() if isinstance(value, str) else [orjson.dumps(value).decode()]
    result = struct_pb2.Value()
    result.struct_value.update({"echo": value})
    return words, result
