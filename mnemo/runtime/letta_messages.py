"""Stored messages as Letta wire messages (`LettaMessageUnion`), for responses, listings and the event log.

One stored message can become several Letta messages with the same `id` (e.g. reasoning + tool call);
they are told apart by `otid`, derived from the id and the position as Letta does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mnemo.schemas.agents import HEARTBEAT_AGENT_TYPES
from mnemo.store.tables import MessageRow

if TYPE_CHECKING:  # the client imports litellm (seconds); this module is imported by the API
    from mnemo.llm.client import Delta

ASSISTANT_TOOL = "send_message"
ASSISTANT_KWARG = "message"


def otid_for(message_id: str, index: int) -> str:
    # Letta's generate_otid_from_id: the uuid part with the last 10 hex digits offset by the index.
    raw = message_id.split("-", 1)[1] if "-" in message_id else message_id
    head, tail = raw[:-10], raw[-10:]
    try:
        shifted = f"{(int(tail, 16) + index) % (16**10):010x}"
    except ValueError:
        return f"{raw}-{index}"
    return head + shifted


def _text(row: MessageRow) -> str:
    return "".join(p.get("text", "") for p in row.content if p.get("type") == "text")


def _base(row: MessageRow, message_type: str, index: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "date": row.created_at.replace(microsecond=0).isoformat() if row.created_at else None,
        "name": row.name,
        "message_type": message_type,
        "otid": row.otid if (row.otid and index == 0) else otid_for(row.id, index),
        "sender_id": row.sender_id,
        "step_id": row.step_id,
        "run_id": row.run_id,
        "seq_id": None,
        **({"is_err": True} if row.is_err else {}),
    }


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"name": fn.get("name"), "arguments": fn.get("arguments") or "", "tool_call_id": call.get("id")}


def assistant_options(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request's `use_assistant_message` choices (stored in its run's request_config) as keyword
    arguments of `to_letta_messages`."""
    chosen = (config or {}).get("assistant_message") or {}
    return shown_as(chosen.get("use", True), chosen.get("tool"), chosen.get("kwarg"))


def shown_as(use: bool = True, tool: str | None = None, kwarg: str | None = None) -> dict[str, Any]:
    """Keyword arguments of `to_letta_messages` for Letta's `use_assistant_message` parameters."""
    if use is False:
        return {"assistant_tool": None}
    return {"assistant_tool": tool or ASSISTANT_TOOL, "assistant_kwarg": kwarg or ASSISTANT_KWARG}


def to_letta_messages(
    row: MessageRow,
    agent_type: str,
    *,
    assistant_tool: str | None = ASSISTANT_TOOL,
    assistant_kwarg: str = ASSISTANT_KWARG,
) -> list[dict[str, Any]]:
    """`assistant_tool`: the legacy agents' tool whose calls show as `assistant_message`s (Letta's
    `assistant_message_tool_name`); None shows them as tool calls (`use_assistant_message=false`)."""
    legacy = agent_type in HEARTBEAT_AGENT_TYPES
    if row.role == "system":
        return [_base(row, "system_message", 0) | {"content": _text(row)}]
    if row.role in ("user", "summary"):
        return [_base(row, "user_message", 0) | {"content": _text(row)}]
    if row.role == "tool":
        returns = row.tool_returns or []
        first = returns[0] if returns else {}
        status = first.get("status", "error" if row.is_err else "success")
        return [
            _base(row, "tool_return_message", 0)
            | {
                "tool_return": _text(row),
                "status": status,
                "tool_call_id": row.tool_call_id,
                "stdout": first.get("stdout"),
                "stderr": first.get("stderr"),
                "tool_returns": [
                    {
                        "tool_call_id": r.get("tool_call_id"),
                        "status": r.get("status"),
                        "tool_return": r.get("tool_return", _text(row)),
                        "stdout": r.get("stdout"),
                        "stderr": r.get("stderr"),
                    }
                    for r in returns
                ],
            }
        ]
    if row.role == "approval" and not row.tool_calls:
        return [_approval_response(row)]
    if row.role not in ("assistant", "approval"):
        return []
    waiting = _requested(row)
    out: list[dict[str, Any]] = []
    text = _text(row)
    if text:
        if legacy:
            out.append(
                _base(row, "reasoning_message", len(out))
                | {"reasoning": text, "source": "non_reasoner_model"}
            )
        else:
            out.append(_base(row, "assistant_message", len(out)) | {"content": text})
    pending = [_tool_call(c) for c in row.tool_calls or [] if c.get("id") in waiting]
    for call in row.tool_calls or []:
        if call.get("id") in waiting:
            continue
        tc = _tool_call(call)
        if legacy and tc["name"] == assistant_tool:
            try:
                content = json.loads(tc["arguments"]).get(assistant_kwarg, "")
            except (ValueError, AttributeError):
                content = tc["arguments"]
            out.append(_base(row, "assistant_message", len(out)) | {"content": content})
            continue
        out.append(_base(row, "tool_call_message", len(out)) | {"tool_call": tc, "tool_calls": [tc]})
    if pending:
        out.append(
            _base(row, "approval_request_message", len(out))
            | {"tool_call": pending[0], "tool_calls": pending}
        )
    return out


def _requested(row: MessageRow) -> set[str]:
    for part in row.content or []:
        if part.get("type") == "approval_request":
            return set(part.get("tool_call_ids") or [])
    return set()


def _approval_response(row: MessageRow) -> dict[str, Any]:
    approvals = [dict(a) for a in row.tool_returns or []]
    first = approvals[0] if approvals else {}
    return _base(row, "approval_response_message", 0) | {
        "approvals": approvals,
        # Letta's deprecated single-approval fields, from the first answer.
        "approve": first.get("approve") if first.get("type") == "approval" else None,
        "reason": first.get("reason"),
        "approval_request_id": first.get("approval_request_id"),
    }


def partial_message(delta: Delta, agent_type: str) -> dict[str, Any]:
    """A streamed token delta as the partial Letta message `stream_tokens=true` clients expect."""
    if delta.kind == "tool_call":
        call = {
            "name": delta.tool_name,
            "arguments": delta.arguments_delta,
            "tool_call_id": delta.tool_call_id,
        }
        call = {k: v for k, v in call.items() if v is not None}
        return {"message_type": "tool_call_message", "tool_call": call, "tool_calls": call}
    if delta.kind == "reasoning" or agent_type in HEARTBEAT_AGENT_TYPES:
        return {
            "message_type": "reasoning_message",
            "reasoning": delta.text or "",
            "source": "non_reasoner_model",
        }
    return {"message_type": "assistant_message", "content": delta.text or ""}
