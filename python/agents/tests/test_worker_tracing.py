"""Tracing in the worker: an assignment's run is an `agent.run` span under the traceparent
the orchestrator sent, with an `llm.call` per LLM turn, a `tool.call` per tool call and a
CLIENT span per cache call that carries its context to the cache; off, nothing of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import load_catalog
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.tools import ToolRegistry, builtin_factories
from taskloom.sdk import tracing
from taskloom.testing.tracing import (
    SCRIPTED_INPUT,
    TRACED_AGENT,
    captured_spans,
    named,
    one,
    parent_id,
)
from taskloom.v1 import common_pb2, worker_hub_pb2

pytestmark = pytest.mark.asyncio

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ASSIGN_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{ASSIGN_SPAN_ID}-01"


def assignment(task_id: str) -> worker_hub_pb2.Assignment:
    value = struct_pb2.Value()
    json_format.ParseDict(SCRIPTED_INPUT, value)
    task = common_pb2.Task(
        id=task_id, agent="traced", input=value, labels={"traceparent": TRACEPARENT}
    )
    return worker_hub_pb2.Assignment(task=task, lease_id=f"lease-{task_id}", attempt=2)


def runtime(agents: Path, cache: CacheClient, telemetry: Any) -> AgentRuntime:
    (agents / "traced.yaml").write_text(TRACED_AGENT)
    provider = SimulatedProvider(latency_s=0, tokens_per_second=0)
    return AgentRuntime(
        load_catalog([agents]),
        {"simulated": provider},
        telemetry,
        cache,
        tools=ToolRegistry(builtin_factories(), cache=cache),
    )


async def run_one(hub_server: Any, worker_factory: Any, rt: AgentRuntime) -> None:
    worker_factory(hub_server.addr, runtime=rt)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    session.send(assignment=assignment("t1"))
    result = await session.recv("result")
    assert not result.HasField("error"), result.error


async def test_the_run_hangs_under_the_assignment_with_llm_tool_and_cache_spans(
    hub_server, worker_factory, cache_server, tmp_path, telemetry
) -> None:
    fake_cache, cache_addr = cache_server
    with captured_spans() as exporter:
        cache = CacheClient(cache_addr)  # made while tracing is on: its calls are traced
        await run_one(hub_server, worker_factory, runtime(tmp_path, cache, telemetry))
        await cache.aclose()
        spans = exporter.get_finished_spans()

    run = one(spans, "agent.run")
    assert run.kind is SpanKind.CONSUMER
    assert f"{run.context.trace_id:032x}" == TRACE_ID
    assert run.parent is not None and f"{run.parent.span_id:016x}" == ASSIGN_SPAN_ID
    assert run.parent.is_remote
    assert dict(run.attributes or {}) == {
        "taskloom.task_id": "t1",
        "taskloom.agent": "traced",
        "taskloom.attempt": 2,
    }

    llm_calls = named(spans, "llm.call")
    assert len(llm_calls) == 2  # the tool call turn, then the answer
    for call in llm_calls:
        assert parent_id(call) == run.context.span_id and call.kind is SpanKind.CLIENT
        attributes = call.attributes or {}
        assert attributes["gen_ai.system"] == "simulated"
        assert attributes["gen_ai.request.model"] == "sim-1"
        assert attributes["taskloom.cache"] == "miss"
    assert (llm_calls[1].attributes or {})["gen_ai.usage.output_tokens"] == 5

    tool = one(spans, "tool.call")
    assert parent_id(tool) == run.context.span_id
    assert (tool.attributes or {})["taskloom.tool"] == "calculator"

    gets = named(spans, "taskloom.v1.CacheService/Get")
    assert {parent_id(g) for g in gets} == {c.context.span_id for c in llm_calls}
    for get in gets:
        assert get.kind is SpanKind.CLIENT
        assert (get.attributes or {})["rpc.service"] == "taskloom.v1.CacheService"
        assert (get.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    # Each Get carried its own CLIENT span's context to the cache, so the cache's SERVER
    # span hangs under it.
    sent = [f"00-{TRACE_ID}-{g.context.span_id:016x}-01" for g in gets]
    assert sorted(p for p in fake_cache.traceparents if p) == sorted(sent)
    assert all(s.context.trace_id == run.context.trace_id for s in spans)


async def test_off_there_are_no_spans_and_no_interceptors(
    hub_server, worker_factory, cache_server, tmp_path, telemetry
) -> None:
    fake_cache, cache_addr = cache_server
    assert not tracing.enabled()
    assert tracing.aio_interceptors() is None
    assert tracing.span("agent.run") is tracing.span("llm.call")  # one shared no-op span
    cache = CacheClient(cache_addr)
    await run_one(hub_server, worker_factory, runtime(tmp_path, cache, telemetry))
    await cache.aclose()
    assert fake_cache.traceparents and not any(fake_cache.traceparents)
    assert not trace.get_current_span().get_span_context().is_valid
