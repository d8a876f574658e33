"""Pushes the worker's samples to the metrics service (`MetricsService.Ingest`) once per
interval. Recording never blocks; when the service is down, batches are kept up to a bound
and then dropped, so tasks never wait on or fail because of metrics."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import structlog

from taskloom.v1 import metrics_pb2, metrics_pb2_grpc

log = structlog.get_logger(__name__)

_Key = tuple[str, int, tuple[tuple[str, str], ...]]


class MetricsReporter:
    """Batches samples: counter increments of one series are summed, gauges keep the
    last value, histogram observations are sent one by one."""

    def __init__(
        self,
        addr: str,
        *,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        max_pending: int = 10_000,
    ) -> None:
        self.addr = addr
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._channel: grpc.aio.Channel | None = None
        self._aggregated: dict[_Key, float] = {}
        self._observations: list[metrics_pb2.MetricSample] = []
        self._help: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self._failing = False

    @property
    def enabled(self) -> bool:
        return bool(self.addr)

    def describe(self, name: str, help_text: str) -> None:
        self._help[name] = help_text

    def counter(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._add(name, metrics_pb2.METRIC_KIND_COUNTER, value, labels)

    def gauge(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._add(name, metrics_pb2.METRIC_KIND_GAUGE, value, labels)

    def observe(self, name: str, value: float, labels: dict[str, str]) -> None:
        if not self.enabled:
            return
        if self._pending() >= self._max_pending:
            self.dropped += 1
            return
        self._observations.append(
            self._sample(name, metrics_pb2.METRIC_KIND_HISTOGRAM, value, labels)
        )

    def _add(self, name: str, kind: int, value: float, labels: dict[str, str]) -> None:
        if not self.enabled:
            return
        key = (name, kind, tuple(sorted(labels.items())))
        if key not in self._aggregated and self._pending() >= self._max_pending:
            self.dropped += 1
            return
        if kind == metrics_pb2.METRIC_KIND_COUNTER:
            self._aggregated[key] = self._aggregated.get(key, 0.0) + value
        else:
            self._aggregated[key] = value

    def _pending(self) -> int:
        return len(self._aggregated) + len(self._observations)

    def _sample(
        self,
        name: str,
        kind: int,
        value: float,
        labels: dict[str, str] | tuple[tuple[str, str], ...],
    ) -> metrics_pb2.MetricSample:
        return metrics_pb2.MetricSample(
            name=name, kind=kind, value=value, labels=dict(labels), help=self._help.get(name, "")
        )

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._channel = grpc.aio.insecure_channel(self.addr)
            self._task = asyncio.create_task(self._run(), name="metrics-reporter")

    async def stop(self) -> None:
        """Stop the loop and flush what is left (bounded by the call timeout)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self.flush()
        if self._channel is not None:
            await self._channel.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending() or self._channel is None:
            return
        aggregated, self._aggregated = self._aggregated, {}
        observations, self._observations = self._observations, []
        samples = [self._sample(n, k, v, labels) for (n, k, labels), v in aggregated.items()]
        samples.extend(observations)
        stub = metrics_pb2_grpc.MetricsServiceStub(self._channel)
        try:
            await stub.Ingest(metrics_pb2.IngestRequest(samples=samples), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as err:
            if not self._failing:  # log the outage once, not every second
                log.warning("metrics ingest failed", addr=self.addr, code=err.code().name)
            self._failing = True
            self._requeue(aggregated, observations)
            return
        if self._failing:
            log.info("metrics ingest recovered", addr=self.addr)
        self._failing = False

    def _requeue(
        self, aggregated: dict[_Key, float], observations: list[metrics_pb2.MetricSample]
    ) -> None:
        for key, value in aggregated.items():
            if key[1] == metrics_pb2.METRIC_KIND_COUNTER:
                self._aggregated[key] = self._aggregated.get(key, 0.0) + value
            else:
                self._aggregated.setdefault(key, value)
        room = max(0, self._max_pending - self._pending())
        self.dropped += max(0, len(observations) - room)
        self._observations[:0] = observations[:room]
