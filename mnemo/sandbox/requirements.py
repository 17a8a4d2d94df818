"""A tool's `pip_requirements`, installed by the worker outside the sandbox and mounted read-only in it.

The tool's code never gets network: the worker runs `pip install --target` with its own interpreter
(`sys.executable -m pip`, honouring the usual pip environment: PIP_INDEX_URL, PIP_FIND_LINKS,
PIP_NO_INDEX, pip.conf…) into a directory cached per set of requirements:

    $MNEMO_HOME/tool-envs/<hash>/     hash = sha256 of the sorted requirements and the target Python

A directory is built under a temporary name next to it and renamed into place when complete, so a
reader never sees a half-built one and concurrent builders (tasks, workers sharing the disk) are safe:
the first rename wins, the others drop their copy. The sandboxes mount it read-only at `SITE_DIR` and
add it as a site directory.

Only wheels are installed (`--only-binary=:all:`): building a source distribution runs the package's
own code, and here that would run on the worker, outside any sandbox. For the same reason requirements
are package names with optional version specifiers (PEP 508), never URLs or paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Where the directory appears inside a sandbox.
SITE_DIR = "/opt/mnemo-packages"
PIP_TIMEOUT_S = 600.0
MANIFEST = "mnemo-tool-env.json"
STDERR_TAIL_LINES = 12
_BUILD_PREFIX = ".build-"
# Build directories left by a builder that died mid-install are removed after this long.
_STALE_BUILD_S = 24 * 3600
# pip settings that would send the install somewhere else than --target.
_PIP_ENV_CONFLICTS = ("PIP_TARGET", "PIP_USER", "PIP_PREFIX", "PIP_ROOT", "PIP_EDITABLE", "PIP_REQUIREMENT")


class RequirementsError(RuntimeError):
    """The requirements are invalid or could not be installed; the message is the tool's error."""


def normalize(requirements: Sequence[str]) -> list[str]:
    """Sorted, de-duplicated PEP 508 requirements; raise `RequirementsError` for anything else."""
    out: set[str] = set()
    for raw in requirements:
        text = raw.strip()
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise RequirementsError(
                f"Invalid pip requirement {raw!r}: {exc}. Use a package name with an optional version, "
                "e.g. 'requests' or 'requests==2.32.3'."
            ) from None
        if req.url:
            raise RequirementsError(
                f"pip requirement {raw!r} points at a URL or path: only package names with optional "
                "versions are installed (from the worker's package index)."
            )
        out.add(str(req))
    return sorted(out)


