"""A real, scriptable OpenAI-compatible HTTP server for tests and benchmarks.

fake = FakeLLM().start()
fake.script(Reply.text("hi"), Fault.rate_limit(retry_after=1.0))
litellm.acompletion(model="openai/fake", api_base=fake.base_url, api_key="x", ...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mnemo.fakellm.client import FakeLLMClient
from mnemo.fakellm.script import Fault, Policy, Reply, ToolCall

if TYPE_CHECKING:
    from mnemo.fakellm.server import FakeLLM, serve_forever

__all__ = ["FakeLLM", "FakeLLMClient", "Fault", "Policy", "Reply", "ToolCall", "serve_forever"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m mnemo.fakellm.server` does not import the server module twice.
    if name in ("FakeLLM", "serve_forever"):
        from mnemo.fakellm import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
