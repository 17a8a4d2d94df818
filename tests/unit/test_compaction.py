"""Compaction planning: invariants over random transcripts, Letta's cut schedule on hand-built ones,
and the exact texts (summary message, truncation note, prompts)."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest

from mnemo.memory.compaction import (
    SUMMARY_TRUNCATION_SUFFIX,
    CompactionMode,
    CompactionPlan,
    CompactionStats,
    MsgView,
    SystemPromptTooLarge,
    _eviction_fractions,
    clip_summary,
    estimate_tokens,
    plan_compaction,
    summary_message_text,
)
from mnemo.memory.compaction_prompts import (
    ALL_PROMPT,
    SLIDING_PROMPT,
    prompt_for_mode,
    render_transcript,
    summarizer_user_message,
)

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:  # the seeded loop below still covers the same properties
    HAVE_HYPOTHESIS = False


# ----------------------------------------------------------------------------- random transcripts


class Source(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...


class RandomSource:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisSource:
    def __init__(self, data: Any) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return int(self.data.draw(st.integers(lo, hi)))


@dataclass
class Case:
    messages: list[MsgView]
    context_window: int
    mode: CompactionMode
    pct: float
    goal_tokens: float | None
    summary_at_1: bool


class TranscriptBuilder:
    """Builds transcripts shaped like Letta's: user turns, assistant steps with (parallel) tool calls
    whose returns may come in any order, approval flows, an optional summary at index 1 and an
    optional pending approval at the end."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.messages: list[MsgView] = []
        self.ids = itertools.count()
        self.calls = itertools.count()

    def tokens(self) -> int:
        # Mostly small messages, now and then a huge one (a file read, a long tool result).
        return self.src.integer(0, 40) if self.src.integer(0, 5) else self.src.integer(0, 3000)

    def add(
        self, role: Any, ids: list[str] | None = None, pending: bool = False, tokens: int | None = None
    ) -> MsgView:
        message = MsgView(
            id=f"m{next(self.ids)}",
            role=role,
            tokens=self.tokens() if tokens is None else tokens,
            tool_call_ids=ids or [],
            pending_approval=pending,
        )
        self.messages.append(message)
        return message

    def new_calls(self, k: int) -> list[str]:
        return [f"call{next(self.calls)}" for _ in range(k)]

    def returns(self, ids: list[str]) -> None:
        remaining = list(ids)
        while remaining:
            self.add("tool", [remaining.pop(self.src.integer(0, len(remaining) - 1))])

    def step(self) -> None:
        kind = self.src.integer(0, 4)
        if kind == 0:
            self.add("assistant")
        elif kind == 1:  # one or several parallel calls, returns in any order
            ids = self.new_calls(self.src.integer(1, 3))
            self.add("assistant", ids)
            self.returns(ids)
        elif kind == 2:  # a second assistant message before the first one's returns arrive
            first, second = self.new_calls(1), self.new_calls(self.src.integer(1, 2))
            self.add("assistant", first)
            self.add("assistant", second)
            self.returns(first + second)
        elif kind == 3:  # an approved call: assistant, approval request, approval response, return
            ids = self.new_calls(self.src.integer(1, 2))
            self.add("assistant", ids)
            self.add("approval", ids)
            self.add("approval", ids)
            self.returns(ids)
        else:  # the approval request itself carries the calls (Letta's headless approval message)
            ids = self.new_calls(1)
            self.add("approval", ids)
            self.add("approval", ids)
            self.returns(ids)
        if self.src.integer(0, 3) == 0:
            self.add("user")  # a heartbeat between steps

    def pending_tail(self) -> None:
        variant = self.src.integer(0, 2)
        if variant == 0:  # some calls ran, the rest wait for approval
            ids = self.new_calls(self.src.integer(1, 3))
            self.add("assistant", ids)
            ran = self.src.integer(0, len(ids) - 1)
            self.returns(ids[:ran])
            self.add("approval", ids[ran:], pending=True)
        elif variant == 1:
            self.add("approval", self.new_calls(1), pending=True)
        else:
            self.add("assistant", self.new_calls(self.src.integer(1, 2)), pending=True)

    def build(self) -> Case:
        src = self.src
        self.add("system", tokens=src.integer(0, 600))
        summary_at_1 = src.integer(0, 2) == 0
        if summary_at_1:
            self.add(["summary", "user"][src.integer(0, 1)])
        for _ in range(src.integer(0, 8)):
            self.add("user")
            for _ in range(src.integer(0, 3)):
                self.step()
        if src.integer(0, 2) == 0:
            self.pending_tail()
            if src.integer(0, 4) == 0:
                # Not something Letta lets happen (a send during a pending approval is a 409), but the
                # planner must not evict the approval even if later messages slipped in.
                self.add("user")
                self.add("assistant")
        elif src.integer(0, 1):
            self.add("user")
        total = sum(m.tokens for m in self.messages)
        window = src.integer(1, max(2, 2 * total))
        mode: CompactionMode = "all" if src.integer(0, 3) == 0 else "sliding_window"
        pct = src.integer(0, 100) / 100 if src.integer(0, 1) else 0.3
        goal = float(src.integer(1, window)) if src.integer(0, 4) == 0 else None
        return Case(self.messages, window, mode, pct, goal, summary_at_1)


