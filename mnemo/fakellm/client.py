"""Scripting a fake that runs in another process, over its `/_fake/` control routes.

Same methods as `FakeLLM`, so a test can take either.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal

import httpx

from mnemo.fakellm.script import DefaultBody, Fault, PolicyBody, Reply, ScriptBody


class FakeLLMClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        """`base_url` is the fake's root or its `/v1` URL (e.g. `http://127.0.0.1:8299/v1`)."""
        root = base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self._root = root
        self._http = httpx.Client(base_url=root, timeout=timeout)

    @property
    def base_url(self) -> str:
        return f"{self._root}/v1"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FakeLLMClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _post(self, path: str, body: Any) -> Any:
        response = self._http.post(path, content=body.model_dump_json() if body is not None else b"")
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        response = self._http.get("/_fake/health")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def script(self, *items: Reply | Fault, model: str | None = None) -> None:
        self._post("/_fake/script", ScriptBody(items=list(items), model=model))

    def set_default(self, item: Reply | Fault) -> None:
        self._post("/_fake/default", DefaultBody(item=item))

    def set_policy(
        self,
        name: Literal["echo", "tool_then_text"],
        *,
        tool_name: str | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        if name == "tool_then_text" and not tool_name:
            raise ValueError("policy 'tool_then_text' needs tool_name")
        self._post("/_fake/policy", PolicyBody(name=name, tool_name=tool_name, arguments=arguments or {}))

    def reset(self) -> None:
        self._post("/_fake/reset", None)

    @property
    def pending(self) -> int:
        return int(self.health()["pending"])

    def _requests(self, kind: str | None) -> list[dict[str, Any]]:
        response = self._http.get("/_fake/requests", params={"kind": kind} if kind else None)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._requests(None)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return self._requests("chat")

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        return self._requests("embeddings")
