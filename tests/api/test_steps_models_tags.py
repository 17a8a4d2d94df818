"""Steps, models and tags through the official letta-client: listing and filtering steps across runs,
a step's messages, the offline model catalogue (and how configured keys change it), and agent and
block tags."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator

import pytest
from fastapi import FastAPI
from letta_client import AsyncLetta, InternalServerError, NotFoundError, UnprocessableEntityError
from pydantic import SecretStr

from mnemo.config import Settings
from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo

MISSING_STEP = "step-00000000-0000-4000-8000-000000000000"


def _client(api_server: ApiServer) -> AsyncLetta:
    return AsyncLetta(base_url=api_server.base_url, max_retries=0)


async def _send(client: AsyncLetta, agent_id: str, text: str) -> str:
    response = await client.agents.messages.create(agent_id, input=text)
    (run_id,) = {m.run_id for m in response.messages}
    assert run_id is not None
    return run_id


@pytest.fixture
def server_settings(api_server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The live API's settings (it runs in this process), with no provider key and no default model,
    whatever the environment says; a test sets what it needs."""
    app: FastAPI = api_server.server.config.app  # type: ignore[assignment]
    settings: Settings = app.state.settings
    for name in ("openai_api_key", "anthropic_api_key", "openai_base_url", "default_model"):
        monkeypatch.setattr(settings, name, None)
    yield settings


