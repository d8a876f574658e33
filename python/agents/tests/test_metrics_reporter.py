"""The worker's reporter records the telemetry's calls in the SDK client, which streams
them to a real gRPC server in the test as the metrics service would receive them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from prometheus_client import CollectorRegistry

from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.telemetry import TASK_BUCKETS, TOOL_BUCKETS, Telemetry
from taskloom.v1 import metrics_pb2, metrics_pb2_grpc


class Received(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.samples: list[metrics_pb2.MetricSample] = []

    def IngestStream(
        self, request_iterator: Iterator[metrics_pb2.IngestStreamRequest], context: object
    ) -> metrics_pb2.IngestStreamResponse:
        for request in request_iterator:
            self.samples.extend(request.samples)
        return metrics_pb2.IngestStreamResponse(accepted=len(self.samples))


@pytest.fixture
def received() -> Iterator[tuple[Received, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = Received()
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


@pytest.mark.asyncio
async def test_telemetry_calls_reach_the_service_aggregated_on_stop(
    received: tuple[Received, str],
) -> None:
    servicer, addr = received
    reporter = MetricsReporter(addr, interval_s=3600)
    reporter.describe("taskloom_agent_tasks_total", "Agent tasks finished.")
    reporter.start()
    for outcome in ("succeeded", "succeeded", "failed"):
        reporter.counter("taskloom_agent_tasks_total", 1, {"outcome": outcome, "agent": "a"})
    reporter.gauge("taskloom_agent_tasks_running", 2, {})
    reporter.observe("taskloom_agent_task_duration_seconds", 0.3, {"agent": "a"})
    await reporter.stop()

    got = {(s.name, tuple(sorted(s.labels.items()))): s for s in servicer.samples}
    tasks = got[("taskloom_agent_tasks_total", (("agent", "a"), ("outcome", "succeeded")))]
    assert tasks.value == 2 and tasks.help == "Agent tasks finished."
    assert got[("taskloom_agent_tasks_running", ())].value == 2
    duration = got[("taskloom_agent_task_duration_seconds", (("agent", "a"),))]
    assert sum(duration.histogram.counts) == 1 and duration.histogram.sum == 0.3
    assert reporter.client.dropped_series == 0


def test_without_an_address_nothing_is_sent_and_recording_still_works() -> None:
    reporter = MetricsReporter("")
    assert not reporter.client.enabled
    reporter.counter("taskloom_agent_tasks_total", 1, {"agent": "a", "outcome": "failed"})
    reporter.start()


def test_the_service_gets_the_buckets_of_the_worker_histograms(client_samples) -> None:
    """The task and tool durations go past the client's default buckets (10 s): the metrics
    service's histograms have the same buckets as the worker's own."""
    reporter = MetricsReporter("")
    telemetry = Telemetry(reporter, registry=CollectorRegistry())
    telemetry.task_started()
    telemetry.task_finished("a", "succeeded", 200.0)
    telemetry.tool_call("python", "ok", 20.0)
    samples = client_samples(reporter.client)
    task = samples[("taskloom_agent_task_duration_seconds", (("agent", "a"),))].histogram
    assert tuple(task.bounds) == TASK_BUCKETS and task.counts[TASK_BUCKETS.index(300)] == 1
    tool = samples[("taskloom_agent_tool_duration_seconds", (("tool", "python"),))].histogram
    assert tuple(tool.bounds) == TOOL_BUCKETS and tool.counts[TOOL_BUCKETS.index(30)] == 1
