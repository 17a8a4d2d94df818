"""Agent Files (`.af`): `GET|POST /v1/agents/{id}/export` and `POST /v1/agents/import` (multipart),
as Letta serves them. The work is in `mnemo.runtime.agent_file`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Form, Header, HTTPException, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Services, get_services
from api.errors import not_supported
from mnemo.runtime.agent_file import export_agent, import_agent_file, parse_agent_file
from mnemo.runtime.agent_update import NotSupportedYet
from mnemo.runtime.agents import NotFound
from mnemo.schemas.agent_file import ImportOptions

router = APIRouter(prefix="/agents", tags=["agents"])


class ExportAgentRequest(BaseModel):
    """The body of `POST /v1/agents/{id}/export` (Letta's `ExportAgentRequest`)."""

    model_config = ConfigDict(extra="ignore")

    skills: list[dict[str, Any]] = Field(default_factory=list)
    conversation_id: str | None = None
    scrub_messages: bool = False


class ImportedAgentsResponse(BaseModel):
    agent_ids: list[str]


async def _export(
    services: Services, agent_id: str, *, scrub_messages: bool, conversation_id: str | None
) -> Response:
    if conversation_id is not None:
        raise not_supported(
            "exporting a conversation (conversation_id) is not supported yet: conversations are not built"
        )
    try:
        async with services.db.session() as s:
            doc = await export_agent(s, agent_id, scrub_messages=scrub_messages)
    except NotSupportedYet as exc:
        raise not_supported(str(exc)) from exc
    # Letta answers with the document itself, indented; letta-client hands the body over as a string.
    return Response(json.dumps(doc, indent=2, ensure_ascii=False), media_type="application/json")


@router.get("/{agent_id}/export", summary="Export an agent as an Agent File (.af)")
async def export_agent_file(
    agent_id: str,
    use_legacy_format: bool = False,
    conversation_id: str | None = None,
    scrub_messages: bool = False,
    max_steps: int | None = Query(None, description="Accepted for compatibility; Letta ignores it too."),
    services: Services = Depends(get_services),
) -> Response:
    if use_legacy_format:
        raise not_supported(
            "the legacy single-agent Agent File format is not supported; export without use_legacy_format"
        )
    return await _export(services, agent_id, scrub_messages=scrub_messages, conversation_id=conversation_id)


@router.post("/{agent_id}/export", summary="Export an agent as an Agent File (.af), with skills")
async def export_agent_file_with_skills(
    agent_id: str,
    body: ExportAgentRequest | None = Body(default=None),
    services: Services = Depends(get_services),
) -> Response:
    request = body or ExportAgentRequest()
    if request.skills:
        raise not_supported("exporting skills in an Agent File is not supported yet")
    return await _export(
        services, agent_id, scrub_messages=request.scrub_messages, conversation_id=request.conversation_id
    )


def _secrets(raw: str | None) -> dict[str, str] | None:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(422, f"secrets must be a JSON object of names to values ({exc})") from exc
    if not isinstance(value, dict):
        raise HTTPException(422, 'secrets must be a JSON object of names to values, e.g. {"API_KEY": "..."}')
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


@router.post("/import", summary="Import an Agent File (.af); returns the new agents' ids")
async def import_agent(
    file: UploadFile = File(...),
    override_existing_tools: bool = Form(True),
    strip_messages: bool = Form(False),
    secrets: str | None = Form(None),
    name: str | None = Form(None),
    embedding: str | None = Form(None),
    model: str | None = Form(None),
    # Letta's default: an imported agent is named "<name>_copy" unless the import names it.
    append_copy_suffix: bool = Form(True),
    override_name: str | None = Form(None),
    override_embedding_handle: str | None = Form(None),
    override_model_handle: str | None = Form(None),
    project_id: str | None = Form(None, description="Accepted for compatibility; Mnemo has no projects."),
    env_vars_json: str | None = Form(None),
    x_override_embedding_model: str | None = Header(None, alias="x-override-embedding-model"),
    services: Services = Depends(get_services),
) -> ImportedAgentsResponse:
    # The deprecated names are honoured when the new ones are not given, as Letta does.
    options = ImportOptions(
        override_existing_tools=override_existing_tools,
        strip_messages=strip_messages,
        secrets=_secrets(secrets or env_vars_json),
        name=name or override_name,
        append_copy_suffix=append_copy_suffix,
        model=model or override_model_handle,
        embedding=embedding or override_embedding_handle or x_override_embedding_model,
    )
    try:
        doc = parse_agent_file(await file.read())
        async with services.db.transaction() as s:
            agent_ids = await import_agent_file(s, doc, options, services.settings)
    except NotSupportedYet as exc:
        raise not_supported(str(exc)) from exc
    except NotFound as exc:
        raise HTTPException(422, f"the Agent File refers to something that does not exist: {exc}") from exc
    except ValueError as exc:  # AgentFileInvalid, ToolImportError, create_agent's own checks
        raise HTTPException(422, str(exc)) from exc
    return ImportedAgentsResponse(agent_ids=agent_ids)
