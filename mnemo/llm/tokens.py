"""Token counts for context-window bookkeeping (compaction thresholds, the context endpoint).

Counts are estimates: litellm's tokenizer for the model when it has one (offline: tiktoken files ship
inside litellm), else about four bytes per token. They decide when to compact; the provider's own
overflow error stays the backstop.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402

from mnemo.llm.config import LLMConfig, default_context_window, litellm_model  # noqa: E402

litellm.suppress_debug_info = True


def count_tokens(
    config: LLMConfig, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """Estimated prompt tokens for `messages` (+ tool schemas) sent to `config`'s model."""
    try:
        counted = litellm.token_counter(
            model=litellm_model(config), messages=messages, tools=cast(Any, tools or None)
        )
        return int(counted)
    except Exception:
        # token_counter raises on content shapes it does not know (new part types, odd providers);
        # a rough count is better than failing a step over bookkeeping.
        return estimate_tokens(messages, tools)


def estimate_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """About four UTF-8 bytes per token, over the JSON of messages and tools."""
    payload = json.dumps(messages, ensure_ascii=False, default=str)
    if tools:
        payload += json.dumps(tools, ensure_ascii=False, default=str)
    return (len(payload.encode("utf-8")) + 3) // 4


def context_window(config: LLMConfig) -> int:
    """The window the agent is configured with; litellm's map (or the 32000 default) if unset."""
    if config.context_window and config.context_window > 0:
        return config.context_window
    return default_context_window(litellm_model(config))
