"""The summarizer call against the fake LLM (a real OpenAI-compatible HTTP server): what is sent, what
comes back, and provider failures passed through unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from mnemo.config import Settings
from mnemo.fakellm import FakeLLM, Fault, Reply
from mnemo.llm.config import LLMConfig, resolve_llm_config
from mnemo.llm.errors import LLM_EMPTY_RESPONSE, ContextWindowExceeded, LLMError
from mnemo.memory.compaction import clip_summary, summarize
from mnemo.memory.compaction_prompts import ALL_PROMPT, SLIDING_PROMPT

TRANSCRIPT: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": '{"type": "system_alert", "message": "Note: prior messages ... The user likes bees."}',
    },
    {"role": "user", "content": "My name is Ada and I keep three beehives in Lyon."},
    {
        "role": "assistant",
        "content": "Let me remember that.",
        "tool_calls": [
            {
                "id": "call_mem1",
                "type": "function",
                "function": {"name": "memory_insert", "arguments": '{"label": "human", "new_string": "Ada"}'},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_mem1",
        "name": "memory_insert",
        "content": '{"status": "OK", "message": "None"}',
    },
    {"role": "assistant", "content": "Noted, Ada. How are the hives doing?"},
]


def config_for(fake: FakeLLM, **overrides: Any) -> LLMConfig:
    raw = {"model": "fake-summarizer", "model_endpoint_type": "openai", "model_endpoint": fake.base_url}
    return resolve_llm_config(None, {**raw, **overrides}, Settings(_env_file=None, default_model=None))  # type: ignore[call-arg]


async def test_summary_request_and_reply(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("  Ada keeps three beehives in Lyon; saved to the human block.\n"))
    summary = await summarize(config_for(fake_llm), TRANSCRIPT, SLIDING_PROMPT)
    assert summary == "Ada keeps three beehives in Lyon; saved to the human block."

    (body,) = fake_llm.chat_requests
    assert body["model"] == "fake-summarizer"
    assert "tools" not in body
    system, user = body["messages"]  # the prompt, then the whole transcript in one user message
    assert system == {"role": "system", "content": SLIDING_PROMPT}
    assert user["role"] == "user"
    text = user["content"]
    assert text.count("<transcript>") == 1 and text.rstrip().endswith("</transcript>")
    for fragment in (
        "The user likes bees.",
        "My name is Ada and I keep three beehives in Lyon.",
        "Let me remember that.",
        'ASSISTANT CALLED memory_insert (call_mem1) with arguments:\n{"label": "human", "new_string": "Ada"}',
        'TOOL RESULT memory_insert (call_mem1):\n{"status": "OK", "message": "None"}',
        "Noted, Ada. How are the hives doing?",
    ):
        assert fragment in text
    # Order is kept: the earlier summary first, the latest reply last.
    assert text.index("The user likes bees.") < text.index("three beehives") < text.index("hives doing")


async def test_all_mode_prompt_is_sent_as_given(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("Everything so far."))
    assert await summarize(config_for(fake_llm), TRANSCRIPT[1:2], ALL_PROMPT) == "Everything so far."
    (body,) = fake_llm.chat_requests
    assert body["messages"][0] == {"role": "system", "content": ALL_PROMPT}


async def test_long_summary_is_returned_whole_for_the_caller_to_clip(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("word " * 2000))
    summary = await summarize(config_for(fake_llm), TRANSCRIPT, SLIDING_PROMPT)
    assert len(summary) == len(("word " * 2000).strip())
    assert clip_summary(summary, clip_chars=100).endswith("... [summary truncated to fit]")


async def test_server_error_propagates_as_llm_error(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.server_error(503))
    with pytest.raises(LLMError) as info:
        await summarize(config_for(fake_llm), TRANSCRIPT, SLIDING_PROMPT)
    assert info.value.retryable is True
    assert info.value.status == 503
    assert len(fake_llm.chat_requests) == 1, "no retry here: the activity's retry policy owns retries"


async def test_context_overflow_propagates_for_the_loop_to_handle(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.context_overflow(max_tokens=4096, requested=5000))
    with pytest.raises(ContextWindowExceeded):
        await summarize(config_for(fake_llm), TRANSCRIPT, SLIDING_PROMPT)


async def test_auth_error_is_not_retryable(fake_llm: FakeLLM) -> None:
    fake_llm.script(Fault.status(401))
    with pytest.raises(LLMError) as info:
        await summarize(config_for(fake_llm), TRANSCRIPT, SLIDING_PROMPT)
    assert info.value.retryable is False


async def test_empty_summary_is_a_retryable_error(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply.text("   "))
    with pytest.raises(LLMError) as info:
        await summarize(config_for(fake_llm), TRANSCRIPT, SLIDING_PROMPT)
    assert (info.value.retryable, info.value.error_type) == (True, LLM_EMPTY_RESPONSE)


async def test_nothing_to_summarize_sends_nothing(fake_llm: FakeLLM) -> None:
    with pytest.raises(ValueError, match="at least one message"):
        await summarize(config_for(fake_llm), [], SLIDING_PROMPT)
    assert fake_llm.chat_requests == []
