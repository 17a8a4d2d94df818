"""The ASGI app: OpenAI routes under /v1 and the scripting routes under /_fake/.

Plain Starlette routes (no request-model validation on the hot path) and hand-built bytes keep the
per-request cost near the HTTP server's own, because benchmarks measure through this fake.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mnemo.fakellm import render
from mnemo.fakellm.script import DefaultBody, Fault, Policy, PolicyBody, Reply, ScriptBody
from mnemo.fakellm.state import FakeState, RequestKind

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_DROPPED_MESSAGE = "ASGI callable returned without completing response"

# A deliberately dropped connection makes uvicorn log an error; this marks the task that did it on
# purpose so the filter below hides exactly those records and nothing else.
_dropping_on_purpose: contextvars.ContextVar[bool] = contextvars.ContextVar("fake_llm_drop", default=False)


class _HideDeliberateDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_dropping_on_purpose.get() and str(record.msg).startswith(_DROPPED_MESSAGE))


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDrops) for f in logger.filters):
        logger.addFilter(_HideDeliberateDrops())


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _StreamResponse(Response):
    """SSE events sent one by one; with `cut_after`, the connection drops after that many events."""

    def __init__(self, events: Iterator[bytes], cut_after: int | None = None) -> None:
        self.events = events
        self.cut_after = cut_after
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        for sent, event in enumerate(self.events):
            if self.cut_after is not None and sent >= self.cut_after:
                _dropping_on_purpose.set(True)
                return  # response left incomplete: uvicorn closes the socket mid-stream
            await send({"type": "http.response.body", "body": event, "more_body": True})
            # Yield so each event leaves as its own write, as a real token stream would.
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _CutResponse(Response):
    """A non-streamed body that stops half way: headers promise more bytes than ever arrive."""

    def __init__(self, full_body: bytes) -> None:
        self.full_body = full_body
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*_JSON, (b"content-length", str(len(self.full_body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        half = self.full_body[: len(self.full_body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        _dropping_on_purpose.set(True)


class _HangResponse(Response):
    """Says nothing for `seconds`, then a 504; gives up early if the client goes away."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.wait_for(_wait_for_disconnect(receive), timeout=self.fault.seconds)
            return  # client gave up: nobody to answer
        except TimeoutError:
            pass
        await _error(self.fault)(scope, receive, send)


def _error(fault: Fault) -> Response:
    return Response(
        render.error_body(fault), status_code=fault.http_status, headers=render.error_headers(fault)
    )


def _bad_request(message: str) -> Response:
    return _error(Fault.status(400, message))


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def create_app(state: FakeState) -> Starlette:
    _install_log_filter()

    async def chat_completions(request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _bad_request("The request body is not a JSON object.")
        item = state.next_for(body)
        if item.delay > 0:
            await asyncio.sleep(item.delay)
        return _respond(item, body)

    async def embeddings(request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _bad_request("The request body is not a JSON object.")
        state.record("embeddings", body)
        return Response(render.embeddings_body(body), media_type="application/json")

    async def models(request: Request) -> Response:
        ids = ["fake", *state.models()]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "mnemo"} for i in dict.fromkeys(ids)]
        return JSONResponse({"object": "list", "data": data})

    async def control_script(request: Request) -> Response:
        parsed = await _parse(request, ScriptBody)
        if isinstance(parsed, Response):
            return parsed
        state.script(list(parsed.items), model=parsed.model)
        return JSONResponse({"pending": state.pending()})

    async def control_default(request: Request) -> Response:
        parsed = await _parse(request, DefaultBody)
        if isinstance(parsed, Response):
            return parsed
        state.set_default(parsed.item)
        return JSONResponse({"ok": True})

    async def control_policy(request: Request) -> Response:
        parsed = await _parse(request, PolicyBody)
        if isinstance(parsed, Response):
            return parsed
        state.set_policy(Policy(name=parsed.name, tool_name=parsed.tool_name, arguments=parsed.arguments))
        return JSONResponse({"ok": True})

    async def control_requests(request: Request) -> Response:
        kind = request.query_params.get("kind")
        if kind not in (None, "chat", "embeddings"):
            return _bad_request(f"Unknown request kind {kind!r}: use chat or embeddings.")
        wanted: RequestKind | None = "chat" if kind == "chat" else "embeddings" if kind else None
        return JSONResponse(state.requests(wanted))

    async def control_reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    async def control_health(request: Request) -> Response:
        return JSONResponse({"ok": True, "pending": state.pending()})

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/_fake/script", control_script, methods=["POST"]),
        Route("/_fake/default", control_default, methods=["POST"]),
        Route("/_fake/policy", control_policy, methods=["POST"]),
        Route("/_fake/requests", control_requests, methods=["GET"]),
        Route("/_fake/reset", control_reset, methods=["POST"]),
        Route("/_fake/health", control_health, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _respond(item: Reply | Fault, body: dict[str, Any]) -> Response:
    stream = bool(body.get("stream"))
    if isinstance(item, Reply):
        return _reply(item, body, stream)
    if item.type == "malformed_tool_call" and item.reply is not None:
        return _reply(item.reply, body, stream)
    if item.type == "cut_stream":
        reply = item.reply or Reply.text("")
        if stream:
            return _StreamResponse(render.stream_events(reply, body), cut_after=item.after_chunks)
        return _CutResponse(render.completion_body(reply, body))
    if item.type == "hang":
        return _HangResponse(item)
    return _error(item)


def _reply(reply: Reply, body: dict[str, Any], stream: bool) -> Response:
    if stream:
        return _StreamResponse(render.stream_events(reply, body))
    return Response(render.completion_body(reply, body), media_type="application/json")


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


async def _parse(request: Request, model: type[Any]) -> Any:
    adapter = _ADAPTERS.setdefault(model, TypeAdapter(model))
    try:
        return adapter.validate_json(await request.body())
    except ValidationError as exc:
        return _bad_request(f"Invalid control request: {exc}")
