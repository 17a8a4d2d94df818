"""`agents.messages.compact` (POST /summarize) and GET /context through the official client and HTTP."""

from __future__ import annotations

import httpx
from letta_client import AsyncLetta

from mnemo.fakellm import Reply
from tests.fixtures.api_server import ApiServer, create_agent
from tests.fixtures.mnemo import Mnemo, fake_llm_config


async def test_compact_now_and_the_context_breakdown(api_server: ApiServer, mnemo: Mnemo) -> None:
    client = AsyncLetta(base_url=api_server.base_url, max_retries=0)
    agent = await create_agent(
        client,
        mnemo,
        memory_blocks=[{"label": "human", "value": "Ada likes chess"}],
        llm_config=fake_llm_config(mnemo.fake, context_window=8000),
    )
    for i in range(6):
        mnemo.fake.script(Reply.text(f"reply {i}"))
        await client.agents.messages.create(agent.id, input=f"message {i}")
    async with httpx.AsyncClient(base_url=api_server.base_url) as http:
        before = (await http.get(f"/v1/agents/{agent.id}/context")).json()
        assert before["num_messages"] == 13 and before["summary_memory"] is None
        assert before["num_tokens_core_memory"] > 0 and before["num_tokens_functions_definitions"] > 0
        assert before["context_window_size_max"] == 8000

        mnemo.fake.script(Reply.text("Ada and the agent exchanged six numbered messages."))
        result = await client.agents.messages.compact(agent.id)
        assert "six numbered messages" in result.summary
        assert result.num_messages_after < result.num_messages_before == 13

        after = (await http.get(f"/v1/agents/{agent.id}/context")).json()
        assert after["num_messages"] == result.num_messages_after
        assert "six numbered messages" in after["summary_memory"] and after["num_tokens_summary_memory"] > 0
        assert after["num_tokens_messages"] < before["num_tokens_messages"]
        missing = await http.post("/v1/agents/agent-00000000-0000-4000-8000-000000000000/summarize")
        assert missing.status_code == 404
    # The next turn sees the summary at index 1.
    mnemo.fake.script(Reply.text("ok"))
    await client.agents.messages.create(agent.id, input="next")
    assert "six numbered messages" in mnemo.fake.chat_requests[-1]["messages"][1]["content"]
