"""Compaction: which in-context messages to evict into a summary, the summarizer call, and the texts.

Follows Letta 0.16.8's V3 compaction (compatibility notes §4.1). The agent loop:

1. builds a `MsgView` per in-context message (index 0 is the system message) and calls
   `plan_compaction`, which raises `SystemPromptTooLarge` when nothing can ever fit;
2. renders the evicted messages as chat dicts and calls `summarize` with `prompt_for_mode(plan.mode)`;
3. clips the reply with `clip_summary` and stores `summary_message_text(...)` at index 1, followed by
   the kept messages. Evicted messages stay in the database (recall memory).

Planning is pure and works on token counts only, so it is cheap to test exhaustively and to run
again after a crash. The invariants it guarantees (property-tested): the system message and a
pending approval are never evicted; messages that share a tool call id (a call, its approval, its
return) always stay on the same side; kept order is the original order; and either the kept part
is under the goal or the plan says it fell back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from mnemo.llm.config import LLMConfig
from mnemo.llm.errors import LLM_EMPTY_RESPONSE, LLMError
from mnemo.memory.compaction_prompts import prompt_for_mode, summarizer_user_message
from mnemo.memory.render import format_letta_time, letta_json_dumps

__all__ = [
    "CompactionMode",
    "CompactionPlan",
    "CompactionStats",
    "MsgView",
    "SystemPromptTooLarge",
    "clip_summary",
    "estimate_tokens",
    "plan_compaction",
    "prompt_for_mode",
    "summarize",
    "summary_message_text",
]

CompactionMode = Literal["sliding_window", "all"]

DEFAULT_SLIDING_WINDOW_PERCENTAGE = 0.3  # Letta's partial_evict_summarizer_percentage
DEFAULT_CLIP_CHARS = 50000
SUMMARY_TRUNCATION_SUFFIX = "... [summary truncated to fit]"
# bytes/4 undercounts JSON-shaped messages by a quarter to a third; Letta pads the estimate by 30%.
APPROX_TOKEN_SAFETY_MARGIN = 1.3
EVICTION_STEP = 0.1
STOP_REASON_SYSTEM_PROMPT_OVERFLOW = "context_window_overflow_in_system_prompt"

_SUMMARY_FOLLOWS = "The following is a summary of the previous messages:\n "
_SLIDING_NOTE = (
    "Note: {count} messages from the beginning of the conversation have been hidden from view due to "
    "memory constraints.\n"
)
_SLIDING_NOTE_NO_COUNT = (
    "Note: prior messages from the beginning of the conversation have been hidden from view due to "
    "conversation memory constraints.\n"
)
_ALL_NOTE = "Note: prior messages have been hidden from view due to conversation memory constraints.\n"


class SystemPromptTooLarge(Exception):
    """The system message alone does not fit the context window: no compaction can help, the run stops
    with `stop_reason` (Letta's SystemPromptTokenExceededError)."""

    stop_reason = STOP_REASON_SYSTEM_PROMPT_OVERFLOW

    def __init__(self, system_tokens: int, context_window: int) -> None:
        super().__init__(
            f"The system prompt alone is about {system_tokens} tokens, which does not fit the context "
            f"window of {context_window} tokens; shorten the system prompt or memory blocks, or use a "
            "model with a larger context window"
        )
        self.system_tokens = system_tokens
        self.context_window = context_window

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.system_tokens, self.context_window))


class MsgView(BaseModel):
    """What planning needs to know about one in-context message.

    `tool_call_ids`: for an assistant message, the ids of the calls it made; for a tool message, the id
    of the call it answers; for an approval request or response, the ids of the calls it is about.
    Messages that share an id are never separated. A pending approval request should carry the ids it
    awaits, so the assistant message that made those calls is protected with it.
    """

    id: str
    role: Literal["system", "user", "assistant", "tool", "approval", "summary"]
    tokens: int = Field(ge=0)
    tool_call_ids: list[str] = Field(default_factory=list)
    pending_approval: bool = False


class CompactionPlan(BaseModel):
    """The outcome of planning. `tokens_after_estimate` counts the system message and the kept messages,
    not the summary that will be inserted (unknown until the summarizer answers), as Letta does."""

    mode: CompactionMode
    evict_ids: list[str]
    keep_ids: list[str]  # starts with the system message; the summary goes right after it
    tokens_before: int
    tokens_after_estimate: int
    goal_tokens: float
    fell_back: bool  # sliding_window found no cut under the goal, so this plan is "all"


class CompactionStats(BaseModel):
    """Letta's `compaction_stats`, attached to the summary message (field order is the wire order)."""

    trigger: str
    context_tokens_before: int | None = None
    context_tokens_after: int | None = None
    context_window: int
    messages_count_before: int
    messages_count_after: int


