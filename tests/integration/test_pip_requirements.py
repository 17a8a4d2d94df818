"""A tool's `pip_requirements`: installed by the worker with pip (outside the sandbox, into a cached
directory), mounted read-only in bubblewrap and in a container, importable by the tool, which still
has no network.

Nothing here touches the internet: the test writes two tiny wheels by hand (one depends on the other)
into a local directory and points pip at it the way an operator would (PIP_FIND_LINKS, PIP_NO_INDEX).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnemo.config import get_settings
from mnemo.fakellm import Reply
from mnemo.ids import new_id
from mnemo.sandbox.base import SandboxRequest
from mnemo.sandbox.docker import DockerSandbox
from mnemo.sandbox.local import LocalSandbox
from mnemo.sandbox.requirements import SITE_DIR, RequirementsCache, env_key
from mnemo.store.tables import ToolRow
from mnemo.tools.schema_gen import generate_schema
from tests.fixtures.mnemo import Mnemo

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

GREETER = ["mnemo-greeter==1.0"]

TOOL = '''
import os

def greet(name: str) -> dict:
    """Greet someone with an installed package, and try to change that package.

    Args:
        name: Who to greet.
    """
    import mnemo_greeter
    try:
        with open(mnemo_greeter.__file__, "a") as fh:
            fh.write("# tampered")
        tampered = "changed the installed package"
    except OSError as exc:
        import errno
        tampered = errno.errorcode.get(exc.errno, str(exc))
    return {
        "greeting": mnemo_greeter.greet(name),
        "module": mnemo_greeter.__file__,
        "pythonpath": os.environ.get("PYTHONPATH"),
        "tampered": tampered,
    }
'''


def write_wheel(directory: Path, name: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel (PEP 427), with a correct RECORD."""
    dist = name.replace("-", "_")
    info = f"{dist}-1.0.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{info}/METADATA"] = metadata.encode()
    contents[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: mnemo-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    wheel = directory / f"{dist}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in contents.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wheelhouse")
    write_wheel(
        directory, "mnemo-shout", {"mnemo_shout/__init__.py": "def shout(s):\n    return s.upper() + '!'\n"}
    )
    write_wheel(
        directory,
        "mnemo-greeter",
        {
            "mnemo_greeter/__init__.py": "from mnemo_shout import shout\n\ndef greet(n):\n    return shout('hello ' + n)\n"
        },
        requires=("mnemo-shout",),
    )
    return directory


def _offline_pip(monkeypatch: pytest.MonkeyPatch, find_links: Path) -> None:
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no pip.conf may add an index
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(find_links))


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch, wheelhouse: Path) -> Path:
    _offline_pip(monkeypatch, wheelhouse)
    return wheelhouse


