"""Letta's Agent File (`.af`, v2 "multi-entity" format): the document `GET /v1/agents/{id}/export`
writes and `POST /v1/agents/import` reads (`letta/schemas/agent_file.py`).

Ids inside a document are file-local (`agent-0`, `block-1`, `tool-2`, `message-0`) and are remapped
on import. Letta adds fields release after release and real files carry nulls where a list is meant,
so reading ignores unknown keys and takes null lists as empty; writing emits the fields Letta's own
exports carry, so Letta (and our reader) can read what we write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _none_is_empty(value: Any) -> Any:
    return [] if value is None else value


# A list that real files sometimes carry as null.
NullableList = Annotated[list[Any], BeforeValidator(_none_is_empty)]
NullableStrList = Annotated[list[str], BeforeValidator(_none_is_empty)]


class FileModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ToolCallFunction(FileModel):
    name: str
    arguments: str = ""


class ToolCallSchema(FileModel):
    """An OpenAI-shaped tool call, as Letta stores them on assistant messages."""

    id: str
    type: str = "function"
    function: ToolCallFunction


class ToolReturnSchema(FileModel):
    """Letta's `letta.schemas.message.ToolReturn` (`func_response` is the raw return)."""

    tool_call_id: Any = None
    status: str = "success"
    stdout: list[str] | None = None
    stderr: list[str] | None = None
    func_response: Any = None


class MessageSchema(FileModel):
    type: str = "message"
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    otid: str | None = None
    sender_id: str | None = None
    batch_item_id: str | None = None
    group_id: str | None = None
    id: str
    model: str | None = None
    agent_id: str | None = None
    tool_calls: list[ToolCallSchema] | None = None
    tool_call_id: str | None = None
    tool_returns: list[ToolReturnSchema] | None = None
    created_at: datetime | None = None
    approve: bool | None = None
    approval_request_id: str | None = None
    denial_reason: str | None = None
    approvals: list[dict[str, Any]] | None = None

    def content_parts(self) -> list[dict[str, Any]]:
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [{"type": "text", "text": self.content}]
        return [dict(p) for p in self.content]


class BlockSchema(FileModel):
    value: str = ""
    limit: int | None = None
    project_id: str | None = None
    template_name: str | None = None
    is_template: bool = False
    template_id: str | None = None
    base_template_id: str | None = None
    deployment_id: str | None = None
    entity_id: str | None = None
    preserve_on_migration: bool | None = False
    label: str
    read_only: bool = False
    description: str | None = None
    metadata: dict[str, Any] | None = None
    hidden: bool | None = None
    tags: list[str] | None = None
    id: str


class ToolSchema(FileModel):
    id: str
    tool_type: str = "custom"
    description: str | None = None
    source_type: str | None = "python"
    name: str
    tags: NullableStrList = Field(default_factory=list)
    source_code: str | None = None
    json_schema: dict[str, Any] | None = None
    args_json_schema: dict[str, Any] | None = None
    return_char_limit: int | None = None
    pip_requirements: list[dict[str, Any]] | None = None
    npm_requirements: list[dict[str, Any]] | None = None
    default_requires_approval: bool | None = None
    enable_parallel_execution: bool | None = None
    created_by_id: str | None = None
    last_updated_by_id: str | None = None
    metadata_: dict[str, Any] | None = None


class AgentSchema(FileModel):
    """Letta's `CreateAgent` fields plus the file's own (`id`, `in_context_message_ids`, `messages`,
    `files_agents`, `group_ids`). Defaults are what Letta's export writes."""

    name: str | None = None
    memory_blocks: NullableList = Field(default_factory=list)
    tools: NullableStrList = Field(default_factory=list)
    tool_ids: NullableStrList = Field(default_factory=list)
    source_ids: NullableStrList = Field(default_factory=list)
    folder_ids: list[str] | None = None
    block_ids: NullableStrList = Field(default_factory=list)
    tool_rules: NullableList = Field(default_factory=list)
    tags: NullableStrList = Field(default_factory=list)
    system: str | None = None
    agent_type: str = "letta_v1_agent"
    llm_config: dict[str, Any] | None = None
    embedding_config: dict[str, Any] | None = None
    initial_message_sequence: list[dict[str, Any]] | None = None
    include_base_tools: bool = False
    include_multi_agent_tools: bool = False
    include_base_tool_rules: bool = False
    include_default_source: bool = False
    description: str | None = None
    metadata: dict[str, Any] | None = None
    model: str | None = None
    embedding: str | None = None
    context_window_limit: int | None = None
    embedding_chunk_size: int | None = None
    max_tokens: int | None = None
    max_reasoning_tokens: int | None = None
    enable_reasoner: bool | None = False
    reasoning: bool | None = None
    from_template: str | None = None
    template: bool = False
    project: str | None = None
    tool_exec_environment_variables: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None
    memory_variables: dict[str, Any] | None = None
    project_id: str | None = None
    template_id: str | None = None
    base_template_id: str | None = None
    identity_ids: list[str] | None = None
    message_buffer_autoclear: bool = False
    enable_sleeptime: bool | None = False
    response_format: dict[str, Any] | None = None
    timezone: str | None = "UTC"
    max_files_open: int | None = None
    per_file_view_window_char_limit: int | None = None
    hidden: bool | None = None
    parallel_tool_calls: bool | None = None
    id: str
    in_context_message_ids: NullableStrList = Field(default_factory=list)
    messages: Annotated[list[MessageSchema], BeforeValidator(_none_is_empty)] = Field(default_factory=list)
    files_agents: NullableList = Field(default_factory=list)
    group_ids: NullableStrList = Field(default_factory=list)


class AgentFile(FileModel):
    """The whole document (Letta's `AgentFileSchema`)."""

    agents: list[AgentSchema]
    groups: NullableList = Field(default_factory=list)
    blocks: Annotated[list[BlockSchema], BeforeValidator(_none_is_empty)] = Field(default_factory=list)
    files: NullableList = Field(default_factory=list)
    sources: NullableList = Field(default_factory=list)
    tools: Annotated[list[ToolSchema], BeforeValidator(_none_is_empty)] = Field(default_factory=list)
    mcp_servers: NullableList = Field(default_factory=list)
    skills: NullableList = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None


class ImportOptions(BaseModel):
    """The form fields of `POST /v1/agents/import`, after the deprecated aliases are folded in."""

    override_existing_tools: bool = True
    strip_messages: bool = False
    secrets: dict[str, str] | None = None
    name: str | None = None
    append_copy_suffix: bool = False
    model: str | None = None
    embedding: str | None = None
