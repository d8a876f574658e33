"""The client any Python process uses to send metrics to Taskloom's metrics service.

Record calls add up locally (see `families`); a background thread flushes every
`interval_s` through one `IngestStream` call, in batches. What a failed flush took is put
back, so an outage costs no memory beyond the series themselves (bounded by
`max_series`; series beyond it are dropped and counted) and loses nothing that was
recorded; `close()` flushes one last time.
"""

from __future__ import annotations

import atexit
import re
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

import grpc
import structlog
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from taskloom.sdk import tracing
from taskloom.sdk.metrics.families import (
    DEFAULT_BUCKETS,
    Counter,
    Family,
    Gauge,
    Histogram,
)
from taskloom.v1 import metrics_pb2

log = structlog.get_logger("taskloom.sdk.metrics")

_SAMPLE_INDEX = re.compile(r"samples\[(\d+)\]")
F = TypeVar("F", bound=Family[Any])


@dataclass(frozen=True)
class FlushResult:
    """What one flush did."""

    sent: int = 0
    accepted: int = 0
    # Dropped by the service's limits (series per metric, series in all).
    dropped: int = 0
    # Refused as bad input; their metric is no longer sent.
    refused: int = 0
    # Why the flush failed; what it took was kept for the next one.
    error: str | None = None


class _Taken(NamedTuple):
    family: Family[Any]
    child: Any
    delta: Any


