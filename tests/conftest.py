"""Shared test harness: real Temporal, real Postgres+pgvector, a real fake-LLM HTTP server.

Each fixture family lives in its own module under tests/fixtures/.
"""

import os

# litellm must not reach the network for its price list; set before anything imports it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytest_plugins = [
    "tests.fixtures.temporal",
    "tests.fixtures.postgres",
    "tests.fixtures.fake_llm",
    "tests.fixtures.mnemo",
    "tests.fixtures.api_server",
    "tests.fixtures.docker_api",
]
