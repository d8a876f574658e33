"""Conversions between protobuf's `google.protobuf.Value` (task input and output on the
wire) and plain Python values. json_format does the same generically and is several times
slower; on the worker's path every task pays for one conversion each way."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2


def to_python(value: struct_pb2.Value) -> Any:
    """The plain Python value of a Value (numbers come back as floats, as JSON's would)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return {k: to_python(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [to_python(v) for v in value.list_value.values]
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    return None  # null_value, or no kind set


def fill(target: struct_pb2.Value, obj: Any) -> None:
    """Set `target` (a fresh Value) to the Value of a JSON-like Python object."""
    if isinstance(obj, str):
        target.string_value = obj
    elif isinstance(obj, bool):
        target.bool_value = obj
    elif isinstance(obj, int | float):
        target.number_value = obj
    elif isinstance(obj, dict):
        target.struct_value.SetInParent()  # an empty dict is still a struct
        fields = target.struct_value.fields
        for key, item in obj.items():
            fill(fields[str(key)], item)
    elif isinstance(obj, list | tuple):
        target.list_value.SetInParent()
        values = target.list_value.values
        for item in obj:
            fill(values.add(), item)
    elif obj is None:
        target.null_value = struct_pb2.NULL_VALUE
    else:
        raise TypeError(f"{type(obj).__name__} is not a JSON value")
