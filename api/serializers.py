"""Rows as Letta wire objects (`AgentState`, `Block`, `Tool`, `Run`, `Passage`, `Step`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mnemo.store.tables import AgentRow, BlockRow, PassageRow, RunRow, StepRow, ToolRow


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def block(row: BlockRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "value": row.value,
        "limit": row.limit,
        "description": row.description,
        "read_only": row.read_only,
        "hidden": row.hidden,
        "is_template": row.is_template,
        "template_name": row.template_name,
        "preserve_on_migration": row.preserve_on_migration,
        "metadata": row.metadata_ or {},
        "tags": list(row.tags),
        "project_id": None,
        "created_by_id": None,
        "last_updated_by_id": None,
    }


def tool(row: ToolRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "tool_type": row.tool_type,
        "description": row.description,
        "source_type": row.source_type,
        "source_code": row.source_code,
        "json_schema": row.json_schema,
        "args_json_schema": row.args_json_schema,
        "tags": list(row.tags),
        "return_char_limit": row.return_char_limit,
        "pip_requirements": row.pip_requirements,
        "npm_requirements": row.npm_requirements,
        "default_requires_approval": row.default_requires_approval,
        "enable_parallel_execution": row.enable_parallel_execution,
        "metadata_": row.metadata_ or {},
        "created_by_id": None,
        "last_updated_by_id": None,
    }


def agent_secrets(row: AgentRow) -> list[dict[str, Any]]:
    """The agent's tool environment variables as Letta's `AgentEnvironmentVariable` list."""
    return [
        {"agent_id": row.id, "key": key, "value": str(value), "description": None}
        for key, value in (row.secrets or {}).items()
    ]


def agent_state(
    row: AgentRow,
    *,
    blocks: list[BlockRow] | None = None,
    tools: list[ToolRow] | None = None,
    secrets: bool = False,
) -> dict[str, Any]:
    llm = row.llm_config or {}
    block_list = [block(b) for b in blocks] if blocks is not None else []
    env = agent_secrets(row) if secrets else []
    return {
        "id": row.id,
        "name": row.name,
        "agent_type": row.agent_type,
        "system": row.system,
        "description": row.description,
        "model": row.model,
        "embedding": row.embedding,
        "llm_config": llm,
        "embedding_config": row.embedding_config,
        "model_settings": None,
        "compaction_settings": row.compaction_settings,
        "response_format": None,
        "tool_rules": row.tool_rules,
        "message_ids": row.message_ids,
        "metadata": row.metadata_ or {},
        "memory": {"blocks": block_list, "agent_type": row.agent_type} if blocks is not None else None,
        "blocks": block_list,
        "tools": [tool(t) for t in tools] if tools is not None else [],
        "sources": [],
        "tags": list(row.tags),
        "tool_exec_environment_variables": env,
        "secrets": env,
        "project_id": None,
        "template_id": None,
        "base_template_id": None,
        "deployment_id": None,
        "entity_id": None,
        "identity_ids": [],
        "identities": [],
        "pending_approval": None,
        "message_buffer_autoclear": row.message_buffer_autoclear,
        "enable_sleeptime": row.enable_sleeptime,
        "multi_agent_group": None,
        "managed_group": None,
        "last_run_completion": _ts(row.last_run_completion),
        "last_run_duration_ms": row.last_run_duration_ms,
        "last_stop_reason": row.last_stop_reason,
        "timezone": row.timezone,
        "max_files_open": None,
        "per_file_view_window_char_limit": None,
        "hidden": None,
        "created_by_id": None,
        "last_updated_by_id": None,
        "created_at": _ts(row.created_at),
        "updated_at": _ts(row.updated_at),
    }


def run(row: RunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "created_at": _ts(row.created_at),
        "completed_at": _ts(row.completed_at),
        "agent_id": row.agent_id,
        "conversation_id": None,
        "base_template_id": None,
        "background": row.background,
        "metadata": row.metadata_ or {},
        "request_config": row.request_config,
        "stop_reason": row.stop_reason,
        "callback_url": row.callback_url,
        "callback_sent_at": _ts(row.callback_sent_at),
        "callback_status_code": row.callback_status_code,
        "callback_error": row.callback_error,
        "ttft_ns": row.ttft_ns,
        "total_duration_ns": row.total_duration_ns,
    }


def passage(row: PassageRow) -> dict[str, Any]:
    # The vector itself is left out: clients never use it and it is the bulk of the row.
    return {
        "id": row.id,
        "text": row.text,
        "archive_id": row.archive_id,
        "embedding": None,
        "embedding_config": row.embedding_config,
        "tags": list(row.tags),
        "metadata": row.metadata_ or {},
        "source_id": None,
        "file_id": None,
        "file_name": None,
        "is_deleted": False,
        "created_at": _ts(row.created_at),
        "updated_at": _ts(row.updated_at),
        "created_by_id": None,
        "last_updated_by_id": None,
    }


def step(row: StepRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "run_id": row.run_id,
        "agent_id": row.agent_id,
        "status": row.status,
        "provider_name": row.provider_name,
        "model": row.model,
        "model_handle": row.model_handle,
        "model_endpoint": None,
        "context_window_limit": row.context_window_limit,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
        "stop_reason": row.stop_reason,
        "error_type": row.error_type,
        "error_data": row.error_data,
        "messages": [],
        "tags": [],
        "origin": None,
        "project_id": None,
        "trace_id": None,
        "feedback": None,
        "created_at": _ts(row.created_at),
        "completed_at": _ts(row.completed_at),
    }
