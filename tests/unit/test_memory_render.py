"""Memory rendering against real Letta Agent Files and Letta's documented layout."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mnemo.memory.prompts import default_system_prompt
from mnemo.memory.render import (
    CORE_MEMORY_LINE_NUMBER_WARNING,
    FUNC_FAILED_HEARTBEAT_MESSAGE,
    REQ_HEARTBEAT_MESSAGE,
    TOOL_RULES_DESCRIPTION,
    BlockView,
    coerce_tool_return,
    compile_system_prompt,
    format_letta_time,
    package_heartbeat,
    package_tool_return,
    render_memory_blocks,
    render_memory_metadata,
    render_tool_rules,
    renders_memory_blocks,
    truncate_tool_return,
    uses_line_numbers,
)

# Real Letta exports (Apache-2.0). The repo copy wins; the shared reference copy is the fallback.
_REPO_AGENT_FILES = Path(__file__).resolve().parents[1] / "fixtures" / "agent-files"
AGENT_FILES = _REPO_AGENT_FILES if _REPO_AGENT_FILES.is_dir() else Path("/work/shared/fixtures/agent-files")
STANDARD_FORM_FILES = ["memgpt_agent.af", "memgpt_agent_with_convo.af", "customer_service.af"]
ALL_FILES = [*STANDARD_FORM_FILES, "deep_research_agent.af", "outreach_workflow_agent.af"]
T0 = datetime(2025, 7, 4, 18, 9, 11, 123456, tzinfo=UTC)


def _load(name: str) -> dict[str, Any]:
    data = json.loads((AGENT_FILES / name).read_text())
    # Some exports are a JSON document wrapped in a JSON string.
    return json.loads(data) if isinstance(data, str) else data


def _agent_blocks(af: dict[str, Any]) -> tuple[dict[str, Any], list[BlockView]]:
    agent = af["agents"][0]
    by_id = {b["id"]: b for b in af["blocks"]}
    blocks = [
        BlockView(
            label=by_id[i]["label"],
            value=by_id[i]["value"],
            limit=by_id[i]["limit"],
            description=by_id[i]["description"],
            read_only=by_id[i]["read_only"],
        )
        for i in agent["block_ids"]
    ]
    return agent, blocks


def _compiled_system(agent: dict[str, Any]) -> tuple[str, datetime]:
    message = agent["messages"][0]
    assert message["role"] == "system"
    return message["content"][0]["text"], datetime.fromisoformat(message["created_at"])


# ------------------------------------------------------------------------------- real Letta output


@pytest.mark.parametrize("name", STANDARD_FORM_FILES)
def test_blocks_render_byte_exact_as_in_letta_agent_files(name: str) -> None:
    agent, blocks = _agent_blocks(_load(name))
    compiled, created_at = _compiled_system(agent)
    rendered = render_memory_blocks(blocks)
    assert rendered.startswith("<memory_blocks>\n") and rendered.endswith("\n</memory_blocks>")
    # Letta appended memory after "\n\n" (no placeholder in these templates), then "\n\n" + metadata.
    assert compiled.startswith(agent["system"] + "\n\n" + rendered + "\n\n<memory_metadata>\n")

    ours = compile_system_prompt(
        agent["system"], blocks, agent_id=agent["id"], recompiled_at=created_at, timezone=agent["timezone"]
    )
    prefix = compiled[: compiled.index("<memory_metadata>")]
    assert ours.startswith(prefix)
    assert ours.endswith("</memory_metadata>") and compiled.endswith("</memory_metadata>")


def test_agent_without_blocks_renders_no_memory_section() -> None:
    agent, blocks = _agent_blocks(_load("outreach_workflow_agent.af"))
    compiled, created_at = _compiled_system(agent)
    assert blocks == [] and agent["system"] == ""
    assert compiled.startswith("\n\n\n\n<memory_metadata>\n")
    ours = compile_system_prompt("", blocks, agent_id="agent-0", recompiled_at=created_at, timezone="UTC")
    assert ours.startswith("\n\n\n\n<memory_metadata>\n")


def test_block_headers_match_letta_for_four_blocks_with_an_empty_description() -> None:
    # The deep-research export predates the 0.16 line-number format, so compare everything but the values.
    # Its stored prompt is also stale (Letta does not recompile on every step): persona was made read-only
    # and research_plan got a description after the last compile, so render the blocks as they were then.
    agent, blocks = _agent_blocks(_load("deep_research_agent.af"))
    compiled, _ = _compiled_system(agent)
    assert [b.read_only for b in blocks] == [False, True, False, False] and "read_only" not in compiled
    assert blocks[3].label == "research_plan" and blocks[3].description
    blocks = [b.model_copy(update={"read_only": False}) for b in blocks]
    blocks[3] = blocks[3].model_copy(update={"description": ""})
    theirs = compiled[
        compiled.index("<memory_blocks>") : compiled.index("</memory_blocks>") + len("</memory_blocks>")
    ]
    strip_values = re.compile(r"<value>\n.*?</value>\n", re.DOTALL)
    assert strip_values.sub("", render_memory_blocks(blocks)) == strip_values.sub("", theirs)
    assert "<research_plan>\n<description>\n\n</description>" in theirs


@pytest.mark.parametrize("name", ALL_FILES)
def test_timestamp_format_matches_letta_agent_files(name: str) -> None:
    agent = _load(name)["agents"][0]
    compiled, created_at = _compiled_system(agent)
    shown = re.search(r"- Memory blocks were last modified: (.*)\n", compiled)
    assert shown is not None
    assert format_letta_time(created_at, agent["timezone"]) == shown.group(1)


def test_recall_line_is_the_one_letta_writes() -> None:
    compiled, _ = _compiled_system(_load("memgpt_agent.af")["agents"][0])
    ours = render_memory_metadata("agent-1", None, T0, "UTC", 0).split("\n")
    assert ours[4] in compiled.split("\n")


def test_tool_return_matches_a_captured_letta_request() -> None:
    # Letta's own tool message content for a send_message that returned None.
    captured = '{\n  "status": "OK",\n  "message": null,\n  "time": "2025-07-04 06:09:11 PM UTC+0000"\n}'
    assert package_tool_return(True, None, T0, "UTC") == captured


# ----------------------------------------------------------------------------------- layout details


HUMAN = BlockView(label="human", value="Name: Ada\nLikes: tea", limit=500, description="About the user.")
RULES = BlockView(label="rules", value="Be kind.", limit=100, description="House rules.", read_only=True)


def test_line_numbered_form() -> None:
    expected = (
        "<memory_blocks>\nThe following memory blocks are currently engaged in your core memory unit:\n\n"
        "<human>\n<description>\nAbout the user.\n</description>\n"
        "<metadata>\n- chars_current=20\n- chars_limit=500\n</metadata>\n"
        f"<warning>\n{CORE_MEMORY_LINE_NUMBER_WARNING}\n</warning>\n"
        "<value>\n1→ Name: Ada\n2→ Likes: tea\n</value>\n</human>\n\n"
        "<empty>\n<description>\n\n</description>\n"
        "<metadata>\n- chars_current=0\n- chars_limit=7\n</metadata>\n"
        f"<warning>\n{CORE_MEMORY_LINE_NUMBER_WARNING}\n</warning>\n"
        "<value>\n</value>\n</empty>\n"
        "\n</memory_blocks>"
    )
    assert render_memory_blocks([HUMAN, BlockView(label="empty", limit=7)], line_numbers=True) == expected


def test_read_only_metadata_and_block_separation() -> None:
    out = render_memory_blocks([HUMAN, RULES])
    assert "<metadata>\n- read_only=true\n- chars_current=8\n- chars_limit=100\n</metadata>" in out
    assert "</human>\n\n<rules>\n" in out
    assert out.endswith("</rules>\n\n</memory_blocks>")
    assert "read_only" not in out.split("<rules>")[0]


def test_no_blocks() -> None:
    assert render_memory_blocks([]) == ""
    assert render_memory_blocks([], line_numbers=True) == (
        "<memory_blocks>\nThe following memory blocks are currently engaged in your core memory unit:\n\n"
        "\n</memory_blocks>"
    )


def test_tool_rules_section() -> None:
    assert render_tool_rules([]) == ""
    wrapped = "<tool_rule>\nsend_message ends your response (yields control) when called\n</tool_rule>"
    bare = "memory_insert requires continuing your response when called"
    assert render_tool_rules([wrapped, bare]) == (
        f"<tool_usage_rules>\n{TOOL_RULES_DESCRIPTION}\n\n{wrapped}\n<tool_rule>\n{bare}\n</tool_rule>\n"
        "</tool_usage_rules>"
    )


def test_compile_orders_memory_rules_then_metadata() -> None:
    rule = "<tool_rule>\nsend_message ends your response (yields control) when called\n</tool_rule>"
    out = compile_system_prompt(
        "Intro\n{CORE_MEMORY}\nOutro",
        [HUMAN],
        agent_id="agent-1",
        recompiled_at=T0,
        timezone="UTC",
        tool_rule_prompts=[rule],
    )
    memory = render_memory_blocks([HUMAN])
    metadata = render_memory_metadata("agent-1", None, T0, "UTC", 0)
    assert out == f"Intro\n{memory}\n\n{render_tool_rules([rule])}\n\n{metadata}\nOutro"


def test_compile_appends_when_placeholder_missing_and_replaces_every_placeholder() -> None:
    kw: dict[str, Any] = {"agent_id": "a", "recompiled_at": T0, "timezone": "UTC"}
    full = render_memory_blocks([HUMAN]) + "\n\n" + render_memory_metadata("a", None, T0, "UTC", 0)
    assert compile_system_prompt("Base", [HUMAN], **kw) == "Base\n\n" + full
    assert compile_system_prompt("{CORE_MEMORY}|{CORE_MEMORY}", [HUMAN], **kw) == f"{full}|{full}"


def test_compile_without_blocks_for_react_agents() -> None:
    out = compile_system_prompt(
        "{CORE_MEMORY}", [HUMAN], agent_id="a", recompiled_at=T0, timezone="UTC", include_blocks=False
    )
    assert out == "\n\n" + render_memory_metadata("a", None, T0, "UTC", 0)
    assert not renders_memory_blocks("react_agent") and not renders_memory_blocks("workflow_agent")
    assert renders_memory_blocks("letta_v1_agent") and renders_memory_blocks(None)


def test_memory_metadata_lines() -> None:
    assert render_memory_metadata("agent-9", "conv-1", T0, "America/Los_Angeles", 42, 3, ["a", "b"]) == (
        "<memory_metadata>\n"
        "- AGENT_ID: agent-9\n"
        "- CONVERSATION_ID: conv-1\n"
        "- System prompt last recompiled: 2025-07-04 11:09:11 AM PDT-0700\n"
        "- 42 previous messages between you and the user are stored in recall memory (use tools to access them)\n"
        "- 3 total memories you created are stored in archival memory (use tools to access them)\n"
        "- Available archival memory tags: a, b\n"
        "</memory_metadata>"
    )
    short = render_memory_metadata("agent-9", None, T0, "UTC", 0, 0, [])
    assert "CONVERSATION_ID: default" in short and "archival" not in short


def test_times_need_an_aware_datetime() -> None:
    with pytest.raises(ValueError):
        format_letta_time(datetime(2025, 1, 1), "UTC")
    assert format_letta_time(T0, None) == "2025-07-04 06:09:11 PM UTC+0000"


@pytest.mark.parametrize(
    ("agent_type", "endpoint", "expected"),
    [
        ("letta_v1_agent", "anthropic", True),
        ("memgpt_v2_agent", "anthropic", True),
        ("sleeptime_agent", "anthropic", True),
        ("memgpt_agent", "anthropic", False),
        ("letta_v1_agent", "openai", False),
        ("react_agent", "anthropic", False),
        (None, "anthropic", False),
    ],
)
def test_uses_line_numbers(agent_type: str | None, endpoint: str, expected: bool) -> None:
    assert uses_line_numbers(agent_type, endpoint) is expected


# ---------------------------------------------------------------------------- tool returns, heartbeats


def test_package_tool_return_failed_and_dict_messages() -> None:
    failed = json.loads(
        package_tool_return(False, "Error This block is read-only and cannot be edited.", T0, None)
    )
    assert failed == {
        "status": "Failed",
        "message": "Error This block is read-only and cannot be edited.",
        "time": "2025-07-04 06:09:11 PM UTC+0000",
    }
    text = package_tool_return(True, {"message": "No results found.", "results": []}, T0, "UTC")
    assert json.loads(text)["message"] == {"message": "No results found.", "results": []}
    unicode_text = package_tool_return(True, "café ☕\x00", T0, "UTC")
    assert '"café ☕"' in unicode_text


def test_coerce_tool_return() -> None:
    assert coerce_tool_return(None) == "None"
    assert coerce_tool_return("x") == "x"
    assert coerce_tool_return(7) == "7"
    assert coerce_tool_return({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'


def test_truncate_tool_return() -> None:
    assert truncate_tool_return("abcdef", 6) == "abcdef"
    assert truncate_tool_return("abcdefgh", 5) == (
        "abcde... [NOTE: function output was truncated since it exceeded the character limit (8 > 5)]"
    )


def test_heartbeat() -> None:
    assert REQ_HEARTBEAT_MESSAGE == (
        "[This is an automated system message hidden from the user] "
        "Function called using request_heartbeat=true, returning control"
    )
    assert FUNC_FAILED_HEARTBEAT_MESSAGE.endswith("] Function call failed, returning control")
    assert package_heartbeat(REQ_HEARTBEAT_MESSAGE, T0, "UTC") == (
        '{\n  "type": "heartbeat",\n'
        f'  "reason": "{REQ_HEARTBEAT_MESSAGE}",\n'
        '  "time": "2025-07-04 06:09:11 PM UTC+0000"\n}'
    )


# -------------------------------------------------------------------------------------------- prompts


@pytest.mark.parametrize(
    "agent_type",
    ["letta_v1_agent", "memgpt_agent", "memgpt_v2_agent", "sleeptime_agent", "react_agent", "workflow_agent"],
)
def test_default_prompts_hold_one_memory_placeholder(agent_type: str) -> None:
    template = default_system_prompt(agent_type)
    assert template.count("{CORE_MEMORY}") == 1
    out = compile_system_prompt(template, [HUMAN], agent_id="a", recompiled_at=T0, timezone="UTC")
    assert "{CORE_MEMORY}" not in out and "<memory_metadata>" in out and "<human>" in out


def test_default_prompts_match_their_loop() -> None:
    assert "send_message" in default_system_prompt("memgpt_v2_agent")
    assert "request_heartbeat" in default_system_prompt("memgpt_agent")
    assert "request_heartbeat" not in default_system_prompt("letta_v1_agent")
    assert "memory_finish_edits" in default_system_prompt("sleeptime_agent")


def test_default_prompt_for_unsupported_and_unknown_types() -> None:
    with pytest.raises(NotImplementedError, match="not supported yet"):
        default_system_prompt("voice_convo_agent")
    with pytest.raises(ValueError):
        default_system_prompt("nope")