# -------------------------------------------------------------------------------- the properties


def separates_a_call(messages: list[MsgView], kept: set[str]) -> bool:
    """True when some tool call id is on both sides (a call evicted and its return kept, or back)."""
    sides: dict[str, set[bool]] = {}
    for m in messages:
        for call_id in m.tool_call_ids:
            sides.setdefault(call_id, set()).add(m.id in kept)
    return any(len(s) > 1 for s in sides.values())


def tokens_of(messages: list[MsgView], ids: set[str]) -> int:
    return sum(m.tokens for m in messages if m.id in ids)


def sliding_cut_is_valid(messages: list[MsgView], cut: int) -> bool:
    """Brute-force oracle: keeping [system] + messages[cut:] is a legal sliding-window result."""
    if not 2 <= cut < len(messages):
        return False
    start = messages[cut]
    if not (start.role == "assistant" or (start.role == "approval" and start.tool_call_ids)):
        return False
    kept = {messages[0].id, *(m.id for m in messages[cut:])}
    if any(m.pending_approval and m.id not in kept for m in messages):
        return False
    return not separates_a_call(messages, kept)


def check_case(case: Case) -> CompactionPlan | None:
    messages = case.messages
    system = messages[0]
    try:
        plan = plan_compaction(
            messages,
            context_window=case.context_window,
            mode=case.mode,
            sliding_window_percentage=case.pct,
            goal_tokens=case.goal_tokens,
        )
    except SystemPromptTooLarge as exc:
        assert system.tokens >= case.context_window, "raised although the system message fits"
        assert (exc.system_tokens, exc.context_window) == (system.tokens, case.context_window)
        return None
    assert system.tokens < case.context_window, "the system message alone overflows: must raise"

    ids = [m.id for m in messages]
    kept, evicted = set(plan.keep_ids), set(plan.evict_ids)
    # A partition of the messages, each side in the original order, the system message kept first.
    assert kept | evicted == set(ids) and not kept & evicted
    assert len(plan.keep_ids) + len(plan.evict_ids) == len(ids)
    assert plan.keep_ids == [i for i in ids if i in kept]
    assert plan.evict_ids == [i for i in ids if i in evicted]
    assert plan.keep_ids[0] == system.id
    # The kept part is one suffix: the summary goes between the system message and it.
    assert plan.keep_ids[1:] == ids[len(ids) - len(plan.keep_ids) + 1 :]

    assert not separates_a_call(messages, kept), "a tool call was separated from its return/approval"
    for m in messages:
        if m.pending_approval:
            assert m.id in kept, "a pending approval was evicted"
    if case.summary_at_1:
        assert messages[1].id in evicted, "the previous summary must be folded into the new one"

    goal = case.goal_tokens if case.goal_tokens is not None else (1 - case.pct) * case.context_window
    assert plan.goal_tokens == pytest.approx(goal)
    assert plan.tokens_before == sum(m.tokens for m in messages)
    assert plan.tokens_after_estimate == tokens_of(messages, kept)
    assert plan.fell_back == (case.mode == "sliding_window" and plan.mode == "all")

    if plan.mode == "sliding_window":
        cut = len(ids) - len(plan.keep_ids) + 1
        assert sliding_cut_is_valid(messages, cut)
        assert plan.tokens_after_estimate < goal
    else:
        # "all" keeps the system message and only what a pending approval needs: the shortest
        # suffix that holds every pending approval without separating a call.
        pending = [i for i, m in enumerate(messages) if m.pending_approval]
        if not pending:
            assert plan.keep_ids == [system.id]
        else:
            shortest = next(
                s
                for s in range(min(pending), 0, -1)
                if not separates_a_call(messages, {system.id, *(m.id for m in messages[s:])})
            )
            assert plan.keep_ids == [system.id, *ids[shortest:]]
    if plan.fell_back:
        # Falling back is only allowed when no legal sliding-window cut reaches the goal.
        for cut in range(2, len(messages)):
            if sliding_cut_is_valid(messages, cut):
                assert system.tokens + sum(m.tokens for m in messages[cut:]) >= goal
    return plan


