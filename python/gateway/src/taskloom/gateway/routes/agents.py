"""`/v1/agents`: the agents that workers have registered."""

from __future__ import annotations

from fastapi import APIRouter

from taskloom.gateway import convert
from taskloom.gateway.deps import OrchestratorDep, TenantDep
from taskloom.gateway.models import AgentList

router = APIRouter(prefix="/v1/agents", tags=["agents"])


@router.get("")
async def list_agents(_tenant: TenantDep, orchestrator: OrchestratorDep) -> AgentList:
    return AgentList(agents=[convert.agent_out(a) for a in await orchestrator.list_agents()])
