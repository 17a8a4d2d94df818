"""What an agent's context holds after its system message when it is created (`initial_message_sequence`)
or reset with `add_default_initial_messages`, as Letta 0.16.8 builds it.

Legacy (heartbeat) agents boot with Letta's "More human than human" sequence: a `send_message` call with
its inner thoughts, the call's return and a login event. `letta_v1_agent` and `sleeptime_agent` boot with
nothing. A sequence given by the client replaces the boot sequence, item by item (Letta's
`package_initial_message_sequence`).

The messages belong to no run and no step: they are stored like the loop's own messages of the same
kind, so the model and the client see them the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.ids import new_id
from mnemo.memory.render import (
    format_letta_time,
    letta_json_dumps,
    package_login_event,
    package_tool_return,
)
from mnemo.schemas.agents import HEARTBEAT_AGENT_TYPES, InitialMessage
from mnemo.store.tables import AgentRow, MessageRow

SEND_MESSAGE = "send_message"
BOOT_THOUGHT = "Bootup sequence complete. Persona activated. Testing messaging functionality."
BOOT_MESSAGE = "More human than human is our motto."
# Letta's "startup_with_send_message_gpt35" variant, for models whose name contains "gpt-3.5".
GPT35_BOOT_THOUGHT = "*inner thoughts* Still waiting on the user. Sending a message with function."
GPT35_BOOT_MESSAGE = "Hi, is anyone there?"
# Some LM Studio models want the user's message before any tool call, and 9-character call ids.
LMSTUDIO_PROVIDER = "lmstudio_openai"


def initial_messages(
    agent: AgentRow, sequence: Sequence[InitialMessage] | None, now: datetime
) -> list[MessageRow]:
    """The messages that follow the system message in a new context: the default boot sequence when
    `sequence` is None, else `sequence` packaged as Letta does. Not stored yet."""
    if sequence is None:
        return default_initial_messages(agent, now)
    rows: list[MessageRow] = []
    for item in sequence:
        rows += _packaged(agent, item, now)
    return rows


def default_initial_messages(agent: AgentRow, now: datetime) -> list[MessageRow]:
    """Letta's boot sequence for heartbeat agents; nothing for the others."""
    if agent.agent_type not in HEARTBEAT_AGENT_TYPES:
        return []
    llm = agent.llm_config or {}
    lmstudio = llm.get("provider_name") == LMSTUDIO_PROVIDER
    call_id = str(uuid.uuid4())[: 9 if lmstudio else None]
    gpt35 = "gpt-3.5" in str(llm.get("model") or "")
    thought, said = (GPT35_BOOT_THOUGHT, GPT35_BOOT_MESSAGE) if gpt35 else (BOOT_THOUGHT, BOOT_MESSAGE)
    boot = [
        _send_message_call(agent, call_id, letta_json_dumps({"message": said}), thought=thought),
        _send_message_return(agent, call_id, package_tool_return(True, None, now, agent.timezone)),
    ]
    login = _user(agent, package_login_event(now, agent.timezone))
    return [login, *boot] if lmstudio else [*boot, login]


async def put_after_system(session: AsyncSession, agent: AgentRow, rows: list[MessageRow]) -> None:
    """Store `rows` and make them the agent's whole context after its system message. The caller
    recompiles the system message afterwards (its recall count depends on the context)."""
    # One flush keeps the insertion order, and with it `seq`, the order listings show.
    session.add_all(rows)
    await session.flush()
    agent.message_ids = [agent.message_ids[0], *(r.id for r in rows)]
    session.add(agent)
    await session.flush()


def _packaged(agent: AgentRow, item: InitialMessage, now: datetime) -> list[MessageRow]:
    text = item.text()
    if item.role == "user":
        # Stored raw, as Mnemo (and Letta's current loops) store every user input.
        return [_user(agent, text, name=item.name)]
    if item.role == "system":
        return [_message(agent, "system", package_system_alert(text, now, agent.timezone), name=item.name)]
    if agent.agent_type not in HEARTBEAT_AGENT_TYPES:
        # letta_v1_agent has no send_message: its replies are plain assistant text.
        row = _message(agent, "assistant", text, name=item.name)
        row.model = (agent.llm_config or {}).get("model")
        return [row]
    call_id = str(uuid.uuid4())
    # Letta: plain `json.dumps` for the arguments, and the string "None" as the call's return.
    return [
        _send_message_call(agent, call_id, json.dumps({"message": text}), name=item.name),
        _send_message_return(agent, call_id, package_tool_return(True, "None", now, agent.timezone)),
    ]


def package_system_alert(text: str, now: datetime, tz: str | None) -> str:
    """Letta's `package_system_message`: a `system_alert` envelope, unless `text` already is one."""
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("type") == "system_alert":
        return text
    return json.dumps({"type": "system_alert", "message": text, "time": format_letta_time(now, tz)})


def _message(agent: AgentRow, role: str, text: str, *, name: str | None = None) -> MessageRow:
    return MessageRow(
        id=new_id("message"),
        agent_id=agent.id,
        role=role,
        content=[{"type": "text", "text": text}],
        text=text,
        name=name,
    )


def _user(agent: AgentRow, text: str, *, name: str | None = None) -> MessageRow:
    return _message(agent, "user", text, name=name)


def _send_message_call(
    agent: AgentRow, call_id: str, arguments: str, *, thought: str | None = None, name: str | None = None
) -> MessageRow:
    return MessageRow(
        id=new_id("message"),
        agent_id=agent.id,
        role="assistant",
        content=[{"type": "text", "text": thought}] if thought else [],
        text=thought,
        name=name,
        tool_calls=[
            {"id": call_id, "type": "function", "function": {"name": SEND_MESSAGE, "arguments": arguments}}
        ],
        model=(agent.llm_config or {}).get("model"),
    )


def _send_message_return(agent: AgentRow, call_id: str, packaged: str) -> MessageRow:
    return MessageRow(
        id=new_id("message"),
        agent_id=agent.id,
        role="tool",
        name=SEND_MESSAGE,
        content=[{"type": "text", "text": packaged}],
        text=None,
        tool_call_id=call_id,
        # Letta keeps the packaged return as the call's `func_response`.
        tool_returns=[
            {
                "tool_call_id": call_id,
                "status": "success",
                "tool_return": packaged,
                "stdout": None,
                "stderr": None,
            }
        ],
    )
