"""Letta's agent and block request bodies (`CreateAgent`, `CreateBlock`), as far as Mnemo honours them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

AgentType = Literal[
    "letta_v1_agent",
    "memgpt_agent",
    "memgpt_v2_agent",
    "sleeptime_agent",
    "react_agent",
    "workflow_agent",
    "split_thread_agent",
    "voice_convo_agent",
    "voice_sleeptime_agent",
]
SUPPORTED_AGENT_TYPES = ("letta_v1_agent", "memgpt_agent", "memgpt_v2_agent", "sleeptime_agent")
HEARTBEAT_AGENT_TYPES = ("memgpt_agent", "memgpt_v2_agent")


def _has_provider(handle: str) -> str:
    if "/" not in handle:
        raise ValueError(
            f"model handle {handle!r} must look like 'provider/model-name', e.g. 'openai/gpt-4o-mini'"
        )
    return handle


# The `model` field of create and update bodies.
ModelHandle = Annotated[str, AfterValidator(_has_provider)]

# Letta 0.16.6+ default; the per-label persona/human defaults are 20,000.
DEFAULT_BLOCK_LIMIT = 100_000
DEFAULT_PERSONA_HUMAN_LIMIT = 20_000
DEFAULT_BLOCK_DESCRIPTIONS = {
    "persona": "The persona block: Stores details about your current persona, guiding how you behave and respond. "
    "This helps you to maintain consistency and personality in your interactions.",
    "human": "The human block: Stores key details about the person you are conversing with, allowing for more "
    "personalized and friend-like conversation.",
}


class CreateBlock(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: str = Field(min_length=1, max_length=200)
    value: str = ""
    limit: int | None = Field(default=None, ge=1)
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    hidden: bool | None = None
    is_template: bool = False
    template_name: str | None = None
    preserve_on_migration: bool | None = False

    @field_validator("value", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        # Letta: a null value becomes "", and null bytes are stripped.
        return "" if v is None else (v.replace("\x00", "") if isinstance(v, str) else v)

    def effective_limit(self) -> int:
        if self.limit is not None:
            return self.limit
        return DEFAULT_PERSONA_HUMAN_LIMIT if self.label in ("persona", "human") else DEFAULT_BLOCK_LIMIT


TOOL_RULE_TYPES = (
    "run_first",
    "exit_loop",
    "continue_loop",
    "constrain_child_tools",
    "parent_last_tool",
    "conditional",
    "max_count_per_step",
    "required_before_exit",
    "requires_approval",
)


class ToolCallNode(BaseModel):
    """Letta's `ToolCallNode`: arguments a `constrain_child_tools` rule fixes for one of its children
    when that child is called right after the parent."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    args: dict[str, Any] | None = None


class ToolRule(BaseModel):
    """One of Letta's nine tool rules; the fields each type needs are checked here, so a bad rule is
    a 422 at create/update time instead of a surprise mid-run."""

    model_config = ConfigDict(extra="allow")

    tool_name: str = Field(min_length=1)
    type: Literal[TOOL_RULE_TYPES]  # type: ignore[valid-type]
    prompt_template: str | None = None
    children: list[str] | None = None
    child_output_mapping: dict[str, str] | None = None
    default_child: str | None = None
    require_output_mapping: bool | None = None
    max_count_limit: int | None = Field(default=None, ge=1)
    args: dict[str, Any] | None = None
    child_arg_nodes: list[ToolCallNode] | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> ToolRule:
        if self.type in ("constrain_child_tools", "parent_last_tool") and not self.children:
            raise ValueError(f"a {self.type} rule needs `children`: the tools allowed after {self.tool_name}")
        if self.child_arg_nodes and self.type != "constrain_child_tools":
            raise ValueError("`child_arg_nodes` belongs on a constrain_child_tools rule only")
        for node in self.child_arg_nodes or []:
            if node.name not in (self.children or []):
                raise ValueError(
                    f"`child_arg_nodes` names {node.name!r}, which is not one of the children of "
                    f"{self.tool_name}: {self.children}"
                )
        if self.type == "conditional" and not self.child_output_mapping:
            raise ValueError(
                "a conditional rule needs `child_output_mapping` with at least one output → tool"
            )
        if self.type == "max_count_per_step" and self.max_count_limit is None:
            raise ValueError("a max_count_per_step rule needs `max_count_limit` (at least 1)")
        return self


