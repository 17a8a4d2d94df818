"""Settings, read from the environment (and an optional `.env`).

Every variable here is documented in the README's configuration table; `docker-compose.yml`
may only set variables this model reads (a test checks it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mnemo.schemas.runs import RunPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # State directory for the embedded stack (Temporal's SQLite file, Postgres data, PID files, logs).
    mnemo_home: Path = Field(default=Path("~/.mnemo"), alias="MNEMO_HOME")

    # Unset: `mnemo up` starts an embedded Postgres with pgvector inside MNEMO_HOME.
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    db_pool_size: int = Field(default=10, alias="MNEMO_DB_POOL_SIZE")

    # Unset: `mnemo up` starts the Temporal dev server and everything connects to it.
    temporal_address: str | None = Field(default=None, alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="mnemo", alias="MNEMO_TASK_QUEUE")

    api_host: str = Field(default="127.0.0.1", alias="MNEMO_API_HOST")
    api_port: int = Field(default=8283, alias="MNEMO_API_PORT")
    temporal_port: int = Field(default=7233, alias="MNEMO_TEMPORAL_PORT")
    temporal_ui_port: int = Field(default=8233, alias="MNEMO_TEMPORAL_UI_PORT")
    # Where `make run` starts the scripted fake LLM when no provider key is set.
    fake_llm_port: int = Field(default=8299, alias="MNEMO_FAKE_LLM_PORT")

    # When set, every route but health needs `Authorization: Bearer <key>`.
    api_key: SecretStr | None = Field(default=None, alias="MNEMO_API_KEY")

    # Run model and tool calls as Temporal local activities: one task-queue round trip less per step,
    # but they show as markers in the Temporal UI, and a dead worker or a cancel is noticed per
    # workflow task rather than per call. Default: regular activities.
    local_activities: bool = Field(default=False, alias="MNEMO_LOCAL_ACTIVITIES")
    # How long a tool call waits for a human's approval before it is denied (default 24 h).
    approval_timeout_s: float = Field(default=86_400.0, gt=0, alias="MNEMO_APPROVAL_TIMEOUT_S")
    # How long a request waiting on a run (a sync send, a stream) rides out an unreachable database
    # before it answers 503 with the run's id (api/db_outage.py).
    db_outage_grace_s: float = Field(default=120.0, gt=0, alias="MNEMO_DB_OUTAGE_GRACE_S")

    # Where custom tools run unless the tool or the agent says otherwise: local (bubblewrap), docker, e2b.
    sandbox: Literal["local", "docker", "e2b"] = Field(default="local", alias="MNEMO_SANDBOX")
    # Docker API for the docker sandbox (also podman's Docker-compatible socket); unset: the SDK's default.
    docker_host: str | None = Field(default=None, alias="DOCKER_HOST")
    tool_timeout_s: float = Field(default=180.0, alias="MNEMO_TOOL_TIMEOUT_S")

    # Defaults for agents created without `model` / `embedding`.
    default_model: str | None = Field(default=None, alias="MNEMO_DEFAULT_MODEL")
    default_embedding: str = Field(default="local/multilingual-e5-small", alias="MNEMO_DEFAULT_EMBEDDING")

    # Provider credentials and endpoints, passed through to litellm.
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    anthropic_api_key: SecretStr | None = Field(default=None, alias="ANTHROPIC_API_KEY")
    ollama_base_url: str | None = Field(default=None, alias="OLLAMA_BASE_URL")
    e2b_api_key: SecretStr | None = Field(default=None, alias="E2B_API_KEY")

    def run_policy(self) -> RunPolicy:
        return RunPolicy(local_activities=self.local_activities, approval_timeout_s=self.approval_timeout_s)

    @property
    def home(self) -> Path:
        return self.mnemo_home.expanduser()

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