if HAVE_HYPOTHESIS:

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def test_plan_invariants_property(data: Any) -> None:
        check_case(TranscriptBuilder(HypothesisSource(data)).build())

else:

    def test_plan_invariants_property() -> None:
        pytest.skip("hypothesis is not installed; test_plan_invariants_seeded covers the same checks")


def test_plan_invariants_seeded() -> None:
    outcomes: dict[str, int] = {"raised": 0, "sliding_window": 0, "all": 0, "fell_back": 0, "pending": 0}
    for seed in range(3000):
        case = TranscriptBuilder(RandomSource(seed)).build()
        plan = check_case(case)
        if plan is None:
            outcomes["raised"] += 1
            continue
        outcomes[plan.mode] += 1
        outcomes["fell_back"] += plan.fell_back
        outcomes["pending"] += any(m.pending_approval for m in case.messages)
    # The generator must reach every branch, or the loop above proves less than it claims.
    assert all(count > 50 for count in outcomes.values()), outcomes


# ------------------------------------------------------------------------- Letta's cut schedule


def conversation(*roles: str, tokens: int = 10) -> list[MsgView]:
    return [MsgView(id=f"m{i}", role=role, tokens=tokens) for i, role in enumerate(roles)]  # type: ignore[arg-type]


ALTERNATING = conversation("system", *["user", "assistant"] * 5)  # 11 messages, 10 tokens each


def test_first_try_evicts_pct_plus_ten_percent() -> None:
    # round(0.4 × 11) = 4 and messages[4] is an assistant message: keep system + messages[4:].
    plan = plan_compaction(ALTERNATING, context_window=200)  # goal 140; 80 kept
    assert (plan.mode, plan.fell_back) == ("sliding_window", False)
    assert plan.evict_ids == ["m1", "m2", "m3"]
    assert plan.keep_ids == ["m0", *[f"m{i}" for i in range(4, 11)]]
    assert (plan.tokens_before, plan.tokens_after_estimate, plan.goal_tokens) == (110, 80, pytest.approx(140))


def test_each_further_try_evicts_ten_percent_more() -> None:
    # Goal 70: 40% keeps 80 tokens (too many); 50% cuts at round(5.5) = 6 and keeps 60.
    plan = plan_compaction(ALTERNATING, context_window=100)
    assert plan.evict_ids == ["m1", "m2", "m3", "m4", "m5"]
    assert plan.tokens_after_estimate == 60


def test_a_cut_exactly_at_the_goal_is_not_enough() -> None:
    # Letta keeps evicting while the count is >= the goal: 80 kept tokens do not meet a goal of 80.
    plan = plan_compaction(ALTERNATING, context_window=10_000, goal_tokens=80)
    assert plan.tokens_after_estimate == 60
    plan = plan_compaction(ALTERNATING, context_window=10_000, goal_tokens=81)
    assert plan.tokens_after_estimate == 80


