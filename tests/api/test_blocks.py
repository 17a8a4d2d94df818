"""Memory blocks through the official letta-client: global `/v1/blocks` and an agent's core memory."""

from __future__ import annotations

import pytest
from letta_client import AsyncLetta, ConflictError, NotFoundError, UnprocessableEntityError
from sqlmodel import col, select

from mnemo.fakellm import Reply
from mnemo.store.tables import BlockHistoryRow
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo


def _client(api_server: ApiServer) -> AsyncLetta:
    return AsyncLetta(base_url=api_server.base_url, max_retries=0)


async def _prompt_after_turn(client: AsyncLetta, mnemo: Mnemo, agent_id: str) -> str:
    """The system prompt the model saw on the agent's next turn."""
    mnemo.fake.script(Reply.text("ok"))
    await client.agents.messages.create(agent_id, input="hello")
    return str(mnemo.fake.chat_requests[-1]["messages"][0]["content"])


async def test_block_crud_and_history(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    block = await client.blocks.create(
        label="notes", value="first", limit=50, description="scratch", tags=["t1"]
    )
    assert (
        block.id.startswith("block-")
        and block.value == "first"
        and block.limit == 50
        and block.tags == ["t1"]
    )
    assert (await client.blocks.retrieve(block.id)).description == "scratch"

    updated = await client.blocks.update(
        block.id, value="second", description="renamed notes", metadata={"k": 1}
    )
    assert (updated.value, updated.description, updated.metadata) == ("second", "renamed notes", {"k": 1})
    assert (await client.blocks.retrieve(block.id)).value == "second"
    async with mnemo.db.session() as s:
        history = (await s.exec(select(BlockHistoryRow).where(BlockHistoryRow.block_id == block.id))).all()
    assert [(h.version, h.value, h.actor_type) for h in history] == [(2, "second", "user")]

    with pytest.raises(
        UnprocessableEntityError, match=r"Edit failed: Exceeds 50 character limit \(requested 51\)"
    ):
        await client.blocks.update(block.id, value="x" * 51)
    with pytest.raises(UnprocessableEntityError, match="Exceeds 10 character limit"):
        await client.blocks.create(label="tiny", value="x" * 11, limit=10)
    assert (await client.blocks.retrieve(block.id)).value == "second"  # the failed edit changed nothing

    assert await client.get("/v1/blocks/count", cast_to=int) == 1
    await client.blocks.delete(block.id)
    with pytest.raises(NotFoundError, match=block.id):
        await client.blocks.retrieve(block.id)


async def test_block_list_filters_and_pagination(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    made = [
        await client.blocks.create(
            label=f"topic-{i}", value=f"value {i}", tags=["even" if i % 2 == 0 else "odd"]
        )
        for i in range(5)
    ]
    ids = [b.id for b in made]

    first = await client.blocks.list(label_search="topic-", limit=2, order="asc")
    assert [b.id for b in first.items] == ids[:2]
    second = await client.blocks.list(label_search="topic-", limit=2, order="asc", after=ids[1])
    assert [b.id for b in second.items] == ids[2:4]
    every = [
        b.id async for b in client.blocks.list(label_search="topic-", limit=2)
    ]  # follows `after` cursors
    assert every == ids  # Letta's default block order is oldest first
    newest = await client.blocks.list(label_search="topic-", order="desc", limit=2)
    assert [b.id for b in newest.items] == [ids[4], ids[3]]
    before = await client.blocks.list(label_search="topic-", order="asc", before=ids[4], limit=2)
    assert [b.id for b in before.items] == ids[2:4]  # the page just before the cursor

    evens = await client.blocks.list(tags=["even"])
    assert [b.id for b in evens.items] == [ids[0], ids[2], ids[4]]
    assert [b.id for b in (await client.blocks.list(label="topic-3")).items] == [ids[3]]
    assert [b.id for b in (await client.blocks.list(value_search="VALUE 1")).items] == [ids[1]]

    agent = await create_agent(client, mnemo, block_ids=[ids[0]])
    connected = await client.blocks.list(connected_to_agents_count_gt=0)
    assert [b.id for b in connected.items] == [ids[0]]
    agents = await client.blocks.agents.list(ids[0], include=["agent.blocks"])
    assert [a.id for a in agents.items] == [agent.id]
    assert [b.id for b in agents.items[0].blocks] == [ids[0]]


async def test_agent_block_edit_reaches_the_next_prompt(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    shared = await client.blocks.create(label="team", value="Team: compilers")
    ada = await create_agent(
        client,
        mnemo,
        name="ada",
        memory_blocks=[{"label": "human", "value": "Name: ?"}],
        block_ids=[shared.id],
    )
    bob = await create_agent(client, mnemo, name="bob", block_ids=[shared.id])

    listed = await client.agents.blocks.list(ada.id)
    assert [b.label for b in listed.items] == ["human", "team"]
    assert [b.label async for b in client.agents.blocks.list(ada.id, limit=1)] == ["human", "team"]
    assert [b.label for b in (await client.agents.blocks.list(ada.id, order="desc", limit=1)).items] == [
        "team"
    ]
    assert (await client.agents.blocks.retrieve("human", agent_id=ada.id)).value == "Name: ?"

    updated = await client.agents.blocks.update("human", agent_id=ada.id, value="Name: Grace Hopper")
    assert updated.value == "Name: Grace Hopper"
    prompt = await _prompt_after_turn(client, mnemo, ada.id)
    assert "Name: Grace Hopper" in prompt and "Name: ?" not in prompt

    # An edit of a shared block, through either route, reaches every agent that has it.
    await client.agents.blocks.update("team", agent_id=ada.id, value="Team: databases")
    assert "Team: databases" in await _prompt_after_turn(client, mnemo, bob.id)
    await client.blocks.update(shared.id, value="Team: runtimes")
    assert "Team: runtimes" in await _prompt_after_turn(client, mnemo, ada.id)
    assert "Team: runtimes" in await _prompt_after_turn(client, mnemo, bob.id)

    with pytest.raises(UnprocessableEntityError, match="Edit failed: Exceeds"):
        await client.agents.blocks.update("human", agent_id=ada.id, value="x" * 20001)
    with pytest.raises(NotFoundError, match="'persona'"):
        await client.agents.blocks.retrieve("persona", agent_id=ada.id)


async def test_attach_and_detach(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, memory_blocks=[{"label": "human", "value": "Name: Lin"}])
    project = await client.blocks.create(label="project", value="Project: Mnemo")
    other_human = await client.blocks.create(label="human", value="Name: someone else")

    state = await client.agents.blocks.attach(project.id, agent_id=agent.id)
    assert {b.label for b in state.blocks} == {"human", "project"}
    assert "Project: Mnemo" in await _prompt_after_turn(client, mnemo, agent.id)
    again = await client.agents.blocks.attach(project.id, agent_id=agent.id)  # attaching twice is harmless
    assert sorted(b.label for b in again.blocks) == ["human", "project"]

    with pytest.raises(ConflictError, match="already has a block labelled 'human'"):
        await client.agents.blocks.attach(other_human.id, agent_id=agent.id)

    state = await client.agents.blocks.detach(project.id, agent_id=agent.id)
    assert [b.label for b in state.blocks] == ["human"]
    assert "Project: Mnemo" not in await _prompt_after_turn(client, mnemo, agent.id)
    assert (await client.blocks.retrieve(project.id)).value == "Project: Mnemo"  # detaching keeps the block
    with pytest.raises(NotFoundError, match="not attached"):
        await client.agents.blocks.detach(project.id, agent_id=agent.id)

    # Deleting a block detaches it from its agents and their prompts.
    await client.agents.blocks.attach(project.id, agent_id=agent.id)
    await client.blocks.delete(project.id)
    assert [b.label async for b in client.agents.blocks.list(agent.id)] == ["human"]
    assert "Project: Mnemo" not in await _prompt_after_turn(client, mnemo, agent.id)


async def test_relabel_conflict(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    shared = await client.blocks.create(label="notes", value="n")
    agent = await create_agent(
        client, mnemo, memory_blocks=[{"label": "human", "value": "h"}], block_ids=[shared.id]
    )
    with pytest.raises(ConflictError, match="already has a block with that label"):
        await client.blocks.update(shared.id, label="human")
    renamed = await client.agents.blocks.update("notes", agent_id=agent.id, label="journal")
    assert renamed.label == "journal"
    assert (await client.agents.blocks.retrieve("journal", agent_id=agent.id)).id == shared.id
    async with mnemo.db.session() as s:
        versions = (
            await s.exec(
                select(BlockHistoryRow.label)
                .where(BlockHistoryRow.block_id == shared.id)
                .order_by(col(BlockHistoryRow.version))
            )
        ).all()
    assert list(versions) == ["journal"]
