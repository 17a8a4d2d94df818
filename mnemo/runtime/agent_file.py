"""Agent File (`.af`) export and import: Letta's migration path into Mnemo.

Import runs in the caller's transaction: a file that fails anywhere creates nothing. The agent itself is
made by `create_agent` (blocks, tools, rules, system message, archive); this module brings the file's
tools, blocks and messages in around it and remaps the file-local ids.

The system message: Mnemo compiles it from the agent's `system` and blocks (and recompiles it on every
memory edit), so the file's in-context system message, Letta's rendering of the same thing, is replaced
by the one `create_agent` compiles. Every other message is stored as the file has it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mnemo.config import Settings
from mnemo.ids import new_id
from mnemo.runtime.agent_file_tools import import_tools
from mnemo.runtime.agent_update import NotSupportedYet
from mnemo.runtime.agents import agent_blocks, create_agent, new_block, recompile_system_message
from mnemo.runtime.context import agent_tools
from mnemo.schemas.agent_file import (
    AgentFile,
    AgentSchema,
    BlockSchema,
    ImportOptions,
    MessageSchema,
    ToolReturnSchema,
    ToolSchema,
)
from mnemo.schemas.agents import NOT_BUILT_YET, CreateAgent, CreateBlock, unsupported_fields
from mnemo.store.migrate import head_revision
from mnemo.store.tables import AgentRow, BlockRow, MessageRow, ToolRow
from mnemo.store.tables.messages import MESSAGE_ROLES

COPY_SUFFIX = "_copy"  # Letta appends "_copy" (the SDK's docstring shows it markdown-escaped)
# Top-level collections Mnemo cannot import yet, with what each is.
UNSUPPORTED_COLLECTIONS = {
    "groups": "multi-agent groups",
    "files": "files",
    "sources": "folders (sources)",
    "mcp_servers": "MCP servers",
    "skills": "skills",
}
_ROLE_ALIASES = {"function": "tool"}  # Letta's legacy role for tool returns


class AgentFileInvalid(ValueError):
    """The document is not a usable Agent File (the API answers 422)."""


def parse_agent_file(raw: bytes) -> AgentFile:
    """Read an uploaded file: a JSON document, or a JSON string holding one (how several published
    `.af` files are stored)."""
    try:
        doc: Any = json.loads(raw)
        if isinstance(doc, str):
            doc = json.loads(doc)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise AgentFileInvalid(
            f"the file is not valid JSON ({exc}); upload the .af file as exported"
        ) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("agents"), list):
        raise AgentFileInvalid(
            "the file is not an Agent File: expected a JSON object with an `agents` list (Letta's v2 format, "
            "as `GET /v1/agents/{agent_id}/export` writes it); the legacy single-agent format is not supported"
        )
    try:
        return AgentFile.model_validate(doc)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]]
        raise AgentFileInvalid("the Agent File has invalid fields: " + "; ".join(parts)) from exc


# --- export -----------------------------------------------------------------------------------------


class _FileIds:
    """Sequential file-local ids per type (`tool-0`, `tool-1`, ...), stable for one database id."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __call__(self, kind: str, db_id: str) -> str:
        if db_id not in self._ids:
            n = self._counts.get(kind, 0)
            self._counts[kind] = n + 1
            self._ids[db_id] = f"{kind}-{n}"
        return self._ids[db_id]


async def export_agent(
    session: AsyncSession, agent_id: str, *, scrub_messages: bool = False
) -> dict[str, Any]:
    """The agent as Letta's v2 Agent File document (JSON-ready)."""
    agent = await session.get(AgentRow, agent_id)
    if agent is None:
        raise LookupError(f"Agent {agent_id} not found")
    if agent.enable_sleeptime:
        raise NotSupportedYet("exporting a sleep-time agent is not supported yet")
    ids = _FileIds()
    agent_fid = ids("agent", agent.id)
    tools = await agent_tools(session, agent.id)
    blocks = await agent_blocks(session, agent.id)
    messages = [] if scrub_messages else await _context_messages(session, agent)
    tool_ids = [ids("tool", t.id) for t in tools]
    block_ids = [ids("block", b.id) for b in blocks]
    message_docs = [_export_message(m, ids("message", m.id), agent_fid) for m in messages]
    schema = AgentSchema(
        id=agent_fid,
        name=agent.name,
        tool_ids=tool_ids,
        block_ids=block_ids,
        tool_rules=list(agent.tool_rules),
        tags=list(agent.tags),
        system=agent.system,
        agent_type=agent.agent_type,
        llm_config=agent.llm_config,
        embedding_config=agent.embedding_config,
        description=agent.description,
        metadata=agent.metadata_,
        # Secret values never leave the server: the keys do, so an import knows what to ask for.
        tool_exec_environment_variables={k: "" for k in agent.secrets or {}},
        message_buffer_autoclear=agent.message_buffer_autoclear,
        enable_sleeptime=False,
        timezone=agent.timezone,
        in_context_message_ids=[m["id"] for m in message_docs],
        messages=[MessageSchema.model_validate(m) for m in message_docs],
    )
    doc = AgentFile(
        agents=[schema],
        blocks=[_export_block(b, ids("block", b.id)) for b in sorted(blocks, key=lambda b: b.label)],
        tools=[_export_tool(t, ids("tool", t.id)) for t in sorted(tools, key=lambda t: t.name)],
        metadata={"revision_id": head_revision()},
        created_at=datetime.now(UTC),
    )
    return doc.model_dump(mode="json")


