"""The standalone Python program every sandbox backend runs, and the parser of what it prints.

The program carries everything it needs as one JSON literal (tool source, function name, arguments,
optionally the environment and resource limits), so a backend only has to feed it to an interpreter
(stdin, a file, `run_code`). It writes the result as JSON inside a frame on stdout:

    \\x00MNEMO-RESULT:<marker>:<12-digit length>:<sha256 hex>:<payload>

The marker is random per run and the length and checksum are checked, so the tool's own prints (even
ones that look like a frame) cannot be taken for the result. The tool runs in the same interpreter and
could read the marker; forging a frame only lets it lie about its own result, which it controls anyway.

No pickle anywhere: results cross the boundary as JSON (`default=str`), as Letta does since its
"use JSON instead of pickle" fix.

The tool's source runs as module `mnemo_tool` (so an `if __name__ == "__main__":` block in it does
not run), with `json` and `sys` bound and, as in Letta's script, `from typing import *` and
`base64`/`struct`/`hashlib` when the source mentions them without importing them.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mnemo.sandbox.base import SandboxLimits, SandboxRequest

FRAME_PREFIX = b"\x00MNEMO-RESULT:"
CORRUPTED_OUTPUT = "Function ran, but output is corrupted."  # Letta's text for a bad checksum
NOFILE_LIMIT = 256

# Python 3.8-compatible on purpose: the system interpreter of a worker or an image may be older
# than the server's. Names start with an underscore so they stay out of the tool's way; the tool
# itself runs in its own module namespace.
_RUNNER = r"""
import json as _json
import os as _os
import sys as _sys


def _mnemo_default(obj):
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            pass
    return str(obj)


def _mnemo_encode(payload):
    try:
        return _json.dumps(payload, default=_mnemo_default, allow_nan=False)
    except Exception:
        pass
    try:
        payload["value"] = str(payload.get("value"))
    except Exception:
        payload["value"] = "<unprintable result>"
    return _json.dumps(payload)


def _mnemo_apply_limits(limits):
    import resource

    for name, pair in limits.items():
        kind = getattr(resource, name)
        soft, hard = pair
        cur_soft, cur_hard = resource.getrlimit(kind)
        # Only ever lower: raising a hard limit is refused and would be a bug here anyway.
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
        soft = min(soft, hard)
        resource.setrlimit(kind, (soft, hard))


