"""Schemathesis against the live API: no request, valid or not, to any operation of its OpenAPI schema is
answered with a 5xx.

One test per operation (`@schema.parametrize()`), each running schemathesis' phases: the schema's
examples, the coverage phase (boundary values and deliberately invalid values for every parameter and
body field) and hypothesis fuzzing, positive and negative, with a small example budget, a fixed seed
and no example database, so that a failure can be reproduced. A 5xx fails, except 501, the
API's deliberate "not supported yet"; so does a request still unanswered after 30 s. The module's
teardown prints how many cases each operation got, and with which statuses.

Path parameters come both from schemathesis (unknown ids: the 404 paths) and from real objects the
fixture made (an agent on the fake LLM, its blocks, a tool, a passage, a finished run), so each route
also runs past its lookup into the code that reads, edits and runs things. Sending messages is
included: the seeded agent talks to the session's fake LLM (echo policy), so a fuzzed
`POST .../messages` is a real run through Temporal and a worker, and must end. Deletes get only
generated ids, so the seeded objects survive for the other operations.

How it is wired, and why:
- The schema is the app's own (`create_app().openapi()`, loaded at import so pytest can make one test
  per operation); the fixture checks that the live server serves exactly that at `/openapi.json`.
- `schemathesis.pytest.from_fixture` (a schema from a fixture) fails on pytest 9 with schemathesis
  4.32.5 (`'Function' object has no attribute '_nodeid'`), hence the import-time schema.
- The stack (database, worker, API server) is module-scoped: one per operation would cost more than
  the fuzzing itself.
- The tests are async: the worker runs on the session's event loop, which must keep turning while a
  request waits for a run. Each request goes out on a thread with a timeout, so a route that hangs
  fails its test instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error

from api.app import create_app
from mnemo.config import Settings
from mnemo.fakellm import FakeLLM, Reply
from tests.fixtures.api_server import ApiServer
from tests.fixtures.mnemo import fake_llm_config, make_settings
from tests.fixtures.postgres import PgServer
from worker.main import build_worker

# Seconds one request may take. The slowest honest one is a synchronous send: a whole run on the fake
# LLM, well under a second here. A route still busy after this is hung.
REQUEST_TIMEOUT_S = 30.0
# Fuzzing examples per operation (on top of the examples and coverage phases): 43 operations must fit
# in about a minute on a 2-core machine.
MAX_EXAMPLES = 8

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260601,
        # No example database: the same cases every run, and nothing written to .hypothesis/.
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "no-shrink": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        # 501 is the API's deliberate "not supported yet" answer (conversations, identities, ...).
        "checks": {"not_a_server_error": {"expected-statuses": ["2XX", "3XX", "4XX", "501"]}},
    }
)
OPENAPI = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)

# Cases sent per operation label, and the statuses they were answered with.
SENT: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}

TOOL_SOURCE = '''def {name}(sides: int) -> str:
    """Roll a die.

    Args:
        sides: How many faces the die has.
    """
    return "4"
'''


@dataclass
class Live:
    base_url: str
    http: requests.Session
    ids: dict[str, str]  # real objects' ids, by path parameter name
    llm_config: dict[str, Any]


def steer(case: Case, live: Live) -> None:
    """Point two cases in three at real objects and past checks the schema cannot state.

    A schema-valid case is still mostly rejected before the route's own code runs: its ids name
    nothing, its `source_code` is not a Python function, it gives neither (or both) of two exclusive
    fields. Those rejections stay covered by the third of cases left as generated; the rest get real
    ids (except deletes, so the seeded objects survive), and the few fields the schema cannot
    describe filled in. The choice is a hash of the case, so a case is always steered the same way.
    """
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("callback_url"), str) and "://" in body["callback_url"]:
        # The worker POSTs a run's callback_url when it ends: keep generated URLs on loopback.
        case.body = body = {**body, "callback_url": "http://127.0.0.1:9/callback"}
    key = zlib.crc32(repr((case.operation.label, case.path_parameters, case.query, body)).encode())
    if key % 3 == 0:
        return
    if case.path_parameters and case.method.upper() != "DELETE":
        case.path_parameters = {k: live.ids.get(k, v) for k, v in case.path_parameters.items()}
    if not isinstance(body, dict):
        return
    path = case.operation.path
    if path.endswith("/core-memory/blocks/{block_label}"):
        # The one relabel that succeeded would leave every later case a 404 (blocks are relabelled
        # through PATCH /v1/blocks/{block_id}, on another block).
        case.body = {k: v for k, v in body.items() if k != "label"}
    elif path == "/v1/agents/" and body.get("model") is None and body.get("llm_config") is None:
        case.body = {**body, "llm_config": live.llm_config}
    elif path.startswith("/v1/tools/") and isinstance(body.get("source_code"), str):
        case.body = {**body, "source_code": TOOL_SOURCE.format(name=f"fuzzed_{key % 97}")}
    elif path.startswith("/v1/agents/{agent_id}/messages") and "cancel" not in path:
        if body.get("messages") is not None and body.get("input") is not None:
            case.body = {k: v for k, v in body.items() if k != "input"}
        elif body.get("messages") is None and body.get("input") is None:
            case.body = {**body, "input": "hi"}


async def _seed(base_url: str, fake: FakeLLM, llm: dict[str, Any]) -> dict[str, str]:
    """Objects for path parameters to name: an agent (with its blocks, a passage and a finished run),
    a block and a tool."""
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as http:

        async def post(path: str, body: dict[str, Any]) -> Any:
            response = await http.post(path, json=body)
            assert response.status_code == 200, (path, response.status_code, response.text)
            return response.json()

        served = (await http.get("/openapi.json")).json()
        assert served == OPENAPI, "the live API serves another schema than the one the tests were made from"
        blocks = [{"label": "human", "value": "Name: Ada"}, {"label": "persona", "value": "I am Sam."}]
        agent = await post("/v1/agents/", {"memory_blocks": blocks, "llm_config": llm})
        block = await post("/v1/blocks/", {"label": "notes", "value": "shared notes"})
        tool = await post("/v1/tools/", {"source_code": TOOL_SOURCE.format(name="roll")})
        (passage,) = await post(f"/v1/agents/{agent['id']}/archival-memory", {"text": "The cat is Miso."})
        fake.script(Reply.text("Hello, Ada."))
        await post(f"/v1/agents/{agent['id']}/messages", {"input": "hi"})
        (run,) = (await http.get("/v1/runs/", params={"agent_id": agent["id"]})).json()
    return {
        "agent_id": agent["id"],
        "block_id": block["id"],
        "block_label": "human",
        "tool_id": tool["id"],
        "memory_id": passage["id"],
        "run_id": run["id"],
    }


@pytest.fixture(scope="module")
async def live(
    temporal_env,  # type: ignore[no-untyped-def]
    pg_server: PgServer,
    pg_template: str,
    fake_llm_server: FakeLLM,
) -> AsyncIterator[Live]:
    """A database, a worker on the session loop and the API in a thread, for all of this module."""
    name = f"test_schemathesis_{uuid.uuid4().hex[:12]}"
    database_url = pg_server.create_database(name, template=pg_template)
    task_queue = f"schemathesis-{uuid.uuid4()}"
    target = temporal_env.client.service_client.config.target_host
    api = ApiServer(Settings(DATABASE_URL=database_url, TEMPORAL_ADDRESS=target, MNEMO_TASK_QUEUE=task_queue))
    llm = fake_llm_config(fake_llm_server)
    fake_llm_server.reset()
    try:
        worker, close = await build_worker(
            temporal_env.client,
            make_settings(database_url, task_queue),
            task_queue,
            database_url=database_url,
        )
        try:
            async with worker:
                await asyncio.to_thread(api.start)
                try:
                    ids = await _seed(api.base_url, fake_llm_server, llm)
                    SENT.clear()
                    STATUSES.clear()
                    with requests.Session() as http:
                        yield Live(api.base_url, http, ids, llm)
                finally:
                    await asyncio.to_thread(api.stop)
        finally:
            await close()
    finally:
        fake_llm_server.reset()
        pg_server.drop_database(name)
    report = "\n".join(
        f"  {n:4d}  {label:60s} {dict(sorted(STATUSES.get(label, Counter()).items()))}"
        for label, n in SENT.items()
    )
    print(f"\n[schemathesis] cases sent per operation ({sum(SENT.values())} in all):\n{report}")


@pytest.fixture
def counted(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails an operation's test if it ran without sending a single case."""
    yield
    label = request.node.name.partition("[")[2].rstrip("]")
    assert SENT[label] > 0, f"{label}: no case was sent"