INITIAL_MESSAGE_ROLES = ("user", "system", "assistant")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"] = "text"
    text: str


class InitialMessage(BaseModel):
    """One item of `initial_message_sequence` (Letta's `MessageCreate`, as far as it is used there).

    `otid` is accepted and dropped, as Letta drops it: these messages belong to no request to retry.
    """

    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "system", "assistant"]
    content: str | list[TextPart]
    name: str | None = None
    otid: str | None = None

    @field_validator("role", mode="before")
    @classmethod
    def _known_role(cls, v: Any) -> Any:
        if v not in INITIAL_MESSAGE_ROLES:
            raise ValueError(
                f"role {v!r} cannot start an agent's conversation; use one of {', '.join(INITIAL_MESSAGE_ROLES)}"
            )
        return v

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, v: Any) -> Any:
        # Checked here so a bad part is one clear error, not one per member of the union.
        if isinstance(v, list):
            for i, part in enumerate(v):
                if not isinstance(part, dict) or part.get("type", "text") != "text":
                    raise ValueError(f"content[{i}]: only text parts are supported in initial messages")
                if not isinstance(part.get("text"), str):
                    raise ValueError(f"content[{i}].text must be a string")
        elif not isinstance(v, str):
            raise ValueError("content must be a string or a list of text parts")
        return v

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


# Fields that ask for something Mnemo has not built yet: a request setting one gets a 501 that says
# so, not silence (an empty list, False or null asks for nothing).
NOT_BUILT_YET: dict[str, str] = {
    "folder_ids": "folders",
    "source_ids": "folders (sources)",
    "identity_ids": "identities",
    "enable_sleeptime": "sleep-time agents",
    "include_multi_agent_tools": "multi-agent tools",
}


def unsupported_fields(given: Mapping[str, Any], fields: Mapping[str, str]) -> str | None:
    """The message for the fields in `given` that ask for something not built yet, if any."""
    asked = [k for k, v in given.items() if k in fields and v not in (None, [], False)]
    if not asked:
        return None
    return "Mnemo does not support these agent fields yet: " + ", ".join(f"{k} ({fields[k]})" for k in asked)


class CreateAgent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, pattern=r"^[\w '\-]+$", max_length=200)
    memory_blocks: list[CreateBlock] = Field(default_factory=list)
    block_ids: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    tool_ids: list[str] = Field(default_factory=list)
    tool_rules: list[ToolRule] | None = None
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    metadata: dict[str, Any] | None = None
    system: str | None = None
    agent_type: AgentType = "letta_v1_agent"
    initial_message_sequence: list[InitialMessage] | None = None
    include_base_tools: bool = True
    include_base_tool_rules: bool | None = None
    model: ModelHandle | None = None
    embedding: str | None = None
    llm_config: dict[str, Any] | None = None
    embedding_config: dict[str, Any] | None = None
    context_window_limit: int | None = Field(default=None, ge=1)
    # Model settings next to the model (applied over llm_config, as at update).
    model_settings: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    reasoning: bool | None = None
    enable_reasoner: bool | None = None
    max_reasoning_tokens: int | None = Field(default=None, ge=0)
    response_format: dict[str, Any] | None = None
    secrets: dict[str, str] | None = None
    tool_exec_environment_variables: dict[str, str] | None = None
    message_buffer_autoclear: bool = False
    enable_sleeptime: bool | None = None
    include_multi_agent_tools: bool = False
    folder_ids: list[str] | None = None
    source_ids: list[str] | None = None
    identity_ids: list[str] | None = None
    timezone: str | None = "UTC"
    compaction_settings: dict[str, Any] | None = None
