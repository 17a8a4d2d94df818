"""Errors through the official letta-client: unknown ids are 404, bad bodies and parameters are 422 naming
the offending field, conflicts are 409, and no bad input ends as a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
from letta_client import (
    APIStatusError,
    AsyncLetta,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from api.errors import install_error_handlers
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import Mnemo

MISSING_AGENT = "agent-00000000-0000-4000-8000-000000000000"
MISSING_BLOCK = "block-00000000-0000-4000-8000-000000000000"
MISSING_TOOL = "tool-00000000-0000-4000-8000-000000000000"
MISSING_PASSAGE = "passage-00000000-0000-4000-8000-000000000000"


@pytest.fixture
def server(mnemo: Mnemo, temporal_env) -> Iterator[ApiServer]:  # type: ignore[no-untyped-def]
    """The API with its error handlers (create_app may install them too: installing twice is harmless)."""
    from mnemo.config import Settings

    target = temporal_env.client.service_client.config.target_host
    settings = Settings(DATABASE_URL=mnemo.db.url, TEMPORAL_ADDRESS=target, MNEMO_TASK_QUEUE=mnemo.task_queue)
    api = ApiServer(settings)
    install_error_handlers(api.server.config.app)
    api.start()
    try:
        yield api
    finally:
        api.stop()


async def _agent(client: AsyncLetta, mnemo: Mnemo) -> str:
    agent = await client.agents.create(
        memory_blocks=[{"label": "human", "value": "?"}],
        llm_config={"model": "fake", "model_endpoint_type": "openai", "model_endpoint": mnemo.fake.base_url},
    )
    return agent.id


async def test_unknown_ids_are_404(server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    calls: list[tuple[str, Awaitable[Any]]] = [
        (MISSING_BLOCK, client.blocks.retrieve(MISSING_BLOCK)),
        (MISSING_BLOCK, client.blocks.update(MISSING_BLOCK, value="x")),
        (MISSING_BLOCK, client.blocks.delete(MISSING_BLOCK)),
        (MISSING_BLOCK, client.blocks.agents.list(MISSING_BLOCK)),
        (MISSING_BLOCK, client.blocks.list(after=MISSING_BLOCK)),
        (MISSING_AGENT, client.agents.blocks.list(MISSING_AGENT)),
        (MISSING_AGENT, client.agents.blocks.retrieve("human", agent_id=MISSING_AGENT)),
        (MISSING_AGENT, client.agents.blocks.update("human", agent_id=MISSING_AGENT, value="x")),
        (MISSING_BLOCK, client.agents.blocks.attach(MISSING_BLOCK, agent_id=agent_id)),
        (MISSING_AGENT, client.agents.passages.list(MISSING_AGENT)),
        (MISSING_AGENT, client.agents.passages.search(MISSING_AGENT, query="x")),
        (MISSING_PASSAGE, client.agents.passages.delete(MISSING_PASSAGE, agent_id=agent_id)),
        (MISSING_TOOL, client.tools.retrieve(MISSING_TOOL)),
        (MISSING_TOOL, client.tools.delete(MISSING_TOOL)),
        (MISSING_TOOL, client.agents.tools.attach(MISSING_TOOL, agent_id=agent_id)),
        (MISSING_AGENT, client.agents.tools.list(MISSING_AGENT)),
        (MISSING_AGENT, client.runs.list(agent_id=MISSING_AGENT)),
    ]
    for missing, call in calls:
        with pytest.raises(NotFoundError) as err:
            await call
        assert missing in str(err.value.body), err.value.body


async def test_bad_input_is_422_naming_the_field(server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    block = await client.blocks.create(label="notes", value="n")
    cases: list[tuple[str, Awaitable[Any]]] = [
        ("body.label", client.blocks.create(label="", value="x")),
        ("body.limit", client.blocks.create(label="x", value="x", limit=0)),
        ("body.limit", client.blocks.update(block.id, limit=-1)),
        ("query.limit", client.blocks.list(limit=0)),
        ("query.order", client.blocks.list(order="sideways")),  # type: ignore[arg-type]
        ("body.text", client.agents.passages.create(agent_id, text="   ")),
        ("query.query", client.agents.passages.search(agent_id, query="")),
        ("body.source_code", client.tools.create(source_code="")),
        (
            "body.return_char_limit",
            client.tools.create(source_code="def f():\n    pass\n", return_char_limit=0),
        ),
        ("body.source_type", client.tools.create(source_code="x", source_type="rust")),
        (
            "body.pip_requirements.0.name",
            client.tools.create(source_code="x", pip_requirements=[{"version": "1"}]),
        ),  # type: ignore[list-item]
        ("query.limit", client.runs.list(limit=5000)),
    ]
    for field, call in cases:
        with pytest.raises(UnprocessableEntityError) as err:
            await call
        body = err.value.body
        assert isinstance(body, dict) and field in body["message"], body
        assert any(".".join(map(str, e["loc"])) == field for e in body["detail"]), body

    with pytest.raises(UnprocessableEntityError, match="Exceeds 5 character limit"):
        await client.blocks.create(label="x", value="toolong", limit=5)
    with pytest.raises(UnprocessableEntityError, match="statuses"):
        await client.runs.list(statuses=["done"])
    with pytest.raises(UnprocessableEntityError, match="Invalid end_datetime"):
        await client.agents.passages.search(agent_id, query="x", end_datetime="soon")


async def test_conflicts_are_409_even_when_racing(server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=server.base_url, max_retries=0)
    agent_id = await _agent(client, mnemo)
    # Two different blocks with one label, attached at the same moment: exactly one wins.
    first = await client.blocks.create(label="project", value="a")
    second = await client.blocks.create(label="project", value="b")
    results = await asyncio.gather(
        client.agents.blocks.attach(first.id, agent_id=agent_id),
        client.agents.blocks.attach(second.id, agent_id=agent_id),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ConflictError), results
    assert "already has a block labelled 'project'" in str(errors[0].body)
    assert errors[0].response.headers["x-should-retry"] == "false"  # the SDK would retry a 409 otherwise
    winner = first if not isinstance(results[0], BaseException) else second

    # Concurrent upserts of one tool name never fail: one creates it, the others replace it.
    source = 'def ping(host: str) -> str:\n    """Ping a host.\n\n    Args:\n        host: Where.\n    """\n    return host\n'
    tools = await asyncio.gather(*(client.tools.upsert(source_code=source) for _ in range(5)))
    assert len({t.id for t in tools}) == 1

    statuses = []
    for call in (
        client.tools.create(
            source_code='def conversation_search(q: str) -> str:\n    """x"""\n    return q\n'
        ),
        client.blocks.update(winner.id, label="human"),
    ):
        try:
            await call
        except APIStatusError as exc:
            statuses.append(exc.status_code)
    assert statuses == [409, 409]
