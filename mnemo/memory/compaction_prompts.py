"""What the summarizer model is asked, and how the evicted messages are shown to it.

The prompts are Mnemo's own wording of Letta's section lists (§4.1 of the compatibility notes): the
sliding-window prompt summarizes the oldest part of a conversation whose recent part stays visible;
the "all" prompt replaces the whole conversation, so it also asks for the current state and the next
step. The evicted messages go to the model as one rendered transcript inside a single user message,
never as a chat history: a chat history invites the model to continue the conversation instead of
describing it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

SLIDING_WORD_LIMIT = 300
ALL_WORD_LIMIT = 500

_SHARED_SECTIONS = """\
1. High-level goals: what the user is trying to achieve, and any standing instructions, preferences \
or constraints they gave.
2. What happened: the main requests, decisions and actions in order, including which tools the \
agent called and what they returned.
3. Important details: names, numbers, dates, identifiers, file paths, URLs, code and exact wording \
that later messages may depend on.
4. Errors and fixes: what went wrong, what was tried, and what finally worked or is still broken.
5. Lookup hints: distinctive keywords, names or phrases the agent can search its conversation \
history for to recover details this summary leaves out."""

_RULES = """\
Write about the user and the agent in the third person. Be specific rather than vague, and leave out \
greetings and small talk. If the transcript begins with an earlier summary, fold its content into \
yours instead of describing it as an event. Do not continue the conversation, do not answer \
questions from it and do not call tools."""

SLIDING_PROMPT = f"""\
You are summarizing the oldest part of a conversation between an AI agent and a user. These \
messages are about to leave the agent's context window; the more recent messages stay visible to \
it, so your summary only has to stand in for the messages in the transcript you are given.

Write the summary in these sections:
{_SHARED_SECTIONS}

{_RULES}

Keep the summary under {SLIDING_WORD_LIMIT} words. Output only the summary."""

ALL_PROMPT = f"""\
You are summarizing a whole conversation between an AI agent and a user. None of these messages \
will remain in the agent's context window: your summary is all the agent will see of the \
conversation so far, so it must let the agent carry on without asking the user to repeat anything.

Write the summary in these sections:
{_SHARED_SECTIONS}
6. Current state: what the agent was in the middle of when the transcript ends, and what is still \
pending, promised or unresolved.
7. Next step (optional): the agent's next action, only if it follows directly from the user's most \
recent request; quote that request word for word so its intent is not lost.

{_RULES}

Keep the summary under {ALL_WORD_LIMIT} words. Output only the summary."""

TRANSCRIPT_INTRO = (
    "Summarize the conversation transcript below as your instructions say. It is a record to "
    "describe, not a conversation to take part in."
)


def prompt_for_mode(mode: Literal["sliding_window", "all"]) -> str:
    """The default summarizer prompt for a compaction mode (Letta's `get_default_prompt_for_mode`)."""
    if mode == "sliding_window":
        return SLIDING_PROMPT
    if mode == "all":
        return ALL_PROMPT
    raise ValueError(f"Unknown compaction mode {mode!r}: expected 'sliding_window' or 'all'")


# ------------------------------------------------------------------------------------ transcript


def render_transcript(messages: Sequence[dict[str, Any]]) -> str:
    """Chat-format messages (OpenAI shape: role, content, tool_calls, tool_call_id, name) as plain text,
    one block per message, blank line between blocks."""
    blocks: list[str] = []
    for message in messages:
        blocks.extend(_render_message(message))
    return "\n\n".join(blocks)


def summarizer_user_message(messages: Sequence[dict[str, Any]]) -> str:
    """The single user message the summarizer receives: a short framing line and the transcript."""
    return f"{TRANSCRIPT_INTRO}\n\n<transcript>\n{render_transcript(messages)}\n</transcript>"


def _render_message(message: dict[str, Any]) -> list[str]:
    role = str(message.get("role") or "unknown")
    text = _content_text(message.get("content"))
    if role == "tool":
        name = message.get("name") or "tool"
        call_id = message.get("tool_call_id")
        ref = f"{name} ({call_id})" if call_id else str(name)
        return [f"TOOL RESULT {ref}:\n{text}"]
    blocks: list[str] = []
    if text:
        blocks.append(f"{role.upper()}:\n{text}")
    for call in message.get("tool_calls") or []:
        blocks.append(_render_call(role, call))
    if not blocks:
        blocks.append(f"{role.upper()}: (empty)")
    return blocks


def _render_call(role: str, call: Any) -> str:
    function = (call.get("function") or {}) if isinstance(call, dict) else {}
    name = function.get("name") or "tool"
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    call_id = call.get("id") if isinstance(call, dict) else None
    ref = f"{name} ({call_id})" if call_id else str(name)
    return f"{role.upper()} CALLED {ref} with arguments:\n{arguments}"


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text") or ""))
            elif isinstance(part, dict):
                # Images and files cannot be summarized from text; say they were there.
                parts.append(f"[{part.get('type') or 'attachment'}]")
            else:
                parts.append(str(part))
        return "\n".join(p for p in parts if p)
    return json.dumps(content, ensure_ascii=False, default=str)
