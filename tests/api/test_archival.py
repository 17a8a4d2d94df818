"""Archival memory through the official letta-client: insert, list, search (tags, dates), delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from letta_client import AsyncLetta, NotFoundError, UnprocessableEntityError

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import Mnemo

FACTS = [
    ("The user's cat is named Miso and likes tuna.", ["pets"]),
    ("The user's dog is a beagle called Pixel.", ["pets", "dogs"]),
    ("The user works on compilers at a robotics company.", ["work"]),
    ("The user is allergic to peanuts.", ["health"]),
]


async def _agent(client: AsyncLetta, mnemo: Mnemo) -> str:
    agent = await client.agents.create(
        memory_blocks=[{"label": "human", "value": "?"}],
        llm_config={"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url},
    )
    return agent.id


async def test_insert_list_and_delete(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    made = []
    for text, tags in FACTS:
        created = await client.agents.passages.create(agent_id, text=text, tags=tags)
        assert len(created) == 1 and created[0].text == text and created[0].tags == tags
        assert created[0].id.startswith("passage-") and created[0].archive_id.startswith("archive-")
        made.append(created[0].id)

    assert [p.id for p in await client.agents.passages.list(agent_id)] == made  # oldest first by default
    assert [p.id for p in await client.agents.passages.list(agent_id, ascending=False, limit=2)] == made[
        :1:-1
    ]
    assert [p.id for p in await client.agents.passages.list(agent_id, after=made[1], limit=1)] == [made[2]]
    assert [p.id for p in await client.agents.passages.list(agent_id, before=made[2])] == made[:2]
    assert [p.text for p in await client.agents.passages.list(agent_id, search="BEAGLE")] == [FACTS[1][0]]

    # The archival count and tags are part of the system prompt the model sees.
    mnemo.fake.script(Reply.text("ok"))
    await client.agents.messages.create(agent_id, input="hi")
    prompt = mnemo.fake.chat_requests[-1]["messages"][0]["content"]
    assert "- 4 total memories you created are stored in archival memory" in prompt
    assert "Available archival memory tags: dogs, health, pets, work" in prompt

    await client.agents.passages.delete(made[3], agent_id=agent_id)
    assert [p.id for p in await client.agents.passages.list(agent_id)] == made[:3]
    with pytest.raises(NotFoundError, match=made[3]):
        await client.agents.passages.delete(made[3], agent_id=agent_id)
    other = await _agent(client, mnemo)
    with pytest.raises(NotFoundError, match="not found in the archival memory"):
        await client.agents.passages.delete(made[0], agent_id=other)  # another agent's passage

    past = datetime(2020, 5, 17, 12, 0, tzinfo=UTC)
    backdated = await client.agents.passages.create(other, text="An old memory.", created_at=past)
    assert backdated[0].created_at == past


async def test_search_with_tags_and_dates(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    for text, tags in FACTS:
        await client.agents.passages.create(agent_id, text=text, tags=tags)

    found = await client.agents.passages.search(agent_id, query="what pets does the user have?", top_k=2)
    assert found.count == 2 == len(found.results)
    assert {r.content for r in found.results} == {FACTS[0][0], FACTS[1][0]}

    anyof = await client.agents.passages.search(
        agent_id, query="user", tags=["dogs", "work"], tag_match_mode="any"
    )
    assert {r.content for r in anyof.results} == {FACTS[1][0], FACTS[2][0]}
    allof = await client.agents.passages.search(
        agent_id, query="user", tags=["pets", "dogs"], tag_match_mode="all"
    )
    assert [r.content for r in allof.results] == [FACTS[1][0]]
    assert allof.results[0].tags == ["pets", "dogs"]

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert (await client.agents.passages.search(agent_id, query="user", start_datetime=tomorrow)).count == 0
    assert (
        await client.agents.passages.search(agent_id, query="user", end_datetime=tomorrow, top_k=10)
    ).count == 4


async def test_bad_requests(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    with pytest.raises(UnprocessableEntityError, match="text"):
        await client.agents.passages.create(agent_id, text="")
    with pytest.raises(UnprocessableEntityError, match="tag_match_mode"):
        await client.agents.passages.search(agent_id, query="x", tag_match_mode="some")  # type: ignore[arg-type]
    with pytest.raises(UnprocessableEntityError, match="Invalid start_datetime"):
        await client.agents.passages.search(agent_id, query="x", start_datetime="last tuesday")
    with pytest.raises(NotFoundError, match="agent-00000000"):
        await client.agents.passages.create("agent-00000000-0000-4000-8000-000000000000", text="x")
