"""The SDK metrics client against a real gRPC server in the test that records what it
receives and can fail or refuse on demand (the real metrics service is in tests/e2e)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from taskloom.sdk.metrics import DEFAULT_BUCKETS, MetricsClient
from taskloom.sdk.metrics.client import _encode
from taskloom.testing.tracing import captured_spans
from taskloom.v1 import metrics_pb2, metrics_pb2_grpc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Recorder(metrics_pb2_grpc.MetricsServiceServicer):
    """Keeps every batch; `down` answers UNAVAILABLE; `refuse` names a metric refused as
    the real service refuses bad input (INVALID_ARGUMENT naming the sample)."""

    def __init__(self) -> None:
        self.batches: list[list[metrics_pb2.MetricSample]] = []
        self.down = False
        self.refuse: str | None = None
        self.traceparents: list[str | bytes | None] = []  # each call's traceparent metadata

    def IngestStream(
        self,
        request_iterator: Iterator[metrics_pb2.IngestStreamRequest],
        context: grpc.ServicerContext,
    ) -> metrics_pb2.IngestStreamResponse:
        self.traceparents.append(dict(context.invocation_metadata()).get("traceparent"))
        if self.down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "down for the test")
        accepted = 0
        for applied, request in enumerate(request_iterator):
            for index, sample in enumerate(request.samples):
                if sample.name == self.refuse:
                    self._refuse(context, applied, index)
            self.batches.append(list(request.samples))
            accepted += len(request.samples)
        return metrics_pb2.IngestStreamResponse(accepted=accepted)

    # The client calls IngestStream only.
    def Ingest(
        self, request: metrics_pb2.IngestRequest, context: grpc.ServicerContext
    ) -> metrics_pb2.IngestResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    def QueryMetrics(
        self, request: metrics_pb2.QueryMetricsRequest, context: grpc.ServicerContext
    ) -> metrics_pb2.QueryMetricsResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    def SummarizeAgents(
        self, request: metrics_pb2.SummarizeAgentsRequest, context: grpc.ServicerContext
    ) -> metrics_pb2.SummarizeAgentsResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    @staticmethod
    def _refuse(context: grpc.ServicerContext, applied: int, index: int) -> None:
        info = error_details_pb2.ErrorInfo(
            reason="INVALID_ARGUMENT",
            domain="taskloom.dev",
            metadata={"accepted_batches": str(applied)},
        )
        bad = error_details_pb2.BadRequest(
            field_violations=[{"field": f"samples[{index}].kind", "description": "a gauge"}]
        )
        details = [any_pb2.Any(), any_pb2.Any()]
        details[0].Pack(info)
        details[1].Pack(bad)
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="refused", details=details
        )
        context.abort_with_status(rpc_status.to_status(status))

    def samples(self) -> list[metrics_pb2.MetricSample]:
        return [s for batch in self.batches for s in batch]


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = Recorder()
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def by_labels(
    samples: list[metrics_pb2.MetricSample],
) -> dict[tuple[str, ...], metrics_pb2.MetricSample]:
    return {(s.name, *sorted(s.labels.values())): s for s in samples}


def test_records_aggregate_locally_into_one_sample_per_series(
    recorder: tuple[Recorder, str],
) -> None:
    server, addr = recorder
    client = MetricsClient(addr, keepalive_s=3600)
    tasks = client.counter("tasks_total", "Tasks.", ("agent",))
    running = client.gauge("running", "Running now.")
    latency = client.histogram("latency_seconds", "Latency.", ("agent",), buckets=(0.1, 1.0))
    for _ in range(3):
        tasks.labels("a").inc()
    tasks.labels("b").inc(2.5)
    running.set(7)
    running.dec(2)
    latency.labels("a").observe(0.05)
    latency.labels("a").observe(0.5, trace_id=TRACE_ID)
    latency.labels("a").observe(30)

    result = client.flush()

    assert (result.sent, result.accepted, result.error) == (4, 4, None)
    got = by_labels(server.samples())
    assert got[("tasks_total", "a")].value == 3
    assert got[("tasks_total", "a")].kind == metrics_pb2.METRIC_KIND_COUNTER
    assert got[("tasks_total", "b")].value == 2.5
    assert got[("running",)].value == 5
    histogram = got[("latency_seconds", "a")]
    assert list(histogram.histogram.bounds) == [0.1, 1.0]
    assert list(histogram.histogram.counts) == [1, 1, 1]
    assert histogram.histogram.sum == 30.55
    assert [(e.trace_id, e.value) for e in histogram.exemplars] == [(TRACE_ID, 0.5)]
    # Help travels once per metric per flush.
    assert [s.help for s in server.samples() if s.name == "tasks_total"].count("Tasks.") == 1


def test_a_flush_sends_what_changed_and_unchanged_series_only_to_keep_them_alive(
    recorder: tuple[Recorder, str],
) -> None:
    server, addr = recorder
    quiet = MetricsClient(addr, keepalive_s=3600)
    counter = quiet.counter("c_total")
    counter.inc()
    quiet.flush()
    assert quiet.flush().sent == 0
    counter.inc(4)
    assert quiet.flush().sent == 1
    assert [s.value for s in server.samples()] == [1, 4]

    alive = MetricsClient(addr, keepalive_s=0)
    alive.gauge("g").set(1)
    alive.flush()
    assert alive.flush().sent == 1  # the unchanged gauge, again


def test_an_outage_loses_nothing_and_grows_nothing(recorder: tuple[Recorder, str]) -> None:
    server, addr = recorder
    client = MetricsClient(addr, keepalive_s=3600, timeout_s=2)
    counter = client.counter("c_total", labelnames=("k",))
    histogram = client.histogram("h_seconds")
    server.down = True
    for flush in range(3):
        counter.labels("x").inc(10)
        histogram.observe(0.2, trace_id=TRACE_ID)
        result = client.flush()
        assert result.error is not None and result.error.startswith("UNAVAILABLE"), flush
    server.down = False
    assert client.flush().accepted == 2
    got = by_labels(server.samples())
    assert got[("c_total", "x")].value == 30
    assert sum(got[("h_seconds",)].histogram.counts) == 3
    assert math.isclose(got[("h_seconds",)].histogram.sum, 0.6)
    assert len(got[("h_seconds",)].exemplars) == 1


def test_a_refused_metric_is_dropped_and_counted_the_rest_is_sent_again(
    recorder: tuple[Recorder, str],
) -> None:
    server, addr = recorder
    client = MetricsClient(addr, keepalive_s=3600, batch_size=2)
    for name in ("a_total", "b_total", "bad_total", "d_total"):
        client.counter(name).inc()
    server.refuse = "bad_total"

    result = client.flush()

    # Batch one (a, b) was applied; batch two (bad, d) was refused at `bad`.
    assert (result.accepted, result.refused) == (2, 1)
    assert client.refused_samples == 1
    server.refuse = None
    client.counter("bad_total").inc()
    assert client.flush().sent == 1  # d, not bad
    assert sorted(s.name for s in server.samples()) == ["a_total", "b_total", "d_total"]


def test_series_beyond_the_bound_are_dropped_and_counted(recorder: tuple[Recorder, str]) -> None:
    server, addr = recorder
    client = MetricsClient(addr, max_series=2)
    family = client.counter("per_user_total", labelnames=("user",))
    for user in ("u1", "u2", "u3", "u3"):
        family.labels(user).inc()
    assert client.dropped_series == 2
    client.flush()
    assert sorted(s.labels["user"] for s in server.samples()) == ["u1", "u2"]
    family.remove("u1")
    family.labels("u3").inc()
    assert client.dropped_series == 2


def test_label_values_are_strings_and_one_series_per_value(recorder: tuple[Recorder, str]) -> None:
    server, addr = recorder
    client = MetricsClient(addr)
    family = client.counter("codes_total", labelnames=("code",))
    family.labels(200).inc()
    family.labels("200").inc()
    client.flush()
    assert [(s.labels["code"], s.value) for s in server.samples()] == [("200", 2)]


def test_close_flushes_what_is_left_and_threads_lose_no_increment(
    recorder: tuple[Recorder, str],
) -> None:
    server, addr = recorder
    client = MetricsClient(addr, interval_s=0.01)
    client.start()
    counter = client.counter("hits_total", labelnames=("t",))

    def work(t: int) -> None:
        for _ in range(5000):
            counter.labels(str(t % 2)).inc()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    totals: dict[str, float] = {}
    for sample in server.samples():
        totals[sample.labels["t"]] = totals.get(sample.labels["t"], 0) + sample.value
    assert totals == {"0": 10000, "1": 10000}
    assert client.close().sent == 0  # closing twice does nothing


def test_bad_use_is_a_clear_error_at_the_call() -> None:
    client = MetricsClient("")
    assert not client.enabled and client.flush().sent == 0
    cases: list[Callable[[], object]] = [
        lambda: client.counter("bad-name"),
        lambda: client.counter("taskloom_metrics_series"),
        lambda: client.counter("ok_total", labelnames=("__x",)),
        lambda: client.histogram("h", labelnames=("le",)),
        lambda: client.histogram("h2", buckets=(1.0, 0.5)),
        lambda: client.counter("c_total").inc(-1),
        lambda: client.counter("c_total").inc(math.nan),
        lambda: client.gauge("g").set(math.nan),
        lambda: client.histogram("h3").observe(math.inf),
        lambda: client.histogram("h3").observe(1, trace_id="not-a-trace"),
        lambda: client.counter("l_total", labelnames=("a", "b")).labels("only-one"),
        lambda: client.counter("l2_total", labelnames=("a",)).inc(),
        lambda: client.gauge("c_total"),
    ]
    for case in cases:
        with pytest.raises(ValueError):
            case()
    assert client.histogram("d").bounds == DEFAULT_BUCKETS


def test_the_framed_request_is_what_protobuf_decodes() -> None:
    client = MetricsClient("")
    client.counter("c_total", "Counts.", ("a", "b")).labels("x", "ü").inc(2.5)
    client.gauge("g").set(-1)
    client.histogram("h_seconds", "Latency.", buckets=(1.0,)).observe(0.5, trace_id=TRACE_ID)

    encoded = b"".join(_encode(client._take_all(time.monotonic())))
    request = metrics_pb2.IngestStreamRequest.FromString(encoded)

    counter, gauge, histogram = request.samples
    assert (counter.name, counter.kind, counter.value) == ("c_total", 1, 2.5)
    assert dict(counter.labels) == {"a": "x", "b": "ü"} and counter.help == "Counts."
    assert (gauge.name, gauge.kind, gauge.value, gauge.help) == ("g", 2, -1, "")
    assert histogram.kind == metrics_pb2.METRIC_KIND_HISTOGRAM and histogram.value == 0
    assert (list(histogram.histogram.bounds), list(histogram.histogram.counts)) == ([1.0], [1, 0])
    assert histogram.histogram.sum == 0.5
    assert [(e.trace_id, e.value) for e in histogram.exemplars] == [(TRACE_ID, 0.5)]
    assert abs(histogram.exemplars[0].time.ToNanoseconds() / 1e9 - time.time()) < 3600


def test_traced_a_flush_is_a_root_client_span_whose_context_the_service_receives(
    recorder: tuple[Recorder, str],
) -> None:
    server, addr = recorder
    with captured_spans() as exporter:
        client = MetricsClient(addr)  # made while tracing is on: its calls are traced
        client.counter("tasks_total", "Tasks.").inc()
        assert client.flush().accepted == 1
        server.down = True
        client.counter("tasks_total", "Tasks.").inc()
        assert client.flush().error is not None
        client.close()
        spans = exporter.get_finished_spans()
    ok, failed = [s for s in spans if s.name == "taskloom.v1.MetricsService/IngestStream"][:2]
    assert ok.parent is None and ok.kind.name == "CLIENT"
    assert (ok.attributes or {})["rpc.grpc.status_code"] == 0
    assert (failed.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert not failed.status.is_ok
    # Flags 03: sampled, and a random trace id (W3C level 2), as the SDK marks its roots.
    assert server.traceparents[0] == f"00-{ok.context.trace_id:032x}-{ok.context.span_id:016x}-03"


def test_untraced_a_flush_sends_no_trace_context(recorder: tuple[Recorder, str]) -> None:
    server, addr = recorder
    client = MetricsClient(addr)
    client.counter("tasks_total", "Tasks.").inc()
    client.close()
    assert server.traceparents == [None]