def test_only_an_approval_with_tool_calls_can_start_the_kept_part() -> None:
    # An approval response (no calls of its own) at index 2 is not a boundary; the cut moves on to
    # the assistant message at index 4 (the 70% try, round(3.5) = 4).
    response = MsgView(id="m2", role="approval", tokens=10)
    messages = [*conversation("system", "user"), response, *conversation("user", "assistant")]
    messages = [m.model_copy(update={"id": f"m{i}"}) for i, m in enumerate(messages)]
    assert plan_compaction(messages, context_window=1000).evict_ids == ["m1", "m2", "m3"]
    request = response.model_copy(update={"tool_call_ids": ["c1"]})
    messages[2] = request
    assert plan_compaction(messages, context_window=1000).evict_ids == ["m1"]


def test_goal_tokens_overrides_the_default_goal() -> None:
    # Goal 45: the 70% try cuts at round(7.7) = 8 and keeps 40 tokens.
    plan = plan_compaction(ALTERNATING, context_window=10_000, goal_tokens=45)
    assert plan.keep_ids == ["m0", "m8", "m9", "m10"]
    assert plan.goal_tokens == 45


def test_eviction_schedule() -> None:
    assert _eviction_fractions(0.3) == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert _eviction_fractions(0.0) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert _eviction_fractions(0.95) == [1.0]
    assert _eviction_fractions(1.0) == [1.0]


def test_cut_never_lands_between_a_call_and_its_return() -> None:
    # m2 calls c1; m3 calls c2 before c1's return arrives. round(0.4 × 8) = 3 would cut at m3 and
    # keep c1's return without its call; the cut moves back to m2.
    messages = [
        MsgView(id="m0", role="system", tokens=10),
        MsgView(id="m1", role="user", tokens=10),
        MsgView(id="m2", role="assistant", tokens=10, tool_call_ids=["c1"]),
        MsgView(id="m3", role="assistant", tokens=10, tool_call_ids=["c2"]),
        MsgView(id="m4", role="tool", tokens=10, tool_call_ids=["c1"]),
        MsgView(id="m5", role="tool", tokens=10, tool_call_ids=["c2"]),
        MsgView(id="m6", role="user", tokens=10),
        MsgView(id="m7", role="assistant", tokens=10),
    ]
    plan = plan_compaction(messages, context_window=200)
    assert plan.evict_ids == ["m1"]
    # When the goal needs more, the next legal cut is after both returns.
    plan = plan_compaction(messages, context_window=1000, goal_tokens=65)
    assert plan.evict_ids == ["m1", "m2", "m3", "m4", "m5", "m6"]


def test_parallel_calls_stay_with_all_their_returns() -> None:
    messages = [
        MsgView(id="s", role="system", tokens=5),
        MsgView(id="u", role="user", tokens=5),
        MsgView(id="a", role="assistant", tokens=5, tool_call_ids=["c1", "c2", "c3"]),
        MsgView(id="t2", role="tool", tokens=500, tool_call_ids=["c2"]),
        MsgView(id="t1", role="tool", tokens=5, tool_call_ids=["c1"]),
        MsgView(id="t3", role="tool", tokens=5, tool_call_ids=["c3"]),
        MsgView(id="a2", role="assistant", tokens=5),
    ]
    plan = plan_compaction(messages, context_window=100)
    assert plan.keep_ids == ["s", "a2"]
    assert plan.evict_ids == ["u", "a", "t2", "t1", "t3"]


def test_existing_summary_is_folded_into_the_new_one() -> None:
    messages = conversation("system", "summary", "assistant", "user", "assistant", "user", "assistant")
    plan = plan_compaction(messages, context_window=1000)
    assert plan.evict_ids[0] == "m1"
    # Even a cut right after it evicts it: a cut at index 1 (nothing evicted) is never chosen.
    messages = conversation("system", "user", "assistant", "user")
    plan = plan_compaction(messages, context_window=1000)
    assert (plan.mode, plan.evict_ids) == ("sliding_window", ["m1"])