async def _context_messages(session: AsyncSession, agent: AgentRow) -> list[MessageRow]:
    rows = (await session.exec(select(MessageRow).where(col(MessageRow.id).in_(agent.message_ids)))).all()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in agent.message_ids if i in by_id]


def _export_message(row: MessageRow, fid: str, agent_fid: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": row.role,
        "content": list(row.content),
        "name": row.name,
        "group_id": row.group_id,
        "id": fid,
        "model": row.model,
        "agent_id": agent_fid,
        "tool_calls": row.tool_calls,
        "tool_call_id": row.tool_call_id,
        "tool_returns": [_export_return(r) for r in row.tool_returns or []],
        "created_at": row.created_at,
    }


def _as_lines(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _export_return(ret: dict[str, Any]) -> dict[str, Any]:
    raw = ret.get("tool_return")
    return ToolReturnSchema(
        tool_call_id=ret.get("tool_call_id"),
        status=ret.get("status") or "success",
        stdout=_as_lines(ret.get("stdout")),
        stderr=_as_lines(ret.get("stderr")),
        func_response=raw if raw is None or isinstance(raw, str | list) else str(raw),
    ).model_dump()


def _export_block(row: BlockRow, fid: str) -> BlockSchema:
    return BlockSchema(
        id=fid,
        label=row.label,
        value=row.value,
        limit=row.limit,
        description=row.description,
        read_only=row.read_only,
        hidden=row.hidden,
        is_template=row.is_template,
        template_name=row.template_name,
        preserve_on_migration=row.preserve_on_migration,
        metadata=row.metadata_ or {},
        tags=list(row.tags),
    )


def _export_tool(row: ToolRow, fid: str) -> ToolSchema:
    return ToolSchema(
        id=fid,
        tool_type=row.tool_type,
        description=row.description,
        source_type=row.source_type,
        name=row.name,
        tags=list(row.tags),
        source_code=row.source_code,
        json_schema=row.json_schema,
        args_json_schema=row.args_json_schema,
        return_char_limit=row.return_char_limit,
        pip_requirements=row.pip_requirements,
        npm_requirements=row.npm_requirements,
        default_requires_approval=row.default_requires_approval,
        enable_parallel_execution=row.enable_parallel_execution,
        metadata_=row.metadata_ or {},
    )


# --- import -----------------------------------------------------------------------------------------


def check_supported(doc: AgentFile) -> None:
    """Refuse, naming them, the parts of a file Mnemo cannot import yet: nothing is dropped silently."""
    asked = [f"{key} ({what})" for key, what in UNSUPPORTED_COLLECTIONS.items() if getattr(doc, key)]
    if asked:
        raise NotSupportedYet("Mnemo cannot import these parts of an Agent File yet: " + ", ".join(asked))
    for agent in doc.agents:
        fields = {**NOT_BUILT_YET, "files_agents": "files", "group_ids": "multi-agent groups"}
        message = unsupported_fields(agent.model_dump(), fields)
        if message:
            raise NotSupportedYet(f"agent {agent.id} ({agent.name}): {message}")


def _check_references(doc: AgentFile) -> None:
    tools, blocks = {t.id for t in doc.tools}, {b.id for b in doc.blocks}
    if not doc.agents:
        raise AgentFileInvalid("the Agent File has no agents")
    for agent in doc.agents:
        missing = [i for i in agent.tool_ids if i not in tools] + [
            i for i in agent.block_ids if i not in blocks
        ]
        messages = {m.id for m in agent.messages}
        missing += [i for i in agent.in_context_message_ids if i not in messages]
        if missing:
            raise AgentFileInvalid(
                f"agent {agent.id} refers to ids the file does not define: {', '.join(missing)}"
            )


async def import_agent_file(
    session: AsyncSession, doc: AgentFile, options: ImportOptions, settings: Settings
) -> list[str]:
    """Create the file's agents (with their tools, blocks and messages); returns their new ids."""
    check_supported(doc)
    _check_references(doc)
    tool_ids = await import_tools(session, doc.tools, options.override_existing_tools)
    block_ids = await _import_blocks(session, doc.blocks)
    created = []
    for agent in doc.agents:
        row = await create_agent(session, _create_request(agent, options, tool_ids, block_ids), settings)
        if not options.strip_messages:
            await _import_messages(session, row, agent)
        created.append(row.id)
    return created


async def _import_blocks(session: AsyncSession, blocks: list[BlockSchema]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for block in blocks:
        try:
            spec = CreateBlock.model_validate(block.model_dump())
        except ValidationError as exc:
            raise AgentFileInvalid(f"block {block.id}: {exc.errors()[0]['msg']}") from exc
        row = new_block(spec, description=spec.description)
        if len(row.value) > row.limit:
            raise AgentFileInvalid(
                f"block {block.id} ({block.label!r}) is {len(row.value)} characters, over its limit of {row.limit}"
            )
        session.add(row)
        mapping[block.id] = row.id
    await session.flush()
    return mapping


def _create_request(
    agent: AgentSchema, options: ImportOptions, tool_ids: dict[str, str], block_ids: dict[str, str]
) -> CreateAgent:
    name = options.name or agent.name
    if name and options.append_copy_suffix and not options.name:
        name += COPY_SUFFIX
    secrets = {
        str(k): str(v) for k, v in (agent.secrets or agent.tool_exec_environment_variables or {}).items()
    }
    secrets |= options.secrets or {}
    fields: dict[str, Any] = {
        "name": name,
        "agent_type": agent.agent_type,
        "system": agent.system,
        "description": agent.description,
        "metadata": agent.metadata,
        "tags": agent.tags,
        "tool_rules": agent.tool_rules or None,
        "memory_blocks": agent.memory_blocks,
        "tools": agent.tools,
        "tool_ids": [tool_ids[i] for i in agent.tool_ids],
        "block_ids": [block_ids[i] for i in agent.block_ids],
        "include_base_tools": agent.include_base_tools,
        "include_base_tool_rules": agent.include_base_tool_rules,
        # The file's messages are the context: no boot sequence.
        "initial_message_sequence": [],
        "llm_config": None if options.model else agent.llm_config,
        "model": options.model or (None if agent.llm_config else agent.model),
        "embedding_config": None if options.embedding else agent.embedding_config,
        "embedding": options.embedding or (None if agent.embedding_config else agent.embedding),
        "secrets": secrets or None,
        "message_buffer_autoclear": agent.message_buffer_autoclear,
        "timezone": agent.timezone or "UTC",
    }
    try:
        return CreateAgent.model_validate(fields)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]]
        raise AgentFileInvalid(f"agent {agent.id}: " + "; ".join(parts)) from exc