@schema.parametrize()
# Health checks off: `counted` is function-scoped on purpose (once per operation), and drawing the
# larger bodies (an agent's) is slow by hypothesis' standards.
@settings(deadline=None, suppress_health_check=list(HealthCheck))
async def test_no_request_is_answered_with_a_server_error(case: Case, live: Live, counted: None) -> None:
    steer(case, live)
    SENT[case.operation.label] += 1
    # On a thread, so the session loop keeps running the worker a sent message waits for.
    response = await asyncio.to_thread(
        case.call, base_url=live.base_url, session=live.http, timeout=REQUEST_TIMEOUT_S
    )
    STATUSES.setdefault(case.operation.label, Counter())[response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error])


async def test_inputs_fuzzing_found_are_rejected_with_422(live: Live) -> None:
    """Regressions: each was a 500, or a stream cut off after its 200 header, before the fix in api/."""
    agent_id, run_id = live.ids["agent_id"], live.ids["run_id"]
    bad = [
        # A cursor beyond Postgres INTEGER failed inside the already-started SSE response.
        (f"/v1/runs/{run_id}/stream", {"starting_after": 2**31}, "body.starting_after"),
        # A text part whose text is not a string broke joining the message's text.
        (
            f"/v1/agents/{agent_id}/messages",
            {"messages": [{"content": [{"type": "text", "text": 5}]}]},
            "body.messages.0.message.content",  # the tag names which kind of message it was read as
        ),
        (f"/v1/agents/{agent_id}/messages/async", {"input": [{"type": "text", "text": None}]}, "body.input"),
    ]
    async with httpx.AsyncClient(base_url=live.base_url, timeout=REQUEST_TIMEOUT_S) as http:
        for path, body, field in bad:
            response = await http.post(path, json=body)
            assert response.status_code == 422, (path, body, response.status_code, response.text)
            assert field in response.json()["message"], response.text