def test_pending_approval_and_its_call_are_never_evicted() -> None:
    messages = [
        *conversation("system", "user", "assistant", "user"),
        MsgView(id="call", role="assistant", tokens=10, tool_call_ids=["c9", "c8"]),
        MsgView(id="ran", role="tool", tokens=10, tool_call_ids=["c8"]),
        MsgView(id="wait", role="approval", tokens=10, tool_call_ids=["c9"], pending_approval=True),
    ]
    plan = plan_compaction(messages, context_window=1000, mode="all")
    assert plan.keep_ids == ["m0", "call", "ran", "wait"]
    assert (plan.mode, plan.fell_back) == ("all", False)
    # Sliding window cannot cut past the approval either: with a goal nothing reaches, it falls back.
    plan = plan_compaction(messages, context_window=1000, goal_tokens=30)
    assert (plan.mode, plan.fell_back) == ("all", True)
    assert plan.keep_ids == ["m0", "call", "ran", "wait"]
    assert plan.tokens_after_estimate == 40


def test_falls_back_to_all_without_an_assistant_message() -> None:
    plan = plan_compaction(conversation("system", "user", "user", "user"), context_window=1000)
    assert (plan.mode, plan.fell_back, plan.keep_ids) == ("all", True, ["m0"])
    assert plan.evict_ids == ["m1", "m2", "m3"]


def test_all_mode_keeps_only_the_system_message() -> None:
    plan = plan_compaction(ALTERNATING, context_window=100_000, mode="all")
    assert (plan.keep_ids, plan.fell_back, plan.tokens_after_estimate) == (["m0"], False, 10)
    assert len(plan.evict_ids) == 10


def test_system_prompt_too_large() -> None:
    messages = [MsgView(id="s", role="system", tokens=1000), *ALTERNATING[1:]]
    with pytest.raises(SystemPromptTooLarge) as info:
        plan_compaction(messages, context_window=1000)
    assert info.value.stop_reason == "context_window_overflow_in_system_prompt"
    assert (info.value.system_tokens, info.value.context_window) == (1000, 1000)
    # One token less fits the window: no error, though nothing can reach the goal.
    messages = [MsgView(id="s", role="system", tokens=999), *ALTERNATING[1:]]
    plan = plan_compaction(messages, context_window=1000)
    assert (plan.mode, plan.fell_back, plan.keep_ids) == ("all", True, ["s"])