async def _import_messages(session: AsyncSession, agent: AgentRow, spec: AgentSchema) -> None:
    system_id = agent.message_ids[0]
    by_fid = {m.id: m for m in spec.messages}
    replaced = None  # the file's compiled system message, which ours stands for
    if spec.in_context_message_ids and by_fid[spec.in_context_message_ids[0]].role == "system":
        replaced = spec.in_context_message_ids[0]
    ids = {replaced: system_id} if replaced else {}
    rows = []
    for message in spec.messages:
        if message.id == replaced:
            continue
        row = _message_row(agent.id, message)
        ids[message.id] = row.id
        rows.append(row)
    # One flush keeps the file's order, and with it `seq`, the order listings show.
    session.add_all(rows)
    await session.flush()
    context = [ids[i] for i in spec.in_context_message_ids if i != replaced]
    agent.message_ids = [system_id, *context]
    session.add(agent)
    await session.flush()
    await recompile_system_message(session, agent)


def _message_row(agent_id: str, message: MessageSchema) -> MessageRow:
    role = _ROLE_ALIASES.get(message.role, message.role)
    if role not in MESSAGE_ROLES:
        raise AgentFileInvalid(
            f"message {message.id} has role {message.role!r}; Mnemo stores {', '.join(MESSAGE_ROLES)}"
        )
    content = message.content_parts()
    text = "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    returns = [_stored_return(r) for r in message.tool_returns or []]
    row = MessageRow(
        id=new_id("message"),
        agent_id=agent_id,
        role=role,
        content=content,
        text=text or None,
        name=message.name,
        tool_calls=[c.model_dump() for c in message.tool_calls] if message.tool_calls else None,
        tool_call_id=message.tool_call_id,
        tool_returns=returns or None,
        is_err=any(r["status"] == "error" for r in returns),
        model=message.model,
    )
    if message.created_at is not None:
        row.created_at = message.created_at
    return row


def _stored_return(ret: ToolReturnSchema) -> dict[str, Any]:
    return {
        "tool_call_id": ret.tool_call_id,
        "status": "error" if ret.status == "error" else "success",
        "tool_return": ret.func_response,
        "stdout": "".join(ret.stdout) if ret.stdout else None,
        "stderr": "".join(ret.stderr) if ret.stderr else None,
    }


__all__ = [
    "AgentFileInvalid",
    "check_supported",
    "export_agent",
    "import_agent_file",
    "parse_agent_file",
]
