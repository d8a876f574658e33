"""One task's trace across every language: a stack of real processes (the Go orchestrator,
the Rust cache, vector and metrics services, a Python worker and gateway) exports its spans
over OTLP/gRPC to a receiver in this test; the task, submitted through REST, runs an agent
that calls a tool and the LLM cache. Its spans form one tree, each from the service that
the conventions of docs/tracing.md name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskloom.sdk.localstack import Ports, Stack, StackConfig
from taskloom.testing.tracing import SCRIPTED_INPUT, TRACED_AGENT, OtlpReceiver, ReceivedSpan

BIN = Path(__file__).resolve().parents[2] / "bin"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
SPANS_WAIT_S = 30.0  # bounded: the batch processors export within a second (OTEL_BSP_*)

SERVER, CLIENT, INTERNAL, CONSUMER = 2, 3, 1, 5  # opentelemetry.proto.trace.v1.Span.SpanKind
GATEWAY, ORCHESTRATOR, WORKER, CACHE = (
    "taskloom-gateway",
    "taskloom-orchestrator",
    "taskloom-worker",
    "taskloom-cache",
)
SUBMIT = "taskloom.v1.OrchestratorService/SubmitTask"
CACHE_GET = "taskloom.v1.CacheService/Get"
INGEST = "taskloom.v1.MetricsService/IngestStream"
# (service.name, span name, kind): the spans one task's trace must hold.
EXPECTED = [
    (GATEWAY, "POST /v1/tasks", SERVER),
    (GATEWAY, SUBMIT, CLIENT),
    (ORCHESTRATOR, SUBMIT, SERVER),
    (ORCHESTRATOR, "task.queue_wait", INTERNAL),
    (ORCHESTRATOR, "task.assign", INTERNAL),
    (WORKER, "agent.run", CONSUMER),
    (WORKER, "llm.call", CLIENT),
    (WORKER, "tool.call", INTERNAL),
    (WORKER, CACHE_GET, CLIENT),
    (CACHE, CACHE_GET, SERVER),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced_stack(
    local_processes: None, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    agents = tmp_path_factory.mktemp("traced-agents")
    (agents / "traced.yaml").write_text(TRACED_AGENT)
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans reach the receiver soon
    }
    names = ("cache", "metrics", "vector", "orchestrator", "worker", "gateway")
    cfg = StackConfig(
        bin_dir=BIN,
        state_dir=tmp_path_factory.mktemp("traced-stack"),
        ports=Ports.random(),
        env_overrides={
            **{name: dict(otel) for name in names},
            "worker": {
                **otel,
                "TASKLOOM_AGENTS_DIR": str(agents),
                "TASKLOOM_SIM_LATENCY_MS": "0",
                "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
            },
        },
    )
    with Stack(cfg) as running:
        yield running


def submit_and_finish(gateway: str) -> tuple[str, dict[str, Any]]:
    """The trace id of one task submitted through REST (no traceparent sent: the gateway's
    span is the root), and the finished task."""
    with httpx.Client(base_url=gateway, timeout=20) as http:
        resp = http.post(
            "/v1/tasks",
            json={"agent": "traced", "input": SCRIPTED_INPUT},
        )
        assert resp.status_code == 202, resp.text
        trace_id = resp.headers["traceparent"].split("-")[1]
        deadline = time.monotonic() + 60
        while (task := http.get(f"/v1/tasks/{resp.json()['id']}").json())["status"] not in TERMINAL:
            assert time.monotonic() < deadline, f"the task did not finish: {task}"
            time.sleep(0.05)
    return trace_id, task


def describe(spans: list[ReceivedSpan]) -> str:
    return "\n".join(
        f"  {s.service:22} {s.name:45} kind={s.kind} id={s.span_id} "
        f"parent={s.parent_span_id or '-'}"
        for s in spans
    )


def test_one_task_is_one_trace_across_every_service(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    trace_id, task = submit_and_finish(traced_stack.gateway_url)
    assert task["status"] == "succeeded", task
    assert task["result"]["tool_calls"] == [{"name": "calculator", "ok": True, "cached": False}]

    spans = receiver.wait_for(trace_id, set(EXPECTED), SPANS_WAIT_S)
    by_id = {s.span_id: s for s in spans}
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            failures.append(what)

    def found(service: str, name: str, kind: int) -> list[ReceivedSpan]:
        return [s for s in spans if (s.service, s.name, s.kind) == (service, name, kind)]

    for service, name, kind in EXPECTED:
        check(bool(found(service, name, kind)), f"no span {name!r} (kind {kind}) from {service}")

    # A tree: one root (the gateway's request), every other parent in the trace.
    roots = [s for s in spans if not s.parent_span_id]
    check(
        [(s.service, s.name) for s in roots] == [(GATEWAY, "POST /v1/tasks")],
        f"the roots are {[(s.service, s.name) for s in roots]}",
    )
    for s in spans:
        if s.parent_span_id:
            check(
                s.parent_span_id in by_id,
                f"{s.service} {s.name!r}: parent {s.parent_span_id} is not in the trace",
            )

    def parents_of(service: str, name: str, kind: int) -> set[tuple[str, str]]:
        return {
            (by_id[s.parent_span_id].service, by_id[s.parent_span_id].name)
            for s in found(service, name, kind)
            if s.parent_span_id in by_id
        }

    # Who hangs under whom, hop by hop.
    for (service, name, kind), parent in [
        ((GATEWAY, SUBMIT, CLIENT), (GATEWAY, "POST /v1/tasks")),
        ((ORCHESTRATOR, SUBMIT, SERVER), (GATEWAY, SUBMIT)),
        ((ORCHESTRATOR, "task.queue_wait", INTERNAL), (ORCHESTRATOR, SUBMIT)),
        ((ORCHESTRATOR, "task.assign", INTERNAL), (ORCHESTRATOR, SUBMIT)),
        ((WORKER, "agent.run", CONSUMER), (ORCHESTRATOR, "task.assign")),
        ((WORKER, "llm.call", CLIENT), (WORKER, "agent.run")),
        ((WORKER, "tool.call", INTERNAL), (WORKER, "agent.run")),
        ((CACHE, CACHE_GET, SERVER), (WORKER, CACHE_GET)),
    ]:
        got = parents_of(service, name, kind)
        check(got == {parent}, f"{service} {name!r} hangs under {got}, not {parent}")

    llm = found(WORKER, "llm.call", CLIENT)
    check(
        all(s.attributes.get("taskloom.cache") == "miss" for s in llm) and len(llm) == 2,
        f"llm.call spans: {[s.attributes for s in llm]}",
    )
    assert not failures, "\n".join(failures) + f"\nthe trace {trace_id}:\n" + describe(spans)


def test_the_workers_metrics_flush_is_a_root_client_span(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    def flushed(spans: list[ReceivedSpan]) -> bool:
        return any(
            (s.service, s.name, s.kind) == (WORKER, INGEST, CLIENT) and not s.parent_span_id
            for s in spans
        )

    assert receiver.wait_until(flushed, SPANS_WAIT_S), describe(
        [s for s in receiver.spans() if s.name == INGEST]
    )
