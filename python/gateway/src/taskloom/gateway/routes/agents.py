"""`/v1/agents`: the agents that workers have registered, with their tools and limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from taskloom.gateway import convert
from taskloom.gateway.deps import CallerDep, OrchestratorDep
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.limits import text
from taskloom.gateway.models import AgentList, AgentOut
from taskloom.gateway.openapi import problems
from taskloom.v1 import common_pb2

router = APIRouter(prefix="/v1/agents", tags=["agents"])

AgentName = Annotated[str, Path(**text(common_pb2.AgentInfo, "name"))]


@router.get("", responses=problems())
async def list_agents(_caller: CallerDep, orchestrator: OrchestratorDep) -> AgentList:
    return AgentList(agents=[convert.agent_out(a) for a in await orchestrator.list_agents()])


@router.get("/{name}", responses=problems(404))
async def get_agent(name: AgentName, _caller: CallerDep, orchestrator: OrchestratorDep) -> AgentOut:
    """One agent: its model, tools and limits; 404 AGENT_NOT_FOUND for a name no worker
    has registered."""
    for agent in await orchestrator.list_agents():
        if agent.name == name:
            return convert.agent_out(agent)
    raise ProblemError(404, "AGENT_NOT_FOUND", f"No worker has registered agent {name!r}.")
