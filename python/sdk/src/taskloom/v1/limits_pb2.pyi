from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
LIMITS_FIELD_NUMBER: _ClassVar[int]
limits: _descriptor.FieldDescriptor
SERVICE_LIMITS_FIELD_NUMBER: _ClassVar[int]
service_limits: _descriptor.FieldDescriptor

class FieldLimits(_message.Message):
    __slots__ = ("min_len", "max_len", "min_items", "max_items", "min_key_len", "max_key_len", "max_value_len", "min", "max", "default", "max_seconds", "max_bytes", "max_elements")
    MIN_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    MIN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MIN_KEY_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_KEY_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_LEN_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    min_len: int
    max_len: int
    min_items: int
    max_items: int
    min_key_len: int
    max_key_len: int
    max_value_len: int
    min: int
    max: int
    default: int
    max_seconds: int
    max_bytes: int
    max_elements: int
    def __init__(self, min_len: _Optional[int] = ..., max_len: _Optional[int] = ..., min_items: _Optional[int] = ..., max_items: _Optional[int] = ..., min_key_len: _Optional[int] = ..., max_key_len: _Optional[int] = ..., max_value_len: _Optional[int] = ..., min: _Optional[int] = ..., max: _Optional[int] = ..., default: _Optional[int] = ..., max_seconds: _Optional[int] = ..., max_bytes: _Optional[int] = ..., max_elements: _Optional[int] = ...) -> None: ...

class ServiceLimits(_message.Message):
    __slots__ = ("max_request_bytes",)
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_request_bytes: int
    def __init__(self, max_request_bytes: _Optional[int] = ...) -> None: ...
