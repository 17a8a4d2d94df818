"""One child process of the local sandbox, supervised: the script goes in on stdin, stdout and stderr
are read under one shared byte budget, a timeout applies, and afterwards every process the run left
behind is killed (its process group and, with a throwaway uid, every process of that uid).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Literal

from mnemo.sandbox.base import SandboxUnavailable

_DRAIN_GRACE_S = 2.0
_CHUNK = 65536

Reason = Literal["exit", "timeout", "output"]


@dataclass
class Child:
    """How to start the run's process: as `uid` (when not None), with `pass_fds` inherited."""

    argv: list[str]
    env: dict[str, str]
    uid: int | None
    cwd: str
    pass_fds: tuple[int, ...] = ()
    bwrap: bool = False


@dataclass(frozen=True)
class Finished:
    out: bytes
    err: bytes
    returncode: int | None
    # What ended the run: its own exit, the timeout, or output past the budget.
    reason: Reason
    duration_s: float


@dataclass
class _Budget:
    """Output bytes still allowed across stdout and stderr; `exceeded` fires once when they run out."""

    left: int
    exceeded: asyncio.Event = field(default_factory=asyncio.Event)


async def run_child(child: Child, script: bytes, *, timeout_s: float, max_output_bytes: int) -> Finished:
    ids: dict[str, object] = {}
    if child.uid is not None:
        ids = {"user": child.uid, "group": child.uid, "extra_groups": []}
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *child.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child.env,
            cwd=child.cwd,
            pass_fds=child.pass_fds,
            start_new_session=True,
            **ids,  # type: ignore[arg-type]
        )
    except OSError as exc:
        raise SandboxUnavailable(f"The local sandbox cannot start {child.argv[0]}: {exc}") from exc
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    budget = _Budget(left=max_output_bytes)
    out, err = bytearray(), bytearray()
    tasks = [
        asyncio.create_task(_feed(proc.stdin, script)),
        asyncio.create_task(_pump(proc.stdout, out, budget)),
        asyncio.create_task(_pump(proc.stderr, err, budget)),
    ]
    exited = asyncio.create_task(_wait_exit(proc))
    overflow = asyncio.create_task(budget.exceeded.wait())
    reason: Reason = "exit"
    try:
        done, _ = await asyncio.wait(
            {exited, overflow}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            reason = "timeout"
        elif overflow in done:
            reason = "output"
    finally:
        # Also after a normal exit: a tool's daemonized children must not outlive its child. Inside
        # bubblewrap the pid namespace dies with it; a plain run's throwaway uid is swept.
        kill_all(proc.pid, None if child.bwrap else child.uid)
        overflow.cancel()
        exited.cancel()
        await _drain(tasks)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), _DRAIN_GRACE_S)
    return Finished(bytes(out), bytes(err), proc.returncode, reason, time.monotonic() - started)


async def _wait_exit(proc: asyncio.subprocess.Process) -> None:
    """Return when the process itself exits. `proc.wait()` also waits for its pipes to close, which a
    child the tool left behind (holding stdout) could delay until the timeout."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return  # already exited and reaped
    except OSError:  # no pidfd (Linux < 5.3): a lingering child may then hold the run until its timeout
        await proc.wait()
        return
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _feed(stdin: asyncio.StreamWriter, script: bytes) -> None:
    # The interpreter reads the whole program before running it, so the tool then sees an empty stdin.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(script)
        await stdin.drain()
        stdin.close()


async def _pump(stream: asyncio.StreamReader, buf: bytearray, budget: _Budget) -> None:
    # Past the budget, keep reading and dropping: a reader that stops pauses the pipe transport, which
    # then never sees EOF, and `proc.wait()` (which waits for the pipes) would hang.
    while chunk := await stream.read(_CHUNK):
        keep = min(len(chunk), budget.left)
        if keep:
            buf += chunk[:keep]
            budget.left -= keep
        if keep < len(chunk):
            budget.exceeded.set()


async def _drain(tasks: list[asyncio.Task[None]]) -> None:
    # The pipes close once every process holding them is dead; a grace period covers the rest.
    _, pending = await asyncio.wait(tasks, timeout=_DRAIN_GRACE_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def kill_all(pid: int, uid: int | None) -> None:
    """SIGKILL the run's process group, then (with a throwaway uid) every process of that uid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if uid is None:
        return
    # A tool may leave its process group (setsid); the uid is the run's alone, so sweep it until empty.
    for _ in range(100):
        victims = _pids_of_uid(uid)
        if not victims:
            return
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)


def _pids_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes whose real uid is `uid`."""
    # The real uid from status, not the /proc entry's owner: a non-dumpable process shows as root's.
    pids = []
    wanted = f"Uid:\t{uid}\t".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry.name}/status", "rb") as f:
            for line in f:
                if line.startswith(b"State:") and line.split()[1] in (b"Z", b"X"):
                    break  # dead already; its parent (or init) reaps it
                if line.startswith(wanted):
                    pids.append(int(entry.name))
                    break
    return pids