# -------------------------------------------------------------------------------------------- tokens


def estimate_tokens(text: str) -> int:
    """Letta's approximate count when no tokenizer is available: UTF-8 bytes / 4, plus 30%."""
    return math.ceil(len(text.encode("utf-8")) / 4 * APPROX_TOKEN_SAFETY_MARGIN)


# -------------------------------------------------------------------------------------------- planning


def plan_compaction(
    messages: Sequence[MsgView],
    *,
    context_window: int,
    mode: CompactionMode = "sliding_window",
    sliding_window_percentage: float = DEFAULT_SLIDING_WINDOW_PERCENTAGE,
    goal_tokens: float | None = None,
) -> CompactionPlan:
    """Choose which messages to evict.

    sliding_window: evict `pct + 10%` of the messages, then 10% more per try (up to all of them), each
    time cutting at the last valid boundary at or before that point, until `[system] + kept` is under
    the goal (default `(1 - pct) × context_window`). A valid boundary is a message the kept part can
    start with: an assistant message, or an approval message with tool calls, that separates no tool
    call id, lies at or before a pending approval, and evicts at least one message (so an existing
    summary at index 1 is always folded into the new one). If no try reaches the goal, the plan falls
    back to "all".

    all: evict everything but the system message and a pending approval (with every message it shares
    a tool call id with, and whatever follows it).

    Raises `SystemPromptTooLarge` when the system message alone is at least the context window, and
    `ValueError` for malformed input.
    """
    _validate(messages, context_window, mode, sliding_window_percentage, goal_tokens)
    system_tokens = messages[0].tokens
    if system_tokens >= context_window:
        raise SystemPromptTooLarge(system_tokens, context_window)
    goal = float(goal_tokens) if goal_tokens is not None else (1 - sliding_window_percentage) * context_window
    n = len(messages)
    suffix = [0] * (n + 1)  # suffix[c] = tokens of messages[c:]
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + messages[i].tokens
    crossing = _crossing_cuts(messages)
    protect = _protected_start(messages, crossing)

    def build(plan_mode: CompactionMode, cut: int, fell_back: bool) -> CompactionPlan:
        return CompactionPlan(
            mode=plan_mode,
            evict_ids=[m.id for m in messages[1:cut]],
            keep_ids=[messages[0].id, *(m.id for m in messages[cut:])],
            tokens_before=suffix[0],
            tokens_after_estimate=system_tokens + suffix[cut],
            goal_tokens=goal,
            fell_back=fell_back,
        )

    if mode == "sliding_window":
        cut = _sliding_window_cut(
            messages, crossing, suffix, protect, system_tokens, goal, sliding_window_percentage
        )
        if cut is not None:
            return build("sliding_window", cut, fell_back=False)
        return build("all", protect, fell_back=True)
    return build("all", protect, fell_back=False)


def _validate(
    messages: Sequence[MsgView],
    context_window: int,
    mode: str,
    pct: float,
    goal_tokens: float | None,
) -> None:
    if not messages:
        raise ValueError("plan_compaction needs the in-context messages, starting with the system message")
    first = messages[0]
    if first.role != "system":
        raise ValueError(f"messages[0] must be the system message, got role {first.role!r}")
    if first.tool_call_ids or first.pending_approval:
        raise ValueError("the system message cannot carry tool calls or a pending approval")
    ids = [m.id for m in messages]
    if len(set(ids)) != len(ids):
        raise ValueError("message ids must be unique")
    if context_window <= 0:
        raise ValueError(f"context_window must be positive, got {context_window}")
    if mode not in ("sliding_window", "all"):
        raise ValueError(f"Unknown compaction mode {mode!r}: expected 'sliding_window' or 'all'")
    if not 0.0 <= pct <= 1.0:
        raise ValueError(f"sliding_window_percentage must be between 0 and 1, got {pct}")
    if goal_tokens is not None and goal_tokens <= 0:
        raise ValueError(f"goal_tokens must be positive, got {goal_tokens}")


def _crossing_cuts(messages: Sequence[MsgView]) -> list[bool]:
    """crossing[c] is True when cutting before messages[c] would separate two messages that share a
    tool call id (a call from its return or approval)."""
    n = len(messages)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, message in enumerate(messages):
        for call_id in message.tool_call_ids:
            first.setdefault(call_id, i)
            last[call_id] = i
    depth = [0] * (n + 2)
    for call_id, start in first.items():
        end = last[call_id]
        if end > start:
            depth[start + 1] += 1
            depth[end + 1] -= 1
    crossing = [False] * (n + 1)
    running = 0
    for c in range(n + 1):
        running += depth[c]
        crossing[c] = running > 0
    return crossing


