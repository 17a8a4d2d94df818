"""A real, scriptable OpenAI-compatible HTTP server for tests and benchmarks.

    fake = FakeLLM().start()
    fake.script(Reply.text("hi"), Fault.rate_limit(retry_after=1.0))
    litellm.acompletion(model="openai/fake", api_base=fake.base_url, api_key="x", ...)
"""

from mnemo.fakellm.client import FakeLLMClient
from mnemo.fakellm.script import Fault, Policy, Reply, ToolCall
from mnemo.fakellm.server import FakeLLM, serve_forever

__all__ = ["FakeLLM", "FakeLLMClient", "Fault", "Policy", "Reply", "ToolCall", "serve_forever"]
