"""The worker's link to the metrics service: the telemetry's (name, value, labels) calls,
recorded in the SDK's `MetricsClient`, which aggregates locally and streams batches through
`IngestStream` (see taskloom.sdk.metrics). Recording never blocks and never fails a task;
an outage keeps the aggregates, and `stop()` flushes what is left."""

from __future__ import annotations

import asyncio
from typing import Any

from taskloom.sdk.metrics import MetricsClient
from taskloom.sdk.metrics.families import Family


class MetricsReporter:
    """Names and label sets as the telemetry gives them; each name becomes one metric of
    the client, its label names those of its first call, its help and (for a histogram)
    buckets those `describe` gave."""

    def __init__(
        self,
        addr: str,
        *,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        max_series: int = 10_000,
    ) -> None:
        self.client = MetricsClient(
            addr, interval_s=interval_s, timeout_s=timeout_s, max_series=max_series
        )
        self._help: dict[str, str] = {}
        self._buckets: dict[str, tuple[float, ...]] = {}
        self._families: dict[str, Family[Any]] = {}

    def describe(self, name: str, help_text: str, buckets: tuple[float, ...] = ()) -> None:
        """The help of a metric and, for a histogram, its buckets (else the client's)."""
        self._help[name] = help_text
        if buckets:
            self._buckets[name] = buckets

    def counter(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._series(self.client.counter, name, labels).inc(value)

    def gauge(self, name: str, value: float, labels: dict[str, str]) -> None:
        self._series(self.client.gauge, name, labels).set(value)

    def observe(
        self, name: str, value: float, labels: dict[str, str], trace_id: str | None = None
    ) -> None:
        self._series(self.client.histogram, name, labels).observe(value, trace_id)

    def _series(self, make: Any, name: str, labels: dict[str, str]) -> Any:
        family = self._families.get(name)
        if family is None:
            buckets = self._buckets.get(name)
            family = make(
                name,
                self._help.get(name, ""),
                tuple(sorted(labels)),
                **({"buckets": buckets} if buckets else {}),
            )
            self._families[name] = family
        return family.labels(*(labels[n] for n in family.labelnames))

    def start(self) -> None:
        self.client.start()

    async def stop(self) -> None:
        """Stop flushing and send what is left (bounded by the call timeout)."""
        await asyncio.to_thread(self.client.close)
