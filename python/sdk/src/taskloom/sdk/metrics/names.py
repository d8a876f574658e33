"""The rules for metric and label names and the sample limits, as the metrics service
applies them; the limits come from the proto's `MetricSampleLimit`, so they cannot drift."""

from __future__ import annotations

import math
import re
from itertools import pairwise

from taskloom.v1 import metrics_pb2

MAX_NAME_BYTES = metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_NAME_BYTES
MAX_LABELS = metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_LABELS
MAX_LABEL_VALUE_BYTES = metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_LABEL_VALUE_BYTES
MAX_HELP_BYTES = metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_HELP_BYTES
MAX_HISTOGRAM_BOUNDS = metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_HISTOGRAM_BOUNDS

# Names under this prefix are the metrics service's own (proto: MetricSample).
RESERVED_PREFIX = "taskloom_metrics_"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def check_metric_name(name: str) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"metric name {name!r} must match [a-zA-Z_:][a-zA-Z0-9_:]*")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"metric name {name!r} is longer than {MAX_NAME_BYTES} bytes")
    if name.startswith(RESERVED_PREFIX):
        raise ValueError(f"metric names starting {RESERVED_PREFIX!r} are the metrics service's own")


def check_label_names(names: tuple[str, ...], *, histogram: bool) -> None:
    if len(names) > MAX_LABELS:
        raise ValueError(f"{len(names)} labels; at most {MAX_LABELS} are allowed")
    if len(set(names)) != len(names):
        raise ValueError(f"label names repeat: {names}")
    for name in names:
        if not _LABEL_NAME.fullmatch(name) or len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(
                f"label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]* "
                f"and be at most {MAX_NAME_BYTES} bytes"
            )
        if name.startswith("__"):
            raise ValueError(f"label name {name!r}: names starting '__' are reserved")
        if histogram and name == "le":
            raise ValueError("label name 'le' is reserved for histogram buckets")


def check_label_value(name: str, value: str) -> None:
    if len(value.encode()) > MAX_LABEL_VALUE_BYTES:
        raise ValueError(f"label {name!r}: value longer than {MAX_LABEL_VALUE_BYTES} bytes")


def check_help(help_text: str) -> None:
    if len(help_text.encode()) > MAX_HELP_BYTES:
        raise ValueError(f"help is longer than {MAX_HELP_BYTES} bytes")


def check_buckets(bounds: tuple[float, ...]) -> None:
    if len(bounds) > MAX_HISTOGRAM_BOUNDS:
        raise ValueError(f"at most {MAX_HISTOGRAM_BOUNDS} bucket bounds are allowed")
    if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in pairwise(bounds)):
        raise ValueError(
            f"bucket bounds {bounds} must be finite and strictly increasing (+Inf is implied)"
        )


def check_trace_id(trace_id: str) -> None:
    if not _TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        raise ValueError(f"trace id {trace_id!r} is not 32 lowercase hex digits, not all zero")
