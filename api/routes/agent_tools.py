"""`POST /v1/agents/{agent_id}/tools/{tool_name}/run`: run one of an agent's tools with given arguments.

The API checks what it can answer itself (the agent, the tool attached to it, the arguments against
the tool's schema), then starts a `ToolRunWorkflow` and awaits it: the tool runs on a worker, in its
sandbox, with the agent's secrets, exactly as in a run, and at most once unless it is idempotent.
A tool that raises is a 200 with `status: "error"` and the error text, as in Letta. The call is the
client's own, so a `requires_approval` rule does not hold it (Letta's route does not either).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError

from api.deps import Services, get_services
from api.errors import not_supported
from api.routes.agents import get_agent_row
from mnemo import search_attributes as sa
from mnemo.memory.tool_schemas import TOOL_ARG_DEFAULTS
from mnemo.runtime.context import agent_tools
from mnemo.runtime.tool_run import is_runnable
from mnemo.schemas.tool_run import NOT_FOUND, NOT_STARTED, ToolRunInput, ToolRunOutcome
from mnemo.store.tables import ToolRow
from mnemo.tools.builtin import is_builtin
from workflows import names

router = APIRouter(prefix="/agents", tags=["tools"])

# Beyond the tool's own attempts: time for a worker to pick the workflow up.
SCHEDULE_GRACE_S = 120.0


class ToolExecuteRequest(BaseModel):
    """Letta's `ToolExecuteRequest`."""

    model_config = ConfigDict(extra="ignore")

    args: dict[str, Any] = Field(default_factory=dict, description="Arguments to pass to the tool")


@router.post("/{agent_id}/tools/{tool_name}/run", summary="Run one of an agent's tools with given arguments")
async def run_tool(
    agent_id: str,
    tool_name: str,
    body: ToolExecuteRequest | None = Body(default=None),
    services: Services = Depends(get_services),
) -> dict[str, Any]:
    args = {
        k: v for k, v in (body.args if body else {}).items() if v is not None and k != "request_heartbeat"
    }
    async with services.db.session() as s:
        await get_agent_row(s, agent_id)
        tools = await agent_tools(s, agent_id)
    tool = next((t for t in tools if t.name == tool_name), None)
    if tool is None:
        raise HTTPException(
            404,
            f"Tool {tool_name!r} is not attached to agent {agent_id}; attached: {[t.name for t in tools]}",
        )
    # Custom tools without Python source may still be provided by the worker itself (in-process).
    if not is_runnable(tool) and not (tool.tool_type == "custom" and tool.source_type == "python"):
        raise not_supported(
            f"Running tool {tool.name!r} ({tool.tool_type}, {tool.source_type}) is not supported yet"
        )
    problems = argument_problems(tool, args)
    if problems:
        raise HTTPException(
            422, f"The arguments do not match the schema of tool {tool.name!r}: " + "; ".join(problems)
        )
    inp = ToolRunInput(agent_id=agent_id, tool_name=tool_name, args=args, policy=services.runs.policy)
    outcome = await _execute(services, inp)
    return {
        "status": outcome.status,
        "func_return": outcome.func_return,
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
        "agent_state": None,
        "sandbox_config_fingerprint": None,
    }


def argument_problems(tool: ToolRow, args: dict[str, Any]) -> list[str]:
    """What is wrong with `args` for `tool`, one readable line each; empty if they fit its schema."""
    schema = (tool.json_schema or {}).get("parameters")
    if not isinstance(schema, dict):
        return []
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return []  # a schema that cannot be checked against: the tool judges its arguments itself
    props: dict[str, Any] = schema.get("properties") or {}
    problems: list[str] = []
    # Built-in memory tools also take Letta's older argument names, which are not in their schemas.
    if not is_builtin(tool.name) and schema.get("additionalProperties") is not True:
        unknown = sorted(set(args) - set(props))
        if unknown:
            takes = ", ".join(props) if props else "no arguments"
            problems.append(f"unexpected argument(s) {', '.join(map(repr, unknown))} (it takes: {takes})")
    merged = {**TOOL_ARG_DEFAULTS.get(tool.name, {}), **args}
    for error in sorted(cls(schema).iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator == "required" and not error.absolute_path:
            for name in error.validator_value:
                if name not in merged:
                    problems.append(f"missing required argument {name!r}{_describe(props.get(name))}")
            continue
        where = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"argument {where!r}: {error.message}" if where else error.message)
    return list(dict.fromkeys(problems))


def _describe(prop: Any) -> str:
    if not isinstance(prop, dict):
        return ""
    parts = [str(prop["type"])] if "type" in prop else []
    if prop.get("description"):
        parts.append(str(prop["description"]))
    return f" ({': '.join(parts)})" if parts else ""


async def _execute(services: Services, inp: ToolRunInput) -> ToolRunOutcome:
    runs = services.runs
    policy = inp.policy
    budget = policy.tool_start_to_close_s * max(1, policy.tool_max_attempts) + SCHEDULE_GRACE_S
    try:
        outcome: ToolRunOutcome = await runs.client.execute_workflow(
            names.TOOL_RUN_WORKFLOW,
            inp,
            id=names.tool_run_workflow_id(str(uuid.uuid4())),
            task_queue=runs.task_queue,
            result_type=ToolRunOutcome,
            execution_timeout=timedelta(seconds=budget),
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.AGENT_ID, inp.agent_id)]),
            static_summary=f"run tool {inp.tool_name} of agent {inp.agent_id}",
        )
    except WorkflowFailureError as exc:
        raise _failure(exc) from exc
    except RPCError as exc:
        raise HTTPException(503, f"Temporal is unavailable, so the tool could not be run: {exc}") from exc
    return outcome


def _failure(exc: WorkflowFailureError) -> HTTPException:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        if cause.type == NOT_FOUND:
            return HTTPException(404, cause.message)
        if cause.type in (NOT_STARTED, "DatabaseUnavailable"):
            return HTTPException(503, f"The tool could not be run: {cause.message}")
        return HTTPException(500, f"The tool could not be run: {cause.message}")
    if isinstance(cause, TemporalTimeout):
        return HTTPException(504, "No worker finished running the tool in time; is a Mnemo worker running?")
    return HTTPException(500, f"The tool could not be run: {cause or exc}")