@pytest.fixture
def cache_root() -> Iterator[Path]:
    """Not under pytest's tmp_path: as root, sandboxes run as throwaway uids that must reach it."""
    root = Path(tempfile.mkdtemp(prefix="mnemo-tool-envs-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _request(
    requirements: list[str], source: str = TOOL, fn: str = "greet", args: dict[str, object] | None = None
) -> SandboxRequest:
    return SandboxRequest(
        source_code=source, function_name=fn, args=args or {"name": "ada"}, pip_requirements=requirements
    )


def _assert_greeted(value: object, greeting: str) -> None:
    assert isinstance(value, dict), value
    assert value["greeting"] == greeting
    assert value["module"] == f"{SITE_DIR}/mnemo_greeter/__init__.py"  # the mount, not the host path
    assert value["pythonpath"] == SITE_DIR
    # Not writable: the files are not the sandbox user's, and the mount is read-only anyway.
    assert value["tampered"] in ("EACCES", "EROFS"), value


def _entries(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


@needs_bwrap
async def test_bubblewrap_imports_the_installed_packages_read_only(
    offline_pip: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = LocalSandbox(isolation="bwrap", requirements=RequirementsCache(cache_root))
    result = await sandbox.run(_request(GREETER))
    assert result.ok, result
    _assert_greeted(result.value, "HELLO ADA!")  # mnemo-greeter and its dependency mnemo-shout
    key = env_key(GREETER, "3.11")
    assert _entries(cache_root) == [key]
    installed = cache_root / key
    assert json.loads((installed / "mnemo-tool-env.json").read_text())["requirements"] == GREETER
    assert "tampered" not in (installed / "mnemo_greeter" / "__init__.py").read_text()

    # Built once: with nothing left to install from, the same set (any order, spacing, repeats) runs.
    empty = cache_root.parent / f"{cache_root.name}-nothing"
    empty.mkdir()
    try:
        _offline_pip(monkeypatch, empty)
        again = await sandbox.run(
            _request(["mnemo-greeter == 1.0", "mnemo-greeter==1.0"], args={"name": "bo"})
        )
        assert again.ok, again
        _assert_greeted(again.value, "HELLO BO!")
        # A different set is a different directory, which now cannot be built.
        other = await sandbox.run(_request(["mnemo-shout", "mnemo-greeter==1.0"]))
        assert not other.ok and "No matching distribution found for mnemo-" in (other.error or "")
    finally:
        empty.rmdir()
    assert _entries(cache_root) == [key]


@needs_bwrap
async def test_the_tool_still_has_no_network(offline_pip: Path, cache_root: Path) -> None:
    source = (
        "def f(port):\n"
        "    import socket, mnemo_shout\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
        "    except OSError as exc:\n"
        "        return mnemo_shout.shout(type(exc).__name__)\n"
        "    return 'connected'\n"
    )
    with socket.socket() as listener:  # reachable from the host, not from the sandbox
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        sandbox = LocalSandbox(isolation="bwrap", requirements=RequirementsCache(cache_root))
        result = await sandbox.run(_request(["mnemo-shout"], source=source, fn="f", args={"port": port}))
    assert result.ok, result
    assert result.value == "CONNECTIONREFUSEDERROR!"  # its own empty network namespace


async def test_the_docker_sandbox_imports_the_installed_packages_read_only(
    offline_pip: Path, cache_root: Path, docker_base_url: str
) -> None:
    sandbox = DockerSandbox(base_url=docker_base_url, requirements=RequirementsCache(cache_root))
    try:
        result = await sandbox.run(_request(GREETER, args={"name": "docker"}))
    finally:
        sandbox.close()
    assert result.ok, result
    _assert_greeted(result.value, "HELLO DOCKER!")
    assert _entries(cache_root) == [env_key(GREETER, "3.11")]


async def test_a_failed_install_is_a_clear_tool_error(offline_pip: Path, cache_root: Path) -> None:
    sandbox = LocalSandbox(requirements=RequirementsCache(cache_root))
    result = await sandbox.run(_request(["mnemo-shout", "mnemo-absent==2.0"]))
    assert not result.ok and result.error is not None
    assert "pip failed on mnemo-absent==2.0" in result.error
    assert "requested: mnemo-absent==2.0, mnemo-shout" in result.error
    # pip's own last lines
    assert "No matching distribution found for mnemo-absent==2.0" in result.error
    assert _entries(cache_root) == []  # no half-built directory is left, none is cached


async def test_urls_paths_and_garbage_are_refused_before_pip(cache_root: Path) -> None:
    sandbox = LocalSandbox(requirements=RequirementsCache(cache_root))
    result = await sandbox.run(_request(["evil @ file:///etc"]))
    assert not result.ok and "points at a URL or path" in (result.error or "")
    result = await sandbox.run(_request(["not a requirement!!"]))
    assert not result.ok and "Invalid pip requirement 'not a requirement!!'" in (result.error or "")
    assert _entries(cache_root) == []


async def test_concurrent_builders_share_one_directory(offline_pip: Path, cache_root: Path) -> None:
    # Two caches on one root: what two workers sharing a disk are.
    first, second = RequirementsCache(cache_root), RequirementsCache(cache_root)
    paths = await asyncio.gather(
        first.ensure(GREETER), second.ensure(GREETER), first.ensure(list(reversed(GREETER)))
    )
    assert len(set(paths)) == 1
    assert _entries(cache_root) == [paths[0].name]  # the losing build was dropped, not left behind
    assert (paths[0] / "mnemo_greeter" / "__init__.py").is_file()


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs tools as throwaway uids")
async def test_a_cache_the_sandbox_user_cannot_reach_is_explained(
    offline_pip: Path, cache_root: Path
) -> None:
    private = cache_root / "private"  # e.g. MNEMO_HOME under a home directory only its owner may enter
    private.mkdir(mode=0o700)
    sandbox = LocalSandbox(isolation="bwrap", requirements=RequirementsCache(private / "envs"))
    result = await sandbox.run(_request(GREETER))
    assert not result.ok
    assert f"{private} is not searchable by other users (mode 0700)" in (result.error or "")


@needs_bwrap
async def test_an_agent_runs_a_tool_with_requirements(
    mnemo: Mnemo, offline_pip: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's sandboxes find their cache under $MNEMO_HOME/tool-envs, read when a tool needs it.
    monkeypatch.setenv("MNEMO_HOME", str(cache_root))
    get_settings.cache_clear()
    try:
        schema = generate_schema(TOOL)
        tool = ToolRow(
            id=new_id("tool"),
            name=schema["name"],
            tool_type="custom",
            source_code=TOOL,
            json_schema=schema,
            pip_requirements=[{"name": "mnemo-greeter", "version": "1.0"}],
        )
        async with mnemo.db.transaction() as s:
            s.add(tool)
        agent = await mnemo.create_agent(memory_blocks=[], tool_ids=[tool.id])
        mnemo.fake.script(Reply.tool_call("greet", {"name": "agent"}), Reply.text("done"))
        run = await mnemo.send(agent.id, "greet the agent")
        assert run.stop_reason == "end_turn"
        (ret,) = [
            json.loads(m.content[0]["text"]) for m in await mnemo.messages(agent.id) if m.role == "tool"
        ]
        assert ret["status"] == "OK", ret
        assert json.loads(ret["message"])["greeting"] == "HELLO AGENT!"
        assert _entries(cache_root / "tool-envs") == [env_key(GREETER, "3.11")]
    finally:
        get_settings.cache_clear()
