"""Prefilled tool arguments on tool rules through the official letta-client: `child_arg_nodes` round-trip,
and a bad node is a 422 naming the field, at create and at update."""

from __future__ import annotations

from typing import Any

import pytest
from letta_client import AsyncLetta, UnprocessableEntityError

from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo

GOOD = {
    "type": "constrain_child_tools",
    "tool_name": "conversation_search",
    "children": ["archival_memory_search", "send_message"],
    "child_arg_nodes": [{"name": "archival_memory_search", "args": {"query": "fixed"}}],
}


def _client(api_server: ApiServer) -> AsyncLetta:
    return AsyncLetta(base_url=api_server.base_url, max_retries=0)


def _with_nodes(nodes: Any, **over: Any) -> dict[str, Any]:
    return {**GOOD, "child_arg_nodes": nodes, **over}


BAD: list[tuple[dict[str, Any], str]] = [
    (
        _with_nodes([{"name": "memory_replace", "args": {}}]),
        "'memory_replace', which is not one of the children",
    ),
    (_with_nodes([{"args": {"query": "x"}}]), "body.tool_rules.0.child_arg_nodes.0.name"),
    (_with_nodes([{"name": "send_message", "args": "x"}]), "body.tool_rules.0.child_arg_nodes.0.args"),
    (_with_nodes([{"name": "send_message"}], type="parent_last_tool"), "constrain_child_tools rule only"),
]


async def test_child_arg_nodes_round_trip(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, memory_blocks=[], tool_rules=[GOOD])
    rule = next(r for r in agent.tool_rules or [] if r.type == "constrain_child_tools")
    nodes = [n.model_dump() for n in rule.child_arg_nodes or []]  # type: ignore[union-attr]
    assert nodes == [{"name": "archival_memory_search", "args": {"query": "fixed"}}]
    again = await client.agents.retrieve(agent.id)
    assert again.tool_rules == agent.tool_rules


@pytest.mark.parametrize(("rule", "named"), BAD)
async def test_a_bad_child_arg_node_is_a_422_at_create(
    api_server: ApiServer, mnemo: Mnemo, rule: dict[str, Any], named: str
) -> None:
    client = _client(api_server)
    with pytest.raises(UnprocessableEntityError) as info:
        await create_agent(client, mnemo, memory_blocks=[], tool_rules=[rule])
    message = info.value.body["message"]  # type: ignore[index]
    assert "body.tool_rules" in message and named in message, message


async def test_a_bad_child_arg_node_is_a_422_at_update_and_changes_nothing(
    api_server: ApiServer, mnemo: Mnemo
) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, memory_blocks=[], tool_rules=[GOOD])
    for rule, named in BAD:
        with pytest.raises(UnprocessableEntityError) as info:
            await client.agents.update(agent.id, tool_rules=[rule])  # type: ignore[list-item]
        assert named in info.value.body["message"]  # type: ignore[index]
    assert (await client.agents.retrieve(agent.id)).tool_rules == agent.tool_rules