def _mnemo_write_frame(fd, marker, payload):
    import hashlib

    data = _mnemo_encode(payload).encode("ascii")
    head = "\x00MNEMO-RESULT:%s:%012d:%s:" % (marker, len(data), hashlib.sha256(data).hexdigest())
    frame = head.encode("ascii") + data
    for stream in (_sys.stdout, _sys.stderr, _sys.__stdout__, _sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    view = memoryview(frame)
    while view:
        written = _os.write(fd, view)
        view = view[written:]


def _mnemo_main(cfg):
    # A private copy of stdout: the tool may close or replace fd 1 and sys.stdout.
    out_fd = _os.dup(1)
    payload = None
    try:
        if cfg.get("rlimits"):
            _mnemo_apply_limits(cfg["rlimits"])
    except Exception as exc:
        # Fail closed: a sandbox that cannot bound the tool does not run it.
        payload = {"ok": False, "error": "Sandbox could not apply resource limits: %s: %s" % (type(exc).__name__, exc)}
    if payload is None:
        if cfg.get("env") is not None:
            _os.environ.update(cfg["env"])
        payload = _mnemo_call(cfg)
    _mnemo_write_frame(out_fd, cfg["marker"], payload)
    # Exit now: lingering non-daemon threads must not hold the result hostage.
    _os._exit(0)


def _mnemo_call(cfg):
    # Imports stay lazy: asyncio alone costs ~80 ms of start-up (it pulls in ssl), paid only by async tools.
    import types

    name = cfg["function"]
    filename = "<tool %s>" % name
    source = cfg["source"]
    module = types.ModuleType("mnemo_tool")
    module.__file__ = filename
    _sys.modules["mnemo_tool"] = module
    try:
        if cfg.get("site_dirs"):
            # The tool's pip_requirements, installed by the worker: added after the standard library
            # (as a venv's site-packages are), with their .pth files, without running `site` itself.
            import site

            for path in cfg["site_dirs"]:
                site.addsitedir(path)
        # Letta's generated script imports these before the tool source, and tools rely on it; the
        # server lists only those the source mentions (`typing` alone costs ~10-20 ms of start-up).
        module.__dict__.update(json=_json, sys=_sys)
        if cfg["preamble"]:
            exec(cfg["preamble"], module.__dict__)
        exec(compile(source, filename, "exec"), module.__dict__)
        fn = module.__dict__.get(name)
        if not callable(fn):
            raise NameError("the tool source defines no function named %r" % name)
        result = fn(**cfg["args"])
        if hasattr(result, "__await__"):
            import asyncio

            async def _await(aw):
                return await aw

            result = asyncio.run(_await(result))
        return {"ok": True, "value": result}
    except BaseException as exc:
        try:
            import linecache
            import traceback

            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            traceback.print_exc()
        except Exception:
            pass
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable message>"
        return {"ok": False, "error": "%s: %s" % (type(exc).__name__, message)}


_mnemo_main(_json.loads(_MNEMO_CONFIG))
"""


_TYPING_NAME = re.compile(r"\b(?:" + "|".join(sorted(typing.__all__, key=len, reverse=True)) + r")\b")
_COMPAT_MODULES = re.compile(r"\b(base64|struct|hashlib)\s*\.")


def _compat_preamble(source: str) -> str:
    """The imports Letta's script made before the tool source, limited to what the source uses."""
    lines = ["from typing import *"] if _TYPING_NAME.search(source) else []
    modules = sorted(set(_COMPAT_MODULES.findall(source)))
    if modules:
        lines.append(f"import {', '.join(modules)}")
    return "\n".join(lines)


def new_marker() -> str:
    """A fresh frame marker for one run (32 hex characters)."""
    return secrets.token_hex(16)


def resource_limits(
    limits: SandboxLimits, *, extra_processes: int = 0, limit_processes: bool = True
) -> dict[str, tuple[int, int]]:
    """The rlimits (soft, hard) the script applies to itself before the tool's code runs.

    `extra_processes` are tasks of the same uid the backend itself keeps alive (bubblewrap's monitor
    and pid-1 reaper), since RLIMIT_NPROC counts every task of the uid. Leave `limit_processes` off
    when the uid is shared with other work (the server's own uid): the count would include the
    server's threads, and for root the kernel ignores the limit anyway.
    """
    mib = 1024 * 1024
    out: dict[str, tuple[int, int]] = {
        # SIGXCPU at the soft limit; SIGKILL one second later for a tool that ignores it.
        "RLIMIT_CPU": (limits.cpu_s, limits.cpu_s + 1),
        "RLIMIT_AS": (limits.memory_mb * mib, limits.memory_mb * mib),
        # Files live in memory (tmpfs) or on the host disk: no single file larger than the memory budget.
        "RLIMIT_FSIZE": (limits.memory_mb * mib, limits.memory_mb * mib),
        "RLIMIT_NOFILE": (NOFILE_LIMIT, NOFILE_LIMIT),
        # A core dump on SIGXCPU would be written where the tool can reach it and cost time.
        "RLIMIT_CORE": (0, 0),
    }
    if limit_processes:
        n = limits.max_processes + extra_processes
        out["RLIMIT_NPROC"] = (n, n)
    return out


def build_script(
    request: SandboxRequest,
    marker: str,
    *,
    env: Mapping[str, str] | None = None,
    rlimits: Mapping[str, tuple[int, int]] | None = None,
    site_dirs: Sequence[str] = (),
) -> str:
    """A standalone Python program (pure ASCII) that runs the tool once and prints the framed result.

    `env` is merged into `os.environ` before the tool's code runs: backends that cannot set a
    process environment without exposing it (argv is world-readable) pass `request.env` here.
    `rlimits` (see `resource_limits`) are applied first; if one cannot be applied the tool does not
    run and the result says why. Both default to nothing, for backends that do this themselves.
    `site_dirs` are directories (as the sandbox sees them) of packages the tool may import.
    """
    if not marker or not marker.isalnum():
        raise ValueError("marker must be a non-empty alphanumeric string (see new_marker())")
    config = {
        "marker": marker,
        "function": request.function_name,
        "args": request.args,
        "source": request.source_code,
        "env": dict(env) if env is not None else None,
        "rlimits": {k: list(v) for k, v in (rlimits or {}).items()},
        "preamble": _compat_preamble(request.source_code),
        "site_dirs": list(site_dirs),
    }
    literal = repr(json.dumps(config, ensure_ascii=True))
    return f"_MNEMO_CONFIG = {literal}\n{_RUNNER}"


@dataclass(frozen=True)
class ParsedOutput:
    """What a run printed, split into the framed result and the tool's own stdout."""

    found: bool  # a valid frame was present
    ok: bool
    value: Any
    error: str | None
    stdout: str  # the tool's own prints, frame removed


def _frame_at(stdout: bytes, pos: int, prefix: bytes) -> tuple[int, Any] | None:
    """(end offset, decoded payload) of a valid frame starting at `pos`, else None."""
    start = pos + len(prefix)
    header = stdout[start : start + 12 + 1 + 64 + 1]
    if len(header) < 78 or header[12:13] != b":" or header[77:78] != b":" or not header[:12].isdigit():
        return None
    length = int(header[:12])
    digest = header[13:77].decode("ascii", "replace")
    body_start = start + 78
    data = stdout[body_start : body_start + length]
    if len(data) != length or hashlib.sha256(data).hexdigest() != digest:
        return None
    try:
        return body_start + length, json.loads(data)
    except ValueError:
        return None


def parse_output(stdout: bytes, marker: str) -> ParsedOutput:
    """Find the run's result frame in stdout (the last valid one) and return it with the rest."""
    prefix = FRAME_PREFIX + marker.encode("ascii") + b":"
    pos = stdout.rfind(prefix)
    seen_prefix = pos != -1
    while pos != -1:
        frame = _frame_at(stdout, pos, prefix)
        if frame is not None:
            end, payload = frame
            rest = (stdout[:pos] + stdout[end:]).decode("utf-8", "replace")
            ok = bool(payload.get("ok"))
            return ParsedOutput(
                found=True,
                ok=ok,
                value=payload.get("value") if ok else None,
                error=None if ok else str(payload.get("error")),
                stdout=rest,
            )
        pos = stdout.rfind(prefix, 0, pos)
    return ParsedOutput(
        found=False,
        ok=False,
        value=None,
        error=CORRUPTED_OUTPUT if seen_prefix else None,
        stdout=stdout.decode("utf-8", "replace"),
    )


def timeout_error(function_name: str, timeout_s: float) -> str:
    """Letta's wording, which models and clients have seen: "Executing tool x timed out after 180 seconds."."""
    return f"Executing tool {function_name} timed out after {timeout_s:g} seconds."


def output_limit_error(function_name: str, max_output_bytes: int) -> str:
    return f"Tool {function_name} wrote more than {max_output_bytes} bytes of output and was stopped."


def cpu_limit_error(function_name: str, cpu_s: int) -> str:
    return f"Tool {function_name} used more than its CPU time limit of {cpu_s} seconds and was stopped."