def current_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def env_key(requirements: Sequence[str], python_version: str | None = None) -> str:
    """The cache key: the same requirements in any order, for the same Python, share one directory."""
    ident = {
        "requirements": normalize(requirements),
        "python": python_version or current_python_version(),
        "platform": sysconfig.get_platform(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def with_site_env(env: dict[str, str], site_dir: str) -> dict[str, str]:
    """The tool's env with the packages on PYTHONPATH, for interpreters the tool itself starts."""
    existing = env.get("PYTHONPATH")
    return {**env, "PYTHONPATH": f"{site_dir}:{existing}" if existing else site_dir}


def blocked_for_others(path: Path) -> Path | None:
    """The first directory on the way to `path` that a user with no rights of its own (a sandbox's
    throwaway uid) may not traverse, or None if it can reach `path`."""
    current = Path("/")
    for part in path.resolve().parts[1:]:
        current = current / part
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return current
    return None


def unreachable_error(site: Path, blocked: Path) -> str:
    return (
        f"The tool's pip requirements are installed in {site}, but the sandbox's unprivileged user "
        f"cannot reach it: {blocked} is not searchable by other users (mode "
        f"{stat.S_IMODE(os.stat(blocked).st_mode):04o}). Allow traversal (chmod o+x {blocked}; the "
        "directory's contents stay read-only) or set MNEMO_HOME to a directory other users may traverse."
    )


async def interpreter_version(python: str) -> str:
    """`major.minor` of another interpreter (the one a sandbox runs tools with)."""
    proc = await asyncio.create_subprocess_exec(
        python,
        "-I",
        "-S",
        "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    version = out.decode().strip()
    if proc.returncode != 0 or not re.fullmatch(r"\d+\.\d+", version):
        raise RequirementsError(f"Cannot tell the Python version of {python} to install pip requirements for")
    return version


class RequirementsCache:
    """Builds and finds requirement directories under `root`. One per root per process (`cache_for`)."""

    def __init__(self, root: Path | str, *, python: str | None = None, timeout_s: float = PIP_TIMEOUT_S):
        self.root = Path(root).expanduser()
        self.python = python or sys.executable
        self.timeout_s = timeout_s
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, requirements: Sequence[str], *, python_version: str | None = None) -> Path:
        """The directory holding `requirements` installed for `python_version` (default: the worker's),
        built first if needed. Raises `RequirementsError` with pip's reason when it cannot be."""
        reqs = normalize(requirements)
        key = env_key(reqs, python_version)
        final = self.root / key
        if final.is_dir():
            return final
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if final.is_dir():
                return final
            await asyncio.to_thread(self._prepare_root)
            build = Path(tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{key}-", dir=self.root))
            try:
                await self._pip_install(build, reqs, python_version)
                manifest = {"requirements": reqs, "python": python_version or current_python_version()}
                await asyncio.to_thread(_publish, build, final, manifest)
            finally:
                await asyncio.to_thread(shutil.rmtree, build, True)
        return final

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for entry in self.root.iterdir():
            if entry.name.startswith(_BUILD_PREFIX):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > _STALE_BUILD_S:
                        shutil.rmtree(entry, ignore_errors=True)

    async def _pip_install(self, target: Path, reqs: list[str], python_version: str | None) -> None:
        argv = [
            self.python, "-m", "pip", "install",
            "--target", str(target),
            "--only-binary=:all:",
            "--no-input",
            "--disable-pip-version-check",
            "--no-warn-script-location",
        ]  # fmt: skip
        if python_version and python_version != current_python_version():
            # The sandbox's interpreter differs from the worker's: fetch wheels built for it.
            argv += ["--python-version", python_version, "--implementation", "cp"]
        argv += ["--", *reqs]
        env = {k: v for k, v in os.environ.items() if k not in _PIP_ENV_CONFLICTS}
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            raise RequirementsError(
                f"pip did not finish installing {', '.join(reqs)} within {self.timeout_s:g} seconds"
            ) from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise RequirementsError(_pip_failure(reqs, proc.returncode, err.decode("utf-8", "replace")))


def _pip_failure(reqs: list[str], code: int | None, stderr: str) -> str:
    """Which requirements pip names in its complaint, and its last lines, for the tool's error."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-STDERR_TAIL_LINES:])
    # Names compared as pip prints them: case and runs of "-_." do not matter.
    said = re.sub(r"[-_.]+", "-", stderr.lower())
    named = [r for r in reqs if canonicalize_name(Requirement(r).name) in said]
    which = ", ".join(named or reqs)
    hint = ""
    if "no matching distribution" in stderr.lower() or "could not find a version" in stderr.lower():
        hint = (
            " Only wheels are installed (source builds would run the package's code on the worker), "
            "from the worker's package index (PIP_INDEX_URL / PIP_FIND_LINKS)."
        )
    return (
        f"Could not install the tool's pip requirements: pip failed on {which} "
        f"(requested: {', '.join(reqs)}; exit status {code}).{hint}\n{tail}"
    )


def _publish(build: Path, final: Path, manifest: Mapping[str, object]) -> None:
    """Make a finished build readable and move it into place in one rename."""
    (build / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    _open_for_reading(build)
    try:
        os.rename(build, final)
    except OSError:
        if not final.is_dir():
            raise
        # Another builder finished first: its directory is as good as ours (the caller drops this one).


def _open_for_reading(root: Path) -> None:
    """Everyone may read the tree: the sandbox runs tools as an unprivileged uid, whatever the umask."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o555)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            extra = 0o444 | (0o111 if mode & stat.S_IXUSR else 0)
            os.chmod(path, mode | extra)
    os.chmod(root, os.stat(root).st_mode | 0o555)


_caches: dict[Path, RequirementsCache] = {}


def cache_for(root: Path | str) -> RequirementsCache:
    """The process's cache for `root`, so its tasks share one build per requirement set."""
    path = Path(root).expanduser()
    cache = _caches.get(path)
    if cache is None:
        cache = _caches[path] = RequirementsCache(path)
    return cache


def default_cache() -> RequirementsCache:
    """`$MNEMO_HOME/tool-envs`, read from the settings at call time."""
    from mnemo.config import get_settings

    return cache_for(get_settings().home / "tool-envs")
