"""API-key auth: when MNEMO_API_KEY is set, every request but health must carry the key.

It is an ASGI middleware rather than a route dependency so that an unknown path answers 401, not
404, to a caller without the key (nothing about the route table leaks), and so that streaming
responses pass through untouched.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

MISSING_KEY = (
    "Missing API key: this server requires MNEMO_API_KEY. Send the header "
    "`Authorization: Bearer <key>` (letta-client: pass api_key=<key> or set LETTA_API_KEY)."
)
WRONG_SCHEME = "Malformed Authorization header: expected `Authorization: Bearer <key>`."
WRONG_KEY = "Invalid API key: the key sent does not match the server's MNEMO_API_KEY."


def presented_key(headers: Headers) -> tuple[str | None, str | None]:
    """The key a request carries and, when it carries none usable, why.

    Letta's own server also accepts `X-BARE-PASSWORD: password <key>`; honouring it keeps old
    clients working.
    """
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, WRONG_SCHEME
        return token.strip(), None
    bare = headers.get("x-bare-password")
    if bare:
        scheme, _, token = bare.partition(" ")
        if scheme.lower() == "password" and token.strip():
            return token.strip(), None
        return None, "Malformed X-BARE-PASSWORD header: expected `X-BARE-PASSWORD: password <key>`."
    return None, MISSING_KEY


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, api_key: str, open_paths: Iterable[str]) -> None:
        self.app = app
        self._key = api_key.encode()
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self._open:
            await self.app(scope, receive, send)
            return
        key, problem = presented_key(Headers(scope=scope))
        if key is not None and secrets.compare_digest(key.encode(), self._key):
            await self.app(scope, receive, send)
            return
        detail = problem or WRONG_KEY
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail})
            return
        response = JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)