async def test_steps_list_retrieve_messages(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    ada = (await create_agent(client, mnemo, name="ada", memory_blocks=[{"label": "human", "value": "?"}])).id
    bob = (await create_agent(client, mnemo, name="bob")).id

    mnemo.fake.script(
        Reply.tool_call(
            "memory_replace", {"label": "human", "old_string": "?", "new_string": "Ada"}, usage=(200, 20)
        ),
        Reply.text("Noted, Ada.", usage=(260, 7)),
    )
    run = await _send(client, ada, "I'm Ada")
    mnemo.fake.script(Reply.text("Hi Bob.", usage=(50, 3)))
    bob_run = await _send(client, bob, "hello")

    steps = (await client.steps.list(agent_id=ada, order="asc")).items
    assert [(s.run_id, s.agent_id, s.status, s.model) for s in steps] == [(run, ada, "success", "fake")] * 2
    assert [(s.prompt_tokens, s.completion_tokens, s.total_tokens) for s in steps] == [
        (200, 20, 220),
        (260, 7, 267),
    ]
    first, second = (s.id for s in steps)
    assert [s.id for s in (await client.steps.list(agent_id=ada)).items] == [second, first]  # newest first

    # Pagination: limit pages through `after`, and the cursors work both ways.
    assert [s.id async for s in client.steps.list(agent_id=ada, order="asc", limit=1)] == [first, second]
    assert [s.id for s in (await client.steps.list(agent_id=ada, order="asc", after=first)).items] == [second]
    assert [s.id for s in (await client.steps.list(agent_id=ada, order="asc", before=second)).items] == [
        first
    ]
    assert [s.id for s in (await client.steps.list(agent_id=ada, after=second)).items] == [first]

    everyone = (await client.steps.list(order="asc")).items
    assert [s.run_id for s in everyone] == [run, run, bob_run]
    assert [s.run_id for s in (await client.steps.list(agent_id=bob)).items] == [bob_run]
    assert len((await client.steps.list(model="fake")).items) == 3
    assert (await client.steps.list(model="gpt-4o")).items == []
    assert len((await client.steps.list(start_date="2000-01-01T00:00:00Z")).items) == 3
    assert (await client.steps.list(end_date="2000-01-01T00:00:00+00:00")).items == []
    assert (await client.steps.list(start_date="2999-01-01")).items == []
    with pytest.raises(UnprocessableEntityError, match="start_date"):
        await client.steps.list(start_date="yesterday")

    retrieved = await client.steps.retrieve(second)
    assert retrieved.model_dump() == steps[1].model_dump()

    call_step = [m async for m in client.steps.messages.list(first, limit=1)]  # pages through `after`
    assert [m.message_type for m in call_step] == ["tool_call_message", "tool_return_message"]
    assert {(m.step_id, m.run_id) for m in call_step} == {(first, run)}
    reply_step = (await client.steps.messages.list(second)).items
    assert [(m.message_type, m.content) for m in reply_step] == [("assistant_message", "Noted, Ada.")]  # type: ignore[union-attr]
    newest = (await client.steps.messages.list(first, order="desc", limit=1)).items
    assert [m.message_type for m in newest] == ["tool_return_message"]


async def test_steps_unknown_ids_and_unsupported(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    agent = await create_agent(client, mnemo, name="cy")
    mnemo.fake.script(Reply.text("hello"))
    await _send(client, agent.id, "hi")
    (step,) = (await client.steps.list(agent_id=agent.id)).items

    for call in (
        client.steps.retrieve(MISSING_STEP),
        client.steps.messages.list(MISSING_STEP),
        client.steps.metrics.retrieve(MISSING_STEP),
    ):
        with pytest.raises(NotFoundError, match=MISSING_STEP):
            await call
    with pytest.raises(NotFoundError, match=MISSING_STEP):
        await client.steps.list(after=MISSING_STEP)

    # Filters on what Mnemo does not record are refused, never answered with an empty page.
    with pytest.raises(InternalServerError, match="feedback") as refused:
        await client.steps.list(feedback="positive")
    assert refused.value.status_code == 501
    for kwargs in ({"has_feedback": False}, {"tags": ["prod"]}, {"trace_ids": ["t1"]}):
        with pytest.raises(InternalServerError, match="not supported") as refused:
            await client.steps.list(**kwargs)  # type: ignore[arg-type]
        assert refused.value.status_code == 501
    unsupported: tuple[Awaitable[object], ...] = (
        client.steps.metrics.retrieve(step.id),
        client.steps.trace.retrieve(step.id),
        client.steps.feedback.create(step.id, feedback="positive"),
    )
    for pending in unsupported:
        with pytest.raises(InternalServerError, match="not supported") as refused:
            await pending
        assert refused.value.status_code == 501


async def test_models_without_keys(api_server: ApiServer, mnemo: Mnemo, server_settings: Settings) -> None:
    client = _client(api_server)
    assert await client.models.list() == []  # no key, no default, no agent: nothing to vouch for
    await create_agent(client, mnemo, name="dee")
    await create_agent(client, mnemo, name="eve")  # the same model: listed once

    (fake,) = await client.models.list()
    assert (fake.handle, fake.name, fake.model, fake.provider_type, fake.provider_name) == (
        "openai/fake",
        "fake",
        "fake",
        "openai",
        "openai",
    )
    assert (fake.api_model_endpoint, fake.context_window, fake.max_context_window) == (
        mnemo.fake.base_url,
        128000,
        128000,
    )
    assert (fake.api_model_type, fake.api_model_endpoint_type) == ("llm", "openai")

    (local,) = await client.models.embeddings.list()
    assert (local.handle, local.name, local.embedding_dim, local.provider_type) == (
        "local/multilingual-e5-small",
        "multilingual-e5-small",
        384,
        "local",
    )

    server_settings.default_model = "anthropic/claude-sonnet-4-5"
    handles = [m.handle for m in await client.models.list()]
    assert handles == ["anthropic/claude-sonnet-4-5", "openai/fake"]  # the default first


async def test_models_with_provider_keys(
    api_server: ApiServer, mnemo: Mnemo, server_settings: Settings
) -> None:
    client = _client(api_server)
    await create_agent(client, mnemo, name="fay")
    server_settings.openai_api_key = SecretStr("sk-test-not-a-real-key")

    models = await client.models.list()
    by_handle = {m.handle: m for m in models}
    assert len(by_handle) == len(models)  # de-duplicated
    assert "openai/fake" in by_handle
    gpt = by_handle["openai/gpt-4o-mini"]
    assert (gpt.name, gpt.provider_type, gpt.api_model_endpoint, gpt.provider_category) == (
        "gpt-4o-mini",
        "openai",
        "https://api.openai.com/v1",
        "base",
    )
    assert gpt.max_context_window == gpt.context_window and gpt.context_window > 32000  # from litellm's map
    assert not any((h or "").startswith("anthropic/") for h in by_handle)
    assert "openai/text-embedding-3-small" not in by_handle  # embeddings are listed apart

    assert await client.models.list(provider_type="anthropic") == []
    assert {m.handle for m in await client.models.list(provider_name="openai")} == set(by_handle)
    assert await client.models.list(provider_category=["byok"]) == []

    embeddings = {e.handle: e.embedding_dim for e in await client.models.embeddings.list()}
    assert embeddings == {
        "local/multilingual-e5-small": 384,
        "openai/text-embedding-3-small": 1536,
        "openai/text-embedding-3-large": 3072,
    }

    server_settings.anthropic_api_key = SecretStr("sk-ant-test-not-a-real-key")
    claude = await client.models.list(provider_type="anthropic")
    assert claude and all((m.handle or "").startswith("anthropic/") for m in claude)
    assert all(m.api_model_endpoint == "https://api.anthropic.com/v1" for m in claude)


async def test_tags(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = _client(api_server)
    assert await client.tags.list() == []
    await create_agent(client, mnemo, name="gus", tags=["blue", "team-a"])
    await create_agent(client, mnemo, name="hal", tags=["Alpha", "blue"])
    await client.blocks.create(label="notes", value="shared", tags=["notes"])

    assert await client.tags.list() == ["Alpha", "blue", "notes", "team-a"]
    assert await client.tags.list(order="desc") == ["team-a", "notes", "blue", "Alpha"]
    assert await client.tags.list(limit=2) == ["Alpha", "blue"]
    assert await client.tags.list(after="blue") == ["notes", "team-a"]
    assert await client.tags.list(after="blue", order="desc") == ["Alpha"]
    assert await client.tags.list(before="notes", limit=1) == ["blue"]
    assert await client.tags.list(name="A") == ["Alpha", "team-a"]  # case-insensitive "contains"
    assert await client.tags.list(query_text="lu") == ["blue"]
    assert await client.tags.list(name="%") == []  # a literal, not a wildcard
