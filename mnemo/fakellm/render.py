"""OpenAI wire format: completion bodies, stream chunks, error bodies and embedding vectors."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import sys
import time
import uuid
from array import array
from collections.abc import Iterator
from typing import Any

from mnemo.fakellm.script import Fault, Reply

ARGUMENT_CHUNK = 8  # characters of tool-call arguments per stream chunk
DEFAULT_DIMENSIONS = 384
_WORDS = re.compile(r"\s*\S+")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage_for(reply: Reply, body: dict[str, Any]) -> dict[str, int]:
    if reply.usage is not None:
        prompt, completion = reply.usage
    else:
        prompt = len(json.dumps(body.get("messages") or [])) // 4
        produced = len(reply.content or "") + sum(len(c.name) + len(c.arguments) for c in reply.calls)
        completion = max(1, produced // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.calls
        ]
    return message


def completion_body(reply: Reply, body: dict[str, Any]) -> bytes:
    return _dumps(
        {
            "id": completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "fake",
            "system_fingerprint": "fp_mnemo_fake",
            "choices": [
                {
                    "index": 0,
                    "message": _message(reply),
                    "logprobs": None,
                    "finish_reason": reply.effective_finish_reason,
                }
            ],
            "usage": usage_for(reply, body),
        }
    )


def split_text(text: str) -> list[str]:
    """Word-sized pieces; short texts still come out in several pieces so clients see real deltas."""
    pieces = _WORDS.findall(text)
    if pieces and "".join(pieces) != text:  # trailing whitespace
        pieces[-1] += text[len("".join(pieces)) :]
    if len(pieces) >= 3 or len(text) < 2:
        return pieces or [text]
    size = max(1, math.ceil(len(text) / 3))
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_events(reply: Reply, body: dict[str, Any]) -> Iterator[bytes]:
    """Every SSE event of a streamed reply, `data: [DONE]` included."""
    options = body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    base: dict[str, Any] = {
        "id": completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or "fake",
        "system_fingerprint": "fp_mnemo_fake",
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        payload = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            payload["usage"] = None
        return b"data: " + _dumps(payload) + b"\n\n"

    yield chunk({"role": "assistant", "content": "" if reply.content is not None else None, "refusal": None})
    if reply.content:
        for piece in split_text(reply.content):
            yield chunk({"content": piece})
    for index, call in enumerate(reply.calls):
        head = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield chunk({"tool_calls": [head]})
        args = call.arguments
        for start in range(0, len(args), ARGUMENT_CHUNK):
            fragment = args[start : start + ARGUMENT_CHUNK]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, reply.effective_finish_reason)
    if include_usage:
        payload = {**base, "choices": [], "usage": usage_for(reply, body)}
        yield b"data: " + _dumps(payload) + b"\n\n"
    yield b"data: [DONE]\n\n"


def error_body(fault: Fault) -> bytes:
    return _dumps(
        {"error": {"message": fault.message, "type": fault.error_type, "param": None, "code": fault.code}}
    )


def error_headers(fault: Fault) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if fault.retry_after is not None:
        headers["retry-after"] = _seconds(fault.retry_after)
        headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
    if fault.http_status == 429:
        headers["x-ratelimit-remaining-requests"] = "0"
    return headers


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --- embeddings ---------------------------------------------------------------------------------


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from a hash of the text: same text, same vector, in any process."""
    raw = hashlib.shake_256(text.encode()).digest(dimensions * 4)
    ints = struct.unpack(f"<{dimensions}I", raw)
    values = [(i / 2147483647.5) - 1.0 for i in ints]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _inputs(raw: Any) -> list[str]:
    """OpenAI accepts a string, a list of strings, or token ids; token ids are hashed as their text."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        if raw and all(isinstance(t, int) for t in raw):
            return [json.dumps(raw)]
        return [item if isinstance(item, str) else json.dumps(item) for item in raw]
    return [json.dumps(raw)]


def embeddings_body(body: dict[str, Any]) -> bytes:
    dimensions = body.get("dimensions")
    dims = dimensions if isinstance(dimensions, int) and dimensions > 0 else DEFAULT_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    texts = _inputs(body.get("input"))
    data = []
    for index, text in enumerate(texts):
        vector = embedding_vector(text, dims)
        embedding: Any = vector
        if as_base64:
            packed = array("f", vector)
            if sys.byteorder != "little":
                packed.byteswap()
            embedding = base64.b64encode(packed.tobytes()).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(max(1, len(t) // 4) for t in texts)
    return _dumps(
        {
            "object": "list",
            "data": data,
            "model": body.get("model") or "fake-embedding",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
