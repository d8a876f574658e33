"""`/v1/usage`: the LLM tokens and cost that task results reported, summed from the
orchestrator's hourly usage rollups (which outlive task retention) by tenant, agent or
model. A caller sees its own tenant's usage; an admin key any tenant's, or every tenant's."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from google.protobuf import timestamp_pb2
from pydantic import BaseModel, BeforeValidator, Field

from taskloom.gateway.deps import CallerDep, OrchestratorDep
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.openapi import problems
from taskloom.gateway.routes.tasks import TenantFilter, listed_tenant
from taskloom.v1 import orchestrator_pb2

router = APIRouter(prefix="/v1/usage", tags=["usage"])

NANO_USD = 1e-9

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?")


def _rfc3339(value: object) -> object:
    """Only RFC 3339 text, as the document says (pydantic would take "0.5" as seconds)."""
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-12-01T00:00:00Z")
    return value


DateTime = Annotated[datetime | None, BeforeValidator(_rfc3339)]


class GroupBy(StrEnum):
    TENANT = "tenant"
    AGENT = "agent"
    MODEL = "model"


_GROUP_BY = {
    GroupBy.TENANT: orchestrator_pb2.USAGE_GROUP_BY_TENANT,
    GroupBy.AGENT: orchestrator_pb2.USAGE_GROUP_BY_AGENT,
    GroupBy.MODEL: orchestrator_pb2.USAGE_GROUP_BY_MODEL,
}


class UsageRow(BaseModel):
    """One group's usage; the grouping's key fields are set, the others are null."""

    tenant: str | None = None
    agent: str | None = None
    endpoint: str | None = None
    model: str | None = None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = Field(description="USD of the priced tokens")
    unpriced_tokens: int = Field(description="tokens of models without a configured price")
    saved_tokens: int = Field(description="tokens the LLM cache answered instead")
    saved_cost_usd: float


class UsageReport(BaseModel):
    group_by: GroupBy
    since: datetime | None
    until: datetime | None
    rows: list[UsageRow]


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def _row(group_by: GroupBy, row: orchestrator_pb2.UsageRow) -> UsageRow:
    keys: dict[str, str] = {
        GroupBy.TENANT: {"tenant": row.tenant},
        GroupBy.AGENT: {"agent": row.agent},
        GroupBy.MODEL: {"endpoint": row.endpoint, "model": row.model},
    }[group_by]
    return UsageRow(
        **keys,
        calls=row.calls,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=round(row.cost_nano_usd * NANO_USD, 9),
        unpriced_tokens=row.unpriced_tokens,
        saved_tokens=row.saved_tokens,
        saved_cost_usd=round(row.saved_cost_nano_usd * NANO_USD, 9),
    )


@router.get("", responses=problems(403))
async def get_usage(
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    tenant: TenantFilter = "",
    group_by: Annotated[GroupBy, Query(description="what to sum by")] = GroupBy.TENANT,
    since: Annotated[DateTime, Query(description="from this hour (RFC 3339; rounded down)")] = None,
    until: Annotated[DateTime, Query(description="up to this time (RFC 3339)")] = None,
) -> UsageReport:
    """Tokens, cost and cache savings of the caller's tenant (an admin's: any), grouped."""
    since_ts, until_ts = _timestamp(since), _timestamp(until)
    if (
        since_ts is not None
        and until_ts is not None
        and until_ts.ToNanoseconds() <= since_ts.ToNanoseconds()
    ):
        raise ProblemError(
            422,
            "INVALID_ARGUMENT",
            "until must be after since.",
            errors=[{"field": "until", "message": "must be after since"}],
        )
    request = orchestrator_pb2.GetUsageRequest(
        group_by=_GROUP_BY[group_by],
        tenant=listed_tenant(caller, tenant),
        since=since_ts,
        until=until_ts,
    )
    response = await orchestrator.get_usage(request)
    return UsageReport(
        group_by=group_by,
        since=response.since.ToDatetime(UTC) if response.HasField("since") else None,
        until=response.until.ToDatetime(UTC) if response.HasField("until") else None,
        rows=[_row(group_by, row) for row in response.rows],
    )
