"""The worker's reporter records the telemetry's calls in the SDK client, which streams
them to a real gRPC server in the test as the metrics service would receive them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from taskloom.agents.metrics_reporter import MetricsReporter
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
    assert reporter.dropped == 0


def test_without_an_address_nothing_is_sent_and_recording_still_works() -> None:
    reporter = MetricsReporter("")
    assert not reporter.enabled
    reporter.counter("taskloom_agent_tasks_total", 1, {"agent": "a", "outcome": "failed"})
    reporter.start()