def _protected_start(messages: Sequence[MsgView], crossing: list[bool]) -> int:
    """The first index the plan must keep for the pending approval (len(messages) if there is none):
    the last boundary at or before the first pending message that separates no tool call id, so the
    assistant message that made the awaited calls stays with the approval."""
    pending = [i for i, m in enumerate(messages) if m.pending_approval]
    if not pending:
        return len(messages)
    start = min(pending)
    while start > 1 and crossing[start]:
        start -= 1
    return start


def _eviction_fractions(pct: float) -> list[float]:
    # Letta adds the step before its first try (so 0.3 tries 40% first) and stops at 100%. Rounding
    # keeps 0.3 + 7 × 0.1 from landing a hair under 1.0 and adding a try.
    fractions: list[float] = []
    step = 1
    while True:
        fraction = round(pct + step * EVICTION_STEP, 9)
        if fraction >= 1.0:
            fractions.append(1.0)
            return fractions
        fractions.append(fraction)
        step += 1


def _sliding_window_cut(
    messages: Sequence[MsgView],
    crossing: list[bool],
    suffix: list[int],
    protect: int,
    system_tokens: int,
    goal: float,
    pct: float,
) -> int | None:
    n = len(messages)
    latest_valid: list[int | None] = [None] * (n + 1)  # latest_valid[i]: last valid cut ≤ i
    best: int | None = None
    for c in range(n + 1):
        if 2 <= c <= min(protect, n - 1) and not crossing[c] and _can_start_kept(messages[c]):
            best = c
        latest_valid[c] = best
    for fraction in _eviction_fractions(pct):
        cut = latest_valid[min(round(fraction * n), n)]
        if cut is not None and system_tokens + suffix[cut] < goal:
            return cut
    return None


def _can_start_kept(message: MsgView) -> bool:
    if message.role == "assistant":
        return True
    return message.role == "approval" and bool(message.tool_call_ids)


# ------------------------------------------------------------------------------------------- texts


def clip_summary(text: str, clip_chars: int | None = DEFAULT_CLIP_CHARS) -> str:
    """Letta's `clip_chars` safety net: a longer summary is cut and marked as truncated."""
    if clip_chars is None or len(text) <= clip_chars:
        return text
    return text[:clip_chars] + SUMMARY_TRUNCATION_SUFFIX


def summary_message_text(
    summary: str,
    evicted_count: int | None,
    mode: CompactionMode,
    now: datetime,
    tz: str | None,
    compaction_stats: CompactionStats | None = None,
) -> str:
    """The content of the summary message inserted at index 1: Letta's `system_alert` JSON
    (`package_summarize_message_no_counts`). Sliding-window summaries say how many messages were hidden
    (`evicted_count`; None gives Letta's count-less wording); "all" summaries never do."""
    if mode == "sliding_window":
        note = (
            _SLIDING_NOTE.format(count=evicted_count) if evicted_count is not None else _SLIDING_NOTE_NO_COUNT
        )
    elif mode == "all":
        note = _ALL_NOTE
    else:
        raise ValueError(f"Unknown compaction mode {mode!r}: expected 'sliding_window' or 'all'")
    payload: dict[str, Any] = {
        "type": "system_alert",
        "message": note + _SUMMARY_FOLLOWS + summary,
        "time": format_letta_time(now, tz),
    }
    if compaction_stats is not None:
        payload["compaction_stats"] = compaction_stats.model_dump()
    return letta_json_dumps(payload)


# -------------------------------------------------------------------------------------- summarizer


async def summarize(
    config: LLMConfig,
    transcript: list[dict[str, Any]],
    prompt: str,
    *,
    timeout: float = 600,  # noqa: ASYNC109 -- passed through to the model call's own deadline
) -> str:
    """Ask the summarizer model for a summary of `transcript` (chat-format dicts of the evicted
    messages). The prompt is the system message; the transcript is rendered as text in one user
    message so the model describes it instead of continuing it. Any `LLMError` (including
    `ContextWindowExceeded`) propagates; an empty reply is a retryable `LLMError`."""
    if not transcript:
        raise ValueError("summarize needs at least one message to summarize")
    # Imported here: the client imports litellm (seconds), and the planning above must stay cheap to
    # import wherever message views are built.
    from mnemo.llm.client import complete

    request = [
        {"role": "system", "content": prompt},
        {"role": "user", "content": summarizer_user_message(transcript)},
    ]
    result = await complete(config, request, timeout=timeout)
    summary = (result.text or "").strip()
    if not summary:
        raise LLMError(
            "The summarizer model returned an empty summary", retryable=True, error_type=LLM_EMPTY_RESPONSE
        )
    return summary
