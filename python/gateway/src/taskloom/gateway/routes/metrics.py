"""`/v1/metrics/agents`: what each agent did with each model over a recent window (LLM
requests/s, latency percentiles, tokens/s, errors, cache hit ratio), from the metrics
service's `SummarizeAgents`."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import grpc
from fastapi import APIRouter, Query
from google.protobuf import duration_pb2
from pydantic import BaseModel

from taskloom.gateway.deps import MetricsDep, SettingsDep, TenantDep
from taskloom.gateway.errors import problem_from_grpc
from taskloom.gateway.openapi import problems
from taskloom.v1 import metrics_pb2

# `90s`, `5m`, `1h30m`: hours, minutes and seconds, in that order, at least one.
WINDOW_PATTERN = r"^(\d+h(\d+m)?(\d+s)?|\d+m(\d+s)?|\d+s)$"
_WINDOW_PART = re.compile(r"(\d+)([hms])")
_SECONDS = {"h": 3600, "m": 60, "s": 1}


router = APIRouter(prefix="/v1/metrics", tags=["metrics"])


class AgentSummary(BaseModel):
    agent: str
    model: str
    requests: float
    requests_per_second: float
    errors: float
    error_ratio: float | None
    latency_p50_seconds: float | None
    latency_p90_seconds: float | None
    latency_p99_seconds: float | None
    tokens: float
    tokens_per_second: float
    cache_hit_ratio: float | None


class AgentSummaries(BaseModel):
    # The window summarised: shorter than asked while the metrics service is young.
    window_seconds: float
    agents: list[AgentSummary]


def window_seconds(window: str) -> int:
    return sum(int(n) * _SECONDS[unit] for n, unit in _WINDOW_PART.findall(window))


# The summary's optional fields: absent when the window holds no sample for them.
_OptionalField = Literal[
    "error_ratio",
    "latency_p50_seconds",
    "latency_p90_seconds",
    "latency_p99_seconds",
    "cache_hit_ratio",
]


def _optional(summary: metrics_pb2.AgentSummary, field: _OptionalField) -> float | None:
    return getattr(summary, field) if summary.HasField(field) else None


@router.get("/agents", responses=problems())
async def agent_summaries(
    _tenant: TenantDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    window: Annotated[
        str | None,
        Query(
            pattern=WINDOW_PATTERN,
            description="How far back, e.g. `30s`, `5m`, `1h`; default 5m. The metrics "
            "service bounds it by its summary step and retention.",
        ),
    ] = None,
    agent: Annotated[str | None, Query(max_length=200, description="Only this agent")] = None,
    model: Annotated[str | None, Query(max_length=200, description="Only this model")] = None,
) -> AgentSummaries:
    request = metrics_pb2.SummarizeAgentsRequest(
        agent=agent or "",
        model=model or "",
        window=None if window is None else duration_pb2.Duration(seconds=window_seconds(window)),
    )
    try:
        reply = await metrics.SummarizeAgents(request, timeout=settings.grpc_timeout_seconds)
    except grpc.aio.AioRpcError as err:
        raise problem_from_grpc(err, peer="metrics service") from err
    return AgentSummaries(
        window_seconds=reply.window.ToTimedelta().total_seconds(),
        agents=[
            AgentSummary(
                agent=s.agent,
                model=s.model,
                requests=s.requests,
                requests_per_second=s.requests_per_second,
                errors=s.errors,
                error_ratio=_optional(s, "error_ratio"),
                latency_p50_seconds=_optional(s, "latency_p50_seconds"),
                latency_p90_seconds=_optional(s, "latency_p90_seconds"),
                latency_p99_seconds=_optional(s, "latency_p99_seconds"),
                tokens=s.tokens,
                tokens_per_second=s.tokens_per_second,
                cache_hit_ratio=_optional(s, "cache_hit_ratio"),
            )
            for s in reply.agents
        ],
    )