@pytest.mark.parametrize(
    ("messages", "kwargs", "match"),
    [
        ([], {}, "system message"),
        (conversation("user", "assistant"), {}, "messages\\[0\\] must be the system message"),
        ([*conversation("system"), *conversation("system")], {}, "unique"),
        (ALTERNATING, {"context_window": 0}, "context_window"),
        (ALTERNATING, {"sliding_window_percentage": 1.5}, "between 0 and 1"),
        (ALTERNATING, {"mode": "self_compact_all"}, "Unknown compaction mode"),
        (ALTERNATING, {"goal_tokens": 0}, "goal_tokens"),
    ],
)
def test_malformed_input(messages: list[MsgView], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_compaction(messages, **{"context_window": 1000, **kwargs})


# ----------------------------------------------------------------------------------------- texts

NOW = datetime(2025, 10, 31, 22, 56, 56, tzinfo=UTC)


def test_summary_message_sliding_window_exact() -> None:
    text = summary_message_text("The user is Ada.", 6, "sliding_window", NOW, "UTC")
    assert text == (
        "{\n"
        '  "type": "system_alert",\n'
        '  "message": "Note: 6 messages from the beginning of the conversation have been hidden from view '
        "due to memory constraints.\\nThe following is a summary of the previous messages:\\n "
        'The user is Ada.",\n'
        '  "time": "2025-10-31 10:56:56 PM UTC+0000"\n'
        "}"
    )


def test_summary_message_all_mode_with_stats_exact() -> None:
    stats = CompactionStats(
        trigger="context_window_exceeded",
        context_tokens_before=9000,
        context_tokens_after=1200,
        context_window=8192,
        messages_count_before=40,
        messages_count_after=3,
    )
    text = summary_message_text("Ada élève des abeilles.", None, "all", NOW, "Europe/Paris", stats)
    assert text == (
        "{\n"
        '  "type": "system_alert",\n'
        '  "message": "Note: prior messages have been hidden from view due to conversation memory '
        "constraints.\\nThe following is a summary of the previous messages:\\n "
        'Ada élève des abeilles.",\n'
        '  "time": "2025-10-31 11:56:56 PM CET+0100",\n'
        '  "compaction_stats": {\n'
        '    "trigger": "context_window_exceeded",\n'
        '    "context_tokens_before": 9000,\n'
        '    "context_tokens_after": 1200,\n'
        '    "context_window": 8192,\n'
        '    "messages_count_before": 40,\n'
        '    "messages_count_after": 3\n'
        "  }\n"
        "}"
    )


def test_summary_message_sliding_window_without_a_count() -> None:
    message = json.loads(summary_message_text("s", None, "sliding_window", NOW, None))["message"]
    assert message == (
        "Note: prior messages from the beginning of the conversation have been hidden from view due to "
        "conversation memory constraints.\nThe following is a summary of the previous messages:\n s"
    )


def test_summary_with_braces_and_quotes_survives_packaging() -> None:
    summary = 'Ran {"cmd": "ls"} and got "{count}" files'
    payload = json.loads(summary_message_text(summary, 2, "sliding_window", NOW, "UTC"))
    assert payload["message"].endswith("\n " + summary)


def test_clip_summary() -> None:
    assert SUMMARY_TRUNCATION_SUFFIX == "... [summary truncated to fit]"
    assert clip_summary("abcdefghij", clip_chars=4) == "abcd... [summary truncated to fit]"
    assert clip_summary("abcd", clip_chars=4) == "abcd"
    assert clip_summary("x" * 60_000, clip_chars=None) == "x" * 60_000
    clipped = clip_summary("y" * 50_001)
    assert clipped == "y" * 50_000 + "... [summary truncated to fit]"
    assert clip_summary("y" * 50_000) == "y" * 50_000


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 2  # 1 × 1.3, rounded up
    assert estimate_tokens("a" * 400) == 130
    assert estimate_tokens("é" * 4) == 3  # 8 UTF-8 bytes: 2 × 1.3


def test_prompts_follow_letta_sections_and_limits() -> None:
    assert prompt_for_mode("sliding_window") == SLIDING_PROMPT
    assert prompt_for_mode("all") == ALL_PROMPT
    with pytest.raises(ValueError):
        prompt_for_mode("self_compact_all")  # type: ignore[arg-type]
    sections = ["High-level goals", "What happened", "Important details", "Errors and fixes", "Lookup hints"]
    for prompt in (SLIDING_PROMPT, ALL_PROMPT):
        assert all(section in prompt for section in sections)
        assert "earlier summary" in prompt
    assert "Current state" in ALL_PROMPT and "Next step" in ALL_PROMPT
    assert "Current state" not in SLIDING_PROMPT
    assert "under 300 words" in SLIDING_PROMPT and len(SLIDING_PROMPT.split()) < 300
    assert "under 500 words" in ALL_PROMPT and len(ALL_PROMPT.split()) < 500


def test_render_transcript() -> None:
    transcript: list[dict[str, Any]] = [
        {"role": "user", "content": "Remember that my name is Ada."},
        {
            "role": "assistant",
            "content": "Saving that.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "memory_insert", "arguments": '{"label": "human"}'},
                }
            ],
        },
        {"role": "tool", "name": "memory_insert", "tool_call_id": "call_1", "content": '{"status": "OK"}'},
        {"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]
    assert render_transcript(transcript) == (
        "USER:\nRemember that my name is Ada.\n\n"
        "ASSISTANT:\nSaving that.\n\n"
        'ASSISTANT CALLED memory_insert (call_1) with arguments:\n{"label": "human"}\n\n'
        'TOOL RESULT memory_insert (call_1):\n{"status": "OK"}\n\n'
        "USER:\nLook:\n[image_url]\n\n"
        "ASSISTANT: (empty)"
    )
    wrapped = summarizer_user_message(transcript[:1])
    assert wrapped.endswith("<transcript>\nUSER:\nRemember that my name is Ada.\n</transcript>")
