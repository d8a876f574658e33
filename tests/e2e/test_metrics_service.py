"""The metrics service as its users meet it: the SDK client streaming to the real binary,
per-agent summaries through the gateway's REST API, and a real Prometheus scraping its
OpenMetrics exposition with exemplars."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import yaml

from taskloom.sdk.localstack import Ports, Stack, StackConfig
from taskloom.sdk.metrics import DEFAULT_BUCKETS, AgentMetrics, MetricsClient
from taskloom.testing.prometheus_server import prometheus_server
from taskloom.v1 import metrics_pb2, metrics_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
def metrics_stack(
    local_processes: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The metrics service and a gateway in front of it (no orchestrator needed)."""
    cfg = StackConfig(
        bin_dir=REPO / "bin",
        state_dir=tmp_path_factory.mktemp("metrics"),
        ports=Ports.random(),
        only=("metrics", "gateway"),
        ready_path="/healthz",
    )
    with Stack(cfg) as stack:
        yield stack


def metrics_addr(stack: Stack) -> str:
    return f"127.0.0.1:{stack.service('metrics').grpc_port}"


def test_agent_summaries_through_rest(metrics_stack: Stack) -> None:
    client = MetricsClient(metrics_addr(metrics_stack))
    agents = AgentMetrics(client)
    for seconds in (0.2, 0.3, 0.4, 0.6):
        agents.llm_request("writer", "m1", seconds, prompt_tokens=10, completion_tokens=5)
    agents.llm_request("writer", "m1", 3.0, ok=False, trace_id=TRACE_ID)
    for hit in (True, True, True, False):
        agents.llm_cache("writer", "m1", hit=hit)
    agents.llm_request("coder", "m2", 0.1, completion_tokens=7)
    assert client.close().error is None

    gateway = metrics_stack.gateway_url
    reply = httpx.get(f"{gateway}/v1/metrics/agents", params={"window": "1h"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    # The service has been up for less than the window: it says what it covered.
    assert 0 < body["window_seconds"] <= 3600
    summaries = {(s["agent"], s["model"]): s for s in body["agents"]}
    assert set(summaries) == {("coder", "m2"), ("writer", "m1")}
    writer = summaries[("writer", "m1")]
    assert (writer["requests"], writer["errors"], writer["tokens"]) == (5, 1, 60)
    assert writer["error_ratio"] == 0.2
    assert writer["cache_hit_ratio"] == 0.75
    assert math.isclose(writer["requests_per_second"], 5 / body["window_seconds"], rel_tol=0.2)
    # Three of five requests took at most 0.5 s (the bucket bounds are LLM_BUCKETS).
    assert 0.25 < writer["latency_p50_seconds"] <= 0.5
    assert writer["latency_p99_seconds"] > 2.5
    coder = summaries[("coder", "m2")]
    assert coder["cache_hit_ratio"] is None and coder["tokens"] == 7

    only = httpx.get(f"{gateway}/v1/metrics/agents", params={"agent": "coder"}).json()
    assert [s["agent"] for s in only["agents"]] == ["coder"]


@pytest.mark.parametrize("window", ["5 minutes", "0s", "2h"])
def test_a_bad_window_is_a_problem_naming_the_field(metrics_stack: Stack, window: str) -> None:
    reply = httpx.get(f"{metrics_stack.gateway_url}/v1/metrics/agents", params={"window": window})
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["reason"] == "INVALID_ARGUMENT"
    assert [e["field"] for e in problem["errors"]] == ["window"]


def test_the_sdk_and_the_service_agree_on_names_and_default_buckets(
    metrics_stack: Stack,
) -> None:
    """The rules live in the proto's limits and in each language's checks: same verdicts."""
    stub = metrics_pb2_grpc.MetricsServiceStub(grpc.insecure_channel(metrics_addr(metrics_stack)))

    def service_accepts(name: str, labels: dict[str, str]) -> bool:
        sample = metrics_pb2.MetricSample(
            name=name, kind=metrics_pb2.METRIC_KIND_HISTOGRAM, value=1, labels=labels
        )
        try:
            stub.Ingest(metrics_pb2.IngestRequest(samples=[sample]), timeout=10)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            return False
        return True

    def sdk_accepts(name: str, labels: dict[str, str]) -> bool:
        try:
            MetricsClient("").histogram(name, labelnames=tuple(labels)).labels(*labels.values())
        except ValueError:
            return False
        return True

    long = "x" * metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_NAME_BYTES
    value_limit = metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_LABEL_VALUE_BYTES
    cases = [
        ("ok_seconds", {"agent": "a"}),
        ("ns:ok_seconds", {}),
        (long, {}),
        (long + "x", {}),
        ("1bad", {}),
        ("bad-name", {}),
        ("taskloom_metrics_mine", {}),
        ("ok2_seconds", {"le": "1"}),
        ("ok3_seconds", {"__reserved": "1"}),
        ("ok4_seconds", {"bad-label": "1"}),
        ("ok5_seconds", {"v": "v" * value_limit}),
        ("ok6_seconds", {"v": "v" * (value_limit + 1)}),
        ("ok7_seconds", {f"l{i}": "x" for i in range(metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_LABELS)}),
        (
            "ok8_seconds",
            {f"l{i}": "x" for i in range(metrics_pb2.METRIC_SAMPLE_LIMIT_MAX_LABELS + 1)},
        ),
    ]
    verdicts = [
        (name[:20], sdk_accepts(name, labels), service_accepts(name, labels))
        for name, labels in cases
    ]
    assert [v for v in verdicts if v[1] != v[2]] == []
    assert sum(v[1] for v in verdicts) == 5  # both sides accept some and refuse others

    # A histogram made by a single observation gets the service's default buckets; the
    # SDK's defaults must be the same, or its aggregated samples would be refused.
    assert service_accepts("agree_seconds", {})
    client = MetricsClient(metrics_addr(metrics_stack))
    client.histogram("agree_seconds", buckets=DEFAULT_BUCKETS).observe(0.3)
    result = client.close()
    assert (result.accepted, result.refused, result.error) == (1, 0, None)


def test_prometheus_scrapes_openmetrics_with_the_exemplar_trace_id(
    metrics_stack: Stack, tmp_path: Path
) -> None:
    client = MetricsClient(metrics_addr(metrics_stack))
    latency = client.histogram("exemplar_demo_seconds", "Latency with traces.", ("agent",))
    latency.labels("a").observe(0.3, trace_id=TRACE_ID)
    assert client.close().error is None

    target = metrics_stack.service("metrics").base_url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "metrics", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    with prometheus_server(config, "--enable-feature=exemplar-storage") as api:
        deadline = time.monotonic() + 60
        found: list[dict[str, object]] = []
        while not found:
            assert time.monotonic() < deadline, "Prometheus never stored the exemplar"
            time.sleep(0.5)
            reply = httpx.get(
                f"{api}/query_exemplars",
                params={"query": "exemplar_demo_seconds_bucket", "start": time.time() - 600},
            ).json()
            found = [
                e
                for series in reply.get("data") or []
                for e in series["exemplars"]
                if e["labels"].get("trace_id") == TRACE_ID
            ]
        assert float(str(found[0]["value"])) == 0.3
        up = httpx.get(f"{api}/query", params={"query": "exemplar_demo_seconds_count"}).json()
        assert up["data"]["result"][0]["value"][1] == "1"
