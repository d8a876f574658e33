"""Counters, gauges and histograms as a Python process records them: each series adds up
locally under its family's lock, so a record call is a few attribute updates (no queue, no
allocation), and the client takes what changed when it flushes."""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Generic, TypeVar

from taskloom.sdk.metrics import names
from taskloom.v1 import metrics_pb2

if TYPE_CHECKING:
    from taskloom.sdk.metrics.client import MetricsClient

_INF = math.inf

# Prometheus' default buckets; the metrics service gives a histogram these when its first
# sample is a single observation (proto: HistogramData), so both must agree.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CounterChild:
    """One counter series."""

    __slots__ = ("_identity", "_lock", "_sent_at", "_value", "labels")

    def __init__(self, lock: threading.Lock, labels: dict[str, str]) -> None:
        self._lock = lock
        self._value = 0.0  # added since the last flush
        self._sent_at = 0.0
        self._identity = b""  # the encoded name, kind and labels, made at the first flush
        self.labels = labels

    def inc(self, amount: float = 1.0) -> None:
        if not 0.0 <= amount < _INF:
            raise ValueError(f"a counter goes up by finite amounts >= 0, not {amount}")
        with self._lock:
            self._value += amount

    # The flush side, called with the family's lock held.
    def _take(self, now: float, keepalive_s: float) -> float | None:
        if self._value == 0.0 and now - self._sent_at < keepalive_s:
            return None
        taken, self._value = self._value, 0.0
        return taken

    def _give_back(self, taken: float) -> None:
        self._value += taken


class GaugeChild:
    """One gauge series."""

    __slots__ = ("_changed", "_identity", "_lock", "_sent_at", "_value", "labels")

    def __init__(self, lock: threading.Lock, labels: dict[str, str]) -> None:
        self._lock = lock
        self._value = 0.0
        self._changed = False
        self._sent_at = 0.0
        self._identity = b""
        self.labels = labels

    def set(self, value: float) -> None:
        if value != value:
            raise ValueError("a gauge value must not be NaN")
        with self._lock:
            self._value = value
            self._changed = True

    def inc(self, amount: float = 1.0) -> None:
        if amount != amount:
            raise ValueError("a gauge change must not be NaN")
        with self._lock:
            self._value += amount
            self._changed = True

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    def _take(self, now: float, keepalive_s: float) -> float | None:
        if not self._changed and now - self._sent_at < keepalive_s:
            return None
        self._changed = False
        return self._value

    def _give_back(self, _taken: float) -> None:
        self._changed = True


# What a flush takes from a histogram: per-bucket counts, their sum, exemplars by bucket.
HistogramDelta = tuple[list[int], float, dict[int, tuple[str, float, float]] | None]


class HistogramChild:
    """One histogram series: per-bucket counts, their sum, the latest traced observation
    of each bucket (its exemplar)."""

    __slots__ = (
        "_bounds",
        "_counts",
        "_exemplars",
        "_identity",
        "_lock",
        "_sent_at",
        "_sum",
        "labels",
    )

    def __init__(
        self, lock: threading.Lock, labels: dict[str, str], bounds: tuple[float, ...]
    ) -> None:
        self._lock = lock
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # since the last flush; the last is +Inf
        self._sum = 0.0
        self._exemplars: dict[int, tuple[str, float, float]] | None = None
        self._sent_at = 0.0
        self._identity = b""
        self.labels = labels

    def observe(self, value: float, trace_id: str | None = None) -> None:
        """Records one observation; `trace_id` (W3C, 32 hex digits) makes it the exemplar
        of its bucket."""
        if not -_INF < value < _INF:
            raise ValueError(f"a histogram observation must be finite, not {value}")
        bucket = bisect_left(self._bounds, value)
        with self._lock:
            self._counts[bucket] += 1
            self._sum += value
        if trace_id is not None:
            names.check_trace_id(trace_id)
            with self._lock:
                if self._exemplars is None:
                    self._exemplars = {}
                self._exemplars[bucket] = (trace_id, value, time.time())

    def _take(self, now: float, keepalive_s: float) -> HistogramDelta | None:
        idle = self._exemplars is None and not any(self._counts)
        if idle and now - self._sent_at < keepalive_s:
            return None
        taken = (self._counts, self._sum, self._exemplars)
        self._counts, self._sum, self._exemplars = [0] * len(self._counts), 0.0, None
        return taken

    def _give_back(self, taken: HistogramDelta) -> None:
        counts, total, exemplars = taken
        for bucket, count in enumerate(counts):
            self._counts[bucket] += count
        self._sum += total
        if exemplars:
            mine = self._exemplars if self._exemplars is not None else {}
            for bucket, exemplar in exemplars.items():
                mine.setdefault(bucket, exemplar)
            self._exemplars = mine


