import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MetricKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_KIND_UNSPECIFIED: _ClassVar[MetricKind]
    METRIC_KIND_COUNTER: _ClassVar[MetricKind]
    METRIC_KIND_GAUGE: _ClassVar[MetricKind]
    METRIC_KIND_HISTOGRAM: _ClassVar[MetricKind]

class MetricSampleLimit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_SAMPLE_LIMIT_UNSPECIFIED: _ClassVar[MetricSampleLimit]
    METRIC_SAMPLE_LIMIT_MAX_NAME_BYTES: _ClassVar[MetricSampleLimit]
    METRIC_SAMPLE_LIMIT_MAX_LABELS: _ClassVar[MetricSampleLimit]
    METRIC_SAMPLE_LIMIT_MAX_LABEL_VALUE_BYTES: _ClassVar[MetricSampleLimit]
    METRIC_SAMPLE_LIMIT_MAX_HELP_BYTES: _ClassVar[MetricSampleLimit]
    METRIC_SAMPLE_LIMIT_MAX_HISTOGRAM_BOUNDS: _ClassVar[MetricSampleLimit]
    METRIC_SAMPLE_LIMIT_MAX_EXEMPLARS: _ClassVar[MetricSampleLimit]
METRIC_KIND_UNSPECIFIED: MetricKind
METRIC_KIND_COUNTER: MetricKind
METRIC_KIND_GAUGE: MetricKind
METRIC_KIND_HISTOGRAM: MetricKind
METRIC_SAMPLE_LIMIT_UNSPECIFIED: MetricSampleLimit
METRIC_SAMPLE_LIMIT_MAX_NAME_BYTES: MetricSampleLimit
METRIC_SAMPLE_LIMIT_MAX_LABELS: MetricSampleLimit
METRIC_SAMPLE_LIMIT_MAX_LABEL_VALUE_BYTES: MetricSampleLimit
METRIC_SAMPLE_LIMIT_MAX_HELP_BYTES: MetricSampleLimit
METRIC_SAMPLE_LIMIT_MAX_HISTOGRAM_BOUNDS: MetricSampleLimit
METRIC_SAMPLE_LIMIT_MAX_EXEMPLARS: MetricSampleLimit

class MetricSample(_message.Message):
    __slots__ = ("name", "kind", "value", "labels", "help", "histogram", "exemplars")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    HELP_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: MetricKind
    value: float
    labels: _containers.ScalarMap[str, str]
    help: str
    histogram: HistogramData
    exemplars: _containers.RepeatedCompositeFieldContainer[Exemplar]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[MetricKind, str]] = ..., value: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., help: _Optional[str] = ..., histogram: _Optional[_Union[HistogramData, _Mapping]] = ..., exemplars: _Optional[_Iterable[_Union[Exemplar, _Mapping]]] = ...) -> None: ...

class HistogramData(_message.Message):
    __slots__ = ("bounds", "counts", "sum")
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    bounds: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    sum: float
    def __init__(self, bounds: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ..., sum: _Optional[float] = ...) -> None: ...

class Exemplar(_message.Message):
    __slots__ = ("trace_id", "value", "time")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    value: float
    time: _timestamp_pb2.Timestamp
    def __init__(self, trace_id: _Optional[str] = ..., value: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[MetricSample]
    def __init__(self, samples: _Optional[_Iterable[_Union[MetricSample, _Mapping]]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class IngestStreamRequest(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[MetricSample]
    def __init__(self, samples: _Optional[_Iterable[_Union[MetricSample, _Mapping]]] = ...) -> None: ...

class IngestStreamResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class QueryMetricsRequest(_message.Message):
    __slots__ = ("name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Series(_message.Message):
    __slots__ = ("name", "kind", "labels", "value", "count")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: MetricKind
    labels: _containers.ScalarMap[str, str]
    value: float
    count: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[MetricKind, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class QueryMetricsResponse(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[Series]
    def __init__(self, series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ...) -> None: ...

class SummarizeAgentsRequest(_message.Message):
    __slots__ = ("window", "agent", "model")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    agent: str
    model: str
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., agent: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class AgentSummary(_message.Message):
    __slots__ = ("agent", "model", "requests", "requests_per_second", "errors", "error_ratio", "latency_p50_seconds", "latency_p90_seconds", "latency_p99_seconds", "tokens", "tokens_per_second", "cache_hit_ratio")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATIO_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P90_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATIO_FIELD_NUMBER: _ClassVar[int]
    agent: str
    model: str
    requests: float
    requests_per_second: float
    errors: float
    error_ratio: float
    latency_p50_seconds: float
    latency_p90_seconds: float
    latency_p99_seconds: float
    tokens: float
    tokens_per_second: float
    cache_hit_ratio: float
    def __init__(self, agent: _Optional[str] = ..., model: _Optional[str] = ..., requests: _Optional[float] = ..., requests_per_second: _Optional[float] = ..., errors: _Optional[float] = ..., error_ratio: _Optional[float] = ..., latency_p50_seconds: _Optional[float] = ..., latency_p90_seconds: _Optional[float] = ..., latency_p99_seconds: _Optional[float] = ..., tokens: _Optional[float] = ..., tokens_per_second: _Optional[float] = ..., cache_hit_ratio: _Optional[float] = ...) -> None: ...

class SummarizeAgentsResponse(_message.Message):
    __slots__ = ("agents", "window")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentSummary]
    window: _duration_pb2.Duration
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentSummary, _Mapping]]] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
