"""Run custom tools on this machine: inside bubblewrap when it is installed, else a bounded subprocess.

With bubblewrap the tool gets: no network (`--unshare-all`: its own empty network namespace), its own
pid namespace (it sees no host process, and everything it started dies with it), a read-only /usr, a
minimal synthesized /etc (no shadow, no resolver), a private size-capped tmpfs /tmp, no capabilities
and no further user namespaces. The interpreter is the system `python3` run as `-I -S`: the server's
venv is not mounted, and without `site` neither system site-packages nor their `.pth` start-up hooks
load, so a tool sees exactly the standard library (and starts ~8 ms faster).

When the server runs as root, every run gets a fresh unprivileged host uid (mapped to 65534 inside),
because RLIMIT_NPROC is counted per host uid and ignored for root: a per-run uid makes the fork limit
apply, and apply to that run alone. Rlimits (CPU, address space, processes, file size, open files)
are applied by the generated script itself before the tool's code runs, so no `preexec_fn` is
needed; the request's env travels inside that script (stdin), never in argv, which any local user
can read.

A tool's `pip_requirements` are installed by the worker, outside the sandbox, into a cached directory
(`mnemo.sandbox.requirements`) that bubblewrap mounts read-only at `SITE_DIR`; the tool still gets no
network.

Without bubblewrap the same script runs as a plain subprocess with the same rlimits, a clean env and
(as root) the same throwaway uid, but network and world-readable files are reachable: a loud warning
says so once per sandbox instance (a worker builds one).

Either way the child is started and watched by `mnemo.sandbox.process` (output budget, timeout, and
killing whatever the run left behind); this module decides how it is confined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Literal

from mnemo.sandbox.base import Backend, SandboxRequest, SandboxResult, SandboxUnavailable
from mnemo.sandbox.process import Child, Finished, run_child
from mnemo.sandbox.requirements import (
    SITE_DIR,
    RequirementsCache,
    RequirementsError,
    blocked_for_others,
    default_cache,
    interpreter_version,
    unreachable_error,
    with_site_env,
)
from mnemo.sandbox.script import (
    build_script,
    cpu_limit_error,
    new_marker,
    output_limit_error,
    parse_output,
    resource_limits,
    timeout_error,
)

log = logging.getLogger(__name__)

Isolation = Literal["auto", "bwrap", "none"]

_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
_SANDBOX_UID = 65534
# Throwaway host uids: far above any distribution's or subuid range's use, below the 2^31 limit some tools assume.
_UID_BASE = 1_900_000_000
_UID_SPAN = 100_000_000
# bubblewrap's monitor and pid-1 reaper run under the run's uid and count against RLIMIT_NPROC.
_BWRAP_TASKS = 2

_ETC_FILES = {
    "/etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:{_SANDBOX_UID}:{_SANDBOX_UID}:nobody:/tmp:/usr/sbin/nologin\n",
    "/etc/group": f"root:x:0:\nnogroup:x:{_SANDBOX_UID}:\n",
    "/etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}
_ETC_BINDS = ("/etc/ld.so.cache", "/etc/localtime")


def _warn_unisolated(reason: str) -> None:
    log.warning(
        "TOOLS ARE NOT ISOLATED: %s. Custom tools run as plain subprocesses with resource limits only; "
        "they can reach the network and every world-readable file. Install bubblewrap "
        "(`apt-get install bubblewrap`) or use the docker backend.",
        reason,
    )


def default_python() -> str:
    """The system interpreter (not the server's venv, whose packages tools must not import)."""
    candidates = [
        "/usr/bin/python3",
        "/usr/local/bin/python3",
        os.path.join(sys.base_prefix, "bin", "python3"),
    ]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise SandboxUnavailable(
        "No system python3 found for the local sandbox; install python3 or pass python=."
    )


class LocalSandbox:
    """`SandboxRunner` for this machine. `isolation`: "auto" (bubblewrap if it works, else a warned
    plain subprocess), "bwrap" (bubblewrap or `SandboxUnavailable`) or "none" (plain, warned)."""

    backend: Backend = "local"

    def __init__(
        self,
        *,
        isolation: Isolation = "auto",
        python: str | None = None,
        bwrap: str | None = None,
        requirements: RequirementsCache | None = None,
    ):
        self._isolation = isolation
        # None: $MNEMO_HOME/tool-envs, read when a tool first needs it.
        self._requirements = requirements
        self._python_version: str | None = None
        self._python = python
        self._bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self._mode: Literal["bwrap", "none"] | None = None
        self._lock = asyncio.Lock()
        self._root = os.geteuid() == 0
        self._uids_in_use: set[int] = set()

    @property
    def isolated(self) -> bool | None:
        """True once bubblewrap was found to work, False for plain subprocesses, None before the first run."""
        return None if self._mode is None else self._mode == "bwrap"

    async def run(self, request: SandboxRequest) -> SandboxResult:
        await self._resolve()
        site: Path | None = None
        if request.pip_requirements:
            try:
                site = await self._site_packages(request.pip_requirements)
            except RequirementsError as exc:
                return SandboxResult(ok=False, backend="local", error=str(exc))
            # bubblewrap binds the directory (and a plain run reads it) as the run's throwaway uid.
            blocked = blocked_for_others(site) if self._root else None
            if blocked is not None:
                return SandboxResult(ok=False, backend="local", error=unreachable_error(site, blocked))
        return await self._run_once(request, site=site)

    async def _site_packages(self, requirements: list[str]) -> Path:
        """The worker-built directory of the tool's requirements, for this sandbox's interpreter."""
        if self._python_version is None:
            self._python_version = await interpreter_version(self._python or default_python())
        cache = self._requirements or default_cache()
        return await cache.ensure(requirements, python_version=self._python_version)

    async def _resolve(self) -> None:
        if self._mode is not None:
            return
        async with self._lock:
            if self._mode is not None:
                return
            self._python = self._python or default_python()
            if self._isolation == "none":
                # Once per sandbox instance (a worker builds one): this is the moment the choice is made.
                _warn_unisolated("the local sandbox was configured with isolation='none'")
                self._mode = "none"
                return
            problem = await self._probe_bwrap()
            if problem is None:
                self._mode = "bwrap"
                if not self._root:
                    log.warning(
                        "The local sandbox runs as non-root uid %d: RLIMIT_NPROC is not applied (it would "
                        "count this server's own threads); fork bombs are stopped only by the timeout.",
                        os.geteuid(),
                    )
                return
            if self._isolation == "bwrap":
                raise SandboxUnavailable(problem)
            _warn_unisolated(problem)
            self._mode = "none"

    async def _probe_bwrap(self) -> str | None:
        """None if bubblewrap can run a tool here, else why not (and what to do)."""
        if not self._bwrap or not os.access(self._bwrap, os.X_OK):
            return f"bubblewrap (`bwrap`) is not installed{f' at {self._bwrap}' if self._bwrap else ''}"
        probe = SandboxRequest(source_code="def ping():\n    return 'pong'\n", function_name="ping")
        result = await self._run_once(probe, force_bwrap=True)
        if result.ok and result.value == "pong":
            return None
        return (
            f"bubblewrap cannot create a sandbox here ({(result.error or '').strip()} {result.stderr.strip()}); "
            "it needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0)"
        )

    async def _run_once(
        self, request: SandboxRequest, *, force_bwrap: bool = False, site: Path | None = None
    ) -> SandboxResult:
        marker = new_marker()
        use_bwrap = force_bwrap or self._mode == "bwrap"
        uid = self._take_uid() if self._root else None
        extra = _BWRAP_TASKS if use_bwrap else 0
        rlimits = resource_limits(request.limits, extra_processes=extra, limit_processes=uid is not None)
        env, site_dirs = request.env, []
        if site is not None:
            # Inside bubblewrap the directory is mounted at SITE_DIR; a plain run reads it in place.
            site_dirs = [SITE_DIR if use_bwrap else str(site)]
            env = with_site_env(env, site_dirs[0])
        script = build_script(request, marker, env=env, rlimits=rlimits, site_dirs=site_dirs).encode("ascii")
        workdir = None if use_bwrap else self._make_workdir(uid)
        fds: list[int] = []
        try:
            if use_bwrap:
                run = self._bwrap_run(uid, fds, request.limits.memory_mb * 1024 * 1024, site)
            else:
                assert workdir is not None
                env = {**_BASE_ENV, "HOME": workdir, "TMPDIR": workdir}
                run = Child([self._python or default_python(), "-I", "-S", "-"], env, uid, workdir)
            return await self._execute(run, script, request, marker)
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            if uid is not None:
                self._uids_in_use.discard(uid)

    def _take_uid(self) -> int:
        while True:
            uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
            if uid not in self._uids_in_use:
                self._uids_in_use.add(uid)
                return uid

    @staticmethod
    def _make_workdir(uid: int | None) -> str:
        path = tempfile.mkdtemp(prefix="mnemo-tool-")
        if uid is not None:
            os.chown(path, uid, uid)
        return path

    def _bwrap_run(self, uid: int | None, fds: list[int], tmp_bytes: int, site: Path | None = None) -> Child:
        assert self._bwrap is not None
        python = os.path.realpath(self._python or default_python())
        argv = [
            self._bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--cap-drop", "ALL",
            "--die-with-parent",
            "--new-session",
            "--ro-bind", "/usr", "/usr",
        ]  # fmt: skip
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        if not python.startswith(("/usr/", "/bin/", "/lib")):
            prefix = os.path.dirname(os.path.dirname(python))
            argv += ["--ro-bind", prefix, prefix]
        for path in _ETC_BINDS:
            argv += ["--ro-bind-try", path, path]
        for path, content in _ETC_FILES.items():
            fd = _data_fd(content.encode())
            fds.append(fd)
            argv += ["--ro-bind-data", str(fd), path]
        if site is not None:
            argv += ["--ro-bind", str(site), SITE_DIR]
        argv += [
            "--proc", "/proc",
            "--dev", "/dev",
            # /tmp lives in memory: cap it at the tool's memory budget.
            "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
            "--remount-ro", "/",
            "--uid", str(_SANDBOX_UID), "--gid", str(_SANDBOX_UID),
            "--chdir", "/tmp",
            "--clearenv",
        ]  # fmt: skip
        for key, value in _BASE_ENV.items():
            argv += ["--setenv", key, value]
        argv += [python, "-I", "-S", "-"]
        return Child(argv=argv, env=dict(_BASE_ENV), uid=uid, cwd="/", pass_fds=tuple(fds), bwrap=True)

    async def _execute(
        self, run: Child, script: bytes, request: SandboxRequest, marker: str
    ) -> SandboxResult:
        limits = request.limits
        done = await run_child(
            run, script, timeout_s=limits.timeout_s, max_output_bytes=limits.max_output_bytes
        )
        return _result(request, marker, done, run.bwrap)


def _result(request: SandboxRequest, marker: str, done: Finished, bwrap: bool) -> SandboxResult:
    parsed = parse_output(done.out, marker)
    stderr = done.err.decode("utf-8", "replace")
    name, limits = request.function_name, request.limits
    reason, returncode = done.reason, done.returncode
    common = {"backend": "local", "stdout": parsed.stdout, "stderr": stderr, "duration_s": done.duration_s}
    if parsed.found and reason != "output":
        return SandboxResult(ok=parsed.ok, value=parsed.value, error=parsed.error, **common)  # type: ignore[arg-type]
    if reason == "timeout":
        error = timeout_error(name, limits.timeout_s)
    elif reason == "output":
        error = output_limit_error(name, limits.max_output_bytes)
    # bubblewrap reports a signalled child as 128 + signal.
    elif returncode == -signal.SIGXCPU or (bwrap and returncode == 128 + signal.SIGXCPU):
        error = cpu_limit_error(name, limits.cpu_s)
    elif parsed.error:
        error = parsed.error
    else:
        last = stderr.strip().splitlines()[-1:] or [""]
        error = f"Tool {name} exited with status {returncode} without returning a result. {last[0]}".strip()
    return SandboxResult(ok=False, error=error, **common)  # type: ignore[arg-type]


def _data_fd(content: bytes) -> int:
    """A pipe read end holding `content` (small: it must fit the pipe buffer), for --ro-bind-data."""
    r, w = os.pipe()
    try:
        os.write(w, content)
    finally:
        os.close(w)
    return r