class _NeedsLabels:
    """Stands for the series of a family with labels, which has none of its own."""

    __slots__ = ("_why",)

    def __init__(self, why: str) -> None:
        self._why = why

    def _refuse(self, *_: object, **__: object) -> None:
        raise ValueError(self._why)

    inc = dec = set = observe = _refuse


ChildT = TypeVar("ChildT", CounterChild, GaugeChild, HistogramChild)


class Family(Generic[ChildT]):
    """All series of one metric. With label names, `labels(*values)` picks a series;
    without, the family records itself."""

    kind: metrics_pb2.MetricKind.ValueType

    def __init__(
        self, client: MetricsClient, name: str, help_text: str, labelnames: tuple[str, ...]
    ) -> None:
        names.check_metric_name(name)
        names.check_help(help_text)
        names.check_label_names(
            labelnames, histogram=self.kind == metrics_pb2.METRIC_KIND_HISTOGRAM
        )
        self.name = name
        self.help = help_text
        self.labelnames = labelnames
        self._client = client
        self._lock = threading.Lock()
        # By label values as given and as text; `_series` holds each series once.
        self._children: dict[tuple[object, ...], ChildT] = {}
        self._series: list[ChildT] = []
        # Set when the metrics service refused this metric (e.g. another kind holds its name).
        self.refused: str | None = None
        self._default: ChildT | _NeedsLabels
        if labelnames:
            self._default = _NeedsLabels(f"{name} has labels {labelnames}: use labels(...)")
        else:
            child = self._new_child(())
            self._default = self._children[()] = child
            self._series.append(child)

    def labels(self, *values: object) -> ChildT:
        """The series with these label values (in `labelnames` order), made on first use."""
        child = self._children.get(values)
        if child is None:
            return self._add_child(values)
        return child

    def remove(self, *values: object) -> None:
        """Stops reporting a series; the metrics service expires it after its TTL."""
        with self._lock:
            child = self._children.get(values)
            if child is None:
                return
            for key in [k for k, c in self._children.items() if c is child]:
                del self._children[key]
            self._series.remove(child)
        self._client._release_series()

    def _add_child(self, values: tuple[object, ...]) -> ChildT:
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"{self.name} takes {len(self.labelnames)} label values "
                f"{self.labelnames}, not {len(values)}"
            )
        text = tuple(str(v) for v in values)
        for label, value in zip(self.labelnames, text, strict=True):
            names.check_label_value(label, value)
        with self._lock:
            child = self._children.get(values) or self._children.get(text)
            if child is None:
                child = self._new_child(text)
                if not self._client._reserve_series():
                    # Beyond the client's bound: recorded nowhere, and counted.
                    return child
                self._children[text] = child
                self._series.append(child)
            self._children[values] = child
            return child

    def _new_child(self, values: tuple[str, ...]) -> ChildT:
        raise NotImplementedError


class Counter(Family[CounterChild]):
    kind = metrics_pb2.METRIC_KIND_COUNTER

    def _new_child(self, values: tuple[str, ...]) -> CounterChild:
        return CounterChild(self._lock, dict(zip(self.labelnames, values, strict=True)))

    def inc(self, amount: float = 1.0) -> None:
        self._default.inc(amount)


class Gauge(Family[GaugeChild]):
    kind = metrics_pb2.METRIC_KIND_GAUGE

    def _new_child(self, values: tuple[str, ...]) -> GaugeChild:
        return GaugeChild(self._lock, dict(zip(self.labelnames, values, strict=True)))

    def set(self, value: float) -> None:
        self._default.set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._default.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._default.dec(amount)


class Histogram(Family[HistogramChild]):
    kind = metrics_pb2.METRIC_KIND_HISTOGRAM

    def __init__(
        self,
        client: MetricsClient,
        name: str,
        help_text: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if b != _INF)
        names.check_buckets(bounds)
        self.bounds = bounds
        super().__init__(client, name, help_text, labelnames)

    def _new_child(self, values: tuple[str, ...]) -> HistogramChild:
        return HistogramChild(
            self._lock, dict(zip(self.labelnames, values, strict=True)), self.bounds
        )

    def observe(self, value: float, trace_id: str | None = None) -> None:
        self._default.observe(value, trace_id)
