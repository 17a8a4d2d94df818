"""The parts of Letta's wire objects the CLI shows, and the request bodies it sends.

Every model ignores fields it does not name, so a newer server's additions never break the CLI.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class BlockView(Wire):
    label: str
    value: str = ""
    limit: int | None = None
    read_only: bool = False


class ToolView(Wire):
    name: str
    tool_type: str | None = None
    description: str | None = None


class AgentView(Wire):
    id: str
    name: str | None = None
    agent_type: str | None = None
    model: str | None = None
    embedding: str | None = None
    llm_config: dict[str, Any] = Field(default_factory=dict)
    last_stop_reason: str | None = None
    blocks: list[BlockView] = Field(default_factory=list)
    tools: list[ToolView] = Field(default_factory=list)

    @property
    def model_name(self) -> str:
        """The handle when there is one, else the raw model name of the agent's `llm_config`."""
        return self.model or str(self.llm_config.get("handle") or self.llm_config.get("model") or "")


class RunView(Wire):
    id: str
    agent_id: str | None = None
    status: str
    stop_reason: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    background: bool | None = None
    total_duration_ns: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class UsageView(Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class StepView(Wire):
    id: str
    status: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    stop_reason: str | None = None


class ToolCallView(Wire):
    name: str | None = None
    arguments: str | None = None
    tool_call_id: str | None = None


class StreamEvent(Wire):
    """One Letta message or stream event (`LettaMessageUnion`, `stop_reason`, `usage_statistics`, ...).

    Flat on purpose: the CLI reads the few fields each type has, and keeps the rest in `extra`.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    message_type: str = "unknown"
    id: str | None = None
    name: str | None = None
    run_id: str | None = None
    seq_id: int | None = None
    content: Any = None
    reasoning: str | None = None
    tool_call: ToolCallView | None = None
    tool_return: str | None = None
    status: str | None = None
    tool_call_id: str | None = None
    stop_reason: str | None = None
    message: str | None = None
    step_count: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    event_type: str | None = None
    event_data: Any = None

    @property
    def text(self) -> str:
        """`content` as text: Letta sends a string, or a list of parts with `text`."""
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict))
        return ""


class UserMessage(Wire):
    role: str = "user"
    content: str


class StreamRequest(Wire):
    messages: list[UserMessage]
    stream_tokens: bool = True
    include_pings: bool = True


class TailRequest(Wire):
    starting_after: int = 0
    include_pings: bool = True


class BlockCreate(Wire):
    label: str
    value: str


class CreateAgentRequest(Wire):
    name: str
    agent_type: str = "letta_v1_agent"
    model: str | None = None
    llm_config: dict[str, Any] | None = None
    memory_blocks: list[BlockCreate] = Field(default_factory=list)
