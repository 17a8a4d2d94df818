"""The CLI's client of Mnemo's own HTTP API: JSON calls, SSE streams, and errors as one line.

Every failure a user can meet (the API is down, an unknown id, a bad value) becomes a `CliError` whose
text is the single line the command prints before it exits 1.

    with ApiClient.connect(api_url) as api:
        agents = api.get_json("/v1/agents/")
        for sse in api.stream_events(f"/v1/runs/{run_id}/stream", {"starting_after": 0}):
            ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# While a run is quiet the API sends a `ping` every 20 s, so 90 s of silence means a dead connection.
STREAM_TIMEOUT = httpx.Timeout(60.0, connect=10.0, read=90.0)
DONE = "[DONE]"


class CliError(Exception):
    """A failure reported to the user as one line; the command exits 1."""


class ApiUnreachable(CliError):
    """Nothing answers at the API's address (an interactive chat gives up on this one)."""


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Server-sent events from a stream's lines (WHATWG rules; `id:` and `retry:` are of no use here)."""
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SseEvent("\n".join(data), event)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value


def resolve_target(api_url: str | None) -> tuple[str, str | None]:
    """The API's base URL and key: the option (or MNEMO_API_URL), else the port from Mnemo's settings."""
    key = os.environ.get("MNEMO_API_KEY") or None
    url = api_url or os.environ.get("MNEMO_API_URL")
    if not url:
        # Settings cost ~70 ms of imports (pydantic-settings), so they are read only when needed.
        from mnemo.config import get_settings

        settings = get_settings()
        url = f"http://127.0.0.1:{settings.api_port}"
        if key is None and settings.api_key is not None:
            key = settings.api_key.get_secret_value() or None
    return url.rstrip("/"), key


def _validation_summary(detail: list[Any]) -> str:
    parts = []
    for item in detail:
        if isinstance(item, dict):
            loc = ".".join(str(p) for p in item.get("loc", ())) or "request"
            parts.append(f"{loc}: {item.get('msg', 'invalid value')}")
        else:
            parts.append(str(item))
    return "Invalid request: " + "; ".join(parts)


def error_message(response: httpx.Response) -> str:
    """The API's own explanation of a failed response (`message`, else `detail`), with the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message: str | None = None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
        elif isinstance(body.get("detail"), list):
            message = _validation_summary(body["detail"])
    if not message:
        message = (
            response.text.strip().splitlines()[0][:300] if response.text.strip() else response.reason_phrase
        )
    return f"{message} (HTTP {response.status_code})"


class ApiClient:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=DEFAULT_TIMEOUT)

    @classmethod
    def connect(cls, api_url: str | None) -> ApiClient:
        return cls(*resolve_target(api_url))

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._http.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ApiUnreachable(
                f"Mnemo API is not reachable at {self.base_url}; start it with `mnemo up`"
            ) from exc
        except httpx.HTTPError as exc:
            raise CliError(f"Lost the connection to the Mnemo API at {self.base_url}: {exc!r}") from exc

    def _check(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        response.read()
        raise CliError(error_message(response))

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        with self._errors():
            response = self._http.get(path, params=params)
            self._check(response)
            return response.json()

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        with self._errors():
            response = self._http.post(path, json=body)
            self._check(response)
            return response.json()

    def stream_events(self, path: str, body: dict[str, Any]) -> Iterator[SseEvent]:
        """The events of a `POST` that answers with SSE, as they arrive."""
        with self._errors(), self._http.stream("POST", path, json=body, timeout=STREAM_TIMEOUT) as response:
            self._check(response)
            yield from parse_sse(response.iter_lines())
