"""Run custom tools in a fresh container per call, through the Docker Engine API.

Works with Docker itself or with podman's Docker-compatible service (`scripts/podman-service.sh`).
Each call gets a new container from a minimal image (`scripts/sandbox-image.sh`: Debian's Python 3.11
and its standard library, nothing else): no network, read-only root, a small private tmpfs /tmp,
cgroup memory/pids/CPU limits, uid 65534 with no capabilities, an init as pid 1, and exactly the
request's environment. The container is removed whatever happens. Creating namespaces (a nested
user namespace) is refused by seccomp: Docker's default profile does it for containers without
CAP_SYS_ADMIN; podman's does not, so `scripts/podman-service.sh` installs a profile that does.

A tool's `pip_requirements` are installed by the worker, outside the container, into a cached
directory (`mnemo.sandbox.requirements`) that is bind-mounted read-only at `SITE_DIR`: the container
still has no network. The bind needs the engine to see the worker's disk (a local Docker or podman).

No warm pool, on purpose: reusing a container (`exec_run`) would let one call see another's /tmp
and leftover processes, for little gain — measured here with podman+runc, a fresh container per
trivial call is ~0.16 s p50 when the output is read through `attach` (podman's `wait` endpoint
polls and adds up to a second), against ~0.11 s for `exec_run` in a running container.
"""

from __future__ import annotations

