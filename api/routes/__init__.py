"""The API's routers, in mount order. Each is mounted under `/v1` and mirrored under `/latest`."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    agent_files,
    agent_tools,
    agents,
    archival,
    blocks,
    context,
    core_memory,
    global_messages,
    health,
    messages,
    models,
    passages,
    runs,
    steps,
    streams,
    tags,
    tool_approval,
    tools,
)

ROUTERS: list[APIRouter] = [
    health.router,
    tools.router,
    agent_files.router,  # before agents: `/agents/import` is not an agent id
    agents.router,
    tool_approval.router,
    agent_tools.router,
    messages.router,
    global_messages.router,  # `/messages/...`: apart from `/agents/{id}/messages`
    context.router,
    core_memory.router,
    archival.router,
    passages.router,
    blocks.router,
    runs.router,
    streams.router,
    steps.router,
    models.router,
    tags.router,
]

# Paths (relative to a prefix) served without an API key.
OPEN_PATHS: tuple[str, ...] = health.OPEN_PATHS
