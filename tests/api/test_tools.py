"""Custom tools through the official letta-client: create from source, upsert, list, update, attach."""

from __future__ import annotations

import pytest
from letta_client import AsyncLetta, ConflictError, NotFoundError, UnprocessableEntityError

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import Mnemo

ROLL = '''
def roll_dice(sides: int, times: int = 1) -> str:
    """Roll dice and report the results.

    Args:
        sides: How many faces each die has.
        times: How many dice to roll.

    Returns:
        The results, comma-separated.
    """
    import random
    return ", ".join(str(random.randint(1, sides)) for _ in range(times))
'''

WEATHER = '''
def get_weather(city: str, units: str = "metric") -> str:
    """Look up the current weather.

    Args:
        city: The city to look up.
        units: "metric" or "imperial".
    """
    return f"sunny in {city}"
'''


def _client(api_server: ApiServer) -> AsyncLetta:
    return AsyncLetta(base_url=api_server.base_url, max_retries=0)


async def test_create_from_source_generates_the_schema(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    tool = await client.tools.create(source_code=ROLL, tags=["games"])
    assert tool.id.startswith("tool-") and tool.name == "roll_dice" and tool.tool_type == "custom"
    schema = tool.json_schema or {}
    assert schema["name"] == "roll_dice"
    assert schema["description"].startswith("Roll dice and report the results.")
    params = schema["parameters"]
    assert params["type"] == "object" and params["required"] == ["sides"]
    assert params["properties"]["sides"] == {"type": "integer", "description": "How many faces each die has."}
    assert params["properties"]["times"]["type"] == "integer"
    assert tool.source_code == ROLL and tool.tags == ["games"] and tool.return_char_limit == 50000
    assert (await client.tools.retrieve(tool.id)).json_schema == schema

    given = {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    }
    explicit = await client.tools.create(source_code="def lookup(q):\n    return q\n", json_schema=given)
    assert (
        explicit.name == "lookup"
        and explicit.json_schema == given
        and explicit.description == "Look something up."
    )

    # Upsert keeps the id and replaces the source and the schema; POST behaves the same way (as in Letta).
    changed = ROLL.replace(
        "def roll_dice(sides: int, times: int = 1)", "def roll_dice(sides: int, times: int, bonus: int = 0)"
    )
    upserted = await client.tools.upsert(source_code=changed)
    assert upserted.id == tool.id
    assert upserted.json_schema["parameters"]["required"] == ["sides", "times"]  # type: ignore[index]
    assert (await client.tools.create(source_code=ROLL)).id == tool.id


async def test_list_update_count_delete(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    roll = await client.tools.create(source_code=ROLL)
    weather = await client.tools.create(source_code=WEATHER)

    custom = await client.tools.list(tool_types=["custom"], order="asc")
    assert [t.id for t in custom.items] == [roll.id, weather.id]
    newest = await client.tools.list(tool_types=["custom"], limit=1)  # newest first by default
    assert [t.id for t in newest.items] == [weather.id]
    assert [t.id async for t in client.tools.list(tool_types=["custom"], limit=1)] == [weather.id, roll.id]
    assert [t.id for t in (await client.tools.list(name="get_weather")).items] == [weather.id]
    assert [t.name for t in (await client.tools.list(search="WEATH")).items] == ["get_weather"]
    assert await client.get("/v1/tools/count", cast_to=int, options={"params": {"tool_types": "custom"}}) == 2

    updated = await client.tools.update(
        weather.id, description="Weather now.", tags=["outside"], return_char_limit=500
    )
    assert (updated.description, updated.tags, updated.return_char_limit) == (
        "Weather now.",
        ["outside"],
        500,
    )
    assert updated.json_schema == weather.json_schema  # the source did not change

    resourced = await client.tools.update(
        weather.id, source_code=WEATHER.replace('units: str = "metric"', "days: int = 1")
    )
    assert set(resourced.json_schema["parameters"]["properties"]) == {"city", "days"}  # type: ignore[index]
    with pytest.raises(ConflictError, match="'roll_dice' already exists"):
        await client.tools.update(weather.id, source_code=ROLL)  # its function name is taken

    await client.tools.delete(roll.id)
    with pytest.raises(NotFoundError, match=roll.id):
        await client.tools.retrieve(roll.id)
    assert await client.get("/v1/tools/count", cast_to=int, options={"params": {"tool_types": "custom"}}) == 1


async def test_attach_detach_and_the_model_sees_it(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    tool = await client.tools.create(source_code=WEATHER)
    agent = await client.agents.create(
        memory_blocks=[{"label": "human", "value": "?"}],
        llm_config={"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url},
    )
    base = [t.name async for t in client.agents.tools.list(agent.id)]
    assert sorted(base) == ["conversation_search", "memory_insert", "memory_replace"]

    state = await client.agents.tools.attach(tool.id, agent_id=agent.id)
    assert state is not None and "get_weather" in {t.name for t in state.tools}
    listed = [t.name async for t in client.agents.tools.list(agent.id)]
    assert listed[-1] == "get_weather" and len(listed) == 4
    page = await client.agents.tools.list(agent.id, limit=2, order="desc")
    assert [t.name for t in page.items][0] == "get_weather"

    mnemo.fake.script(Reply.text("ok"))
    await client.agents.messages.create(agent.id, input="weather?")
    offered = {t["function"]["name"]: t["function"] for t in mnemo.fake.chat_requests[-1]["tools"]}
    assert offered["get_weather"]["parameters"] == tool.json_schema["parameters"]  # type: ignore[index]

    state = await client.agents.tools.detach(tool.id, agent_id=agent.id)
    assert state is not None and "get_weather" not in {t.name for t in state.tools}
    with pytest.raises(NotFoundError, match="not attached"):
        await client.agents.tools.detach(tool.id, agent_id=agent.id)
    mnemo.fake.script(Reply.text("ok"))
    await client.agents.messages.create(agent.id, input="weather?")
    assert "get_weather" not in {t["function"]["name"] for t in mnemo.fake.chat_requests[-1]["tools"]}


async def test_bad_tools(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    with pytest.raises(UnprocessableEntityError, match="source_code") as err:
        await client.tools.create(source_code="def broken(:\n    pass\n")
    assert "not valid Python" in str(err.value)
    with pytest.raises(UnprocessableEntityError, match="source_code"):
        await client.tools.create(source_code="")
    with pytest.raises(UnprocessableEntityError, match="json_schema is required for typescript"):
        await client.tools.create(source_code="export function f() {}", source_type="typescript")
    with pytest.raises(UnprocessableEntityError, match="json_schema.name"):
        await client.tools.create(
            source_code="def f():\n    pass\n", json_schema={"parameters": {"type": "object"}}
        )
    with pytest.raises(UnprocessableEntityError, match="tool_types"):
        await client.tools.list(tool_types=["magic"])
    with pytest.raises(ConflictError, match="built-in tool"):
        await client.tools.create(
            source_code='def memory_replace(label: str) -> str:\n    """Mine."""\n    return label\n'
        )
    with pytest.raises(NotFoundError, match="tool-00000000"):
        await client.tools.update("tool-00000000-0000-4000-8000-000000000000", description="x")
