"""Per-agent model settings given next to the model: Letta's provider-typed `model_settings` and the
request's own fields (`max_tokens`, `parallel_tool_calls`, ...), as `llm_config` values. Create and
update apply them the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mnemo.llm.config import LLMConfig

# Fields of a create/update body that set one `llm_config` value (over what model_settings set).
REQUEST_TO_LLM = {
    "context_window_limit": "context_window",
    "max_tokens": "max_tokens",
    "parallel_tool_calls": "parallel_tool_calls",
    "reasoning": "enable_reasoner",
    "enable_reasoner": "enable_reasoner",
    "max_reasoning_tokens": "max_reasoning_tokens",
    "response_format": "response_format",
}
# Letta's provider-typed `model_settings` keys that map onto `llm_config`.
MODEL_SETTINGS_TO_LLM = {
    "temperature": "temperature",
    "max_output_tokens": "max_tokens",
    "parallel_tool_calls": "parallel_tool_calls",
    "response_format": "response_format",
    "strict": "strict",
}


def from_model_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `llm_config` values a provider-typed `model_settings` sets. Keys with no `llm_config`
    counterpart (provider_type, verbosity, ...) change nothing, as when Letta maps them to a legacy config."""
    updates = {
        target: settings[key]
        for key, target in MODEL_SETTINGS_TO_LLM.items()
        if settings.get(key) is not None
    }
    reasoning = settings.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("reasoning_effort") is not None:
        updates["reasoning_effort"] = reasoning["reasoning_effort"]
    thinking = settings.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        updates["enable_reasoner"] = thinking["type"] == "enabled"
        if thinking.get("budget_tokens") is not None:
            updates["max_reasoning_tokens"] = thinking["budget_tokens"]
    return updates


def with_overrides(
    llm: LLMConfig, model_settings: Mapping[str, Any] | None, given: Mapping[str, Any]
) -> LLMConfig:
    """`llm` with `model_settings` applied, then the request's own fields in `given` (those set, not
    null). Re-validated: a bad value raises now (a 422) rather than failing a run later."""
    updates = from_model_settings(model_settings or {})
    updates |= {target: given[key] for key, target in REQUEST_TO_LLM.items() if given.get(key) is not None}
    if not updates:
        return llm
    return type(llm).model_validate({**llm.model_dump(), **updates})