class MetricsClient:
    """Counters, gauges and histograms for one process, flushed to the metrics service at
    `addr` (`host:port`; empty disables sending, recording still works)."""

    def __init__(
        self,
        addr: str,
        *,
        interval_s: float = 1.0,
        timeout_s: float = 5.0,
        batch_size: int = 1000,
        max_series: int = 10_000,
        keepalive_s: float = 30.0,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0 or batch_size < 1 or max_series < 1:
            raise ValueError("interval_s, timeout_s, batch_size and max_series must be positive")
        self.addr = addr
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        self._max_series = max_series
        # Unchanged series are sent at least this often, so the service does not expire them.
        self._keepalive_s = keepalive_s
        self._families: dict[str, Family[Any]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._series = 0
        self._channel = tracing.sync_channel(addr) if addr else None
        # Requests go out as bytes that `_encode` framed (see there).
        self._ingest_stream: (
            grpc.StreamUnaryMultiCallable[bytes, metrics_pb2.IngestStreamResponse] | None
        ) = (
            self._channel.stream_unary(
                "/taskloom.v1.MetricsService/IngestStream",
                response_deserializer=metrics_pb2.IngestStreamResponse.FromString,
            )
            if self._channel is not None
            else None
        )
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._failing = False
        # Counted drops: new series beyond max_series, samples the service dropped at its
        # limits, samples it refused as bad input.
        self.dropped_series = 0
        self.dropped_samples = 0
        self.refused_samples = 0

    @property
    def enabled(self) -> bool:
        return self._ingest_stream is not None

    # --- metrics -------------------------------------------------------------------------

    def counter(self, name: str, help: str = "", labelnames: tuple[str, ...] = ()) -> Counter:
        return self._register(Counter, name, help, tuple(labelnames))

    def gauge(self, name: str, help: str = "", labelnames: tuple[str, ...] = ()) -> Gauge:
        return self._register(Gauge, name, help, tuple(labelnames))

    def histogram(
        self,
        name: str,
        help: str = "",
        labelnames: tuple[str, ...] = (),
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> Histogram:
        family = self._register(Histogram, name, help, tuple(labelnames), buckets=tuple(buckets))
        wanted = tuple(float(b) for b in buckets if b != float("inf"))
        if family.bounds != wanted:
            raise ValueError(f"histogram {name} exists with buckets {family.bounds}")
        return family

    def _register(
        self, kind: type[F], name: str, help: str, labelnames: tuple[str, ...], **extra: Any
    ) -> F:
        with self._lock:
            existing = self._families.get(name)
            if existing is None:
                family = kind(self, name, help, labelnames, **extra)
                self._families[name] = family
                return family
        if not isinstance(existing, kind) or existing.labelnames != labelnames:
            raise ValueError(
                f"metric {name} exists as a {type(existing).__name__.lower()} "
                f"with labels {existing.labelnames}"
            )
        return existing

    def _reserve_series(self) -> bool:
        with self._lock:
            if self._series >= self._max_series:
                self.dropped_series += 1
                return False
            self._series += 1
            return True

    def _release_series(self) -> None:
        with self._lock:
            self._series -= 1

    # --- flushing ------------------------------------------------------------------------

    def start(self) -> None:
        """Flushes every `interval_s` from a daemon thread, and at interpreter exit."""
        if not self.enabled or self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="taskloom-metrics", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.flush()
            except Exception:  # the loop must outlive any one flush
                log.exception("metrics flush failed unexpectedly", addr=self.addr)

    def close(self, timeout_s: float | None = None) -> FlushResult:
        """Stops the thread and flushes what is left; later calls do nothing."""
        if self._closed:
            return FlushResult()
        self._closed = True
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self._timeout_s * 2)
        try:
            return self.flush()
        finally:
            if self._channel is not None:
                self._channel.close()

    def flush(self) -> FlushResult:
        """Sends what changed since the last flush through one IngestStream call."""
        if self._ingest_stream is None:
            return FlushResult()
        with self._flush_lock:
            now = time.monotonic()
            taken = self._take_all(now)
            if not taken:
                return FlushResult()
            samples = _encode(taken)
            size = self._batch_size
            requests = (b"".join(samples[i : i + size]) for i in range(0, len(samples), size))
            try:
                response = self._ingest_stream(requests, timeout=self._timeout_s)
            except grpc.RpcError as err:
                return self._failed(err, taken, now)
            for item in taken:
                item.child._sent_at = now
            self.dropped_samples += response.rejected
            if self._failing:
                log.info("metrics service reachable again", addr=self.addr)
                self._failing = False
            return FlushResult(
                sent=len(samples), accepted=response.accepted, dropped=response.rejected
            )

    def _take_all(self, now: float) -> list[_Taken]:
        with self._lock:
            families = [f for f in self._families.values() if f.refused is None]
        taken = []
        for family in families:
            with family._lock:
                for child in family._series:
                    delta = child._take(now, self._keepalive_s)
                    if delta is not None:
                        taken.append(_Taken(family, child, delta))
        return taken

    def _failed(self, err: grpc.RpcError, taken: list[_Taken], now: float) -> FlushResult:
        """Keeps what was not applied for the next flush, except what was refused."""
        call = cast(grpc.Call, err)  # a synchronous call's error is also the call
        code = call.code()
        detail = call.details() or ""
        applied_batches, bad_index = _progress(err)
        applied = min(len(taken), applied_batches * self._batch_size)
        for item in taken[:applied]:
            item.child._sent_at = now
        rest = taken[applied:]
        refused: set[int] = set()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            # The first batch not applied holds bad input: give up its metric when the
            # service named the sample, else that whole batch, so it is not sent forever.
            if bad_index is not None and bad_index < len(rest):
                family = rest[bad_index].family
                family.refused = detail
                refused = {id(item) for item in rest if item.family is family}
            else:
                refused = {id(item) for item in rest[: self._batch_size]}
            log.error("metrics service refused samples; not sending them again", error=detail)
        elif not self._failing:
            log.warning(
                "metrics service unreachable; keeping samples", addr=self.addr, code=code.name
            )
            self._failing = True
        for item in rest:
            if id(item) not in refused:
                with item.family._lock:
                    item.child._give_back(item.delta)
        self.refused_samples += len(refused)
        return FlushResult(
            sent=len(taken), accepted=applied, refused=len(refused), error=f"{code.name}: {detail}"
        )


def _progress(err: grpc.RpcError) -> tuple[int, int | None]:
    """From a failed IngestStream: batches applied before it failed, and the index of the
    bad sample within the next batch when the failure names one."""
    try:
        # The RpcError a synchronous call raises is also its grpc.Call.
        status = rpc_status.from_call(cast(grpc.Call, err))
    except ValueError:
        status = None
    applied, bad = 0, None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            value = info.metadata.get("accepted_batches", "0")
            applied = int(value) if value.isdigit() else 0
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                match = _SAMPLE_INDEX.match(violation.field)
                if match:
                    bad = int(match.group(1))
    return applied, bad


# Protobuf framing for the parts of an IngestStreamRequest that change at every flush.
# Python's protobuf builds a message with a map field (the labels) in about 15 µs, which
# would hold the GIL for 150 ms per 10,000 series; so each series' name, kind and labels
# are encoded by protobuf once, and a flush appends the value and frames the sample.
_SAMPLES_FIELD = b"\x0a"  # IngestStreamRequest.samples = 1, length-delimited
_VALUE_FIELD = b"\x19"  # MetricSample.value = 3, 64-bit
_HELP_FIELD = 5
_HISTOGRAM_FIELD = b"\x32"  # MetricSample.histogram = 6, length-delimited
_EXEMPLARS_FIELD = b"\x3a"  # MetricSample.exemplars = 7, length-delimited
_double = struct.Struct("<d").pack


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _identity(family: Family[Any], child: Any) -> bytes:
    if not child._identity:
        child._identity = metrics_pb2.MetricSample(
            name=family.name, kind=family.kind, labels=child.labels
        ).SerializeToString()
    identity: bytes = child._identity
    return identity


def _encode(taken: list[_Taken]) -> list[bytes]:
    """Each taken series as an encoded `samples` entry of an IngestStreamRequest; the first
    of each metric carries its help."""
    samples = []
    described: set[int] = set()
    for item in taken:
        family = item.family
        parts = [_identity(family, item.child)]
        if family.help and id(family) not in described:
            described.add(id(family))
            parts.append(metrics_pb2.MetricSample(help=family.help).SerializeToString())
        if isinstance(family, Histogram):
            counts, total, exemplars = item.delta
            data = metrics_pb2.HistogramData(bounds=family.bounds, counts=counts, sum=total)
            parts.append(_delimited(_HISTOGRAM_FIELD, data.SerializeToString()))
            for trace_id, value, at in (exemplars or {}).values():
                exemplar = metrics_pb2.Exemplar(trace_id=trace_id, value=value)
                exemplar.time.FromNanoseconds(int(at * 1e9))
                parts.append(_delimited(_EXEMPLARS_FIELD, exemplar.SerializeToString()))
        else:
            parts.append(_VALUE_FIELD + _double(item.delta))
        samples.append(_delimited(_SAMPLES_FIELD, b"".join(parts)))
    return samples
