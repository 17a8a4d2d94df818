"""The fake's mutable state: scripted queues, the fallback policy and the request log.

The server runs on its own thread and event loop while tests script it from theirs, so every access
goes through one lock. Critical sections are a few deque operations: no contention worth measuring.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any, Literal

from mnemo.fakellm.script import Fault, Policy, Reply, ToolCall

RequestKind = Literal["chat", "embeddings"]

# Long benchmarks must not grow the log without bound; tests never get near this.
DEFAULT_MAX_RECORDED = 50_000


class FakeState:
    def __init__(self, max_recorded: int = DEFAULT_MAX_RECORDED) -> None:
        self._lock = threading.Lock()
        self._global: deque[Reply | Fault] = deque()
        self._by_model: dict[str, deque[Reply | Fault]] = {}
        self._policy = Policy()
        self._recorded: deque[tuple[RequestKind, dict[str, Any]]] = deque(maxlen=max_recorded)

    # --- scripting ------------------------------------------------------------------------------

    def script(self, items: list[Reply | Fault], model: str | None = None) -> None:
        with self._lock:
            if model is None:
                self._global.extend(items)
            else:
                self._by_model.setdefault(model, deque()).extend(items)

    def set_default(self, item: Reply | Fault) -> None:
        with self._lock:
            self._policy = Policy(name="fixed", item=item)

    def set_policy(self, policy: Policy) -> None:
        with self._lock:
            self._policy = policy

    def reset(self) -> None:
        with self._lock:
            self._global.clear()
            self._by_model.clear()
            self._policy = Policy()
            self._recorded.clear()

    def pending(self) -> int:
        """How many scripted items are still queued (all models)."""
        with self._lock:
            return len(self._global) + sum(len(q) for q in self._by_model.values())

    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._by_model)

    # --- serving --------------------------------------------------------------------------------

    def record(self, kind: RequestKind, body: dict[str, Any]) -> None:
        with self._lock:
            self._recorded.append((kind, body))

    def requests(self, kind: RequestKind | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [body for k, body in self._recorded if kind is None or k == kind]

    def next_for(self, body: dict[str, Any]) -> Reply | Fault:
        """Record a chat request and pick its answer: model queue, then global queue, then policy."""
        model = body.get("model")
        with self._lock:
            self._recorded.append(("chat", body))
            queue = self._by_model.get(model) if isinstance(model, str) else None
            if queue:
                return queue.popleft()
            if self._global:
                return self._global.popleft()
            policy = self._policy
        return _apply_policy(policy, body.get("messages") or [])


def _apply_policy(policy: Policy, messages: list[Any]) -> Reply | Fault:
    if policy.name == "fixed" and policy.item is not None:
        return policy.item
    if policy.name == "tool_then_text":
        last = messages[-1] if messages else {}
        if isinstance(last, dict) and last.get("role") == "tool":
            return Reply.text("done")
        return Reply(
            calls=[ToolCall(name=policy.tool_name or "tool", arguments=json.dumps(policy.arguments))]
        )
    return Reply.text(f"echo: {last_user_text(messages)}")


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""
