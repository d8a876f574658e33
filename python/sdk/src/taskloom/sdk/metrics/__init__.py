"""Metrics from any Python process to Taskloom's metrics service: counters, gauges and
histograms that aggregate locally and stream in batches (`MetricsClient`), and the agent
LLM metrics the service summarizes per agent and model (`AgentMetrics`)."""

from taskloom.sdk.metrics.agents import AgentMetrics
from taskloom.sdk.metrics.client import FlushResult, MetricsClient
from taskloom.sdk.metrics.families import (
    DEFAULT_BUCKETS,
    Counter,
    CounterChild,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "AgentMetrics",
    "Counter",
    "CounterChild",
    "FlushResult",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "MetricsClient",
]
