"""The limits the contracts state once as options (`proto/taskloom/v1/limits.proto`), read
from the generated descriptors by every Python service that applies one."""

from __future__ import annotations

from typing import cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from taskloom.v1 import limits_pb2


def _descriptor(message: type[Message] | Descriptor) -> Descriptor:
    if isinstance(message, Descriptor):
        return message
    # The stubs type DESCRIPTOR as the C or the Python descriptor; both are one at run time.
    return cast(Descriptor, message.DESCRIPTOR)


def field_limits(message: type[Message] | Descriptor, name: str) -> limits_pb2.FieldLimits:
    """The limits declared on a field (empty when it declares none)."""
    field = _descriptor(message).fields_by_name[name]
    return field.GetOptions().Extensions[limits_pb2.limits]


def int_range(message: type[Message] | Descriptor, name: str) -> tuple[int, int]:
    """The (min, max) an integer field declares; raises ValueError when it declares no
    max, since a caller asking for the range means to apply both ends."""
    lim = field_limits(message, name)
    if not lim.HasField("min") or not lim.HasField("max"):
        raise ValueError(f"{_descriptor(message).full_name}.{name} declares no min and max")
    return int(lim.min), int(lim.max)