import asyncio
import io
import signal
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnemo.sandbox.base import Backend, SandboxRequest, SandboxResult, SandboxUnavailable
from mnemo.sandbox.requirements import (
    SITE_DIR,
    RequirementsCache,
    RequirementsError,
    default_cache,
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

DEFAULT_IMAGE = "mnemo-sandbox:py311"
LABEL = "mnemo.sandbox"
SCRIPT_DIR = "/sandbox"
PYTHON = "/usr/bin/python3.11"
PYTHON_VERSION = "3.11"  # of PYTHON: pip_requirements are installed for it
# The image's interpreter is told to forget the container's own variables (PATH, HOSTNAME, HOME,
# container=podman…) so the tool sees exactly the request's env, which the script then sets.
BOOTSTRAP = (
    f"import os, runpy; os.environ.clear(); runpy.run_path('{SCRIPT_DIR}/tool.py', run_name='__main__')"
)
SANDBOX_UID = "65534:65534"
EXIT_SIGNAL_BASE = 128
# After the output stream ends, how long to wait for the engine to record the exit status.
EXIT_STATUS_WAIT_S = 10.0


@dataclass
class _Run:
    """One call's container and what stopped it, shared with the killer threads."""

    client: Any
    container_id: str | None = None
    stopped_for: str | None = None  # "timeout" | "output" | "cancelled"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kill(self, reason: str) -> None:
        with self.lock:
            if self.stopped_for is None:
                self.stopped_for = reason
            container_id = self.container_id
        if container_id is None:
            return
        try:
            self.client.api.kill(container_id)
        except Exception:
            # Already exited or being removed: either way it is no longer running the tool.
            pass


class DockerSandbox:
    """A `SandboxRunner` that runs each tool call in its own short-lived container."""

    backend: Backend = "docker"

    def __init__(
        self,
        base_url: str | None = None,
        image: str = DEFAULT_IMAGE,
        *,
        cpus: float = 1.0,
        tmpfs_mb: int = 64,
        requirements: RequirementsCache | None = None,
    ) -> None:
        self.base_url = base_url
        # None: $MNEMO_HOME/tool-envs, read when a tool first needs it.
        self.requirements = requirements
        self.image = image
        self.cpus = cpus
        self.tmpfs_mb = tmpfs_mb
        self._client: Any = None
        self._client_lock = threading.Lock()

    async def run(self, request: SandboxRequest) -> SandboxResult:
        started = time.perf_counter()
        client = await asyncio.to_thread(self._get_client)
        site: Path | None = None
        if request.pip_requirements:
            cache = self.requirements or default_cache()
            try:
                site = await cache.ensure(request.pip_requirements, python_version=PYTHON_VERSION)
            except RequirementsError as exc:
                return SandboxResult(ok=False, error=str(exc), backend=self.backend)
        run = _Run(client=client)
        work = asyncio.ensure_future(asyncio.to_thread(self._run_sync, run, request, site))
        try:
            result = await asyncio.shield(work)
        except asyncio.CancelledError:
            # A thread cannot be cancelled: kill the container, which ends the thread, and let it
            # remove the container before the cancellation goes on.
            await asyncio.to_thread(run.kill, "cancelled")
            await asyncio.wait({work})
            raise
        result.duration_s = time.perf_counter() - started
        return result

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _get_client(self) -> Any:
        import docker
        from docker.errors import DockerException

        with self._client_lock:
            if self._client is not None:
                return self._client
            try:
                # Both constructors ask the daemon for its API version, so a missing daemon fails here.
                client = docker.DockerClient(base_url=self.base_url) if self.base_url else docker.from_env()
            except DockerException as exc:
                where = self.base_url or "DOCKER_HOST / the default socket"
                raise SandboxUnavailable(
                    f"Docker is not available at {where}: {exc}; set DOCKER_HOST (or the docker "
                    "sandbox's base_url) to a running Docker or podman API, or start one with "
                    "`scripts/podman-service.sh DIR`"
                ) from exc
            self._client = client
            return client

    def _run_sync(self, run: _Run, request: SandboxRequest, site: Path | None = None) -> SandboxResult:
        from docker.errors import APIError, ImageNotFound, NotFound
        from requests.exceptions import ConnectionError as RequestsConnectionError

        limits = request.limits
        marker = new_marker()
        # The uid is shared with every other container, so RLIMIT_NPROC would count their processes
        # too: the cgroup's pids limit bounds this container instead.
        rlimits = resource_limits(limits, limit_processes=False)
        env, site_dirs, volumes = request.env, [], {}
        if site is not None:
            site_dirs = [SITE_DIR]
            env = with_site_env(env, SITE_DIR)
            volumes = {str(site): {"bind": SITE_DIR, "mode": "ro"}}
        script = build_script(request, marker, env=env, rlimits=rlimits, site_dirs=site_dirs)
        mem = f"{limits.memory_mb}m"
        try:
            container = run.client.containers.create(
                self.image,
                command=[PYTHON, "-I", "-c", BOOTSTRAP],
                init=True,
                network_mode="none",
                read_only=True,
                # podman mounts writable tmpfs on /run and /var/tmp of read-only containers: the
                # tool gets one small writable /tmp, and those two read-only.
                tmpfs={
                    "/tmp": f"rw,nosuid,nodev,size={self.tmpfs_mb}m,mode=1777",
                    "/var/tmp": "ro,nosuid,nodev,size=4k",
                    "/run": "ro,nosuid,nodev,size=4k",
                },
                shm_size=f"{self.tmpfs_mb}m",
                working_dir="/tmp",
                user=SANDBOX_UID,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=mem,
                memswap_limit=mem,
                pids_limit=limits.max_processes,
                nano_cpus=int(self.cpus * 1e9),
                environment={},
                volumes=volumes,
                labels={LABEL: "docker"},
                detach=True,
            )
        except ImageNotFound as exc:
            raise SandboxUnavailable(
                f"The docker sandbox image {self.image!r} is missing: build it with "
                f"`scripts/sandbox-image.sh {self.image}` ({exc})"
            ) from exc
        except RequestsConnectionError as exc:
            # The daemon went away since the client was made: start afresh next time.
            self.close()
            raise SandboxUnavailable(
                f"Docker is not available at {self.base_url or 'DOCKER_HOST'}: {exc}; set DOCKER_HOST "
                "or start the Docker / podman API again"
            ) from exc
        with run.lock:
            run.container_id = container.id
        killer: threading.Timer | None = None
        try:
            container.put_archive(SCRIPT_DIR, _tar({"tool.py": script.encode("ascii")}))
            # Attach before start so no output is missed; the stream ends when the container exits.
            stream = container.attach(stdout=True, stderr=True, stream=True, demux=True)
            killer = threading.Timer(limits.timeout_s, run.kill, args=("timeout",))
            killer.daemon = True
            container.start()
            killer.start()
            stdout, stderr = _drain(stream, run, limits.max_output_bytes)
            killer.cancel()
            parsed = parse_output(stdout, marker)
            tool_stdout = parsed.stdout[: limits.max_output_bytes]
            tool_stderr = stderr.decode("utf-8", "replace")[: limits.max_output_bytes]
            if run.stopped_for is None and parsed.found:
                return SandboxResult(
                    ok=parsed.ok,
                    value=parsed.value,
                    error=parsed.error,
                    stdout=tool_stdout,
                    stderr=tool_stderr,
                    backend=self.backend,
                )
            error = self._failure(run, request, container, parsed.error)
            return SandboxResult(
                ok=False, error=error, stdout=tool_stdout, stderr=tool_stderr, backend=self.backend
            )
        except APIError as exc:
            return SandboxResult(
                ok=False,
                error=f"The docker sandbox failed to run tool {request.function_name}: {exc}",
                backend=self.backend,
            )
        finally:
            if killer is not None:
                killer.cancel()
            try:
                container.remove(force=True)
            except NotFound:
                pass

    def _failure(self, run: _Run, request: SandboxRequest, container: Any, parse_error: str | None) -> str:
        """Why a run produced no result: our own stop first, then what the exit status says."""
        name, limits = request.function_name, request.limits
        if run.stopped_for == "timeout":
            return timeout_error(name, limits.timeout_s)
        if run.stopped_for == "output":
            return output_limit_error(name, limits.max_output_bytes)
        if run.stopped_for == "cancelled":
            return f"Tool {name} was cancelled."
        if parse_error:
            return parse_error
        code, oom_killed = _exit_status(container)
        if code == EXIT_SIGNAL_BASE + signal.SIGXCPU:
            return cpu_limit_error(name, limits.cpu_s)
        if oom_killed or code == EXIT_SIGNAL_BASE + signal.SIGKILL:
            # Nothing of ours sent the SIGKILL: the kernel's OOM killer in the container's cgroup
            # did (podman on cgroup v1 does not always set OOMKilled), or the CPU hard limit.
            return (
                f"Tool {name} was killed: it exceeded its memory limit of {limits.memory_mb} MB "
                f"(or its CPU time limit of {limits.cpu_s} seconds)."
            )
        if code is not None and code > EXIT_SIGNAL_BASE:
            return f"Tool {name} was killed by signal {_signal_name(code - EXIT_SIGNAL_BASE)}."
        return f"Tool {name} exited (status {code}) without returning a result."


def _drain(stream: Any, run: _Run, max_output_bytes: int) -> tuple[bytes, bytes]:
    """Read the container's demuxed output until it exits, keeping at most max_output_bytes.

    Past the cap the container is killed from another thread while this one keeps reading and
    discarding: a reader that stops reading leaves the engine blocked on a full pipe, and the
    kill then hangs.
    """
    out, err = bytearray(), bytearray()
    capped = False
    for chunk_out, chunk_err in stream:
        if capped:
            continue
        if chunk_out:
            out += chunk_out
        if chunk_err:
            err += chunk_err
        if len(out) + len(err) > max_output_bytes:
            capped = True
            threading.Thread(target=run.kill, args=("output",), daemon=True).start()
    return bytes(out), bytes(err)


def _exit_status(container: Any) -> tuple[int | None, bool]:
    """(exit code, OOM-killed) once the engine has recorded the exit."""
    try:
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Status") not in ("exited", "stopped"):
            # The stream can end a moment before the engine records the exit.
            container.wait(timeout=EXIT_STATUS_WAIT_S)
            container.reload()
            state = container.attrs.get("State", {})
        return state.get("ExitCode"), bool(state.get("OOMKilled"))
    except Exception:
        return None, False


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o444
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
