"""`PATCH /v1/agents/{id}/tools/approval/{tool_name}`: whether calls to one of an agent's tools wait
for a human's approval (a `requires_approval` tool rule on the agent, as in Letta)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from sqlalchemy.orm.attributes import flag_modified

from api.deps import Services, get_services
from api.routes.agents import full_state
from mnemo.runtime.agents import recompile_system_message
from mnemo.runtime.approvals import set_rule
from mnemo.runtime.context import agent_tools, load_agent

router = APIRouter(prefix="/agents", tags=["tools"])


@router.patch(
    "/{agent_id}/tools/approval/{tool_name}",
    summary="Require (or stop requiring) a human's approval before the agent calls a tool",
)
async def update_approval(
    agent_id: str,
    tool_name: str,
    body: dict[str, Any] | None = Body(default=None),
    requires_approval: bool | None = Query(default=None),
    services: Services = Depends(get_services),
) -> dict[str, Any]:
    value = (body or {}).get("requires_approval", requires_approval)
    if not isinstance(value, bool):
        raise HTTPException(422, "Give `requires_approval` (true or false) in the body or the query.")
    async with services.db.transaction() as s:
        try:
            agent = await load_agent(s, agent_id, for_update=True)
        except LookupError as exc:
            raise HTTPException(404, f"Agent {agent_id} not found") from exc
        names = [t.name for t in await agent_tools(s, agent_id)]
        if tool_name not in names:
            raise HTTPException(
                404, f"Tool {tool_name!r} is not attached to agent {agent_id}; attached: {names}"
            )
        agent.tool_rules = set_rule(list(agent.tool_rules or []), tool_name, value)
        flag_modified(agent, "tool_rules")
        s.add(agent)
        await s.flush()
        await recompile_system_message(s, agent)
    async with services.db.session() as s:
        return await full_state(s, await load_agent(s, agent_id))
