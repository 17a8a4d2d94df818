"""The global `client.messages` (list, retrieve, search) and `client.passages.search` resources, through
the official letta-client against a real API, worker, Postgres and the local embedder.

The database is shared by the session's tests, so listings start from a cursor taken just before this
test's turns, and searches use words no other test says.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from letta_client import APIStatusError, AsyncLetta, NotFoundError, UnprocessableEntityError

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo


async def _say(client: AsyncLetta, mnemo: Mnemo, agent_id: str, text: str, reply: str) -> None:
    mnemo.fake.script(Reply.text(reply))
    await client.agents.messages.create(agent_id, input=text)


def _text(message: Any) -> str:
    # Only the message types with text content reach these checks; others show as "".
    content = getattr(message, "content", None)
    return content if isinstance(content, str) else ""


def _shown(messages: Sequence[Any]) -> list[tuple[str, str]]:
    return [(m.message_type, _text(m)) for m in messages]


async def test_list_pages_across_agents_and_retrieve(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    ada = (await create_agent(client, mnemo, name="ada")).id
    bob = (await create_agent(client, mnemo, name="bob")).id
    (newest,) = await client.messages.list(limit=1)  # the last message before this test's turns

    turns = [(ada, "ada one", "hi ada"), (bob, "bob one", "hi bob"), (ada, "ada two", "again ada")]
    for agent_id, text, reply in turns:
        await _say(client, mnemo, agent_id, text, reply)
    expected = [
        pair for _, text, reply in turns for pair in (("user_message", text), ("assistant_message", reply))
    ]

    everything = await client.messages.list(order="asc", after=newest.id)
    assert _shown(everything) == expected  # both agents' messages, interleaved in the order they were made
    ada_ids = {m.id for m in (await client.agents.messages.list(ada)).items}
    assert {m.id for m in everything if _text(m).startswith(("ada", "hi ada", "again"))} <= ada_ids

    first = await client.messages.list(order="asc", after=newest.id, limit=4)
    rest = await client.messages.list(order="asc", after=first[-1].id, limit=4)
    assert _shown(first) + _shown(rest) == expected
    latest = await client.messages.list(limit=3)  # newest first by default
    assert _shown(latest) == expected[::-1][:3]
    # Cursors are relative to the order: in newest-first, `after` is older and `before` is newer.
    assert _shown(await client.messages.list(after=latest[-1].id, limit=1)) == [expected[2]]
    assert _shown(await client.messages.list(before=latest[-1].id, limit=1)) == [expected[4]]
    users = await client.messages.list(
        order="asc", after=newest.id, include_return_message_types=["user_message"]
    )
    assert [_text(m) for m in users] == ["ada one", "bob one", "ada two"]

    reply_id = everything[3].id
    retrieved = await client.messages.retrieve(reply_id)
    assert [(m.id, m.message_type, _text(m)) for m in retrieved] == [
        (reply_id, "assistant_message", "hi bob")
    ]
    assert retrieved[0].run_id is not None

    with pytest.raises(NotFoundError, match="message-00000000"):
        await client.messages.retrieve("message-00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError, match="after"):
        await client.messages.list(after="message-00000000-0000-4000-8000-000000000000")
    with pytest.raises(APIStatusError, match="Conversations are not supported") as raised:
        await client.messages.list(conversation_id="conv-1")
    assert raised.value.status_code == 501


async def test_search_messages(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    cy = (await create_agent(client, mnemo, name="cy")).id
    di = (await create_agent(client, mnemo, name="di")).id
    await _say(client, mnemo, cy, "My grandmother grows heirloom zucchini in her garden.", "Lovely.")
    await _say(client, mnemo, cy, "I replaced the chain on my bicycle yesterday.", "Nice work.")
    await _say(client, mnemo, di, "I collect antique barometers from old ships.", "Fascinating.")
    said = [
        m
        for m in (await client.agents.messages.list(cy, order="asc")).items
        if m.message_type == "user_message"
    ]
    zucchini_id = said[-2].id

    for mode in ("fts", "hybrid"):
        found = await client.messages.search(query="zucchini", search_mode=mode)
        assert found[0].message_id == zucchini_id and found[0].agent_id == cy, mode
        assert found[0].message_type == "user_message" and "heirloom zucchini" in found[0].content
        assert found[0].created_at is not None
        scoped = await client.messages.search(query="zucchini", search_mode=mode, agent_id=di)
        assert zucchini_id not in {r.message_id for r in scoped}, mode
    assert await client.messages.search(query="zucchini", search_mode="fts", agent_id=di) == []

    # By meaning alone: no word of the query is in the message.
    (nearest,) = await client.messages.search(query="vegetables", search_mode="vector", agent_id=cy, limit=1)
    assert nearest.message_id == zucchini_id
    (nearest,) = await client.messages.search(
        query="ships at sea", search_mode="vector", agent_id=di, limit=1
    )
    assert nearest.agent_id == di and "barometers" in _text(nearest)

    replies = await client.messages.search(query="fascinating", search_mode="fts", agent_id=di)
    assert [(r.message_type, _text(r)) for r in replies] == [("assistant_message", "Fascinating.")]

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert await client.messages.search(query="zucchini", agent_id=cy, start_date=tomorrow) == []
    assert [
        r.message_id for r in await client.messages.search(query="zucchini", agent_id=cy, end_date=tomorrow)
    ][:1] == [zucchini_id]

    with pytest.raises(NotFoundError, match="agent-00000000"):
        await client.messages.search(query="x", agent_id="agent-00000000-0000-4000-8000-000000000000")
    with pytest.raises(UnprocessableEntityError, match="search_mode"):
        await client.messages.search(query="x", search_mode="semantic")  # type: ignore[arg-type]
    with pytest.raises(UnprocessableEntityError, match="query"):
        await client.messages.search(query="")
    with pytest.raises(APIStatusError, match="Conversations are not supported") as raised:
        await client.messages.search(query="zucchini", conversation_id="conv-1")
    assert raised.value.status_code == 501


FACTS = [
    ("Quillon the ferret sleeps in a hammock.", ["pets"]),
    ("Quillon's brother Tamsin is a greyhound who races.", ["pets", "dogs"]),
    ("The user maintains a lighthouse on a granite island.", ["work"]),
]


async def test_search_passages(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    eve = (await create_agent(client, mnemo, name="eve", memory_blocks=[{"label": "human", "value": "?"}])).id
    fay = (await create_agent(client, mnemo, name="fay", memory_blocks=[{"label": "human", "value": "?"}])).id
    ids = [(await client.agents.passages.create(eve, text=text, tags=tags))[0].id for text, tags in FACTS]
    other = (
        await client.agents.passages.create(fay, text="Quillon the ferret is fay's too.", tags=["pets"])
    )[0]

    by_meaning = await client.passages.search(query="pets and animals", agent_id=eve, limit=2)
    assert {r.passage.id for r in by_meaning} == set(ids[:2])
    assert all(r.score > 0 and r.metadata is not None and "rrf_score" in r.metadata for r in by_meaning)
    assert by_meaning[0].passage.tags in (["pets"], ["pets", "dogs"]) and by_meaning[0].passage.archive_id

    lighthouse = await client.passages.search(query="lighthouse keeper", agent_id=eve, limit=1)
    assert [r.passage.text for r in lighthouse] == [FACTS[2][0]]

    anyof = await client.passages.search(
        query="Quillon", agent_id=eve, tags=["dogs", "work"], tag_match_mode="any"
    )
    assert {r.passage.id for r in anyof} == {ids[1], ids[2]}
    allof = await client.passages.search(
        query="Quillon", agent_id=eve, tags=["pets", "dogs"], tag_match_mode="all"
    )
    assert [r.passage.id for r in allof] == [ids[1]]

    # Every archive (no scope), one archive, and agent_id winning over archive_id, as in Letta.
    everywhere = await client.passages.search(query="Quillon ferret hammock", tags=["pets"])
    assert {ids[0], other.id} <= {r.passage.id for r in everywhere}
    assert everywhere[0].passage.id == ids[0]
    in_archive = await client.passages.search(query="Quillon ferret", archive_id=other.archive_id)
    assert [r.passage.id for r in in_archive] == [other.id]
    both = await client.passages.search(query="Quillon ferret", agent_id=eve, archive_id=other.archive_id)
    assert other.id not in {r.passage.id for r in both} and ids[0] in {r.passage.id for r in both}

    newest = await client.passages.search(agent_id=eve, limit=2)  # no query: the newest passages
    assert [r.passage.id for r in newest] == ids[:0:-1]

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert await client.passages.search(query="Quillon", agent_id=eve, start_date=tomorrow) == []
    assert len(await client.passages.search(query="Quillon", agent_id=eve, end_date=tomorrow)) == 3

    with pytest.raises(NotFoundError, match="agent-00000000"):
        await client.passages.search(query="x", agent_id="agent-00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError, match="archive-00000000"):
        await client.passages.search(query="x", archive_id="archive-00000000-0000-4000-8000-000000000000")
    with pytest.raises(UnprocessableEntityError, match="tag_match_mode"):
        await client.passages.search(query="x", tag_match_mode="some")  # type: ignore[arg-type]
    with pytest.raises(UnprocessableEntityError, match="limit"):
        await client.passages.search(query="x", limit=0)
