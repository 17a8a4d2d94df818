"""The API process for real: `mnemo api` on a free port, health and API-key auth over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import mnemo

MNEMO = str(Path(sys.executable).parent / "mnemo")
REPO = Path(__file__).resolve().parents[2]
KEY = "s3cret-test-key"
# A path no router serves: past auth it is FastAPI's own 404, whatever routes exist.
NOWHERE = "/v1/no-such-route-for-the-auth-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, api_key: str | None) -> Iterator[str]:
    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("MNEMO_API_KEY", "DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    # The checkout's code, as pytest itself imports it (pyproject: pythonpath = ["."]).
    env.update(PYTHONPATH=str(REPO), MNEMO_HOME=str(tmp_path / "home"), MNEMO_API_PORT=str(port))
    if api_key is not None:
        env["MNEMO_API_KEY"] = api_key
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen([MNEMO, "api"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            try:
                httpx.get(f"{base}/v1/health/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mnemo api did not answer within 60 s"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why it ended.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        log.close()
        assert "Application shutdown complete" in (tmp_path / "api.log").read_text()


@pytest.fixture(scope="module")
def open_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("open_api"), api_key=None)


@pytest.fixture(scope="module")
def keyed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("keyed_api"), api_key=KEY)


@pytest.mark.parametrize("path", ["/v1/health/", "/v1/health", "/latest/health/", "/latest/health"])
def test_health_answers_with_version(open_api: str, path: str) -> None:
    response = httpx.get(open_api + path)
    assert response.status_code == 200
    assert response.json() == {"version": mnemo.__version__, "status": "ok"}


def test_without_a_key_configured_nothing_asks_for_one(open_api: str) -> None:
    response = httpx.get(open_api + NOWHERE)
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/v1/health/", "/v1/health", "/latest/health/"])
def test_health_stays_open_when_a_key_is_required(keyed_api: str, path: str) -> None:
    response = httpx.get(keyed_api + path)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    "path", [NOWHERE, "/v1/agents/", "/latest/agents/", "/v1/health/extra", "/docs", "/"]
)
def test_other_routes_need_the_key_even_when_they_do_not_exist(keyed_api: str, path: str) -> None:
    response = httpx.get(keyed_api + path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert "Authorization: Bearer" in detail and "MNEMO_API_KEY" in detail


@pytest.mark.parametrize(
    ("headers", "expected_detail"),
    [
        ({"Authorization": "Bearer wrong-key"}, "Invalid API key"),
        ({"Authorization": f"Basic {KEY}"}, "Malformed Authorization header"),
        ({"X-BARE-PASSWORD": "wrong-key"}, "Malformed X-BARE-PASSWORD header"),
        ({"X-BARE-PASSWORD": "password wrong-key"}, "Invalid API key"),
    ],
)
def test_a_wrong_key_is_refused_with_a_reason(
    keyed_api: str, headers: dict[str, str], expected_detail: str
) -> None:
    response = httpx.get(keyed_api + NOWHERE, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(expected_detail)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"authorization": f"bearer {KEY}"},
        {"X-BARE-PASSWORD": f"password {KEY}"},
    ],
)
def test_the_right_key_passes_auth(keyed_api: str, headers: dict[str, str]) -> None:
    assert httpx.get(keyed_api + NOWHERE, headers=headers).status_code == 404
    assert httpx.get(keyed_api + "/v1/health/", headers=headers).status_code == 200
