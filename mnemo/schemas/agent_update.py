"""Letta's `UpdateAgent` body (`PATCH /v1/agents/{id}`), as far as Mnemo honours it.

Every field is optional and, as in Letta (which applies `exclude_none`), a null means "leave it as it
is". Lists and maps given replace what the agent had (tags, metadata, secrets, tool_ids, block_ids,
tool_rules, message_ids).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mnemo.schemas.agents import NOT_BUILT_YET, ModelHandle, ToolRule, unsupported_fields

StopReason = Literal[
    "end_turn",
    "error",
    "llm_api_error",
    "invalid_llm_response",
    "invalid_tool_call",
    "max_steps",
    "max_tokens_exceeded",
    "no_tool_call",
    "tool_rule",
    "cancelled",
    "insufficient_credits",
    "requires_approval",
    "context_window_overflow_in_system_prompt",
]

# Fields of Letta's UpdateAgent for features Mnemo does not have yet: a non-empty value is refused
# (501) rather than dropped, so a client never believes a change was made.
UNSUPPORTED_FIELDS: dict[str, str] = {
    **NOT_BUILT_YET,
    "max_files_open": "folders and files",
    "per_file_view_window_char_limit": "folders and files",
    "project_id": "projects",
    "template_id": "templates",
    "base_template_id": "templates",
    "hidden": "hidden agents",
}


class UpdateAgent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, pattern=r"^[\w '\-]+$", max_length=200)
    description: str | None = None
    system: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None

    model: ModelHandle | None = None
    llm_config: dict[str, Any] | None = None
    model_settings: dict[str, Any] | None = None
    context_window_limit: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    reasoning: bool | None = None
    response_format: dict[str, Any] | None = None
    embedding: str | None = None
    embedding_config: dict[str, Any] | None = None

    tool_ids: list[str] | None = None
    block_ids: list[str] | None = None
    tool_rules: list[ToolRule] | None = None  # checked as at create
    message_ids: list[str] | None = None

    secrets: dict[str, str] | None = None
    tool_exec_environment_variables: dict[str, str] | None = None
    timezone: str | None = None
    message_buffer_autoclear: bool | None = None
    enable_sleeptime: bool | None = None
    compaction_settings: dict[str, Any] | None = None

    last_run_completion: datetime | None = None
    last_run_duration_ms: int | None = Field(default=None, ge=0, le=2**63 - 1)
    last_stop_reason: StopReason | None = None

    folder_ids: list[str] | None = None
    source_ids: list[str] | None = None
    identity_ids: list[str] | None = None
    max_files_open: int | None = None
    per_file_view_window_char_limit: int | None = None
    project_id: str | None = None
    template_id: str | None = None
    base_template_id: str | None = None
    hidden: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _iana_timezone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {v!r} (e.g. 'UTC', 'Europe/Paris')") from exc
        return v

    @field_validator("tool_ids", "block_ids", "message_ids")
    @classmethod
    def _no_repeats(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("ids must not repeat")
        return v

    def given(self) -> dict[str, Any]:
        """The fields the request set to a value (nulls change nothing, as in Letta)."""
        return {k: getattr(self, k) for k in self.model_fields_set if getattr(self, k) is not None}

    def unsupported(self) -> str | None:
        """What Mnemo cannot honour yet among the fields set (None: nothing)."""
        return unsupported_fields(self.given(), UNSUPPORTED_FIELDS)
