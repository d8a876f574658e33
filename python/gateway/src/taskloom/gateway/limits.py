"""The field limits the contracts declare once (`proto/taskloom/v1/limits.proto`), read from
the generated descriptors and turned into pydantic constraints.

The REST models (`models.py`) and routes take every bound from here, so the gateway refuses
what the orchestrator would (with a 422 naming the field) and the OpenAPI schema shows it.
`python -m taskloom.gateway.limits` prints the README's table of them.
"""

from __future__ import annotations

from typing import Annotated, Any

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from pydantic import AfterValidator, Field, JsonValue, StringConstraints

from taskloom.sdk.proto_limits import field_limits
from taskloom.v1 import common_pb2, limits_pb2, orchestrator_pb2, worker_hub_pb2

TaskSpec = common_pb2.TaskSpec
RetryPolicy = common_pb2.RetryPolicy
StreamOptions = common_pb2.StreamOptions
WorkflowSpec = orchestrator_pb2.WorkflowSpec
Step = orchestrator_pb2.Step


def max_request_bytes() -> int:
    """The largest request the orchestrator accepts; the gateway bounds REST bodies by it."""
    service = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"]
    return int(service.GetOptions().Extensions[limits_pb2.service_limits].max_request_bytes)


def _kwargs(**bounds: Any) -> dict[str, Any]:
    return {k: v for k, v in bounds.items() if v is not None}


def text(message: type[Message], name: str) -> dict[str, Any]:
    """`Field` keywords bounding a string's length (bytes in the proto; pydantic counts
    characters, so the orchestrator still refuses multi-byte text past the bound)."""
    lim = field_limits(message, name)
    return _kwargs(
        min_length=lim.min_len or None,
        max_length=lim.max_len or None,
        pattern=lim.pattern or None,
    )


def count(message: type[Message], name: str) -> dict[str, Any]:
    """`Field` keywords bounding the entries of a list or map."""
    lim = field_limits(message, name)
    return _kwargs(min_length=lim.min_items or None, max_length=lim.max_items or None)


def int_field_bounds(message: type[Message], name: str) -> dict[str, Any]:
    """`Field` keywords bounding an integer (`ge`, `le`: only the ends it declares), unlike
    `taskloom.sdk.proto_limits.int_range`, which gives both ends as a tuple."""
    lim = field_limits(message, name)
    return _kwargs(
        ge=lim.min if lim.HasField("min") else None, le=lim.max if lim.HasField("max") else None
    )


def default(message: type[Message], name: str) -> int:
    """What an absent integer means."""
    lim = field_limits(message, name)
    assert lim.HasField("default"), f"{name} declares no default"
    return int(lim.default)


def seconds(message: type[Message], name: str) -> dict[str, Any]:
    """`Field` keywords bounding a duration given in seconds (0: the default)."""
    return {"ge": 0, "le": field_limits(message, name).max_seconds}


def _valid_unicode(value: str) -> str:
    # JSON may escape a lone surrogate, which no UTF-8 (and so no protobuf string) holds.
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
"""A string that can travel in protobuf."""


def bounded_text(message: type[Message], name: str) -> Any:
    """A string type with the field's length bounds (for list elements)."""
    return Annotated[str, StringConstraints(**text(message, name)), AfterValidator(_valid_unicode)]


def labels_type(message: type[Message], name: str) -> Any:
    """`dict[str, str]` whose keys and values carry the map field's bounds."""
    lim = field_limits(message, name)
    key_bounds = _kwargs(min_length=lim.min_key_len or None, max_length=lim.max_key_len)
    key = Annotated[str, StringConstraints(**key_bounds), AfterValidator(_valid_unicode)]
    value = Annotated[
        str, StringConstraints(max_length=lim.max_value_len), AfterValidator(_valid_unicode)
    ]
    return dict[key, value]


class MaxEncodedBytes:
    """Bounds a JSON value by the size of its protobuf encoding (`max_bytes`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, value: JsonValue) -> JsonValue:
        from taskloom.gateway.convert import json_to_value  # convert imports the models

        try:
            size = json_to_value(value).ByteSize()
        except (UnicodeEncodeError, ValueError, TypeError) as err:
            raise ValueError(f"the value cannot be sent on: {str(err)[:80]}") from None
        if size > self.limit:
            raise ValueError(f"is {size} bytes when encoded; at most {self.limit} are accepted")
        return value


def json_value(message: type[Message], name: str) -> Any:
    """A JSON value type bounded by the field's `max_bytes`."""
    limit = int(field_limits(message, name).max_bytes)
    return Annotated[
        JsonValue,
        AfterValidator(MaxEncodedBytes(limit)),
        Field(json_schema_extra={"x-max-encoded-bytes": limit}),
    ]


# The README's table.

_REQUESTS: list[Descriptor] = [
    method.input_type
    for file in (orchestrator_pb2.DESCRIPTOR, worker_hub_pb2.DESCRIPTOR)
    for service in file.services_by_name.values()
    for method in service.methods
]


def _span(lo: int, hi: int, unit: str) -> str:
    return f"{lo} to {hi} {unit}" if lo else f"at most {hi} {unit}"


def _describe(lim: limits_pb2.FieldLimits) -> str:
    parts = []
    if lim.max_len:
        parts.append(_span(lim.min_len, lim.max_len, "bytes"))
    if lim.max_items:
        parts.append(_span(lim.min_items, lim.max_items, "entries"))
    if lim.max_key_len:
        parts.append("keys " + _span(lim.min_key_len, lim.max_key_len, "bytes"))
    if lim.max_value_len:
        parts.append(f"values at most {lim.max_value_len} bytes")
    if lim.HasField("min") and lim.HasField("max"):
        parts.append(f"{lim.min} to {lim.max}")
    elif lim.HasField("min"):
        parts.append(f"at least {lim.min}")
    if lim.HasField("default"):
        parts.append(f"absent: {lim.default}")
    if lim.max_seconds:
        parts.append(f"0 to {lim.max_seconds} s (0 or absent: the default)")
    if lim.max_bytes:
        parts.append(f"at most {lim.max_bytes} bytes encoded")
    if lim.max_elements:
        parts.append(f"its list at most {lim.max_elements} elements")
    if lim.pattern:
        parts.append(f"matching `{lim.pattern}`")
    return ", ".join(parts)


def table() -> str:
    """Every declared limit, one row per field, as Markdown."""
    rows: dict[str, str] = {}

    def walk(desc: Descriptor, seen: frozenset[str]) -> None:
        if desc.full_name in seen:
            return
        for field in desc.fields:
            lim = field_limits(desc, field.name)
            if lim.ByteSize():
                rows.setdefault(f"`{desc.name}.{field.name}`", _describe(lim))
            if field.message_type is not None and not field.message_type.full_name.startswith(
                "google.protobuf."
            ):
                walk(field.message_type, seen | {desc.full_name})

    for request in _REQUESTS:
        walk(request, frozenset())
    lines = ["| field | limit |", "|---|---|"]
    lines += [f"| {field} | {limit} |" for field, limit in sorted(rows.items())]
    lines.append(f"| any request (gRPC), any REST body | at most {max_request_bytes()} bytes |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
